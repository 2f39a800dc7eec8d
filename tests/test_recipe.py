"""The recipe: schema, YAML round trip, validation messages, overrides, hash, old fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from wizard.errors import UserError
from wizard.recipe import (SCHEMA_VERSION, Strategy, apply_overrides, load_recipe, recipe_from_dict,
                           recipe_hash, recipe_to_yaml, save_recipe)

FIXTURES = sorted((ROOT / "tests" / "recipes").glob("v*/*.yaml"))
SHIPPED = sorted((ROOT / "recipes").glob("*.yaml"))


def test_every_schema_fixture_loads():
    # Old recipes must keep working: one folder of fixtures per schema version.
    assert FIXTURES, "no recipe fixtures found"
    versions = {p.parent.name for p in FIXTURES}
    assert f"v{SCHEMA_VERSION}" in versions
    for path in FIXTURES:
        recipe = load_recipe(path)
        assert recipe.schema_version == SCHEMA_VERSION, path


def test_design_example_values_are_read():
    r = load_recipe(ROOT / "tests/recipes/v1/design-example.yaml")
    assert r.tuning.strategy is Strategy.qlora
    assert r.tuning.lora.target_modules == ["q_proj", "v_proj"]
    assert r.train.learning_rate == 1e-4
    assert r.data.prompt == "用中文描述这张图片。"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipes_validate_and_name_their_replay_command(path):
    recipe = load_recipe(path)
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# ") and f"caption-wizard run recipes/{path.name}" in first
    assert recipe.name == path.stem


def test_shipped_recipes_cover_the_promised_setups():
    recipes = {p.stem: load_recipe(p) for p in SHIPPED}
    assert recipes["demo-shapes"].model.source == "demo"
    two_gpu = [r for r in recipes.values() if r.launch.devices == [0, 1]]
    assert len(two_gpu) == 1
    r = two_gpu[0]
    assert (r.model.id, r.tuning.strategy, r.tuning.lora.rank) == ("Qwen/Qwen2-VL-7B-Instruct", Strategy.qlora, 64)
    assert (r.train.batch_size, r.train.learning_rate, r.train.epochs) == (8, 1e-4, 3)


@pytest.mark.parametrize("path", FIXTURES + SHIPPED, ids=lambda p: p.name)
def test_yaml_round_trip_is_lossless(path, tmp_path):
    recipe = load_recipe(path)
    out = save_recipe(recipe, tmp_path / "again.yaml")
    again = load_recipe(out)
    assert again == recipe
    assert recipe_to_yaml(again, out) == out.read_text(encoding="utf-8")


def test_hash_ignores_formatting_and_key_order_but_not_values():
    a = load_recipe(ROOT / "tests/recipes/v1/design-example.yaml")
    data = yaml.safe_load((ROOT / "tests/recipes/v1/design-example.yaml").read_text())
    shuffled = {k: data[k] for k in reversed(list(data))}
    b = recipe_from_dict(shuffled)
    assert recipe_hash(a) == recipe_hash(b)
    assert len(recipe_hash(a)) == 12
    assert recipe_hash(apply_overrides(a, ["train.seed=7"])) != recipe_hash(a)


def test_save_never_overwrites_unless_asked(tmp_path):
    recipe = load_recipe(ROOT / "tests/recipes/v1/minimal.yaml")
    path = save_recipe(recipe, tmp_path / "r.yaml")
    before = path.read_text()
    changed = apply_overrides(recipe, ["train.epochs=9"])
    with pytest.raises(UserError, match="already exists"):
        save_recipe(changed, path)
    assert path.read_text() == before
    save_recipe(changed, path, overwrite=True)
    assert load_recipe(path).train.epochs == 9
    assert [p.name for p in tmp_path.iterdir()] == ["r.yaml"]  # no temporary files left behind


def test_overrides_are_typed_through_the_schema():
    r = load_recipe(ROOT / "tests/recipes/v1/minimal.yaml")
    r2 = apply_overrides(r, ["train.learning_rate=2e-4", "tuning.lora.target_modules=[q_proj,v_proj]",
                             "model.id=Qwen/Qwen2-VL-7B-Instruct", "launch.devices=[0,1]",
                             "tuning.strategy=full", "data.subset=null"])
    assert r2.train.learning_rate == 2e-4 and isinstance(r2.train.learning_rate, float)
    assert r2.tuning.lora.target_modules == ["q_proj", "v_proj"]
    assert r2.model.id == "Qwen/Qwen2-VL-7B-Instruct"
    assert r2.launch.devices == [0, 1]
    assert r2.tuning.strategy is Strategy.full
    assert r2.data.subset is None
    assert r.train.learning_rate == 1e-4  # the original is untouched
    assert r.train.gradient_checkpointing == "auto"  # the default
    for text, value in (("auto", "auto"), ("true", True), ("off", False), ("on", True)):
        assert apply_overrides(r, [f"train.gradient_checkpointing={text}"]).train.gradient_checkpointing == value


@pytest.mark.parametrize("override, expected", [
    ("data.max_pixel=1000", "data.max_pixel: unknown key in command line; did you mean data.max_pixels?"),
    ("train.learning_rate=-1", "train.learning_rate = -1"),
    ("train.batch_size=many", "train.batch_size = 'many'"),
    ("tuning.strategy=qlor", "'qlora', 'lora' or 'full'"),
    ("trian.epochs=1", "did you mean train?"),
    ("epochs", "not KEY=VALUE"),
    ("train.gradient_checkpointing=maybe", "train.gradient_checkpointing = 'maybe' in command line: must be auto, true or false"),
])
def test_bad_overrides_name_the_key_and_the_value(override, expected):
    r = load_recipe(ROOT / "tests/recipes/v1/minimal.yaml")
    with pytest.raises(UserError) as e:
        apply_overrides(r, [override])
    assert expected in str(e.value)


BROKEN = {
    "unknown-key": ("name: x\nmodel: {id: m}\ndata: {dataset: d, max_pixel: 5}\n",
                    "data.max_pixel: unknown key in {path}; did you mean data.max_pixels?"),
    "wrong-type": ("name: x\nmodel: {id: m}\ndata: {dataset: d}\ntrain: {batch_size: eight}\n",
                   "train.batch_size = 'eight' in {path}"),
    "negative-lr": ("name: x\nmodel: {id: m}\ndata: {dataset: d}\ntrain: {learning_rate: -0.001}\n",
                    "train.learning_rate = -0.001 in {path}: Input should be greater than 0"),
    "invalid-yaml": ("name: x\nmodel: {id: m\ndata: [\n", "{path}: line "),
    "newer-version": ("schema_version: 99\nname: x\nmodel: {id: m}\ndata: {dataset: d}\n",
                      "schema_version 99 is newer"),
    "missing-section": ("name: x\nmodel: {id: m}\n", "data: required in {path} but missing"),
    "not-a-mapping": ("- just\n- a list\n", "a recipe is a YAML mapping"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_recipes_are_explained_with_exit_2_and_no_traceback(case, tmp_path):
    text, expected = BROKEN[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    result = run_cli("run", str(path), "--dry-run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert " ".join(expected.format(path=path).split()) in message
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_recipe_file_is_explained(tmp_path):
    result = run_cli("run", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert f"recipe file not found: {tmp_path / 'nope.yaml'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_newer_schema_version_says_to_upgrade(tmp_path):
    path = tmp_path / "future.yaml"
    path.write_text("schema_version: 2\nname: x\nmodel: {id: m}\ndata: {dataset: d}\n")
    with pytest.raises(UserError) as e:
        load_recipe(path)
    assert "upgrade" in str(e.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodel:\n  id: m\n   source: local\n")
    with pytest.raises(UserError) as e:
        load_recipe(path)
    assert "line 4" in str(e.value)
