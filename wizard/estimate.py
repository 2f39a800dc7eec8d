"""Will this recipe fit? A memory estimate per device, and what to change when it does not.

    est = estimate_memory(recipe)             # GPUs detected through NVML (no torch import)
    est = estimate_memory(recipe, gpus=[])    # as if there were no GPU
    render_estimate(est)   # wizard.ask.summary: the table, warning and suggestion the front end shows
    est.suggestion, est.suggested_overrides   # "switch to qlora ...", ["tuning.strategy=qlora"]

It is an ESTIMATE. Widths and parameter counts come from the model folder's config.json when the
recipe points at a local folder (exact for Qwen2-VL), otherwise from the catalog; dtypes and what
is 4-bit come from the model plan (wizard/model.py), the same one that loads the model. The
formula, in bytes per device (several GPUs run data-parallel: each GPU holds a full copy of
everything below and its own batch of `train.batch_size`):

  weights      as wizard.model.load_base loads them: the compute dtype (bf16/fp16 x 2, fp32 x 4;
               `auto` is fp32 on the CPU); full fine-tunes load fp32 master weights.
               qlora: the language model's linear layers at 4 bit = 0.5 B/param, plus the quantization
               constants (nf4 blocks of 64 with an fp32 absmax: +1/16 B/param; double quant stores the
               absmax in 8 bit with an fp32 constant per 256 blocks: +~1/63 B/param). Everything else
               (vision tower, embeddings, lm_head, norms, biases) stays at the compute dtype.
  LoRA         rank x (in + out) per targeted module per layer, fp32 (peft keeps adapters in fp32),
               with the real widths (grouped-query k/v, the MLP's intermediate size).
  optimizer    per trainable param 4 gradient + 8 AdamW moments = 12 B (all fp32), + 4 B when many
               parameters train (full; modules_to_save and an unfrozen vision tower, which are
               trained copies: +4 B more for the copy): torch's foreach AdamW step allocates a
               temporary the size of every trained parameter (sqrt of v). Measured on the CPU: a
               full fine-tune peaked 1.7 GB above 12 B/param on a 0.33 B-parameter language model.
  activations  batch x tokens x layers x (10 x hidden + 3 x MLP width) x bytes, tokens =
               max_pixels / pixels_per_token (image) + ~40 (chat template + prompt) + max_target_length;
               gradient checkpointing keeps 1 hidden state per layer and recomputes one layer at a time.
               train.gradient_checkpointing=auto: off when this estimate without it is at most 80% of
               the GPU's memory (50% of the RAM on the CPU), else on.
  logits       only at the caption positions (wizard/train/trainer.py): batch x max_target_length x
               vocab x (logits + gradient) = 2 x dtype, + the loss's fp32 chunk of up to 256 rows x vocab
               (none in fp32 when all positions fit one chunk).
  vision cache tuning.cache_vision (memory, or auto when it applies): training images x image tokens x
               hidden x dtype, in RAM (a note on GPUs: host RAM). Counted only when data.max_samples
               gives the number of images.
  runtime      CUDA context, kernels, cuBLAS workspace: ~0.8 GB. On CPU: Python, PyTorch, transformers,
               peft and the Trainer before any weights (measured 0.9 GB) and the data in memory.
  slack        +10% for allocator fragmentation on a GPU, +5% on the CPU. Checked against measured peak
               RSS by bench/realshape.py and tests/test_model_plan.py (within +-20%).

What is uncertain (expect +-30%): fragmentation; the attention kernel (sdpa/flash assumed: no
tokens^2 term; eager attention adds batch x heads x tokens^2 per layer); catalog models without
a local config.json (tied lm_head assumed below 5B parameters); the frozen vision tower's transient
activations (not counted: it runs without gradients); real images smaller than max_pixels give
fewer tokens (so this is a worst case per batch); whether the training backend treats batch_size
per device (assumed) or globally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wizard.catalog import QWEN_LM_TARGETS, ModelInfo, model_info
from wizard.model import Dims
from wizard.units import GiB, fmt_bytes

if TYPE_CHECKING:
    from wizard.machine import GpuInfo
    from wizard.recipe import Recipe

LOSS_CHUNK = 256  # wizard.train.trainer.LOSS_CHUNK (not imported: that module imports torch)
PROMPT_TOKENS = 40  # chat template, vision markers and the instruction
ACT_HIDDEN = 10  # hidden-sized values kept per token per layer for backward: norms, q/k/v/o, residuals
ACT_MLP = 3  # MLP-wide values kept per token per layer: gate, up, their product (wizard/train/swiglu.py)
ACT_TENSORS = 30  # hidden-sized activations per patch per block of a vision tower that trains (rough)
CUDA_RUNTIME = int(0.8 * GiB)
CPU_RUNTIME = int(0.9 * GiB)  # RSS of a training process before any weights: torch, transformers, peft, Trainer
SLACK = 0.10
CPU_SLACK = 0.05  # on the CPU freed tensors go back to the OS (wizard.model.return_freed_memory)


@dataclass
class MemoryEstimate:
    rows: list[tuple[str, int, str]]  # (what, bytes per device, how it was counted)
    per_device_bytes: int
    total_bytes: int  # per device x number of devices
    devices: list[str]  # ["cuda:0", "cuda:1"] | ["cpu"] | ["cuda"] (no GPU detected here)
    where: str  # "per GPU (2 x NVIDIA H100, 79.6 GiB each)", "CPU RAM (this machine has 23.4 GiB)", ...
    device: str = "each device"  # short: "GPU 0", "each GPU", "this machine's RAM"
    capacity_bytes: int | None = None  # the smallest device's memory; None: nothing to compare with
    warning: str | None = None
    suggestion: str | None = None
    suggested_overrides: list[str] = field(default_factory=list)  # KEY=VALUE for apply_overrides
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool | None:
        return None if self.capacity_bytes is None else self.per_device_bytes <= self.capacity_bytes




def _millions(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


# ----------------------------------------------------------------------------- devices
def _target(recipe: Recipe, gpus: list[GpuInfo], ram_bytes: int | None):
    """(on_cpu, devices, capacity, where, short name, notes) for launch.devices on this machine."""
    devices = recipe.launch.devices
    if devices == "cpu":
        ram = ram_bytes if ram_bytes is not None else _ram()
        return (True, ["cpu"], ram, f"CPU RAM (this machine has {fmt_bytes(ram)}): the run uses the CPU",
                "this machine's RAM", [])
    if devices == "auto":
        used = list(gpus)
    else:
        used = [g for g in gpus if g.index in devices]
    if not used:
        if devices == "auto" or not gpus:
            where = "a CUDA GPU (none detected on this machine)"
            n = 1 if devices == "auto" else len(devices)
            return False, ["cuda"] * n, None, where, "each GPU", ["no CUDA GPU here: figures are what each GPU will need"]
        missing = ", ".join(str(i) for i in devices)
        return False, [f"cuda:{i}" for i in devices], None, f"GPU {missing} (not on this machine)", "each GPU", []
    names = {g.name for g in used}
    smallest = min(g.total_bytes for g in used)
    what = names.pop() if len(names) == 1 else "GPUs"
    where = (f"per GPU ({len(used)} x {what}, {fmt_bytes(smallest)} each; each holds a full copy)" if len(used) > 1
             else f"GPU {used[0].index} ({used[0].name}, {fmt_bytes(smallest)})")
    short = "each GPU" if len(used) > 1 else f"GPU {used[0].index}"
    return False, [f"cuda:{g.index}" for g in used], smallest, where, short, []


def _ram() -> int:
    from wizard.machine import _ram_bytes

    return _ram_bytes()


# ----------------------------------------------------------------------------- the formula
LM_TARGET_WIDTHS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _lora_params(recipe: Recipe, dims: Dims, info: ModelInfo) -> int:
    h, inter, kv = dims.hidden, dims.intermediate, dims.kv_dim
    targets = recipe.tuning.lora.target_modules or info.lora_targets
    if any(t in ("all-linear", "all") for t in targets):
        targets = QWEN_LM_TARGETS
    widths = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
              "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}
    per_layer = sum(recipe.tuning.lora.rank * sum(widths.get(name.rsplit(".", 1)[-1], (h, h)))
                    for name in targets)
    return per_layer * dims.layers


def _rows(recipe: Recipe, dims: Dims, info: ModelInfo, on_cpu: bool) -> list[tuple[str, int, str]]:
    from wizard.model import DTYPE_BYTES, plan_model

    plan = plan_model(recipe, purpose="train", device="cpu" if on_cpu else "cuda", bf16_ok=True)
    strategy, dtype, wbytes = plan.strategy, plan.load_dtype, plan.weight_bytes
    abytes = DTYPE_BYTES[plan.precision]
    total, vision, embed = dims.total, dims.vision, dims.embed
    rows: list[tuple[str, int, str]] = []

    # weights, as wizard.model.load_base loads them
    if plan.quantize:
        per_param = 0.5 + ((1 / 64 + 4 / (64 * 256)) if plan.double_quant else 4 / 64)
        kept = total - dims.linear
        rows.append(("model weights", int(dims.linear * per_param + kept * wbytes),
                     f"{_millions(dims.linear)} at 4-bit {plan.quant_type}{' (double quant)' if plan.double_quant else ''}"
                     f" + {_millions(kept)} at {dtype} (vision, embeddings, lm_head, norms)"))
    else:
        rows.append(("model weights", int(total * wbytes), f"{_millions(total)} params at {dtype}"
                     + (" (fp32 master weights)" if strategy == "full" and dtype == "fp32" and not on_cpu else "")))

    # trainable part
    trainable_vision = 0 if recipe.tuning.freeze_vision else vision
    if strategy == "full":
        trained = total - vision + trainable_vision
        rows.append(("gradients + AdamW states", int(trained * 16),
                     f"{_millions(trained)} trained x 16 B: fp32 gradient + AdamW m, v + the step's temporary"))
    else:
        lora = _lora_params(recipe, dims, info)
        targets = recipe.tuning.lora.target_modules or info.lora_targets
        rows.append(("LoRA adapter", lora * 4,
                     f"rank {recipe.tuning.lora.rank} x {len(targets)} modules x {dims.layers} layers = "
                     f"{_millions(lora)} params, fp32"))
        copies = trainable_vision + sum(embed for m in recipe.tuning.lora.modules_to_save
                                        if m in ("lm_head", "embed_tokens"))
        note = f"{_millions(lora)} x 12 B: fp32 gradient + AdamW m, v"
        if copies:  # peft trains a copy of each module to save: fp32 weights + gradient + AdamW + temporary
            note += f" + {_millions(copies)} fully trained params (fp32 copy + gradient + AdamW: 20 B)"
        rows.append(("gradients + AdamW states", int(lora * 12 + copies * 20), note))

    # activations
    image_tokens = recipe.data.max_pixels // dims.pixels_per_token
    caption = recipe.train.max_target_length
    tokens = image_tokens + PROMPT_TOKENS + caption
    batch = recipe.train.batch_size
    per_layer = ACT_HIDDEN * dims.hidden + ACT_MLP * dims.intermediate  # values kept per token per layer
    if recipe.train.gradient_checkpointing is True:  # auto is resolved before (_estimate)
        per_token = (dims.layers * dims.hidden + per_layer) * abytes
        how = "checkpointing on: 1 hidden state per layer + one layer recomputed"
    else:
        per_token = dims.layers * per_layer * abytes
        how = f"checkpointing off: ~{ACT_HIDDEN} x hidden + {ACT_MLP} x MLP width per layer"
    rows.append(("activations", int(batch * tokens * per_token),
                 f"batch {batch} x {tokens} tokens ({image_tokens} image + {PROMPT_TOKENS} prompt + "
                 f"{caption} caption); {how}"))
    if trainable_vision:
        patches = image_tokens * 4
        rows.append(("vision activations", int(batch * patches * dims.vision_width * dims.vision_depth
                                                * ACT_TENSORS // 3 * abytes),
                     "vision tower trains (freeze_vision off): rough"))
    positions = batch * caption  # logits + their gradient, and an fp32 chunk of <= LOSS_CHUNK rows in the loss
    chunk = min(positions, LOSS_CHUNK) * (0 if abytes == 4 and positions <= LOSS_CHUNK else 4)
    rows.append(("logits", int((positions * 2 * abytes + chunk) * dims.vocab),
                 f"batch {batch} x {caption} caption positions only x {dims.vocab} vocab x {2 * abytes} B"
                 + (f" + an fp32 chunk of {min(positions, LOSS_CHUNK)} rows" if chunk else "")))

    runtime = CPU_RUNTIME if on_cpu else CUDA_RUNTIME
    rows.append(("runtime", runtime, "Python, PyTorch, transformers, data" if on_cpu
                 else "CUDA context, kernels, workspace"))
    slack = CPU_SLACK if on_cpu else SLACK
    rows.append(("allocator slack", int(slack * sum(r[1] for r in rows)), f"~{slack:.0%} fragmentation"))
    return rows


def _vision_cache(recipe: Recipe, dims: Dims, info: ModelInfo, on_cpu: bool, ram_bytes: int | None):
    """tuning.cache_vision's RAM (wizard/train/vision_cache.py): (bytes or None, how it was counted)."""
    from wizard.model import resolve_precision
    from wizard.cache_vision import estimated_bytes

    precision = resolve_precision(recipe.train.precision, "cpu" if on_cpu else "cuda", bf16_ok=True)
    ram = ram_bytes if ram_bytes is not None else _ram()
    return estimated_bytes(recipe, dims.hidden, dims.pixels_per_token, precision, info.skip_quant, ram)


