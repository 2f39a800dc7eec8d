"""A data set too small to hold anything out (issue 24): said plainly, with what helps; the run's
"next" lines do not offer `eval`, and `eval` says why it has nothing to score."""

from __future__ import annotations

import json

from tests.conftest import ROOT, cli_env, run_cli
from tests.fixtures_data import caption, write_png
from wizard.dashboard.render import summary_rows
from wizard.dashboard.state import DashboardState

DEMO = ROOT / "recipes" / "demo-shapes.yaml"


def test_one_image_is_too_few_to_hold_out_and_the_run_does_not_offer_eval(tmp_path):
    folder = tmp_path / "one"
    write_png(folder / "a.png", 1)
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": caption(2)}) + "\n")
    env = cli_env(CAPTION_WIZARD_CACHE=str(tmp_path / "cache"))
    data = run_cli("data", str(folder), cwd=tmp_path, env=env)
    assert data.returncode == 0, data.stderr
    said = " ".join(data.stdout.split())
    assert "note: 1 image(s): too few to hold any out for evaluation (that takes at least 2)" in said
    assert "Add images" in said and "eval_fraction=0.05" not in said  # no hint that cannot help

    run = run_cli("run", str(DEMO), f"data.dataset={folder}", "data.language=en", "train.max_steps=2", "--plain",
                  "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert f"caption-wizard caption {run_dir}" in run.stdout
    assert "caption-wizard eval" not in run.stdout and "caption-wizard export" in run.stdout
    assert "warning: 1 image(s): too few to hold any out" in run.stdout

    scored = run_cli("eval", str(run_dir), cwd=tmp_path, env=env)
    assert scored.returncode == 2 and "Traceback" not in scored.stderr
    said = " ".join(scored.stderr.split())
    assert "its data set has 1 image(s), too few to hold one out" in said and "add images" in said
    assert "eval_fraction=0.05" not in said


def test_a_run_with_a_held_out_split_still_offers_eval():
    st = DashboardState(run_dir="runs/x", status="completed", images=(9, 1))
    assert ("", "caption-wizard eval runs/x") in summary_rows(st)
    assert ("", "caption-wizard eval runs/x") not in summary_rows(DashboardState(run_dir="runs/x", status="completed",
                                                                               images=(1, 0)))
