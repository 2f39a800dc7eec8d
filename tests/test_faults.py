"""Hostile input and faults (issue 12): each case a clear message, nothing lost, no orphan.

Real tools only: the real `caption-wizard` command, real signals, a real tmpfs for a full disk and
a read-only mount for a read-only folder (tests/fault_support.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import CLI, ROOT, run_cli
from tests.fault_support import read_only, small_disk
from tests.train_support import (events, only_run, run, start, state, tiny_model, train_env,  # noqa: F401
                                 wait_for, write_recipe)


# ----------------------------------------------------------------------------- 1. --out never overwrites
def test_caption_out_never_overwrites_an_existing_file_without_force(tmp_path):
    precious = tmp_path / "recipe.yaml"
    precious.write_text("name: mine\n", encoding="utf-8")
    image = tmp_path / "a.png"
    image.write_bytes(b"not really a png")
    proc = run_cli("caption", "demo/tiny-qwen2-vl-shapes", str(image), "--out", str(precious))
    assert proc.returncode == 2, proc.stderr
    assert "already exists; not overwriting it" in proc.stderr and "--force" in proc.stderr
    assert precious.read_text(encoding="utf-8") == "name: mine\n"
    assert "Traceback" not in proc.stderr


def test_caption_out_that_is_a_folder_is_refused_before_any_work(tmp_path):
    proc = run_cli("caption", "demo/tiny-qwen2-vl-shapes", str(tmp_path), "--out", str(tmp_path), "--force")
    assert proc.returncode == 2
    assert "is a folder" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- 2./3. signals, two resumes
def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _logged(runs_dir: Path) -> bool:
    found = list(runs_dir.glob("*/events.jsonl"))
    return bool(found) and any(e["type"] == "log" for e in events(found[0].parent))


@pytest.fixture(scope="module")
def stopped_by_sigterm(tmp_path_factory, tiny_model):
    """`run` in a pipe, SIGTERM to the front end once training logged a step."""
    work = tmp_path_factory.mktemp("sigterm")
    recipe = write_recipe(work, tiny_model, train={"max_steps": 400, "save_steps": 1000})
    runs_dir = work / "runs"
    proc = start("run", str(recipe), "--plain", "--runs-dir", str(runs_dir), cwd=work)
    try:
        wait_for(lambda: _logged(runs_dir), what="the first logged step")
        run_dir = only_run(runs_dir)
        backend = state(run_dir)["pid"]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return work, run_dir, backend, proc.returncode, out


@pytest.mark.slow
def test_sigterm_to_run_stops_the_training_with_a_checkpoint_and_leaves_no_orphan(stopped_by_sigterm):
    work, run_dir, backend, rc, out = stopped_by_sigterm
    assert rc == 130, out
    assert "SIGTERM: stopping the training" in out and f"caption-wizard resume {run_dir}" in out
    st = state(run_dir)
    assert st["status"] == "stopped"
    assert st["last_checkpoint"] and (run_dir / st["last_checkpoint"] / "wizard-checkpoint.json").is_file()
    assert not _alive(backend), f"training process {backend} is still running (orphaned)"


@pytest.mark.slow
def test_two_resumes_at_the_same_instant_one_trains_the_other_exits_2(stopped_by_sigterm):
    work, run_dir, *_ = stopped_by_sigterm
    # a short finish: 2 more steps after the checkpoint
    recipe = run_dir / "recipe.yaml"
    step = state(run_dir)["step"]
    recipe.write_text(recipe.read_text(encoding="utf-8").replace("max_steps: 400", f"max_steps: {step + 2}"),
                      encoding="utf-8")
    procs = [subprocess.Popen([CLI, "resume", str(run_dir), "--plain"], cwd=work, env=train_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[0] == 2)
    assert "is already running (pid " in loser[2] and "Traceback" not in loser[2]
    assert state(run_dir)["status"] == "completed"
    starts = [e for e in events(run_dir) if e["type"] == "start"]
    assert [s["resumed"] for s in starts] == [False, True]  # one training session resumed, not two


def test_a_backend_started_on_a_locked_run_folder_writes_nothing(tmp_path):
    from wizard.rundir.folder_lock import FolderLock

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    held = FolderLock(run_dir)
    try:
        proc = subprocess.run([str(Path(CLI).parent / "python"), "-m", "wizard.train.backend", str(run_dir)],
                              cwd=ROOT, env=train_env(), capture_output=True, text=True, timeout=60)
    finally:
        held.close()
    assert proc.returncode == 2
    assert f"already running (pid {os.getpid()})" in proc.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["running.lock"]


# ----------------------------------------------------------------------------- 4. read-only targets
def test_run_into_a_read_only_runs_dir_exits_2_naming_it(tmp_path):
    with read_only(tmp_path / "ro") as ro:
        proc = run_cli("run", "recipes/demo-shapes.yaml", "--runs-dir", str(ro / "runs"), "--plain")
    assert proc.returncode == 2, proc.stderr
    assert str(ro) in proc.stderr and "Traceback" not in proc.stderr


def test_new_export_caption_out_into_a_read_only_folder_exit_2(tmp_path, demo_run):
    with read_only(tmp_path / "ro") as ro:
        new = run_cli("new", "--defaults", "--out", str(ro / "mine.yaml"))
        export = run_cli("export", str(demo_run), "--out", str(ro / "export"))
        caption = run_cli("caption", str(demo_run), str(ROOT / "README.md"), "--out", str(ro / "c.jsonl"))
    for proc in (new, export, caption):
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert str(ro) in proc.stderr and "read-only" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_eval_on_a_read_only_run_prints_the_scores_then_says_where_else_to_write(tmp_path, demo_run):
    import shutil

    def fill(folder):
        shutil.copytree(demo_run, folder / demo_run.name, ignore=shutil.ignore_patterns("checkpoints"))

    with read_only(tmp_path / "ro", fill) as ro:
        proc = run_cli("eval", str(ro / demo_run.name), "--limit", "2", "--no-base")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "CIDEr" in proc.stdout  # the table came first: nothing computed is lost
        assert "read-only" in proc.stderr and "--out" in proc.stderr and "Traceback" not in proc.stderr
        elsewhere = run_cli("eval", str(ro / demo_run.name), "--limit", "2", "--no-base",
                            "--out", str(tmp_path / "eval.json"))
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["n"] == 2


# ----------------------------------------------------------------------------- 5. full disk
@pytest.mark.slow
def test_full_disk_during_a_checkpoint_says_so_marks_the_run_failed_and_leaves_no_temp_files(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, tiny_model, train={"max_steps": 40, "save_steps": 2})
    with small_disk(tmp_path / "disk", "2m") as disk:
        proc = run("run", str(recipe), "--plain", "--runs-dir", str(disk / "runs"), cwd=tmp_path)
        run_dir = only_run(disk / "runs")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        log = proc.stdout + proc.stderr + (run_dir / "train.log").read_text()
        assert "no space left on device (" in log and f"iB free in {run_dir / 'checkpoints'})" in log
        assert "inline_container" not in proc.stdout + proc.stderr
        assert state(run_dir)["status"] == "failed"
        leftovers = [p for p in run_dir.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]
        assert leftovers == []
        assert not [p for p in (run_dir / "checkpoints").iterdir()]  # the half-written one is gone
        listing = run_cli("runs", "--runs-dir", str(disk / "runs"))
        assert "failed" in listing.stdout and "resume" in listing.stdout


def test_free_space_is_checked_before_each_checkpoint_against_the_last_one(tmp_path):
    from wizard import rundir
    from wizard.train.diskspace import DiskFull, check_before_save

    with small_disk(tmp_path / "disk", "4m") as disk:
        run_dir = disk / "run"
        last = run_dir / "checkpoints" / "checkpoint-2"
        last.mkdir(parents=True)
        (last / "adapter_model.safetensors").write_bytes(b"\0" * 1_200_000)
        rundir.mark_checkpoint_complete(last, 2)
        warnings: list[str] = []
        check_before_save(run_dir, warnings.append)  # ~2.8 MB free, 1.2 MB each: fits, but warn
        assert warnings and "disk almost full" in warnings[0]
        (disk / "filler").write_bytes(b"\0" * 2_000_000)
        with pytest.raises(DiskFull, match=r"no space left on device \([\d.]+ [KMG]?i?B free in .*checkpoints\)"):
            check_before_save(run_dir, warnings.append)


# ----------------------------------------------------------------------------- 2. SIGHUP, the mechanism
STAND_IN = r"""
import signal, subprocess, sys, time
from wizard.stopping import Terminated, on_terminate, track, wait_stopped
CHILD = "import signal, sys, time; signal.signal(signal.SIGINT, lambda *a: sys.exit(130)); print('ready', flush=True); time.sleep(60)"
with on_terminate():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, start_new_session=True)
    track(proc)
    print(proc.pid, flush=True)
    proc.stdout.readline()
    try:
        print("following", flush=True)
        time.sleep(60)
    except Terminated:
        sys.exit(wait_stopped(proc, "RUN"))