def _estimate(recipe: Recipe, gpus: list[GpuInfo], ram_bytes: int | None) -> MemoryEstimate:
    from wizard.model import model_dims

    dims, info = model_dims(recipe)
    on_cpu, devices, capacity, where, short, notes = _target(recipe, gpus, ram_bytes)
    if recipe.train.gradient_checkpointing == "auto":
        on, why = _auto_checkpointing(recipe, capacity, on_cpu, lambda r: _estimate(r, gpus, ram_bytes))
        recipe = _with_checkpointing(recipe, on)
        notes.append(why)
    rows = _rows(recipe, dims, info, on_cpu)
    cached, how = _vision_cache(recipe, dims, info, on_cpu, ram_bytes)
    if cached and on_cpu:  # before runtime and slack; on a GPU the features are in host RAM: a note
        rows.insert(len(rows) - 2, ("vision feature cache", cached, how))
    elif how:
        notes.append(how + (" (host RAM)" if cached else ""))
    per_device = sum(r[1] for r in rows)
    if dims.from_config:
        notes.append(f"model widths read from {recipe.model.id}/config.json")
    elif info.note and info.family == "unknown":
        notes.append(info.note)
    return MemoryEstimate(rows, per_device, per_device * len(devices), devices, where, short, capacity,
                          notes=notes)


