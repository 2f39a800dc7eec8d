"""What a recipe will do before it runs: steps, an estimated training time, downloads.

    p = make_plan(recipe, machine)        # wizard/machine.py's Machine (GPUs, RAM)
    p.steps, p.time_text, p.time_basis    # 290, "about 1 min (0.7-1.6 min)", "measured: ..."
    p.download_lines                      # ["model: 4.1 GiB to download (the hub's file list)", ...]
    plan_lines(p)                         # what the summary and `run --dry-run` print

Steps follow the trainer: ceil(train examples / (batch x devices)) / grad_accum per epoch (or
train.max_steps). The demo's example count is exact (its images are generated); other data is
counted when it is read, so only max_samples bounds it here.

Training time, and how sure it is (said next to the figure):
  - the demo on a CPU: MEASURED samples/s (BENCHMARKS.md, `bench/train_throughput.py`, a 2-core
    x86 machine), plus the measured start-up (model + data): expect +-50% on other CPUs;
  - a real model on a GPU: a ROUGH figure from FLOPs (not measured here): tokens x parameters x
    (6 full, 4 LoRA: frozen weights get no gradients) at 35% of the GPU's dense bf16 peak, QLoRA
    1.4x slower (dequantizing), gradient checkpointing 1.3x. Expect 0.5x-2x;
  - anything else (an unknown GPU, a real model on a CPU): no figure, and the summary says so.

Downloads: the model's weights from the hub's file list when the hub answers within a second,
else the catalog's figure (parameters x 2 bytes of safetensors); "in the cache" when an earlier
download is there. The demo model and data are built in: nothing to download.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from wizard.catalog import is_demo_data, model_info
from wizard.units import fmt_bytes

DEMO_SAMPLES_PER_S = 86.0  # 290 steps x 16 in 54 s of training (BENCHMARKS.md, 2-core CPU)
DEMO_STARTUP_S = 14.0  # 68 s wall - 54 s training: Python, torch, the model and 461 images
MFU = 0.35  # share of the GPU's dense bf16 peak a fine-tune reaches (typical for 2-8B models)
# dense bf16 tensor-core peak, TFLOP/s, by a part of the name NVML reports (first match wins)
GPU_TFLOPS = [("H200", 989), ("H100", 989), ("H800", 989), ("GH200", 989), ("B200", 2250), ("A100", 312),
              ("A800", 312), ("L40S", 362), ("L40", 181), ("L4", 121), ("A6000", 155), ("A10", 125),
              ("4090", 165), ("3090", 71), ("A40", 150), ("V100", 125), ("T4", 65)]


@dataclass
class Plan:
    steps: int | None  # None: known once the data is read
    steps_text: str
    time_text: str
    time_basis: str  # how the time was found and how sure it is
    download_lines: list[str] = field(default_factory=list)


def _devices(recipe, machine) -> int:
    devices = recipe.launch.devices
    if isinstance(devices, list):
        return max(1, len(devices))
    return 1


def train_examples(recipe) -> int | None:
    """Training examples (captions) per epoch when known without reading the data: the demo's."""
    d = recipe.data
    if not is_demo_data(d):
        return None
    from wizard.data.load import eval_count
    from wizard.demo.shapes import make_shapes

    n = d.max_samples or 512
    phrasings = len(make_shapes(1)[0].captions(d.language))
    return (n - eval_count(n, d.eval_fraction)) * phrasings


def _steps(recipe, examples: int | None, devices: int) -> int | None:
    t = recipe.train
    if t.max_steps:
        return t.max_steps
    if examples is None:
        return None
    per_epoch = math.ceil(math.ceil(examples / (t.batch_size * devices)) / t.grad_accum)
    return math.ceil(per_epoch * t.epochs)


