"""One byte formatter (wizard/units.py): binary units, labelled GiB/MiB/KiB, everywhere a size is shown;
the wizard's summary puts the download size and the memory estimate side by side in the same units."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from tests.hubserver import dead_endpoint
from wizard.units import GiB, KiB, MiB, fmt_bytes

SIZE = re.compile(r"\b(\d[\d,]*(?:\.\d+)?)\s?([KMGTP]i?B|kB)\b")  # not "2.21B params"


def test_fmt_bytes_is_binary_and_says_so():
    assert fmt_bytes(1000) == "1000 B"
    assert fmt_bytes(1024) == "1.0 KiB"
    assert fmt_bytes(1_500_000) == "1.4 MiB"           # 1.43 x 2**20, not "1.5 MB"
    assert fmt_bytes(812 * MiB) == "812 MiB"
    assert fmt_bytes(1023.97 * KiB) == "1.0 MiB"        # never "1024 KiB"
    assert fmt_bytes(24 * GiB) == "24.0 GiB"
    assert fmt_bytes(85520809984) == "79.6 GiB"         # an "80GB" H100, as NVML reports it
    assert fmt_bytes(int(1.05 * GiB), digits=2) == "1.05 GiB"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """No hub (the download line falls back to the catalog's figure) and an empty cache."""
    from wizard.plan import _model_download

    monkeypatch.setenv("MODELSCOPE_ENDPOINT", dead_endpoint())
    monkeypatch.setenv("CAPTION_WIZARD_CACHE", str(tmp_path / "cache"))
    _model_download.cache_clear()
    yield
    _model_download.cache_clear()


@pytest.mark.parametrize("compact", [True, False])
def test_summary_shows_download_and_memory_in_binary_units(offline_hub, compact):
    from wizard.ask.summary import render_summary, summarize
    from wizard.catalog import model_info
    from wizard.machine import GpuInfo, Machine
    from wizard.recipe import apply_overrides, load_recipe
    from wizard.units import fmt_bytes

    model = "Qwen/Qwen2-VL-2B-Instruct"
    recipe = apply_overrides(load_recipe("recipes/qwen2-vl-2b-coco-en.yaml"), [f"model.id={model}"])
    machine = Machine(gpus=(GpuInfo(0, "NVIDIA H100 80GB HBM3", 85520809984),), ram_bytes=64 * GiB, cpu_count=16)
    review = summarize(recipe, machine)
    out = io.StringIO()
    Console(file=out, width=140).print(render_summary(review, None, compact=compact))
    text = out.getvalue().replace("80GB HBM3", "")  # the GPU's own name is NVIDIA's label, not ours
    units = {unit for _, unit in SIZE.findall(text)}
    assert units and units <= {"KiB", "MiB", "GiB"}, text
    download = next(line for line in text.splitlines() if "to download" in line)
    memory = next(line for line in text.splitlines() if line.startswith("memory"))
    assert fmt_bytes(model_info(model).params_b * 2e9) in download  # weights at 16 bit, in GiB
    assert f"~{fmt_bytes(review.estimate.per_device_bytes)} " in memory and "of 79.6 GiB" in memory
