"""One model plan: where the model runs, in which dtypes, what is 4-bit, and how it is loaded.

    plan = plan_model(recipe, folder, purpose="train")   # decisions only (torch only for the GPU check)
    model = load_base(plan)                                # the base model, every weight frozen
    processor = load_processor(folder, recipe.data)        # image size capped at data.min/max_pixels
    dims = model_dims(recipe)                              # widths and parameter counts, no torch

Training (wizard/train/load.py adds adapters and trainable parts on top), caption, eval, export
and the memory estimate (wizard/estimate.py) all consume this module, so they cannot disagree.

  purpose  train: the recipe's device and precision; qlora quantizes the language model's linear
                  layers to 4 bit; full loads fp32 master weights (the Trainer autocasts).
           infer: the same device and precision; qlora runs in 4 bit on a GPU only (a CPU has
                  no fast 4-bit kernels, and a merged export is unquantized: captions match).
           merge: the CPU, unquantized, in the checkpoint's own dtype (what `export --merge` writes).
  dtypes   everything not 4-bit stays at the compute dtype (vision tower, merger, embeddings,
           lm_head, norms: Qwen's RMSNorm computes in fp32 inside anyway). Only trainable weights
           keep fp32 master copies: LoRA matrices (peft), modules_to_save and an unfrozen vision
           tower (wizard/train/load.py). peft's prepare_model_for_kbit_training would upcast every
           non-4-bit weight to fp32: for a 7B model ~1.8B parameters, 7 GB instead of 3.5 GB.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard.catalog import ModelInfo, model_info

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


# ----------------------------------------------------------------------------- device and precision
def pick_device(recipe=None, *, for_training: bool = True) -> str:
    """"cpu" or "cuda:N". Training processes take their LOCAL_RANK (the runner sets CUDA_VISIBLE_DEVICES);
    captioning in this process takes the recipe's first listed GPU."""
    import torch

    devices = getattr(getattr(recipe, "launch", None), "devices", "auto")
    if devices == "cpu" or not torch.cuda.is_available():
        return "cpu"
    if for_training:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return f"cuda:{devices[0]}" if isinstance(devices, list) and devices else "cuda:0"


def resolve_precision(precision, device: str, bf16_ok: bool | None = None) -> str:
    """auto: bf16 where the GPU computes it natively, fp16 on older GPUs (T4, V100: bf16 there is
    emulated and slow), fp32 on the CPU. bf16_ok: decided by the caller (the estimate: no torch)."""
    value = getattr(precision, "value", precision)
    if value != "auto":
        return value
    if device == "cpu":
        return "fp32"
    if bf16_ok is not None:
        return "bf16" if bf16_ok else "fp16"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"


def torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


# ----------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class ModelPlan:
    path: Path | None  # the model folder (None: only the estimate needs the plan)
    purpose: str  # train | infer | merge
    strategy: str  # qlora | lora | full
    device: str  # cpu | cuda:N
    precision: str  # compute dtype: bf16 | fp16 | fp32
    load_dtype: str  # weights as loaded: the compute dtype, fp32 (full training), "auto" (merge)
    quantize: bool  # the language model's linear layers in 4 bit
    quant_type: str = "nf4"
    double_quant: bool = True
    skip_quant: tuple[str, ...] = ("visual", "lm_head")
    freeze_vision: bool = True
    warnings: tuple[str, ...] = ()
    sharded: bool = False  # FSDP / ZeRO-3 (launch.strategy): they flatten weights into shards of one dtype

    @property
    def weight_bytes(self) -> int:
        """Bytes per parameter of the weights that are not 4-bit."""
        return DTYPE_BYTES.get(self.load_dtype, 2)


def plan_model(recipe, path=None, *, purpose: str = "train", device: str | None = None,
               quantize: bool | None = None, bf16_ok: bool | None = None) -> ModelPlan:
    strategy = getattr(recipe.tuning.strategy, "value", recipe.tuning.strategy) if recipe is not None else "lora"
    if purpose == "merge":
        device = "cpu"
    device = device or pick_device(recipe, for_training=purpose == "train")
    precision = resolve_precision(recipe.train.precision if recipe is not None else "auto", device, bf16_ok)
    if quantize is None:
        quantize = strategy == "qlora" and (purpose == "train" or (purpose == "infer" and device != "cpu"))
    load_dtype = {"merge": "auto"}.get(purpose, "fp32" if strategy == "full" and purpose == "train" else precision)
    info = model_info(recipe.model.id) if recipe is not None else None
    notes = []
    family = info.family if info else ""
    if precision == "fp16" and purpose == "train" and family.startswith("qwen"):
        notes.append("fp16 with Qwen-VL models can overflow (the loss turns inf or NaN); "
                     "bf16 needs an Ampere or newer GPU; fp32 is slower but safe")
    quant = recipe.tuning.quant if recipe is not None else None
    return ModelPlan(
        path=Path(path) if path is not None else None, purpose=purpose, strategy=strategy, device=device,
        precision=precision, load_dtype=load_dtype, quantize=bool(quantize),
        quant_type=quant.type if quant else "nf4", double_quant=quant.double_quant if quant else True,
        skip_quant=tuple(info.skip_quant) if info else ("visual", "lm_head"),
        freeze_vision=recipe.tuning.freeze_vision if recipe is not None else True, warnings=tuple(notes),
        sharded=_launch_strategy(recipe) in ("fsdp", "zero3"))


