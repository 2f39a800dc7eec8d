"""Property test (hypothesis): whatever a recipe file or an override says, `caption-wizard run`
answers 0 or 2, never a traceback, and a recipe it refuses never gets a run folder.

In-process through wizard.cli.main (thousands of CLI start-ups would not fit the time budget);
derandomized, so every run of the suite tries the same cases.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from wizard.cli import main

DEMO = yaml.safe_load((ROOT / "recipes" / "demo-shapes.yaml").read_text(encoding="utf-8"))
KEYS = ["name", "schema_version", "task", "model.id", "model.source", "data.dataset", "data.prompt",
        "data.eval_fraction", "data.max_pixels", "data.min_pixels", "data.max_samples", "data.language",
        "tuning.strategy", "tuning.lora.rank", "tuning.lora.alpha", "tuning.lora.dropout", "tuning.quant.bits",
        "tuning.freeze_vision", "train.epochs", "train.max_steps", "train.batch_size", "train.grad_accum",
        "train.learning_rate", "train.warmup_ratio", "train.precision", "train.save_steps", "train.seed",
        "train.max_target_length", "generation.num_beams", "generation.temperature", "launch.devices",
        "train", "data", "tuning.lora", "trian.epochs", "extra"]

tricky = st.text(alphabet=st.sampled_from(list("[]/ab=.:_-1 ")), max_size=12)  # markup, dotted keys
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "auto", "cpu", "qlora", "full", "[/x]", "[bold]w", "1e400", ".inf", "true", "0x10",
                     "demo/tiny-qwen2-vl-shapes", "../../etc/passwd", "名字", "a" * 300]),
    st.text(max_size=12), tricky,
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)


def _set(data: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        if not isinstance(data.get(p), dict):
            data[p] = {}
        data = data[p]
    data[last] = value


def _yaml_text(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000).strip().removesuffix("...").strip()


edits = st.lists(st.tuples(st.sampled_from(KEYS), values), max_size=3)
overrides = st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={_yaml_text(v)}", st.sampled_from(KEYS), values),
    st.text(max_size=20), tricky,
), max_size=3)
garbage = st.one_of(st.none(), st.text(max_size=40))  # sometimes the file is not YAML at all


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("props")


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(edits=edits, overrides=overrides, garbage=garbage)
def test_any_recipe_and_override_exit_0_or_2_and_no_run_folder_on_2(workdir, monkeypatch, edits, overrides,
                                                                    garbage):
    monkeypatch.setenv("CAPTION_WIZARD_FAKE_GPUS", "none")
    data = yaml.safe_load(yaml.safe_dump(DEMO))
    data["train"]["max_steps"] = 1
    for key, value in edits:
        _set(data, key, value)
    path = workdir / "r.yaml"
    text = garbage if garbage is not None else yaml.safe_dump(data, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    args = [a for a in overrides if a.strip() and not a.startswith("-")]

    dry = main(["run", str(path), *args, "--dry-run"])  # anything but UserError raises: the test fails
    assert dry in (0, 2)
    if dry == 2:  # refused: the real `run` refuses too, before any run folder exists
        runs_dir = workdir / "runs"
        assert main(["run", str(path), *args, "--plain", "--runs-dir", str(runs_dir)]) == 2
        assert not runs_dir.exists() or not any(runs_dir.iterdir())
