"""Several GPUs on a real machine: 1 process vs 2-process DDP vs 2-process FSDP (and QLoRA + FSDP).

    python bench/gpu_multi.py                    # needs >= 2 CUDA GPUs; prints a table, writes JSON
    python bench/gpu_multi.py --steps 40 --out bench/gpu_multi.json
    python bench/gpu_multi.py --cpu              # the same cases with gloo on the CPU (no FSDP there)

Each case is a real `caption-wizard run` of the demo recipe (an untrained demo model when the
trained base is not built), same global batch: 1 x 16 on one GPU against 2 x 8 on two. It checks
what a user relies on: every case completes with one adapter, the logged losses of the 2-process
cases equal the 1-process ones within 2% at every logged step, and each GPU's memory is reported
by the process that owns it. It prints samples/s and peak memory per GPU per case.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cases(cpu: bool) -> list[tuple[str, list[str]]]:
    if cpu:
        return [("1 process x16", ["launch.devices=cpu", "train.batch_size=16"]),
                ("2 processes x8 ddp (gloo)", ["launch.devices=cpu", "launch.processes=2", "train.batch_size=8"])]
    return [("1 GPU x16", ["launch.devices=[0]", "train.batch_size=16"]),
            ("2 GPUs x8 ddp", ["launch.devices=[0,1]", "train.batch_size=8"]),
            ("2 GPUs x8 fsdp", ["launch.devices=[0,1]", "launch.strategy=fsdp", "train.batch_size=8"]),
            ("2 GPUs x8 fsdp qlora", ["launch.devices=[0,1]", "launch.strategy=fsdp", "tuning.strategy=qlora",
                                      "train.precision=bf16", "train.batch_size=8"])]


def model_overrides(tmp: Path) -> list[str]:
    from wizard.demo.model import build_model, build_processor, demo_base_path

    if (demo_base_path() / "config.json").is_file():
        return []
    path = tmp / "demo-model"
    build_model(0).save_pretrained(path)
    build_processor().save_pretrained(path)
    return [f"model.id={path}", "model.source=local"]


def run_case(name: str, overrides: list[str], tmp: Path) -> dict:
    runs_dir = tmp / name.replace(" ", "_")
    cmd = [sys.executable, "-m", "wizard.cli", "run", str(ROOT / "recipes" / "demo-shapes.yaml"), "--plain",
           "--runs-dir", str(runs_dir), *overrides]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    seconds = time.perf_counter() - t
    run_dir = next(runs_dir.iterdir(), None) if runs_dir.is_dir() else None
    events = []
    if run_dir is not None and (run_dir / "events.jsonl").is_file():
        events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines() if x.strip()]
    logs = [e for e in events if e["type"] == "log"]
    peaks: dict[str, int] = {}
    for e in logs:
        mem = e.get("memory") or {}
        for d in mem.get("devices") or []:
            key = f"cuda:{d.get('index')}"
            peaks[key] = max(peaks.get(key, 0), int(d.get("peak") or 0))
        if mem.get("kind") == "cpu":
            peaks["cpu"] = max(peaks.get("cpu", 0), int(mem.get("peak_rss") or 0))
    tail = "" if proc.returncode == 0 else (proc.stdout + proc.stderr)[-3000:]
    if run_dir is not None and proc.returncode != 0 and (run_dir / "train.log").is_file():
        tail += "\n--- train.log ---\n" + (run_dir / "train.log").read_text()[-4000:]
    return {"case": name, "exit": proc.returncode, "seconds": round(seconds, 1),
            "adapter": bool(run_dir and (run_dir / "adapter" / "adapter_model.safetensors").is_file()),
            "losses": {e["step"]: e["loss"] for e in logs},
            "samples_per_s": round(sum(e.get("samples_per_s") or 0 for e in logs[1:]) / max(1, len(logs) - 1), 1),
            "peak_bytes": peaks, "tail": tail}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cpu", action="store_true", help="gloo on the CPU (DDP only)")
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    args = p.parse_args()
    if not args.cpu:
        import torch

        if torch.cuda.device_count() < 2:
            print(f"this machine has {torch.cuda.device_count()} CUDA GPU(s); the multi-GPU cases need 2 "
                  "(run with --cpu for the gloo cases)")
            return 2
    common = [f"train.max_steps={args.steps}", "train.logging_steps=2", "train.save_steps=1000",
              "train.warmup_ratio=0", "data.eval_fraction=0"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        common += model_overrides(tmp)
        for name, overrides in cases(args.cpu):
            results.append(run_case(name, [*common, *overrides], tmp))
            r = results[-1]
            print(f"{name:<24} exit {r['exit']}  {r['seconds']:>6}s  {r['samples_per_s']:>7} samples/s  "
                  f"adapter {'yes' if r['adapter'] else 'NO'}  peak "
                  + ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in r["peak_bytes"].items()), flush=True)
            if r["tail"]:
                print(r["tail"])
    base = results[0]["losses"]
    ok = all(r["exit"] == 0 and r["adapter"] for r in results)
    for r in results[1:]:
        if "qlora" in r["case"]:
            continue  # 4-bit weights: another model, its losses are not the baseline's
        worst = max((abs(r["losses"].get(s, float("nan")) - v) / abs(v) for s, v in base.items()), default=0.0)
        r["worst_relative_loss_difference"] = worst
        same = worst <= 0.02
        ok &= same
        print(f"{r['case']}: losses vs {results[0]['case']}: worst relative difference {worst:.2e} "
              f"({'within' if same else 'OUTSIDE'} 2%)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("all cases complete and agree" if ok else "SOME CASES FAILED OR DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
