"""This machine's defaults (wizard/defaults.py): the same recipe the questionnaire makes, the demo recipe as
package data, and who may read them (data/ below ask/)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wizard.ask.questions import OWN_DATA, answers_to_recipe
from wizard.defaults import DEMO_RECIPE, default_recipe, proposed_recipe
from wizard.machine import GiB, GpuInfo, Machine
from wizard.recipe import load_recipe

from .conftest import ROOT

NO_GPU = Machine(gpus=(), ram_bytes=16 * GiB, cpu_count=2)
QWEN2B = "Qwen/Qwen2-VL-2B-Instruct"
QWEN7B = "Qwen/Qwen2-VL-7B-Instruct"


def gpus(*sizes_gib: int) -> Machine:
    return Machine(gpus=tuple(GpuInfo(i, "NVIDIA test GPU", s * GiB) for i, s in enumerate(sizes_gib)),
                   ram_bytes=64 * GiB, cpu_count=16)


@pytest.mark.parametrize("machine", [NO_GPU, gpus(8), gpus(24), gpus(80, 80)], ids=["cpu", "8G", "24G", "2x80G"])
def test_the_default_recipe_is_what_the_questionnaire_makes_of_no_answers(machine):
    assert default_recipe(machine) == answers_to_recipe({}, machine)


@pytest.mark.parametrize("choices, machine", [
    ({"model": QWEN7B, "strategy": "full"}, gpus(24)),
    ({"model": QWEN2B, "batch_size": 2, "epochs": 1.0}, gpus(80)),
    ({"model": QWEN7B}, gpus(80, 80)),
    ({"strategy": "qlora", "language": "en"}, NO_GPU),
])
def test_a_proposed_recipe_is_what_the_questionnaire_makes_of_the_same_answers(choices, machine):
    assert proposed_recipe(choices, machine) == answers_to_recipe(choices, machine)


def test_own_data_is_proposed_like_the_questionnaire_does(tmp_path):
    choices = {"dataset": OWN_DATA, "dataset_path": str(tmp_path), "language": "zh"}
    assert proposed_recipe(choices, NO_GPU) == answers_to_recipe(choices, NO_GPU)


def test_a_choice_the_defaults_do_not_read_is_refused():
    with pytest.raises(ValueError, match="lora_rank"):
        proposed_recipe({"lora_rank": 64}, NO_GPU)


def test_the_demo_recipe_is_package_data_and_the_readme_path_is_the_same_file():
    assert DEMO_RECIPE.is_file() and Path(str(DEMO_RECIPE)).resolve().is_relative_to((ROOT / "wizard").resolve())
    assert os.path.samefile(ROOT / "recipes" / "demo-shapes.yaml", str(DEMO_RECIPE))  # a link: one copy
    assert load_recipe(str(DEMO_RECIPE)) == default_recipe(NO_GPU)


def test_the_data_check_and_the_menu_entries_reach_neither_the_questions_nor_cli(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from wizard.commands.data import recipe_for
        recipe, _ = recipe_for({str(tmp_path)!r})  # a folder: read with this machine's default recipe
        print(sorted(m for m in sys.modules if m.startswith("wizard.ask")))
        import wizard.ask.menu, wizard.commands.menu
        print("wizard.cli" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "CAPTION_WIZARD_FAKE_GPUS": ""}).stdout
    assert out.splitlines() == ["[]", "False"]
