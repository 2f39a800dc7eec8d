"""Exact resume: a run killed (SIGKILL) or stopped (Ctrl-C) and resumed logs the same losses, bit
for bit, as an uninterrupted run of the same recipe, and ends with the same adapter tensors.

Like torchtune's resume test: one reference run, then interrupted runs compared against it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.conftest import CLI
from tests.train_support import (adapter_tensors, checkpoint_events, events, kill_backend, losses, only_run,
                                 run, start, state, tiny_model, train_env, wait_for, write_recipe)  # noqa: F401

pytestmark = pytest.mark.slow

STEPS = {"train": {"max_steps": 12, "save_steps": 3}}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def recipe(workdir, tiny_model):
    return write_recipe(workdir, tiny_model, **STEPS)


@pytest.fixture(scope="module")
def reference(workdir, recipe):
    """The uninterrupted run."""
    runs_dir = workdir / "reference"
    proc = run("run", str(recipe), "--plain", "--runs-dir", str(runs_dir), cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return only_run(runs_dir)


def assert_same_adapter(a, b):
    ta, tb = adapter_tensors(a), adapter_tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert np.array_equal(ta[k], tb[k]), f"adapter tensor {k} differs"


def test_replaying_a_recipe_logs_identical_losses(workdir, recipe, reference):
    runs_dir = workdir / "replay"
    proc = run("run", str(recipe), "--plain", "--runs-dir", str(runs_dir), cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    replay = only_run(runs_dir)
    assert len(losses(reference)) == 12
    assert losses(replay) == losses(reference)  # floats compared exactly
    assert_same_adapter(replay, reference)


def test_sigkill_after_second_checkpoint_then_resume_matches_uninterrupted(workdir, recipe, reference):
    runs_dir = workdir / "killed"
    proc = start("run", str(recipe), "--plain", "--runs-dir", str(runs_dir), cwd=workdir)
    try:
        wait_for(lambda: len(checkpoint_events(runs_dir)) >= 2, what="the second checkpoint")
        killed = only_run(runs_dir)
        kill_backend(killed)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    # a save cut short by the kill: a checkpoint folder without its completion marker
    half = killed / "checkpoints" / "checkpoint-11"
    shutil.copytree(killed / "checkpoints" / "checkpoint-6", half)
    (half / "wizard-checkpoint.json").unlink()

    table = run("runs", "--runs-dir", str(runs_dir), cwd=workdir)
    assert "stopped (interrupted)" in table.stdout

    resumed = run("resume", str(killed), "--plain", cwd=workdir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert state(killed)["status"] == "completed"
    starts = [e for e in events(killed) if e["type"] == "start"]
    assert [s["resumed"] for s in starts] == [False, True]
    k = starts[1]["start_step"]
    assert k >= 6 and k % 3 == 0
    assert any("checkpoint-11" in e.get("message", "") for e in events(killed) if e["type"] == "warning")
    # after the resume, only steps after k are logged, and they equal the uninterrupted run's
    after = [e["step"] for e in events(killed)[events(killed).index(starts[1]):] if e["type"] == "log"]
    assert after == list(range(k + 1, 13))
    assert losses(killed) == losses(reference)
    assert_same_adapter(killed, reference)


def test_ctrl_c_in_a_terminal_saves_a_checkpoint_at_the_stop_step_and_resume_completes(workdir, recipe, reference):
    pexpect = pytest.importorskip("pexpect")
    runs_dir = workdir / "ctrl-c"
    child = pexpect.spawn(CLI, ["run", str(recipe), "--plain", "--runs-dir", str(runs_dir)], cwd=str(workdir),
                          env=train_env(), encoding="utf-8", timeout=180)
    try:
        child.expect(r"step 4/12")
        child.sendcontrol("c")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 130
    stopped = only_run(runs_dir)
    st = state(stopped)
    assert st["status"] == "stopped"
    stop_step = st["step"]
    assert 4 <= stop_step < 12
    assert st["last_checkpoint"] == f"checkpoints/checkpoint-{stop_step}"
    assert (stopped / st["last_checkpoint"] / "wizard-checkpoint.json").is_file()
    assert [e["step"] for e in events(stopped) if e["type"] == "checkpoint"][-1] == stop_step

    resumed = run("resume", str(stopped), "--plain", cwd=workdir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert state(stopped)["status"] == "completed"
    assert losses(stopped) == losses(reference)
    assert_same_adapter(stopped, reference)

    again = run("resume", str(stopped), cwd=workdir)
    assert again.returncode == 0 and "already completed" in again.stdout