"""


def test_sighup_to_the_front_end_stops_its_own_session_child_and_exits_130():
    proc = subprocess.Popen([str(Path(CLI).parent / "python"), "-c", STAND_IN], cwd=ROOT, env=train_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    assert proc.stdout.readline().strip() == "following"
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 130, proc.stderr.read()
    assert "SIGHUP: stopping the training" in proc.stderr.read()
    assert not _alive(child)


# ----------------------------------------------------------------------------- 10. export --out/--force
def test_export_force_replaces_only_an_earlier_export(tmp_path, demo_run):
    here = run_cli("export", str(demo_run), "--out", ".", "--force", cwd=tmp_path)
    assert here.returncode == 2 and "would replace the current folder" in here.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    refused = run_cli("export", str(demo_run), "--out", str(mine), "--force")
    assert refused.returncode == 2, refused.stderr
    assert "not deleting it" in " ".join(refused.stderr.split()) and "Traceback" not in refused.stderr
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"
    out = tmp_path / "export"
    assert run_cli("export", str(demo_run), "--out", str(out)).returncode == 0
    again = run_cli("export", str(demo_run), "--out", str(out), "--force")
    assert again.returncode == 0, again.stderr
    assert (out / "caption-wizard-export.json").is_file() and (out / "adapter_config.json").is_file()


def test_out_of_memory_in_training_says_what_to_change_not_a_traceback(tmp_path):
    # A CUDA OOM (or the CPU allocator's) mid-run: the run is marked failed with a hint naming the
    # settings that save memory (train.gradient_checkpointing=auto may have turned it off).
    import torch

    from wizard import rundir
    from wizard.rundir.events import RunRecorder
    from wizard.train import backend

    run_dir = tmp_path / "r"
    run_dir.mkdir()
    error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
                                   "of 23.6 GiB of which 1.1 GiB is free.")
    assert backend._fail(RunRecorder(run_dir), error) == 1
    assert rundir.read_state(run_dir)["status"] == "failed"
    message = [e for e in events(run_dir) if e["type"] == "error"][-1]["message"]
    assert message.startswith("out of memory: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert "train.gradient_checkpointing=true" in message and "the last checkpoint is intact" in message
    cpu = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 6442450944 bytes. Error code 12 (Cannot allocate memory)")
    assert backend._fail(RunRecorder(run_dir), cpu) == 1
    assert [e for e in events(run_dir) if e["type"] == "error"][-1]["message"].startswith("out of memory: ")


def test_a_process_forked_from_the_lock_holder_does_not_keep_the_run_locked(tmp_path):
    # DataLoader workers are forked from the trainer; after a SIGKILL they live on for seconds, and
    # their inherited copy of the lock's descriptor kept `resume` answering "already running".
    import multiprocessing

    from wizard.rundir.folder_lock import AlreadyLocked, FolderLock

    lock = FolderLock(tmp_path)
    fork = multiprocessing.get_context("fork")
    started = fork.Event()
    worker = fork.Process(target=_sleep_after, args=(started, 30))
    worker.start()
    assert started.wait(10)
    try:
        lock.close()  # the holder is gone; the forked worker is still alive
        again = FolderLock(tmp_path)  # raised AlreadyLocked before
        again.close()
    except AlreadyLocked as e:
        pytest.fail(f"the forked worker kept the lock: {e}")
    finally:
        worker.kill()
        worker.join()


def _sleep_after(started, seconds: float) -> None:
    started.set()  # the worker runs Python: its fork handlers are done
    time.sleep(seconds)
