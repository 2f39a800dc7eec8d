"""`caption-wizard compare`: run folders built from fixtures (no training)."""

from __future__ import annotations

import json
import math

from PIL import Image

from tests.conftest import ROOT
from wizard.commands.compare import render_metrics
from wizard.compare import load_summary, recipe_differences
from wizard.recipe import apply_overrides, load_recipe, recipe_to_yaml


def make_run(folder, overrides=(), *, losses=(), evals=(), eval_json=None, status="completed"):
    """A finished run folder: recipe.yaml (demo recipe + overrides), state.json, events.jsonl, eval.json."""
    folder.mkdir(parents=True)
    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "demo-shapes.yaml"), list(overrides))
    (folder / "recipe.yaml").write_text(recipe_to_yaml(recipe))
    events = [{"t": 1.0 + i, "type": "log", "step": s, "loss": y} for i, (s, y) in enumerate(losses)]
    events += [{"t": 100.0, "type": "eval", "step": s, "which": "tuned", "eval_loss": y} for s, y in evals]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (folder / "state.json").write_text(json.dumps({"status": status, "pid": None,
                                                   "step": losses[-1][0] if losses else 0}))
    if eval_json is not None:
        (folder / "eval.json").write_text(json.dumps(eval_json))
    return folder


def scores(x):
    return {"BLEU-1": x, "BLEU-2": x / 2, "BLEU-3": x / 3, "BLEU-4": x / 4, "ROUGE-L": x, "CIDEr": 2 * x, "n": 10}


def curve(n, scale):
    return [(s, scale * math.exp(-s / 20) + 0.3) for s in range(2, n + 1, 2)]


def two_runs(tmp_path):
    a = make_run(tmp_path / "runs" / "demo-shapes-20250101-120000", losses=curve(40, 2.0), evals=[(40, 0.61)],
                 eval_json={"n": 10, "tuned": scores(0.8), "base": scores(0.1)})
    b = make_run(tmp_path / "runs" / "demo-shapes-20250102-090000",
                 ["train.learning_rate=2e-3", "tuning.lora.rank=8", "tuning.lora.target_modules=[q_proj,v_proj]"],
                 losses=curve(30, 3.0) + [(32, None)], status="stopped")
    return a, b


def test_differences_metrics_and_curves(tmp_path):
    a, b = two_runs(tmp_path)
    ra, rb = load_summary(a), load_summary(b)
    assert dict(recipe_differences([ra, rb])) == {
        "train.learning_rate": [0.004, 0.002], "tuning.lora.rank": [16, 8],
        "tuning.lora.target_modules": [None, ["q_proj", "v_proj"]]}
    assert ra.steps[:3] == [2, 4, 6] and ra.evals == [(40, 0.61)]
    assert math.isnan(rb.losses[-1])  # a NaN loss (written as null) stays in the curve as a gap
    _, unscored = render_metrics([ra, rb])
    assert unscored == [rb]


def test_resumed_run_keeps_the_latest_loss_per_step(tmp_path):
    run = make_run(tmp_path / "r", losses=[(2, 1.0), (4, 0.9), (6, 0.8), (4, 0.7), (6, 0.6)])
    s = load_summary(run)
    assert (s.steps, s.losses) == ([2, 4, 6], [1.0, 0.7, 0.6])


def test_cli_prints_the_tables_and_writes_one_png(tmp_path, cli):
    a, b = two_runs(tmp_path)
    png = tmp_path / "cmp.png"
    res = cli("compare", str(a), str(b), "--out", str(png), env=None)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "recipe keys that differ (3)" in out
    row = next(line for line in out.splitlines() if "train.learning_rate" in line)
    assert "0.004" in row and "0.002" in row
    assert "tuning.lora.rank" in out and "[q_proj, v_proj]" in out
    assert "seed" not in out  # equal keys are not listed
    bleu = next(line for line in out.splitlines() if "BLEU-1" in line)
    assert "0.100" in bleu and "0.800" in bleu  # base and tuned
    assert f"no eval.json; score it with: caption-wizard eval {b}" in out.replace("\n", "")
    assert "stopped" in out and "completed" in out
    with Image.open(png) as im:
        assert im.size == (900, 500)


def test_cli_refuses_one_run_and_non_runs(tmp_path, cli):
    a, _ = two_runs(tmp_path)
    res = cli("compare", str(a))
    assert res.returncode == 2 and "at least two run folders" in res.stderr
    res = cli("compare", str(a), str(tmp_path / "nope"))
    assert res.returncode == 2 and "run folder not found" in res.stderr


def test_the_menus_runs_entry_offers_compare(tmp_path):
    import time

    import pexpect

    from tests.test_wizard_pty import CTRL_C, DOWN, ENTER, Screen, spawn

    two_runs(tmp_path)
    child = spawn(cwd=tmp_path)
    s = Screen(child)
    time.sleep(1)  # an arrow key sent while the menu starts up can be lost: wait, then check each move
    s.at("What do you want to do?", DOWN).at("» Resume a run", DOWN).at("» Replay a recipe", DOWN)
    s.at("» Runs", ENTER)
    s.at("Compare runs?", "y")
    s.at("Compare which runs?", " ", DOWN, " ", ENTER)
    s.at("recipe keys that differ (3)")
    s.at("wrote compare-loss.png")
    s.at("What do you want to do?", CTRL_C)  # back at the menu (pointer on Runs); Ctrl-C leaves
    child.expect(pexpect.EOF)
    assert (tmp_path / "compare-loss.png").stat().st_size > 1000
