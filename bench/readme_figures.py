"""The figures the README quotes for the demo, measured the way a fresh clone runs them.

    .venv/bin/python bench/readme_figures.py          # ~2 minutes on 2 cores; run it on a quiet machine

Runs `caption-wizard run recipes/demo-shapes.yaml --plain` into a temporary runs folder (wall
time of the whole command, what a user waits), reads the steps and the first/last logged loss
from its events, runs `caption-wizard eval` on it (CIDEr base -> tuned), and prints one line
naming the machine, to paste into README's Quick start and BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "caption-wizard")


def machine() -> str:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    return f"{model or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


def main() -> int:
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        started = time.monotonic()
        done = subprocess.run([CLI, "run", "recipes/demo-shapes.yaml", "--plain", "--runs-dir", str(runs)],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            return 1
        (run,) = [p for p in runs.iterdir() if p.is_dir()]
        events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines() if x.strip()]
        losses = [e["loss"] for e in events if e.get("type") == "log" and isinstance(e.get("loss"), (int, float))]
        steps = max(e.get("step", 0) for e in events if e.get("type") == "log")
        ev = subprocess.run([CLI, "eval", str(run)], cwd=ROOT, env=env, capture_output=True, text=True)
        result = json.loads((run / "eval.json").read_text()) if ev.returncode == 0 else {}
        cider = (result.get("base") or {}).get("CIDEr"), (result.get("tuned") or {}).get("CIDEr")
    print(f"demo: {wall:.0f} s wall for `caption-wizard run recipes/demo-shapes.yaml` ({steps} steps, loss "
          f"{losses[0]:.1f} -> {losses[-1]:.2f}); CIDEr base {cider[0]:.1f} -> tuned {cider[1]:.1f}; on {machine()}, "
          f"{time.strftime('%Y-%m-%d')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
