"""Run folders without training: state, checkpoints' completeness, the events file, `runs`, resume plans."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.train_support import run as run_cli
from wizard import rundir
from wizard.rundir.events import EventReader, EventWriter, read_events
from wizard.recipe import apply_overrides, load_recipe
from wizard.runner import create_run, plan_resume


class Resolved:
    path, files, revision = "/nowhere/model", {"model.safetensors": "ab" * 32}, "abc123"


@pytest.fixture
def recipe():
    return load_recipe(ROOT / "recipes" / "demo-shapes.yaml")


def test_create_run_writes_the_run_folder(tmp_path, recipe):
    recipe = apply_overrides(recipe, ["train.learning_rate=3e-4"])
    run_dir = create_run(recipe, Resolved(), runs_dir=tmp_path, recipe_path=ROOT / "recipes" / "demo-shapes.yaml")
    assert run_dir.parent == tmp_path and run_dir.name.startswith("demo-shapes-")
    for name in ("recipe.yaml", "lock.json", "state.json", "events.jsonl", "train.log", "checkpoints"):
        assert (run_dir / name).exists(), name
    assert load_recipe(run_dir / "recipe.yaml") == recipe  # overrides applied: the replayable truth
    lock = json.loads((run_dir / "lock.json").read_text())
    assert lock["model"]["revision"] == "abc123" and lock["model"]["files"] == Resolved.files
    assert lock["seed"] == 42 and lock["packages"]["torch"] and lock["recipe_hash"]
    state = rundir.read_state(run_dir)
    assert state["status"] == "running" and state["pid"] is None and state["strategy"] == "lora"
    # same name, same second: a second folder, never the same one
    again = create_run(recipe, Resolved(), runs_dir=tmp_path)
    assert again != run_dir


def _checkpoint(run_dir, step, complete=True):
    path = run_dir / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"x" * 100)
    (path / "optimizer.pt").write_bytes(b"y" * 50)
    if complete:
        rundir.mark_checkpoint_complete(path, step)
    return path


def test_only_complete_checkpoints_count(tmp_path):
    a = _checkpoint(tmp_path, 3)
    b = _checkpoint(tmp_path, 6)
    _checkpoint(tmp_path, 9, complete=False)  # killed before the marker
    (b / "optimizer.pt").write_bytes(b"short")  # marker there, but a file is not what it said
    assert rundir.last_good_checkpoint(tmp_path) == a
    removed = rundir.remove_incomplete_checkpoints(tmp_path)
    assert sorted(p.name for p in removed) == ["checkpoint-6", "checkpoint-9"]
    _checkpoint(tmp_path, 12)
    _checkpoint(tmp_path, 15)
    rundir.rotate_checkpoints(tmp_path, keep=2)
    assert [p.name for _, p in rundir.checkpoint_dirs(tmp_path)] == ["checkpoint-12", "checkpoint-15"]


def test_a_checkpoint_that_rotted_without_changing_size_is_set_aside_for_the_one_before(tmp_path):
    a = _checkpoint(tmp_path, 3)
    b = _checkpoint(tmp_path, 6)
    assert rundir.verified_checkpoint(tmp_path) == (b, [])
    with open(b / "optimizer.pt", "r+b") as f:  # zeros over the start: the same size, other bytes
        f.write(b"\0" * 16)
    assert rundir.last_good_checkpoint(tmp_path) == b  # sizes alone cannot tell
    assert rundir.checkpoint_problem(b) == "optimizer.pt: its sha256 differs from the one recorded when it was saved"
    found, rejected = rundir.verified_checkpoint(tmp_path, set_aside=True)
    assert found == a and rejected == [("checkpoint-6", rundir.checkpoint_problem(tmp_path / "checkpoints" /
                                                                             "checkpoint-6.corrupt"))]
    assert [p.name for _, p in rundir.checkpoint_dirs(tmp_path)] == ["checkpoint-3"]  # nothing tries it again
    (a / "adapter_model.safetensors").write_bytes(b"z" * 100)
    assert rundir.verified_checkpoint(tmp_path)[0] is None  # none verifies: the caller starts from step 0


def test_events_reader_tolerates_half_lines_and_unknown_types(tmp_path):
    path = tmp_path / "events.jsonl"
    w = EventWriter(path)
    w.emit("status", status="running")
    w.emit("log", step=1, loss=float("nan"))  # never invalid JSON
    w.emit("something-new", x=1)
    reader = EventReader(path)
    assert [e["type"] for e in reader.poll()] == ["status", "log", "something-new"]
    with open(path, "a") as f:
        f.write('{"t": 1, "type": "log", "st')  # the writer is mid-line
    assert reader.poll() == []
    with open(path, "a") as f:
        f.write('ep": 2}\n')
    assert reader.poll()[0]["step"] == 2
    assert read_events(path)[1]["loss"] is None
    assert len(read_events(path)) == 4


def test_a_running_state_whose_process_is_gone_reads_as_interrupted(tmp_path, recipe):
    run_dir = create_run(recipe, Resolved(), runs_dir=tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    rundir.write_state(run_dir, pid=dead.pid, step=40, total_steps=64, last_loss=0.5)
    info = rundir.load_run(run_dir)
    assert info.status == "interrupted" and info.status_text == "stopped (interrupted)" and info.resumable
    rundir.write_state(run_dir, pid=os.getpid())  # alive, but not a training process (pid reuse)
    assert rundir.load_run(run_dir).status == "interrupted"


def test_runs_table_lists_each_run(tmp_path, recipe):
    a = create_run(recipe, Resolved(), runs_dir=tmp_path)
    rundir.write_state(a, status="completed", step=64, total_steps=64, last_loss=0.1234)
    b = create_run(apply_overrides(recipe, ["name=second"]), Resolved(), runs_dir=tmp_path)
    rundir.write_state(b, status="running", pid=999999, step=10, total_steps=64, last_loss=2.5)
    out = run_cli("runs", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert a.name in text and b.name in text
    assert "completed" in text and "64/64" in text and "0.1234" in text
    assert "stopped (interrupted)" in text and "10/64" in text
    empty = run_cli("runs", "--runs-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert empty.returncode == 0 and "no runs" in empty.stdout


def test_resume_plan_refuses_model_strategy_and_data_changes(recipe):
    edited = apply_overrides(recipe, ["model.id=Qwen/Qwen2-VL-2B-Instruct", "tuning.strategy=qlora",
                                      "data.language=en"])
    plan = plan_resume(recipe, edited)
    assert len(plan.refused) == 4  # model.source follows the new id (demo -> modelscope): refused too
    assert any(r.startswith("model.source: 'demo' -> 'modelscope'") for r in plan.refused)
    assert any(r.startswith("model.id: 'demo/tiny-qwen2-vl-shapes' -> 'Qwen/Qwen2-VL-2B-Instruct'")
               for r in plan.refused)
    assert any(r.startswith("tuning.strategy: 'lora' -> 'qlora'") for r in plan.refused)


def test_resume_plan_applies_learning_rate_and_epochs_and_keeps_the_rest(recipe):
    edited = apply_overrides(recipe, ["train.learning_rate=1e-3", "train.epochs=3", "train.seed=7",
                                      "train.save_steps=5"])
    plan = plan_resume(recipe, edited)
    assert not plan.refused
    assert plan.applied == [f"train.epochs: {recipe.train.epochs} -> 3.0",
                            f"train.learning_rate: {recipe.train.learning_rate} -> 0.001"]
    assert plan.kept == ["train.seed in checkpoint 42, recipe says 7: using 42"]
    assert plan.recipe.train.learning_rate == 1e-3 and plan.recipe.train.seed == 42
    assert plan.recipe.train.save_steps == 5


@pytest.mark.parametrize("edit, named", [
    (("strategy: lora", "strategy: full"), "tuning.strategy: 'lora' -> 'full'"),
    # the file still says source: demo, which contradicts the new id: refused when the recipe is read
    (("id: demo/tiny-qwen2-vl-shapes", "id: Qwen/Qwen2-VL-2B-Instruct"),
     "model.source = demo contradicts model.id = 'Qwen/Qwen2-VL-2B-Instruct'"),
])
def test_resume_refuses_an_edited_model_or_strategy_and_names_it(tmp_path, recipe, edit, named):
    run_dir = create_run(recipe, Resolved(), runs_dir=tmp_path)
    rundir.write_state(run_dir, status="stopped", step=3, total_steps=10)
    text = (run_dir / "recipe.yaml").read_text()
    assert edit[0] in text
    (run_dir / "recipe.yaml").write_text(text.replace(*edit))
    out = run_cli("resume", str(run_dir), cwd=tmp_path)
    assert out.returncode == 2
    assert named in " ".join(out.stderr.split()) and "Traceback" not in out.stderr
    assert rundir.read_state(run_dir)["status"] == "stopped"  # nothing started


def test_resume_without_a_run_on_a_pipe_lists_the_resumable_runs(tmp_path, recipe):
    run_dir = create_run(recipe, Resolved(), runs_dir=tmp_path)
    rundir.write_state(run_dir, status="stopped", step=3, total_steps=10, last_loss=1.5)
    out = run_cli("resume", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2
    assert run_dir.name in out.stdout and "3/10" in out.stdout
    assert f"caption-wizard resume {run_dir}" in out.stderr


def test_resume_of_something_that_is_not_a_run(tmp_path):
    out = run_cli("resume", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "not a caption-wizard run folder" in out.stderr


def test_resume_without_a_run_in_a_terminal_offers_a_menu_of_resumable_runs(tmp_path, recipe):
    pexpect = pytest.importorskip("pexpect")
    from tests.conftest import CLI, cli_env

    older = create_run(apply_overrides(recipe, ["name=alpha"]), Resolved(), runs_dir=tmp_path)
    newer = create_run(apply_overrides(recipe, ["name=beta"]), Resolved(), runs_dir=tmp_path)
    done = create_run(apply_overrides(recipe, ["name=gamma"]), Resolved(), runs_dir=tmp_path)
    rundir.write_state(older, status="stopped", step=3, total_steps=10, last_loss=1.5)
    rundir.write_state(newer, status="failed", step=7, total_steps=10, last_loss=0.75)
    rundir.write_state(done, status="completed", step=10, total_steps=10)
    # the chosen run's recipe was edited: resume refuses at once, naming it (no training needed here)
    text = (newer / "recipe.yaml").read_text()
    (newer / "recipe.yaml").write_text(text.replace("strategy: lora", "strategy: qlora"))
    child = pexpect.spawn(CLI, ["resume", "--runs-dir", str(tmp_path)], cwd=str(tmp_path), env=cli_env(),
                          encoding="utf-8", timeout=30, dimensions=(30, 160))
    try:
        child.expect("Resume which run")
        child.expect("beta")
        child.expect("alpha")
        assert "gamma" not in child.before
        child.send("\r")  # the newest run is first
        child.expect(pexpect.EOF)
        output = child.before
    finally:
        child.close()
    assert child.exitstatus == 2
    flat = " ".join(output.split())
    assert "tuning.strategy: 'lora' -> 'qlora'" in flat and newer.name in flat
