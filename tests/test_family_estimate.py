"""The memory estimate against the measured peak RSS, for three non-Qwen families at real widths.

SmolVLM-256M, Florence-2 base and InternVL3-1B, each with its checkpoint's real widths and
vocabulary (wizard/demo/families.py: build_real) but 2 language and 1 vision layer, train 3 LoRA
steps through caption-wizard's training path (bench/realshape.py's `project`: the model plan, the
adapters, the family's batches and the CaptionTrainer). One child process measures all three, the
peak reset in between (/proc/self/clear_refs), so torch and transformers are imported once; the
estimate of the same recipe must be within 20% of each peak (tests/test_model_plan.py does the same
for Qwen2-VL).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, cli_env

FAMILIES = ["smolvlm", "florence2", "internvl"]

MEASURE = """
import gc, json, sys
from transformers.utils import logging
logging.disable_progress_bar()
from bench import realshape
from wizard.demo.families import build_real
for family, folder in zip(sys.argv[1::2], sys.argv[2::2]):
    build_real(family, folder)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # the peak (VmHWM) from here on: this family's
        f.write("5")
    realshape.project(realshape.recipe_for(folder, "lora", 1, 3), n_images=3)
    print(json.dumps({"family": family, "peak": realshape.peak_rss()}), flush=True)
"""


@pytest.mark.slow
def test_estimate_is_within_20_percent_of_the_peak_for_three_more_families(tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench.realshape import recipe_for
    from wizard.estimate import estimate_memory

    args = [a for f in FAMILIES for a in (f, str(tmp_path / f))]
    proc = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, cwd=ROOT,
                          env=cli_env(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT)),
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peaks = {r["family"]: r["peak"] for r in map(json.loads, (ln for ln in proc.stdout.splitlines() if ln[:1] == "{"))}
    assert set(peaks) == set(FAMILIES)
    for family in FAMILIES:
        est = estimate_memory(recipe_for(tmp_path / family, "lora", 1, 3), [])
        assert any(f"{tmp_path / family}/config.json" in n for n in est.notes)  # its own widths, not a guess
        assert 0.8 <= est.per_device_bytes / peaks[family] <= 1.2, (family, est.per_device_bytes, peaks[family])