# ----------------------------------------------------------------------------- gradient checkpointing
CHECKPOINTING_OFF_SHARE = 0.8  # auto: off when the estimate without it is at most this share of a GPU ...
CHECKPOINTING_OFF_SHARE_CPU = 0.5  # ... or of the RAM (shared with the system and other programs)


def _with_checkpointing(recipe: Recipe, on: bool) -> Recipe:
    return recipe.model_copy(update={"train": recipe.train.model_copy(update={"gradient_checkpointing": on})})


def _auto_checkpointing(recipe: Recipe, capacity: int | None, on_cpu: bool, estimate) -> tuple[bool, str]:
    """train.gradient_checkpointing=auto: (on, why). Off, ~25-30% faster (no layer computed twice),
    when the estimate without it fits the device with room to spare; on otherwise."""
    if capacity is None:
        return True, "gradient checkpointing (auto): on, this GPU's memory is not known here"
    without = estimate(_with_checkpointing(recipe, False)).per_device_bytes
    copies = (recipe.launch.processes or 1) if on_cpu else 1  # CPU processes share the RAM
    share = CHECKPOINTING_OFF_SHARE_CPU if on_cpu else CHECKPOINTING_OFF_SHARE
    room = f"{fmt_bytes(without * copies)} without it, {'RAM' if on_cpu else 'the GPU'} has {fmt_bytes(capacity)}"
    if without * copies <= share * capacity:
        return False, f"gradient checkpointing (auto): off, no layer computed twice ({room})"
    return True, f"gradient checkpointing (auto): on, to save memory ({room})"


