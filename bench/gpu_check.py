"""One command for a GPU machine: full-depth Qwen2-VL-2B and -7B shapes (random weights, bf16),
QLoRA and LoRA at batch 1, 4 and 8 with 448x448 images: peak memory vs the memory estimate, and
tokens/s of caption-wizard's training path vs a bare torch loop.

    python bench/gpu_check.py                 # on one H100/H200: about 6-8 minutes
    python bench/gpu_check.py --cpu           # reduced dims on the CPU (what tests/test_model_plan.py runs)
    python bench/gpu_check.py --models 2b --strategies lora --batches 1 4
    python bench/gpu_check.py --models 2b --checkpointing off   # what train.gradient_checkpointing=auto
                                                                # picks on a big GPU: checks that estimate

Per (model, strategy, contender) one subprocess loads the model once and trains each batch size
for --steps steps (the first 2 untimed). Reported per batch size:
  max_allocated  torch.cuda.max_memory_allocated (reset before each batch size)
  nvml_used      NVML's used memory after the steps (caching allocator + CUDA context: what
                 nvidia-smi and the dashboard's memory panel show)
  estimate       wizard.estimate for the same recipe (per GPU), and estimate / nvml_used
  tokens/s       non-padding tokens per second, caption-wizard vs the bare loop
The models are written once to --models-dir in bf16 (2B: 4.4 GB, 7B: 16.6 GB of disk).

Bringing the packages a bare GPU box may lack (no internet there): see BENCHMARKS.md,
"GPU check"; in short, `pip download bitsandbytes pydantic pydantic-core annotated-types
typing-inspection questionary prompt-toolkit wcwidth modelscope --no-deps -d wheels/` here
(about 50 MB for Linux x86_64, cp311), carry wheels/, and `pip install --no-deps wheels/*.whl` there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.realshape import (bare, bare_model, checkpointing_arg, checkpointing_flag, child_env,  # noqa: E402
                             project)

MODELS = {  # full depth: Qwen2-VL-2B has 28 language layers, -7B 28; both have 32 vision blocks
    "2b": dict(hidden=1536, intermediate=8960, vocab=151936, heads=12, kv_heads=2, tied=True, layers=28,
               vision_depth=32),
    "7b": dict(hidden=3584, intermediate=18944, vocab=152064, heads=28, kv_heads=4, tied=False, layers=28,
               vision_depth=32),
    "cpu": dict(hidden=256, intermediate=704, vocab=151936, heads=4, kv_heads=2, tied=True, layers=2,
                vision_depth=1, vision_width=128, vision_heads=4),
}


def recipe_for(model: Path, strategy: str, batch: int, steps: int, device: str, gc=True):
    from wizard.recipe import Recipe

    return Recipe.model_validate({
        "name": "gpu-check", "model": {"id": str(model), "source": "local"},
        "data": {"dataset": "realshape", "max_pixels": 448 * 448, "min_pixels": 3136, "eval_fraction": 0.0},
        "tuning": {"strategy": strategy, "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "modules_to_save": []}},
        "train": {"batch_size": batch, "max_steps": steps, "precision": "fp32" if device == "cpu" else "auto",
                  "gradient_checkpointing": gc, "max_target_length": 32, "save_steps": 10 ** 6,
                  "logging_steps": 1, "warmup_ratio": 0.0, "learning_rate": 1e-4},
        "launch": {"devices": "cpu" if device == "cpu" else "auto"},
    })


def memory(device: str) -> dict:
    from wizard.train.callbacks import memory_snapshot

    snap = memory_snapshot(device)
    if snap["kind"] == "cpu":
        return {"peak": snap["peak_rss"], "nvml_used": None}
    import torch

    gpu = snap["devices"][0]
    return {"peak": torch.cuda.max_memory_allocated(0), "nvml_used": gpu.get("used")}


def child(args) -> None:
    """One contender, one strategy, every batch size on one loaded model."""
    import torch

    from wizard.train.load import load_model

    device = "cpu" if args.cpu else "cuda:0"
    first = recipe_for(Path(args.model), args.strategy, args.batches[0], args.steps, device, args.gc)
    if args.child == "project":
        model, processor = load_model(first, Path(args.model), for_training=True, device=device)
    else:
        model, processor = bare_model(first, device)
    out = []
    for batch in args.batches:
        recipe = recipe_for(Path(args.model), args.strategy, batch, args.steps, device, args.gc)
        if device != "cpu":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(0)
        run = project if args.child == "project" else bare
        samples_s = run(recipe, batch * args.steps, device, model=model, processor=processor)
        tokens_s = samples_s * run.tokens / (batch * args.steps)  # samples/s x non-padding tokens per sample
        out.append({"batch": batch, "samples_s": samples_s, "tokens_s": tokens_s, **memory(device)})
    print(json.dumps(out), flush=True)


def ensure_model(folder: Path, dims: dict) -> Path:
    if not (folder / "config.json").is_file():
        print(f"writing {folder} ...", flush=True)
        code = ("import sys, json; from wizard.demo.realshape import build_realshape; "
                "build_realshape(sys.argv[1], **json.loads(sys.argv[2]))")
        subprocess.run([sys.executable, "-c", code, str(folder), json.dumps(dims)], check=True, env=child_env())
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu", action="store_true", help="reduced dims on the CPU (a smoke test of this script)")
    p.add_argument("--models", nargs="*", default=None, help="2b 7b (default), cpu with --cpu")
    p.add_argument("--strategies", nargs="*", default=["qlora", "lora"])
    p.add_argument("--batches", nargs="*", type=int, default=None, help="default 1 4 8 (1 2 with --cpu)")
    p.add_argument("--steps", type=int, default=None, help="per batch size, 2 untimed (default 6, 3 with --cpu)")
    p.add_argument("--models-dir", default=str(Path(tempfile.gettempdir()) / "cw-gpu-check"))
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--checkpointing", dest="gc", default=True, type=checkpointing_arg,
                   help="on (default: the estimate's tightest case) or off (what `auto` picks where it fits)")
    p.add_argument("--child", choices=["project", "bare"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--strategy", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.models = args.models or (["cpu"] if args.cpu else ["2b", "7b"])
    args.batches = args.batches or ([1, 2] if args.cpu else [1, 4, 8])
    args.steps = args.steps or (3 if args.cpu else 6)
    if args.child:
        return child(args)

    from wizard.estimate import estimate_memory
    from wizard.machine import detect_gpus

    gpus = [] if args.cpu else detect_gpus()[:1]
    if not args.cpu and not gpus:
        raise SystemExit("no CUDA GPU found (NVML); run with --cpu for the reduced CPU check")
    rows = []
    for name in args.models:
        folder = ensure_model(Path(args.models_dir) / f"qwen2vl-{name}", MODELS[name])
        for strategy in args.strategies:
            got = {}
            for who in ("project", "bare"):
                cmd = [sys.executable, __file__, "--child", who, "--model", str(folder), "--strategy", strategy,
                       "--steps", str(args.steps), "--batches", *map(str, args.batches),
                       "--checkpointing", checkpointing_flag(args.gc)] + (["--cpu"] if args.cpu else [])
                proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
                if proc.returncode != 0 or not lines:
                    raise SystemExit(f"{who} {name} {strategy} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
                got[who] = json.loads(lines[-1])
            for mine, theirs in zip(got["project"], got["bare"]):
                batch = mine["batch"]
                est = estimate_memory(recipe_for(folder, strategy, batch, args.steps, "cpu" if args.cpu else "cuda",
                                                 args.gc), gpus).per_device_bytes
                measured = mine["nvml_used"] or mine["peak"]
                row = {"model": name, "strategy": strategy, "batch": batch, "estimate": est,
                       "caption_wizard": mine, "bare": theirs, "estimate_over_measured": est / measured}
                rows.append(row)
                nvml = f"nvml {mine['nvml_used'] / 1e9:6.2f} GB" if mine["nvml_used"] else "peak RSS"
                print(f"{name:3} {strategy:5} batch {batch}: peak {mine['peak'] / 1e9:6.2f} GB, {nvml}, "
                      f"estimate {est / 1e9:6.2f} GB (x{est / measured:.2f}); tokens/s caption-wizard "
                      f"{mine['tokens_s']:8.0f}, bare {theirs['tokens_s']:8.0f} (x{mine['tokens_s'] / theirs['tokens_s']:.2f}); "
                      f"bare peak {theirs['peak'] / 1e9:.2f} GB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
