"""Widths and parameter counts of a model, for the memory estimate (no torch).

    dims, info = model_dims(recipe)     # a local folder: its config.json + the safetensors headers

From a local folder: the text widths come from config.json through the family's `widths` names
(wizard/families.py: Florence-2's BART says d_model, encoder_layers, ...), the parameter counts
from the safetensors headers (each tensor's name and shape, read without loading a weight: exact
for every family, whatever its vision tower), split into vision (the family's vision prefixes),
embeddings and head, the language model's matrices (what 4-bit quantizes) and the rest (norms,
biases). Without safetensors (or without a folder), Qwen2-VL's formula or the catalog's totals.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from wizard import families
from wizard.catalog import ModelInfo, model_info


@dataclass(frozen=True)
class Dims:
    """Parameter counts by part, for the memory estimate. Exact when read from a folder's safetensors."""

    hidden: int
    intermediate: int
    layers: int
    vocab: int
    kv_dim: int  # width of k_proj / v_proj outputs (grouped-query attention)
    tied: bool  # lm_head shares the input embeddings' weights
    linear: int  # the language model's linear-layer weights (what 4-bit quantizes; biases excluded)
    other: int  # every other parameter outside embeddings/lm_head/vision: biases, norms
    vision: int  # vision tower + merger
    pixels_per_token: int
    vision_width: int = 1280
    vision_depth: int = 32
    from_config: bool = False
    image_tokens: int | None = None  # language-model tokens per image when not a pixel grid (None: grid)
    decoder_layers: int = 0  # of `layers`, those of a decoder that sees only the caption (Florence-2)
    embed_params: int | None = None  # embeddings + lm_head as counted (None: vocab x hidden, x2 untied)

    @property
    def embed(self) -> int:
        return self.vocab * self.hidden

    @property
    def total(self) -> int:
        heads = self.embed_params if self.embed_params is not None else self.embed * (1 if self.tied else 2)
        return self.linear + self.other + self.vision + heads

    def tokens_per_image(self, max_pixels: int) -> int:
        return self.image_tokens if self.image_tokens is not None else max(1, max_pixels // self.pixels_per_token)


def model_dims(recipe) -> tuple[Dims, ModelInfo]:
    """(Dims, catalog info): from the local folder when there is one, else the catalog."""
    info = model_info(recipe.model.id)
    folder = Path(recipe.model.id).expanduser()
    config = families.read_config(folder) if recipe.model.source == "local" else None
    if config is not None:
        try:
            return dims_from_folder(folder, config, recipe.data.max_pixels), info
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return dims_from_catalog(info), info


def _width(text: dict, config: dict, names, default=None) -> int:
    names = names if isinstance(names, tuple) else (names,)
    values = [text.get(n, config.get(n)) for n in names]
    if any(v is None for v in values):
        if default is None:
            raise KeyError(names)
        return default
    return sum(int(v) for v in values)


def dims_from_folder(folder: Path, config: dict, max_pixels: int = 401408) -> Dims:
    fam = families.FAMILIES.get(config.get("model_type"), families.DEFAULT)
    dims = dims_from_config(config, fam)
    counts = safetensors_counts(folder, fam)
    settings = families.processor_settings(folder)
    tokens = None if fam.image_tokens == "grid" else families.max_image_tokens(fam, settings, config,
                                                                               max_pixels=max_pixels)
    fields = dict(dims.__dict__, image_tokens=tokens)
    if counts is not None:
        fields.update(counts)
    return Dims(**fields)


def safetensors_counts(folder: Path, fam: families.Family) -> dict | None:
    """Parameter counts by part from the safetensors headers (8-byte length + JSON: names and shapes)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    vision_leaves = set(fam.vision_leaves)
    counts = {"linear": 0, "other": 0, "vision": 0, "embed_params": 0}
    for file in files:
        with open(file, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            n = 1
            for d in meta["shape"]:
                n *= d
            parts = name.split(".")
            if vision_leaves.intersection(parts):
                counts["vision"] += n
            elif "embed_tokens" in parts or parts[-2:] == ["shared", "weight"] or "lm_head" in parts:
                counts["embed_params"] += n
            elif len(meta["shape"]) == 2 and "embed_positions" not in parts:
                counts["linear"] += n
            else:
                counts["other"] += n
    return counts


def dims_from_config(config: dict, fam: families.Family = families.DEFAULT) -> Dims:
    """Widths from config.json (the family's names); parameter counts by Qwen2-VL's formula (exact for
    Qwen2-VL; replaced by the safetensors counts when the weights are there)."""
    text = config.get("text_config") or config
    vis = config.get("vision_config") or {}
    w = fam.widths
    h, inter, layers = _width(text, config, w["hidden"]), _width(text, config, w["intermediate"]), _width(
        text, config, w["layers"])
    heads = _width(text, config, w["heads"])
    head_dim = text.get("head_dim") or h // heads
    kv = _width(text, config, w["kv_heads"], heads) * head_dim
    q = heads * head_dim
    linear = layers * (h * q + 2 * h * kv + q * h + 3 * h * inter)
    bias = 0 if text.get("attention_bias") is False else q + 2 * kv  # Qwen2: q/k/v biases
    other = layers * (bias + 2 * h) + h  # + 2 RMSNorms per layer and the final one
    tied = bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))
    patch, merge = vis.get("patch_size", 14), vis.get("spatial_merge_size", 2)
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    decoder = int(text.get("decoder_layers", 0)) if fam.encoder_decoder else 0
    return Dims(hidden=h, intermediate=inter, layers=layers, vocab=_width(text, config, w["vocab"]), kv_dim=kv,
                tied=tied, linear=linear, other=other, vision=_vision_params(vis, h),
                pixels_per_token=(patch * merge) ** 2,
                vision_width=vis.get("embed_dim") or vis.get("hidden_size", 1280), vision_depth=vis.get("depth", 32),
                from_config=True, decoder_layers=decoder)


def _vision_params(vis: dict, lm_hidden: int) -> int:
    """Qwen2-VL's vision tower: Conv3d patch embedding, pre-LayerNorm blocks (qkv, proj, fc1/fc2 MLP),
    and the merger (LayerNorm, two linear layers to the language model's width). Other towers differ:
    the safetensors counts replace this when the weights are there."""
    if "depth" not in vis and vis:  # not a Qwen-style tower: counted from the safetensors (or the catalog)
        return 0
    d = vis.get("embed_dim") or vis.get("hidden_size", 1280)
    d = d[-1] if isinstance(d, (list, tuple)) else d
    depth = vis.get("depth", vis.get("num_hidden_layers", 32))
    depth = sum(depth) if isinstance(depth, (list, tuple)) else depth
    mlp = int(d * vis.get("mlp_ratio", 4)) if "mlp_ratio" in vis else vis.get("intermediate_size", 4 * d)
    patch, tp, ch, merge = vis.get("patch_size", 14), vis.get("temporal_patch_size", 2), vis.get("in_chans", vis.get(
        "in_channels", 3)), vis.get("spatial_merge_size", 2)
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    out = vis.get("hidden_size") if "embed_dim" in vis else vis.get("out_hidden_size", lm_hidden)
    out = out[-1] if isinstance(out, (list, tuple)) else out
    block = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * mlp + mlp) + (mlp * d + d)
    wide = d * merge * merge
    merger = 2 * d + (wide * wide + wide) + (wide * out + out)
    return d * ch * tp * patch * patch + depth * block + merger


KNOWN_INTERMEDIATE = {1536: 8960, 3584: 18944, 2048: 11008, 2560: 9728}  # Qwen2/2.5-VL, Qwen3-VL-4B widths


def dims_from_catalog(info: ModelInfo) -> Dims:
    """From the catalog's totals: what is not vision or embeddings is the language model's layers.
    Qwen entries leave intermediate/kv_dim/tied to Qwen's known widths and rules."""
    h, vocab = info.hidden, info.vocab
    tied = info.tied if info.tied is not None else info.params_b < 5  # Qwen: 2B-4B tie lm_head, 7B/8B not
    vision = int(info.vision_params_b * 1e9)
    language = int(info.params_b * 1e9) - vision - vocab * h * (1 if tied else 2)
    other = info.layers * 2 * h + h
    row = info.row
    tokens = None if row.image_tokens == "grid" or info.tokens_per_image is None else info.tokens_per_image
    return Dims(hidden=h, intermediate=info.intermediate or KNOWN_INTERMEDIATE.get(h, int(5.4 * h)),
                layers=info.layers, vocab=vocab, kv_dim=info.kv_dim or max(h // 6, 128), tied=tied,
                linear=max(language - other, 0), other=other, vision=vision, pixels_per_token=info.pixels_per_token,
                image_tokens=tokens, decoder_layers=info.layers // 2 if row.encoder_decoder else 0)