def _tflops(name: str) -> float | None:
    for part, tflops in GPU_TFLOPS:
        if part.lower() in name.lower():
            return float(tflops)
    return None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _time(recipe, machine, steps: int | None, devices: int) -> tuple[str, str]:
    if steps is None:
        return "known once the data is read", "the number of steps depends on the data"
    t = recipe.train
    samples = steps * t.batch_size * t.grad_accum * devices
    on_cpu = recipe.launch.devices == "cpu" or not machine.gpus
    info = model_info(recipe.model.id)
    if recipe.model.source == "demo" and on_cpu:
        mid = DEMO_STARTUP_S + samples / DEMO_SAMPLES_PER_S
        return (f"about {_duration(mid)} ({_duration(mid * 0.67)}-{_duration(mid * 1.5)})",
                "measured: the demo at 86 samples/s on a 2-core CPU (BENCHMARKS.md); +-50% on other CPUs")
    if on_cpu:
        return "no estimate", "a real model on a CPU: far too slow to be worth estimating"
    gpus = machine.gpus if not isinstance(recipe.launch.devices, list) else [
        g for g in machine.gpus if g.index in recipe.launch.devices] or machine.gpus
    tflops = _tflops(gpus[0].name)
    if tflops is None:
        return "no estimate", f"no throughput figure for {gpus[0].name}"
    image_tokens = recipe.data.max_pixels // info.pixels_per_token
    tokens = image_tokens + 40 + t.max_target_length
    vision = info.vision_params_b * 1e9
    lm = info.params_b * 1e9 - vision
    strategy = recipe.tuning.strategy.value
    k = 6 if strategy == "full" else 4
    flops = k * lm * tokens + (2 if recipe.tuning.freeze_vision else 6) * vision * image_tokens * 4
    seconds = samples * flops / (tflops * 1e12 * MFU * devices)
    from wizard.estimate import checkpointing

    seconds *= (1.4 if strategy == "qlora" else 1.0) * (1.3 if checkpointing(recipe, list(gpus))[0] else 1.0)
    seconds += 60  # loading the model and the data
    return (f"about {_duration(seconds)} ({_duration(seconds * 0.5)}-{_duration(seconds * 2)})",
            f"rough, from FLOPs at {MFU:.0%} of a {gpus[0].name}'s bf16 peak (not measured): 0.5x-2x")


@functools.lru_cache(maxsize=32)
def _model_download(model_id: str, revision: str) -> str:
    """'4.1 GiB to download (the hub's file list)', '... (catalog: ...)', or 'in the cache (4.1 GiB, CACHE)'."""
    from wizard import hub

    size = hub.cached_download_size("model", model_id, revision)
    if size is not None:
        return f"in the cache ({fmt_bytes(size)}, {hub.cache_root()})"
    try:
        listed = hub.listed_size(model_id, "model", revision, timeout=1.0)
    except Exception:  # noqa: BLE001 - a listing that fails falls back to the catalog's figure
        listed = None
    if listed is not None:
        return f"{fmt_bytes(listed)} to download (the hub's file list)"
    info = model_info(model_id)
    return (f"about {fmt_bytes(info.params_b * 2e9)} to download (catalog: {info.params_b:g}B params "
            "at 16 bit; the hub was not reachable)")


def _downloads(recipe) -> list[str]:
    lines = []
    if recipe.model.source == "modelscope":
        lines.append(f"model: {_model_download(recipe.model.id, recipe.model.revision or 'master')}")
    elif recipe.model.source == "demo":
        lines.append("model: built in, nothing to download")
    else:
        lines.append(f"model: the local folder {recipe.model.id}")
    d = recipe.data
    if is_demo_data(d):
        lines.append("data: generated, nothing to download")
    else:
        from wizard.catalog import DATASETS

        from wizard import hub

        known = next((x for x in DATASETS if x.id == d.dataset and x.subset == d.subset), None)
        if known is not None and hub.in_cache("dataset", d.dataset):
            lines.append(f"data: {known.title}: in the cache ({hub.cache_root()})")
        elif known is not None:
            lines.append(f"data: {known.title} from ModelScope when first used ({known.note or 'size unknown'})")
        else:
            lines.append(f"data: your files at {d.dataset}")
    return lines


def make_plan(recipe, machine, *, downloads: bool = True) -> Plan:
    devices = _devices(recipe, machine)
    examples = train_examples(recipe)
    steps = _steps(recipe, examples, devices)
    if steps is None:
        bound = recipe.data.max_samples
        steps_text = "counted when the data is read" + (
            f" (at most {_steps(recipe, bound, devices)}: max_samples {bound})" if bound else "")
    else:
        how = "max_steps" if recipe.train.max_steps else (
            f"{examples} captions x {recipe.train.epochs:g} epochs / batch "
            f"{recipe.train.batch_size * recipe.train.grad_accum * devices}")
        steps_text = f"{steps} ({how})"
    time_text, basis = _time(recipe, machine, steps, devices)
    return Plan(steps, steps_text, time_text, basis, _downloads(recipe) if downloads else [])


def plan_lines(p: Plan) -> list[str]:
    return [f"steps: {p.steps_text}", f"time: {p.time_text} · {p.time_basis}",
            *[f"download: {line}" for line in p.download_lines]]


def dry_run_plan(recipe) -> list[str]:
    """`run --dry-run`: the same steps, time and downloads as the wizard's summary."""
    from wizard.machine import detect_machine

    return plan_lines(make_plan(recipe, detect_machine()))


def replay_comment(text: str, recipe_path, overrides) -> str:
    """The YAML's replay comment names the overrides that were applied (so it says how to get it again)."""
    if not overrides or recipe_path is None:
        return text
    import shlex

    first, _, rest = text.partition("\n")
    applied = " ".join(shlex.quote(o) for o in overrides)
    return f"{first} {applied}\n# (this is {recipe_path} with {applied} applied)\n{rest}"