def _launch_strategy(recipe) -> str:
    strategy = getattr(getattr(recipe, "launch", None), "strategy", None)
    return getattr(strategy, "value", strategy) or ""


def quant_config(plan: ModelPlan):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=plan.quant_type,
        bnb_4bit_use_double_quant=plan.double_quant,
        bnb_4bit_compute_dtype=torch_dtype(plan.precision),
        # FSDP / ZeRO-3 flatten weights into shards of one dtype: store the 4-bit data in the compute dtype
        bnb_4bit_quant_storage=torch_dtype(plan.precision) if plan.sharded else None,
        # transformers matches these from the start of a module name: "(?:.*\.)?visual" reaches model.visual
        llm_int8_skip_modules=[rf"(?:.*\.)?{re.escape(name)}" for name in plan.skip_quant],
    )


def load_base(plan: ModelPlan, path=None):
    """The base model per the plan, every parameter frozen; eval mode unless it is for training."""
    from transformers import AutoModelForImageTextToText
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would break the CLI's output
    path = Path(path or plan.path)
    kwargs: dict[str, Any] = {"dtype": "auto" if plan.load_dtype == "auto" else torch_dtype(plan.load_dtype)}
    if plan.quantize:
        kwargs["quantization_config"] = quant_config(plan)
        kwargs["device_map"] = {"": plan.device}
    elif plan.purpose == "merge":
        kwargs["device_map"] = {"": "cpu"}
    if plan.device == "cpu":
        return_freed_memory()
    with _read_not_mapped(plan.device == "cpu"):
        model = AutoModelForImageTextToText.from_pretrained(str(path), **kwargs)
    if not plan.quantize:
        model.to(plan.device)
    for p in model.parameters():
        p.requires_grad_(False)
    if plan.purpose == "train":
        # from_pretrained leaves every module in eval mode, and a PeftModel wrapped around it starts
        # in training mode: the Trainer's model.train() then sees nothing to change, and dropout and
        # gradient checkpointing (both only act in training mode) would stay off.
        model.train()
        model.config.use_cache = False  # the KV cache is for generation; training would only store it
        for note in plan.warnings:
            warnings.warn(note, stacklevel=2)
    else:
        model.eval()
    return model


MMAP_THRESHOLD = 128 * 1024


def return_freed_memory() -> None:
    """glibc: serve every allocation over 128 KiB with its own mmap, so a freed tensor goes back to
    the OS. By default glibc raises that threshold as large blocks are freed (up to 32 MiB) and then
    keeps freed activations in its heap: measured on bench/realshape.py, training peak RSS 3.25 GiB
    instead of 2.82 GiB. (MALLOC_MMAP_THRESHOLD_ in the environment does the same; it wins if set.)"""
    import ctypes
    import ctypes.util

    if sys.platform != "linux" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD; setting it also stops the dynamic raise
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        pass


@contextmanager
def _read_not_mapped(on_cpu: bool):
    """Loading to the CPU, read safetensors with pread (safetensors' own backend, what transformers
    uses on Windows) rather than mmap: a mapped shard stays resident, counted in the process's RSS,
    until the whole shard is loaded, on top of the weights converted from it (fp32 from a bf16
    checkpoint: +50% peak). Measured on bench/realshape.py's model: load peak 2.97 -> 2.37 GiB."""
    import transformers.modeling_utils as mu

    real = getattr(mu, "safe_open", None)
    if not on_cpu or real is None:
        yield
        return

    def pread_open(file, framework="pt", device="cpu", backend="mmap"):
        return real(file, framework=framework, device=device, backend="pread" if device == "cpu" else backend)

    mu.safe_open = pread_open
    try:
        yield
    finally:
        mu.safe_open = real


def vision_module_names(model, skip_quant) -> list[str]:
    """Full names of the vision tower modules (skip_quant entries other than lm_head)."""
    wanted = {n for n in skip_quant if n != "lm_head"}
    return [name for name, _ in model.named_modules() if name.split(".")[-1] in wanted]