def checkpointing(recipe: Recipe, gpus: list[GpuInfo] | None = None, *,
                  ram_bytes: int | None = None) -> tuple[bool, str]:
    """(on, why) for train.gradient_checkpointing: the recipe's true/false, or auto's decision for
    this machine (`gpus`: the devices the run uses; detected through NVML when None)."""
    value = recipe.train.gradient_checkpointing
    if value != "auto":
        return bool(value), f"gradient checkpointing: {'on' if value else 'off'} (train.gradient_checkpointing)"
    if gpus is None:
        from wizard.machine import detect_gpus

        gpus = detect_gpus()
    on_cpu, _, capacity, *_ = _target(recipe, list(gpus), ram_bytes)
    return _auto_checkpointing(recipe, capacity, on_cpu, lambda r: _estimate(r, list(gpus), ram_bytes))


# ----------------------------------------------------------------------------- suggestions
def _single_changes(recipe: Recipe, info: ModelInfo) -> list[list[tuple[str, str]]]:
    """Groups of alternative changes, least disruptive first: (description, override)."""
    strategy = recipe.tuning.strategy.value
    groups: list[list[tuple[str, str]]] = []
    strat = []
    if strategy == "full":
        strat.append(("switch to lora (a LoRA adapter on the frozen 16-bit model)", "tuning.strategy=lora"))
    if strategy in ("full", "lora"):
        strat.append(("switch to qlora (a LoRA adapter on the model quantized to 4 bit)", "tuning.strategy=qlora"))
    groups.append(strat)
    if recipe.train.gradient_checkpointing is False:  # auto turns it on by itself when memory is short
        groups.append([("turn on gradient checkpointing", "train.gradient_checkpointing=true")])
    batch, accum = recipe.train.batch_size, recipe.train.grad_accum
    effective = batch * accum
    sizes = []
    b = batch // 2
    while b >= 1:
        sizes.append(b)
        b //= 2
    options = []
    for b in sizes:
        new_accum = max(1, effective // b)
        verb = "halve" if b == batch // 2 else "lower"
        options.append((f"{verb} batch_size to {b} with grad_accum {new_accum} (same effective batch of {b * new_accum})",
                        f"train.batch_size={b}|train.grad_accum={new_accum}"))
    groups.append(options)
    tokens = recipe.data.max_pixels // info.pixels_per_token
    pixels = []
    for t in (512, 256, 128, 64):
        if t < tokens and t * info.pixels_per_token >= recipe.data.min_pixels:
            p = t * info.pixels_per_token
            pixels.append((f"lower data.max_pixels to {p} ({t} image tokens)", f"data.max_pixels={p}"))
    groups.append(pixels)
    return [g for g in groups if g]


def _with(recipe: Recipe, overrides: list[str]) -> Recipe:
    from wizard.recipe import apply_overrides

    flat = [part for o in overrides for part in o.split("|")]
    return apply_overrides(recipe, flat, source="memory suggestion")


def _suggest(recipe: Recipe, est: MemoryEstimate, gpus, ram_bytes) -> tuple[str, list[str]]:
    """The first change (then the first combination) that makes the estimate fit."""
    info = model_info(recipe.model.id)
    groups = _single_changes(recipe, info)

    def fits(r: Recipe) -> int | None:
        e = _estimate(r, gpus, ram_bytes)
        return e.per_device_bytes if e.fits else None

    for group in groups:  # one change
        for text, override in group:
            need = fits(_with(recipe, [override]))
            if need is not None:
                return f"{text}: about {fmt_bytes(need)}", override.split("|")
    texts: list[str] = []
    chosen: list[str] = []
    for group in groups:  # combine, taking each group's strongest option until it fits
        for text, override in group:
            need = fits(_with(recipe, chosen + [override]))
            if need is not None:
                return f"{' and '.join(texts + [text])}: about {fmt_bytes(need)}", [
                    p for o in chosen + [override] for p in o.split("|")]
        texts.append(group[-1][0])
        chosen.append(group[-1][1])
    smallest = _estimate(_with(recipe, chosen), gpus, ram_bytes).per_device_bytes
    return (f"nothing tried fits: even {' and '.join(texts)} needs about {fmt_bytes(smallest)}; "
            "choose a smaller model or a machine with more memory"), []


def estimate_memory(recipe: Recipe, gpus: list[GpuInfo] | None = None, *,
                    ram_bytes: int | None = None, suggest: bool = True) -> MemoryEstimate:
    """Estimate memory per device for `recipe` on this machine (or on `gpus`, e.g. [] or fakes).

    `ram_bytes` replaces this machine's RAM for CPU runs; `suggest=False` skips the search for a
    change that fits (the wizard's defaults only need `.fits`).
    """
    if gpus is None:
        from wizard.machine import detect_gpus

        gpus = detect_gpus()
    est = _estimate(recipe, list(gpus), ram_bytes)
    if est.fits is False:
        est.warning = (f"needs about {fmt_bytes(est.per_device_bytes)} but {est.device} has "
                       f"{fmt_bytes(est.capacity_bytes)}: it will likely run out of memory")
    if est.fits is False and suggest:
        est.suggestion, est.suggested_overrides = _suggest(recipe, est, list(gpus), ram_bytes)
    return est


# The most memory one device has anywhere: more than this per device cannot run on any machine.
LARGEST_GPU_BYTES = 288 * GiB  # AMD MI355X (NVIDIA B200: 192 GB)
LARGEST_RAM_BYTES = 32 * 1024 * GiB  # the biggest single servers


def refuse_impossible(est: MemoryEstimate) -> None:
    """UserError when `est` needs more per device than any machine that exists has (exit 2)."""
    cpu = est.devices == ["cpu"]
    limit = LARGEST_RAM_BYTES if cpu else LARGEST_GPU_BYTES
    if est.per_device_bytes > limit:
        from wizard.errors import UserError

        raise UserError(f"this recipe needs about {fmt_bytes(est.per_device_bytes)} per device: more than any "
                        f"{'machine' if cpu else 'GPU'} has (the largest: {fmt_bytes(limit)})",
                        hint="lower train.batch_size, train.max_target_length or data.max_pixels "
                             "(check for a typo in an override)")
