"""Helpers for the training tests (test_train*.py, test_resume.py, test_runs.py).

A tiny untrained demo-architecture model is built once per session in a temp folder (in a
subprocess, so the pytest process stays free of torch), and recipes point at it with
model.source=local. Each training test keeps to a few steps of a few images.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import CLI, ROOT, cli_env

# Small and quick: 32 images, 4 per batch, a loss logged every step.
FAST = {
    "data": {"max_samples": 32, "eval_fraction": 0.0},
    "train": {"batch_size": 4, "logging_steps": 1, "save_steps": 3, "max_steps": 9, "warmup_ratio": 0.0},
    "tuning": {"lora": {"dropout": 0.1}},  # dropout draws random numbers: resume must restore the RNG
}

BUILD = """
import sys
from wizard.demo.model import build_model, build_processor
build_model(0).save_pretrained(sys.argv[1]); build_processor().save_pretrained(sys.argv[1])
"""


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-model")
    subprocess.run([sys.executable, "-c", BUILD, str(path)], check=True, cwd=ROOT, env=train_env(),
                   capture_output=True)
    return path


def train_env(**extra: str) -> dict[str, str]:
    # one thread: steadier timings on a shared 2-core machine (determinism holds for any fixed count)
    return cli_env(OMP_NUM_THREADS="1", **extra)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def write_recipe(folder: Path, model: Path, name: str = "tiny", **sections) -> Path:
    """recipes/demo-shapes.yaml pointed at `model`, with FAST and `sections` merged in."""
    data = yaml.safe_load((ROOT / "recipes" / "demo-shapes.yaml").read_text(encoding="utf-8"))
    data = _merge(data, {"name": name, "model": {"id": str(model), "source": "local"}})
    data = _merge(_merge(data, FAST), sections)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=cwd, env=train_env(), capture_output=True, text=True, timeout=timeout)


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([CLI, *args], cwd=cwd, env=train_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def only_run(runs_dir: Path) -> Path:
    found = [p for p in runs_dir.iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def events(run_dir: Path) -> list[dict]:
    text = (run_dir / "events.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def losses(run_dir: Path) -> dict[int, float]:
    """step -> logged loss (the last one logged for a step wins, as a reader would see it)."""
    return {e["step"]: e["loss"] for e in events(run_dir) if e["type"] == "log"}


def state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text(encoding="utf-8"))


def wait_for(predicate, timeout: float = 180, what: str = "condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def checkpoint_events(runs_dir: Path) -> list[dict]:
    dirs = [p for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.is_dir() else []
    if len(dirs) != 1 or not (dirs[0] / "events.jsonl").exists():
        return []
    return [e for e in events(dirs[0]) if e["type"] == "checkpoint"]


def kill_backend(run_dir: Path, sig=signal.SIGKILL) -> int:
    pid = state(run_dir)["pid"]
    os.kill(pid, sig)
    return pid


def adapter_tensors(run_dir: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def nan_backend_script(when: str = "True") -> str:
    """`python -c SCRIPT RUN_DIR`: the training backend with a model whose logits turn NaN from the
    third forward on where `when` (a Python expression, e.g. 'os.environ["RANK"] == "1"') holds."""
    return f"""
import os, sys, torch
import wizard.train.load as load
from wizard.train import backend
real = load.load_model
def poisoned(*a, **k):
    model, processor = real(*a, **k)
    forward, calls = model.forward, [0]
    def nan_on_third(*args, **kwargs):
        out = forward(*args, **kwargs)
        calls[0] += 1
        if calls[0] >= 3 and ({when}):
            out.logits = out.logits * torch.tensor(float("nan"))  # the loss is computed from these
        return out
    model.forward = nan_on_third
    return model, processor
load.load_model = poisoned
sys.exit(backend.main([sys.argv[1]]))
"""
