"""One model plan: where the model runs, in which dtypes, what is 4-bit, and how it is loaded.

    plan = plan_model(recipe, folder, purpose="train")   # decisions only (torch only for the GPU check)
    model = load_base(plan)                                # the base model, every weight frozen
    processor = load_processor(folder, recipe.data)        # image size capped at data.min/max_pixels
    dims = model_dims(recipe)                              # widths and parameter counts, no torch (wizard/dims.py)

Training (wizard/train/load.py adds adapters and trainable parts on top), caption, eval, export
and the memory estimate (wizard/estimate.py) all consume this module, so they cannot disagree.

  purpose  train: the recipe's device and precision; qlora quantizes the language model's linear
                  layers to 4 bit; full loads fp32 master weights (the Trainer autocasts).
           infer: the same device and precision; qlora runs in 4 bit on a GPU only (a CPU has
                  no fast 4-bit kernels, and a merged export is unquantized: captions match).
           merge: the CPU, unquantized, in the checkpoint's own dtype (what `export --merge` writes).
  family   the model's row of wizard/families.py (from its config.json's model_type): which modules
           are the vision tower and projector (frozen, never 4-bit), where the language model is
           (LoRA targets are anchored there), which Auto class loads it. An architecture outside
           the table stops here with exit 2, naming its model_type and the supported list.
  dtypes   everything not 4-bit stays at the compute dtype (vision tower, merger, embeddings,
           lm_head, norms: Qwen's RMSNorm computes in fp32 inside anyway). Only trainable weights
           keep fp32 master copies: LoRA matrices (peft), modules_to_save and an unfrozen vision
           tower (wizard/train/load.py). peft's prepare_model_for_kbit_training would upcast every
           non-4-bit weight to fp32: for a 7B model ~1.8B parameters, 7 GB instead of 3.5 GB.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard import families
from wizard.catalog import model_family
from wizard.dims import Dims, model_dims  # noqa: F401  (re-exported: the estimate and tests read them here)

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
    skip_quant: tuple[str, ...] = ("visual", "lm_head")  # module prefixes kept out of 4-bit (the family's vision + lm_head)
    freeze_vision: bool = True
    warnings: tuple[str, ...] = ()
    sharded: bool = False  # FSDP / ZeRO-3 (launch.strategy): they flatten weights into shards of one dtype
    family: families.Family = families.DEFAULT  # the model's row of the family table (wizard/families.py)
    trust_remote_code: bool = False  # model.trust_remote_code: the model folder's own Python code runs

    @property
    def vision(self) -> tuple[str, ...]:
        """Module prefixes of the vision tower and projector: frozen by freeze_vision, never 4-bit, no LoRA."""
        return self.family.vision

    @property
    def language_model(self) -> str:
        return self.family.language_model

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
    fam = plan_family(recipe, path)
    notes = []
    if precision == "fp16" and purpose == "train" and fam.model_type.startswith("qwen"):
        notes.append("fp16 with Qwen-VL models can overflow (the loss turns inf or NaN); "
                     "bf16 needs an Ampere or newer GPU; fp32 is slower but safe")
    quant = recipe.tuning.quant if recipe is not None else None
    trust = bool(getattr(getattr(recipe, "model", None), "trust_remote_code", False)) or fam.trust_remote_code
    return ModelPlan(
        path=Path(path) if path is not None else None, purpose=purpose, strategy=strategy, device=device,
        precision=precision, load_dtype=load_dtype, quantize=bool(quantize),
        quant_type=quant.type if quant else "nf4", double_quant=quant.double_quant if quant else True,
        skip_quant=fam.skip_quant, family=fam, trust_remote_code=trust,
        freeze_vision=recipe.tuning.freeze_vision if recipe is not None else True, warnings=tuple(notes),
        sharded=_launch_strategy(recipe) in ("fsdp", "zero3"))


def plan_family(recipe, path=None) -> families.Family:
    """The family row: the model folder's config.json when there is one (an architecture outside the
    table: UserError naming its model_type), else the recipe's model (catalog), else the demo's."""
    trust = bool(getattr(getattr(recipe, "model", None), "trust_remote_code", False))
    if path is not None and families.read_config(path) is not None:
        return families.family_of_folder(path, trust_remote_code=trust)
    if recipe is not None:
        return model_family(recipe.model) or families.DEFAULT
    return families.DEFAULT


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
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would break the CLI's output
    path = Path(path or plan.path)
    auto = getattr(transformers, plan.family.auto_class)  # the family's Auto class (image-text-to-text)
    kwargs: dict[str, Any] = {"dtype": "auto" if plan.load_dtype == "auto" else torch_dtype(plan.load_dtype)}
    if plan.trust_remote_code:
        kwargs["trust_remote_code"] = True
    if plan.quantize:
        kwargs["quantization_config"] = quant_config(plan)
        kwargs["device_map"] = {"": plan.device}
    elif plan.purpose == "merge":
        kwargs["device_map"] = {"": "cpu"}
    if plan.device == "cpu":
        return_freed_memory()
    with _read_not_mapped(plan.device == "cpu"):
        model = auto.from_pretrained(str(path), **kwargs)
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


def vision_module_names(model, prefixes) -> list[str]:
    """Full names of the vision tower and projector modules: those named by `prefixes` (a plan's
    `vision`, or module prefixes; "lm_head" is ignored), inside any wrapper (peft's base_model.model.)."""
    wanted = [p for p in prefixes if p != "lm_head"]
    return [name for name, _ in model.named_modules()
            if any(name == p or name.endswith("." + p) for p in wanted)]


def in_vision(name: str, vision: list[str]) -> bool:
    """`name` (a parameter or module) lies inside one of the `vision` module names."""
    return any(name == v or name.startswith(v + ".") for v in vision)


# ----------------------------------------------------------------------------- processor
def load_processor(path, data_spec=None, *, config_dir=None, trust_remote_code: bool = False):
    """The model's processor, set up per its family (read from `config_dir`'s config.json, default
    `path`: an adapter folder has the processor but not the config): image sizes capped at the
    recipe's data.min/max pixels where the family resizes by a pixel budget, attributes the model's
    config must decide (Pixtral's patch and merge sizes) taken from it."""
    from transformers import AutoProcessor

    from wizard.families import family, read_config

    config = read_config(config_dir or path) or {}
    fam = family(config.get("model_type"), trust_remote_code=True) if config else families.DEFAULT
    processor = AutoProcessor.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    for attribute, dotted in fam.processor_from_config.items():
        value = config
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and hasattr(processor, attribute):
            setattr(processor, attribute, value)
    if data_spec is not None:
        cap_image_size(processor, data_spec.min_pixels, data_spec.max_pixels, fam.pixel_budget)
    return processor


def cap_image_size(processor, min_pixels: int, max_pixels: int, budget: str = "min_max") -> None:
    """min_max: Qwen-VL-style image processors resize so that pixels fall in [min, max] (one place sets
    both spellings); longest_edge: the longest side at most sqrt(max_pixels) (Pixtral); fixed: nothing."""
    proc = getattr(processor, "image_processor", None)
    if proc is None or budget == "fixed":
        return
    if budget == "longest_edge":
        import math

        size = dict(getattr(proc, "size", None) or {})
        size["longest_edge"] = min(int(size.get("longest_edge") or max_pixels), math.isqrt(max_pixels))
        proc.size = size
        return
    proc.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if hasattr(proc, name):
            setattr(proc, name, value)


def lora_target_regex(targets: list[str], language_model: str = "model.language_model") -> str:
    """A peft target_modules regex: the named linear layers inside the language model (its module
    prefix, the family's), or a top-level module of that name ("lm_head"); never inside the vision
    tower (whose CLIP/SigLIP/Pixtral layers share the names)."""
    names = "|".join(re.escape(t) for t in targets)
    return rf"^(?:{re.escape(language_model)}\.(?:.*\.)?(?:{names})|(?:{names}))$"
