"""Fixtures for caption / eval / export tests: one trained demo run shared by the whole session.

Registered in tests/conftest.py (pytest_plugins). Training happens once per session, through the
real command line (`caption-wizard run recipes/demo-shapes.yaml`), and only when a test asks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

# In-process captioning tests: idle OpenMP threads sleep instead of spinning (torch is not imported
# yet when pytest loads this plugin). Spinning makes generation 10-100x slower on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# Wall time of each session run (process start to exit), for the "demo in under 3 minutes" test.
TRAIN_SECONDS: dict[Path, float] = {}


def _train(runs_dir: Path, *overrides: str, timeout: float = 400) -> Path:
    import time

    started = time.monotonic()
    proc = run_cli("run", "recipes/demo-shapes.yaml", *overrides, "--plain", "--runs-dir", str(runs_dir),
                   timeout=timeout)
    assert proc.returncode == 0, f"training failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    runs = [p for p in runs_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    assert (runs[0] / "adapter" / "adapter_config.json").is_file()
    TRAIN_SECONDS[runs[0]] = time.monotonic() - started
    return runs[0]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """recipes/demo-shapes.yaml as shipped (LoRA: English demo base -> Chinese captions)."""
    return _train(tmp_path_factory.mktemp("demo-run"))


@pytest.fixture(scope="session")
def qlora_run(tmp_path_factory) -> Path:
    """A few QLoRA steps on the demo (4-bit base through bitsandbytes' CPU backend)."""
    return _train(tmp_path_factory.mktemp("qlora-run"), "tuning.strategy=qlora", "train.max_steps=6",
                  "data.max_samples=64", "train.batch_size=8", "train.save_steps=100")


@pytest.fixture
def run_without_adapter(tmp_path) -> Path:
    """A run folder laid out per the contract that stopped before writing adapter/."""
    run = tmp_path / "runs" / "demo-shapes-20250101-120000"
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text((ROOT / "recipes" / "demo-shapes.yaml").read_text(encoding="utf-8"))
    (run / "state.json").write_text(json.dumps({"name": run.name, "status": "stopped", "pid": None, "step": 3,
                                                "total_steps": 58, "last_checkpoint": None}))
    (run / "events.jsonl").write_text("")
    return run


@pytest.fixture(scope="session")
def shape_images(tmp_path_factory):
    """Eight demo shapes saved as PNG (fresh seed: none of them was trained on), with their samples."""
    from wizard.demo.shapes import make_shapes

    folder = tmp_path_factory.mktemp("shapes")
    samples = make_shapes(8, seed=777)
    paths = []
    for i, s in enumerate(samples):
        paths.append(folder / f"{i}-{s.color}-{s.shape}.png")
        s.image.save(paths[-1])
    return paths, samples