# ----------------------------------------------------------------------------- processor
def load_processor(path, data_spec=None):
    """The model's processor; with a recipe's data section, image sizes capped at its min/max pixels."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(path))
    if data_spec is not None:
        cap_image_size(processor, data_spec.min_pixels, data_spec.max_pixels)
    return processor


def cap_image_size(processor, min_pixels: int, max_pixels: int) -> None:
    """Qwen-VL image processors resize so that pixels fall in [min, max]; one place sets both spellings."""
    proc = getattr(processor, "image_processor", None)
    if proc is None:
        return
    proc.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if hasattr(proc, name):
            setattr(proc, name, value)


# ----------------------------------------------------------------------------- dimensions (no torch)
@dataclass(frozen=True)
class Dims:
    """Parameter counts by part, for the memory estimate. Exact when read from a Qwen2-VL config.json."""

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

    @property
    def embed(self) -> int:
        return self.vocab * self.hidden

    @property
    def total(self) -> int:
        return self.linear + self.other + self.vision + self.embed * (1 if self.tied else 2)


def model_dims(recipe) -> tuple[Dims, ModelInfo]:
    """(Dims, catalog info): from the local folder's config.json when there is one, else the catalog."""
    info = model_info(recipe.model.id)
    folder = Path(recipe.model.id).expanduser()
    if recipe.model.source == "local" and (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            return dims_from_config(config), info
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return dims_from_catalog(info), info


def dims_from_config(config: dict) -> Dims:
    text = config.get("text_config") or config
    vis = config.get("vision_config") or {}
    h, inter, layers = text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"]
    heads = text["num_attention_heads"]
    head_dim = text.get("head_dim") or h // heads
    kv = text.get("num_key_value_heads", heads) * head_dim
    q = heads * head_dim
    linear = layers * (h * q + 2 * h * kv + q * h + 3 * h * inter)
    bias = 0 if text.get("attention_bias") is False else q + 2 * kv  # Qwen2: q/k/v biases
    other = layers * (bias + 2 * h) + h  # + 2 RMSNorms per layer and the final one
    tied = bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))
    patch, merge = vis.get("patch_size", 14), vis.get("spatial_merge_size", 2)
    return Dims(hidden=h, intermediate=inter, layers=layers, vocab=text["vocab_size"], kv_dim=kv, tied=tied,
                linear=linear, other=other, vision=_vision_params(vis, h), pixels_per_token=(patch * merge) ** 2,
                vision_width=vis.get("embed_dim") or vis.get("hidden_size", 1280), vision_depth=vis.get("depth", 32),
                from_config=True)


def _vision_params(vis: dict, lm_hidden: int) -> int:
    """Qwen2-VL's vision tower: Conv3d patch embedding, pre-LayerNorm blocks (qkv, proj, fc1/fc2 MLP),
    and the merger (LayerNorm, two linear layers to the language model's width). Qwen2.5/3-VL
    differ in the MLP and norms: this formula is then approximate."""
    d = vis.get("embed_dim") or vis.get("hidden_size", 1280)
    depth = vis.get("depth", 32)
    mlp = int(d * vis.get("mlp_ratio", 4)) if "mlp_ratio" in vis else vis.get("intermediate_size", 4 * d)
    patch, tp, ch, merge = vis.get("patch_size", 14), vis.get("temporal_patch_size", 2), vis.get("in_chans", vis.get(
        "in_channels", 3)), vis.get("spatial_merge_size", 2)
    out = vis.get("hidden_size") if "embed_dim" in vis else vis.get("out_hidden_size", lm_hidden)
    block = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * mlp + mlp) + (mlp * d + d)
    wide = d * merge * merge
    merger = 2 * d + (wide * wide + wide) + (wide * out + out)
    return d * ch * tp * patch * patch + depth * block + merger


KNOWN_INTERMEDIATE = {1536: 8960, 3584: 18944, 2048: 11008, 2560: 9728}  # Qwen2/2.5-VL, Qwen3-VL-4B widths


def dims_from_catalog(info: ModelInfo) -> Dims:
    """From the catalog's totals: what is not vision or embeddings is the language model's layers."""
    h, vocab = info.hidden, info.vocab
    tied = info.params_b < 5  # Qwen's 2B-4B models tie lm_head to the embeddings; 7B/8B do not
    vision = int(info.vision_params_b * 1e9)
    language = int(info.params_b * 1e9) - vision - vocab * h * (1 if tied else 2)
    other = info.layers * 2 * h + h
    return Dims(hidden=h, intermediate=KNOWN_INTERMEDIATE.get(h, int(5.4 * h)), layers=info.layers, vocab=vocab,
                kv_dim=max(h // 6, 128), tied=tied, linear=max(language - other, 0), other=other, vision=vision,
                pixels_per_token=info.pixels_per_token)


def lora_target_regex(targets: list[str], vision_leaf_names: list[str]) -> str:
    """A peft target_modules regex: the named linear layers anywhere except under the vision tower."""
    names = "|".join(re.escape(t) for t in targets)
    vision = "|".join(re.escape(v) for v in vision_leaf_names) or "(?!)"
    return rf"^(?!(?:.*\.)?(?:{vision})\.)(?:.*\.)?(?:{names})$"  # "lm_head" has no parent prefix
