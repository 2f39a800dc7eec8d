"""The model-family table: every family-specific fact caption-wizard needs, as data (no torch).

    fam = family("gemma3")                      # a Family row, or UserError naming the supported list
    fam = family_of_folder("/models/my-llava")   # from the folder's config.json (model_type)
    fam = model_family(recipe.model)             # wizard.catalog: a folder, the demo, a catalog id, or None

One path serves every family: AutoModelForImageTextToText, AutoProcessor and the processor's own
chat template (wizard/model.py, wizard/chat.py, wizard/train/collate.py). What differs between
families is a row here, read by the model plan (freezing, 4-bit, LoRA), the collator and captioning
(prompt style, end token, processor call quirks), the data check and the memory estimate (image
tokens, config widths). Add a family by adding a row and a tiny builder (wizard/demo/families.py);
the checked facts behind these rows are in the shared notes (notes/families.md).

Fields of a Family (what each one decides, and who reads it):

  model_type       config.json's "model_type": the key of the row.
  title, group     how the wizard's model question, the README and messages name it; `group` puts
                   families under one heading in the wizard (Qwen-VL, LLaVA, Google, ...).
  language_model   module prefix of the language model. LoRA targets are anchored here (plain
                   suffixes put adapters on vision towers in 13 of 15 families: CLIP/SigLIP have
                   q/k/v_proj, Qwen2.5-VL's vision MLP gate/up/down_proj, Pixtral all seven).
  vision           module prefixes of the vision tower and the projector: frozen by
                   tuning.freeze_vision, kept out of 4-bit (as regex forms: transformers 5 matches a
                   bare name only at the top level), never given LoRA adapters.
  lora_targets     linear-layer names inside `language_model` that LoRA adapts when
                   tuning.lora.target_modules is null.
  end_token        the token appended after every caption: what ends the assistant's turn. None:
                   the tokenizer's eos (templates that do not close the turn, LLaVA-1.5's, need it).
  stop_tokens      generation stops on any of these that the vocabulary has, besides end_token and
                   the tokenizer's eos (Gemma 3's turn ends with <end_of_turn>, not its eos).
  prompt           chat: the processor's chat template with add_generation_prompt;
                   prefix_suffix: no template, the processor's text is the prefix and its `suffix=`
                   builds input and labels (PaliGemma); task: the processor's text is a task token
                   like <CAPTION> (Florence-2).
  encoder_decoder  the caption is the decoder's sequence: labels are the caption alone, decoder
                   inputs start with `decoder_start` (Florence-2's BART: </s>).
  default_prompt   {language: prompt} used when data.prompt is null, instead of the task's prompt.
  batching         grid: the Qwen fast path (the image processor alone, cached; one placeholder
                   widened to t*h*w/merge^2 tokens); processor: the processor builds every batch and
                   every output it returns goes to the model unchanged (token-aligned ones extended
                   over the caption).
  grid_vision      the vision tower's forward is (patch rows, grid_thw), one image after another:
                   it may run a few images at a time and its features can be cached
                   (wizard/train/load.py, wizard/train/vision_cache.py).
  pixel_budget     how data.min_pixels/max_pixels reach the image processor: min_max (Qwen-style
                   resize into [min, max] pixels), longest_edge (the longest side capped at
                   sqrt(max_pixels)), fixed (a fixed input size or tiling: data.max_pixels has no effect).
  processor_from_config  processor attributes set from the model's config after loading
                   ({attribute: dotted config path}): Pixtral processors saved without Mistral 3's
                   patch and merge sizes would count image tokens wrong.
  image_tokens     how one image's language-model tokens are counted (count_image_tokens): grid
                   (Qwen smart resize, exact, no torch), fixed:KEY (a number from the processor's
                   config), tiles / tiles+base (per-tile tokens x tiles for images of data.max_pixels,
                   + a global view), longest_edge (Pixtral rows x columns),
                   one (a single token: Mllama's cross-attention). The data check uses the
                   processor's own count when the model is on this machine.
  widths           config.json names of the text widths for the estimate: hidden, intermediate,
                   layers (summed when a tuple: encoder + decoder), heads, kv_heads, vocab.
  needs            pip packages the processor needs beyond caption-wizard's (SmolVLM: num2words).
  auto_class       the transformers Auto class that loads it (every family here: image-text-to-text).
  trust_remote_code  the family only loads with remote code (none here: model.trust_remote_code
                   is the user's opt-in for architectures outside this table).
  processors       processor class names that belong to this family (captioning with only a processor).
  verified         how this family is tested (the README's model table).
  max_aspect_ratio longest / shortest side its image processor takes: `data` skips (and names) images
                   beyond it, so a run never meets them in a DataLoader worker (wizard/images.py).
                   smart_resize (Qwen, GLM) refuses 200:1; 200 is also the default for the others.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from wizard.errors import UserError

LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
WIDTHS = {"hidden": "hidden_size", "intermediate": "intermediate_size", "layers": "num_hidden_layers",
          "heads": "num_attention_heads", "kv_heads": "num_key_value_heads", "vocab": "vocab_size"}
TOWER = ("model.vision_tower", "model.multi_modal_projector")
TESTED = "tiny offline model: train 2 steps (qlora/lora/full), caption, merge + reload"


@dataclass(frozen=True)
class Family:
    model_type: str
    title: str
    group: str
    language_model: str = "model.language_model"
    vision: tuple[str, ...] = TOWER
    lora_targets: tuple[str, ...] = LLAMA_LINEARS
    end_token: str | None = None
    stop_tokens: tuple[str, ...] = ()
    prompt: str = "chat"  # chat | prefix_suffix | task
    encoder_decoder: bool = False
    decoder_start: str | None = None  # encoder-decoder: the token the decoder starts from
    default_prompt: dict[str, str] | None = None
    batching: str = "processor"  # grid | processor
    grid_vision: bool = False
    pixel_budget: str = "fixed"  # min_max | longest_edge | fixed
    processor_from_config: dict[str, str] = field(default_factory=dict)
    image_tokens: str = "grid"
    widths: dict[str, object] = field(default_factory=lambda: dict(WIDTHS))
    needs: tuple[str, ...] = ()
    auto_class: str = "AutoModelForImageTextToText"
    trust_remote_code: bool = False
    processors: tuple[str, ...] = ()
    verified: str = TESTED
    max_aspect_ratio: float = 200.0  # longer side / shorter side the processor takes; `data` skips images beyond

    @property
    def skip_quant(self) -> tuple[str, ...]:
        """Module prefixes kept out of 4-bit: the vision tower, the projector and the output head."""
        return (*self.vision, "lm_head")

    @property
    def vision_leaves(self) -> tuple[str, ...]:
        """The last name of each vision prefix (visual, vision_tower, ...): matches checkpoint keys too,
        whose layout (vision_tower.vision_model... vs model.vision_tower...) varies by version."""
        return tuple(p.rsplit(".", 1)[-1] for p in self.vision)


QWEN = dict(group="Qwen-VL", vision=("model.visual",), end_token="<|im_end|>", stop_tokens=("<|endoftext|>",),
            batching="grid", pixel_budget="min_max", image_tokens="grid")

_ROWS = [
    Family("qwen2_vl", "Qwen2-VL", grid_vision=True, processors=("Qwen2VLProcessor",),
           verified="the demo + tiny offline model: every test; real widths: bench/realshape.py", **QWEN),
    Family("qwen2_5_vl", "Qwen2.5-VL", grid_vision=True, processors=("Qwen2_5_VLProcessor",), **QWEN),
    Family("qwen3_vl", "Qwen3-VL", processors=("Qwen3VLProcessor",), **QWEN),
    Family("glm4v", "GLM-4.1V", "GLM", vision=("model.visual",), end_token="<|endoftext|>",
           stop_tokens=("<|user|>", "<|observation|>"), batching="grid", pixel_budget="min_max",
           lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"),
           processors=("Glm4vProcessor",)),
    Family("llava", "LLaVA-1.5", "LLaVA", image_tokens="fixed:patches", processors=("LlavaProcessor",)),
    Family("llava_next", "LLaVA-NeXT", "LLaVA", image_tokens="tiles+base", processors=("LlavaNextProcessor",)),
    Family("llava_onevision", "LLaVA-OneVision", "LLaVA", end_token="<|im_end|>", image_tokens="tiles+base",
           processors=("LlavaOnevisionProcessor",)),
    Family("internvl", "InternVL (-hf)", "InternVL", end_token="<|im_end|>", image_tokens="tiles",
           processors=("InternVLProcessor",)),
    Family("idefics3", "Idefics3", "SmolVLM / Idefics", language_model="model.text_model",
           vision=("model.vision_model", "model.connector"), end_token="<end_of_utterance>",
           image_tokens="tiles", processors=("Idefics3Processor",)),
    Family("smolvlm", "SmolVLM", "SmolVLM / Idefics", language_model="model.text_model",
           vision=("model.vision_model", "model.connector"), end_token="<end_of_utterance>",
           image_tokens="tiles", needs=("num2words",), processors=("SmolVLMProcessor",)),
    Family("gemma3", "Gemma 3", "Google", end_token="<end_of_turn>", image_tokens="fixed:image_seq_length",
           processors=("Gemma3Processor",)),
    Family("paligemma", "PaliGemma 2", "Google", prompt="prefix_suffix", image_tokens="fixed:image_seq_length",
           default_prompt={"en": "caption en", "zh": "caption zh"}, processors=("PaliGemmaProcessor",)),
    Family("florence2", "Florence-2", "Microsoft", prompt="task", encoder_decoder=True, decoder_start="</s>",
           lora_targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
           default_prompt={"en": "<CAPTION>", "zh": "<CAPTION>"}, image_tokens="fixed:image_seq_length",
           widths=dict(WIDTHS, hidden="d_model", intermediate="encoder_ffn_dim",
                       layers=("encoder_layers", "decoder_layers"), heads="encoder_attention_heads",
                       kv_heads="encoder_attention_heads"),
           processors=("Florence2Processor",)),
    Family("mllama", "Llama 3.2 Vision", "Meta Llama", vision=("model.vision_model", "model.multi_modal_projector"),
           end_token="<|eot_id|>", stop_tokens=("<|eom_id|>", "<|end_of_text|>"), image_tokens="one",
           processors=("MllamaProcessor",)),
    Family("mistral3", "Mistral 3 (Pixtral)", "Mistral", pixel_budget="longest_edge", image_tokens="longest_edge",
           processor_from_config={"patch_size": "vision_config.patch_size",
                                  "spatial_merge_size": "spatial_merge_size"},
           processors=("PixtralProcessor",)),
]
FAMILIES: dict[str, Family] = {f.model_type: f for f in _ROWS}
DEFAULT = FAMILIES["qwen2_vl"]  # the demo's family: what an unknown catalog id is assumed to be like


def supported() -> str:
    return ", ".join(FAMILIES)


def family(model_type: str | None, *, where: str = "", trust_remote_code: bool = False) -> Family:
    """The row for `model_type`; an architecture outside the table is a UserError (exit 2) naming it
    and the supported list, unless the user opted into remote code (then the generic row)."""
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    if trust_remote_code:
        return Family(str(model_type), f"{model_type} (remote code)", "Other", verified="not tested",
                      trust_remote_code=True, image_tokens="one")
    shown = f"{where}: " if where else ""
    raise UserError(f"{shown}model_type {model_type!r} is not a family caption-wizard supports "
                    f"(supported: {supported()})",
                    hint="choose a model of one of these families; for a model that ships its own code (MiniCPM-V, "
                         "the original InternVL) set model.trust_remote_code=true, at your own risk")


def read_config(folder) -> dict | None:
    """config.json of a model folder, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((Path(folder).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def family_of_folder(folder, *, trust_remote_code: bool = False) -> Family:
    config = read_config(folder)
    if config is None:
        raise UserError(f"{folder}: no readable config.json: not a Hugging Face model folder",
                        hint="a model folder holds config.json, the weights (*.safetensors) and the processor files")
    return family(config.get("model_type"), where=f"{folder}/config.json", trust_remote_code=trust_remote_code)


def for_processor(processor) -> Family:
    """The family of a loaded processor, by its class name (the model plan passes the family explicitly)."""
    name = type(processor).__name__
    return next((f for f in _ROWS if name in f.processors), DEFAULT)


# ----------------------------------------------------------------------------- image tokens, no torch
def processor_settings(folder) -> dict:
    """The image processor's and the processor's settings of a model folder, merged: processor_config.json
    (transformers 5 nests the image processor in it) and preprocessor_config.json."""
    out: dict = {}
    for name in ("preprocessor_config.json", "processor_config.json"):
        try:
            cfg = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            continue
        if isinstance(cfg, dict):
            out.update(cfg.get("image_processor") or {})
            out.update({k: v for k, v in cfg.items() if k != "image_processor"})
    return out


def grid_tokens(height: int, width: int, *, factor: int = 28, min_pixels: int = 56 * 56,
                max_pixels: int = 28 * 28 * 1280) -> int:
    """Image tokens of one image after Qwen2-VL's smart resize: each side rounded to a multiple of
    `factor`, the area scaled into [min_pixels, max_pixels], one token per factor x factor pixels.
    The same arithmetic as transformers' qwen2_vl smart_resize (a test compares them)."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return (h_bar // factor) * (w_bar // factor)


def _side(value, default: int) -> int:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("height") or value.get("shortest_edge") or value.get("longest_edge")
    return int(value or default)


def max_image_tokens(fam: Family, settings: dict, config: dict | None, *, max_pixels: int) -> int:
    """Language-model tokens of the largest image the processor makes (the estimate's worst case)."""
    config = config or {}
    vis = config.get("vision_config") or {}
    kind = fam.image_tokens
    patch = settings.get("patch_size") or vis.get("patch_size") or 14
    patch = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
    if kind == "grid":
        factor = patch * int(settings.get("merge_size") or vis.get("spatial_merge_size") or 2)
        return max(1, max_pixels // (factor * factor))
    if kind == "one":
        return 1
    if kind == "longest_edge":  # Pixtral: rows x (columns + [IMG_BREAK]) of patch x merge cells
        cell = patch * int(config.get("spatial_merge_size") or settings.get("spatial_merge_size") or 1)
        side = min(_side(settings.get("size"), 1024), math.isqrt(max_pixels))
        n = max(1, side // cell)
        return n * (n + 1)
    if kind.startswith("fixed:"):
        key = kind.split(":", 1)[1]
        if key == "patches":  # LLaVA-1.5: (crop / patch)^2 (+1 CLS -1 with the "default" strategy)
            side = _side(settings.get("crop_size"), _side(vis.get("image_size"), 336))
            return (side // patch) ** 2
        return int(settings.get(key) or config.get("mm_tokens_per_image") or config.get(key) or 256)
    # tiles: tokens per tile x tiles, plus a global view (LLaVA-NeXT's base image: always; InternVL's
    # thumbnail and Idefics' global image: when split). How many tiles an image gets depends on its
    # size and aspect ratio: the estimate assumes images of data.max_pixels, up to the processor's most.
    per_tile = settings.get("image_seq_length") or settings.get("image_seq_len") or settings.get("num_image_tokens")
    tile = _side(settings.get("max_image_size") or settings.get("size") or settings.get("crop_size"),
                 _side(vis.get("image_size"), 336))
    if per_tile is None:
        per_tile = (tile // patch) ** 2
    most = int(settings.get("max_patches") or 0)
    if not most and isinstance(settings.get("max_image_size"), dict):
        most = math.ceil(_side(settings.get("size"), tile) / tile) ** 2
    if not most and settings.get("image_grid_pinpoints"):
        most = max(h * w for h, w in settings["image_grid_pinpoints"]) // (tile * tile)
    return tiled_tokens(int(per_tile), tile, most, max_pixels, base=kind == "tiles+base")


def tiled_tokens(per_tile: int, tile: int, most: int, max_pixels: int, *, base: bool = False) -> int:
    """Tokens of an image of max_pixels cut into tiles of tile x tile (at most `most`), plus the global
    view (always with `base`, else only when the image is split)."""
    tiles = min(max(most, 1), max(1, math.ceil(max_pixels / (tile * tile))))
    return per_tile * (tiles + (base or tiles > 1))
