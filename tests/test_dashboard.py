"""The training dashboard: state from events, pure rendering, plain lines, following a run.

    pytest tests/test_dashboard.py                      # fast tests
    UPDATE_SNAPSHOTS=1 pytest tests/test_dashboard.py   # rewrite tests/snapshots/*.txt after a deliberate change

Snapshots are the dashboard rendered to plain text at 80x24 and 120x30 from
synthetic events with fixed times: read them (they are what a user sees).
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import CLI, ROOT, cli_env
from wizard.dashboard import DashboardState, attach, plain_line, render, summary
from wizard.rundir.events import EventReader, read_events
from wizard.dashboard.chart import sparkline
from wizard.dashboard.render import fmt_duration, pct_style, plain_summary

SNAPSHOTS = Path(__file__).parent / "snapshots"
SIZES = [(80, 24), (120, 30)]
GiB = 2**30
T0 = 1_700_000_000.0


# ---------------------------------------------------------------------------- synthetic runs
def start_event(t, *, total=300, start_step=0, devices=("cpu",), run="demo-shapes-20250101-120000"):
    return {"t": t, "type": "start", "run": run, "model": "demo/tiny-qwen2-vl-shapes", "strategy": "lora",
            "devices": list(devices), "recipe_hash": "3f2a1b9c0d1e", "total_steps": total,
            "start_step": start_step, "resumed": start_step > 0, "trainable_params": 1_234_567,
            "total_params": 25_000_000, "num_train": 960, "num_eval": 40, "batch_size": 8}


def cpu_memory(rss=1.21, peak=1.4, total=16):
    return {"kind": "cpu", "rss": int(rss * GiB), "peak_rss": int(peak * GiB), "total": int(total * GiB)}


def loss_at(step):
    return 2.3 * math.exp(-step / 60) + 0.4 + 0.08 * math.sin(step * 1.7)


def log_event(t, step, *, loss=None, memory=None, total=300):
    return {"t": t, "type": "log", "step": step, "epoch": round(step / 100, 4),
            "loss": loss_at(step) if loss is None else loss,
            "learning_rate": 2e-4 * min(1, step / 30) * (0.5 + 0.5 * math.cos(math.pi * step / total)),
            "grad_norm": 1.5 * math.exp(-step / 80) + 0.3, "samples_per_s": 16.0, "tokens_per_s": 850.0,
            "memory": memory or cpu_memory()}


def fresh_run():
    """120 of 300 steps, a log every 5 steps (2.5 s), a checkpoint and an eval every 50."""
    ev = [{"t": T0, "type": "status", "status": "running"}, start_event(T0 + 1)]
    for s in range(5, 121, 5):
        t = T0 + 10 + s * 0.5
        ev.append(log_event(t, s))
        if s % 50 == 0:
            ev.append({"t": t + 0.2, "type": "checkpoint", "step": s, "path": f"checkpoints/checkpoint-{s}"})
            ev.append({"t": t + 0.3, "type": "eval", "step": s, "eval_loss": loss_at(s) + 0.1})
    return ev, T0 + 10 + 120 * 0.5 + 1


def resumed_run():
    """Session 1: 2 s/step up to step 60, stopped (checkpoint 50). Session 2: resumed at 50, 1 step/s.

    At step 100 of 200, 100 steps are left at this session's 1 step/s: ETA 1m 40s. Counting all
    100 steps done over the whole run's 15 minutes would say about 15 minutes; counting the 50
    resumed steps as done in this session would say 50 s.
    """
    ev = [start_event(T0, total=200)]
    for s in range(5, 61, 5):
        ev.append(log_event(T0 + 2 * s, s, total=200))
        if s == 50:
            ev.append({"t": T0 + 101, "type": "checkpoint", "step": 50, "path": "checkpoints/checkpoint-50"})
    ev.append({"t": T0 + 125, "type": "status", "status": "stopped", "message": "stopped by the user"})
    t1 = T0 + 800
    ev.append(start_event(t1, total=200, start_step=50))
    for s in range(55, 101, 5):
        ev.append(log_event(t1 + 10 + (s - 50), s, total=200))
    return ev, t1 + 10 + 50


def stalled_run():
    """Logs every 2 s up to step 80, then nothing for 5 minutes."""
    ev = [start_event(T0, total=300)]
    for s in range(5, 81, 5):
        ev.append(log_event(T0 + 5 + s * 0.4, s))
    return ev, T0 + 5 + 80 * 0.4 + 300


def nan_run():
    """The loss goes NaN at step 60 (the writer stores it as null); the backend reports it."""
    ev = [start_event(T0, total=300)]
    for s in range(5, 61, 5):
        ev.append(log_event(T0 + 5 + s, s, loss=None if s < 60 else float("nan")))
    ev[-1]["loss"] = None
    return ev, T0 + 5 + 61


def two_gpus_run():
    """Two GPUs; the second one is 95% full (a warning), the first one has no NVML figures."""
    ev = [start_event(T0, total=1000, devices=("cuda:0", "cuda:1"))]
    for s in range(10, 401, 10):
        mem = {"kind": "cuda", "devices": [
            {"index": 0, "name": "NVIDIA H100 80GB HBM3", "allocated": int(31.2 * GiB),
             "reserved": int(36.0 * GiB), "peak": int(38.5 * GiB), "used": None, "total": None},
            {"index": 1, "name": "NVIDIA H100 80GB HBM3", "allocated": int(70.1 * GiB),
             "reserved": int(74.0 * GiB), "peak": int(75.3 * GiB), "used": int(76.0 * GiB),
             "total": int(80.0 * GiB)}]}
        ev.append(log_event(T0 + 30 + s * 1.5, s, memory=mem, total=1000))
    ev.append({"t": T0 + 500, "type": "warning", "message": "cuda:1 memory above 90%: lower train.batch_size"})
    return ev, T0 + 30 + 400 * 1.5 + 1


def failed_run():
    """The backend crashed at step 40: an error event with the tail of train.log."""
    ev = [start_event(T0, total=300)]
    for s in range(5, 41, 5):
        ev.append(log_event(T0 + 5 + s, s))
    tail = "\n".join(["Traceback (most recent call last):", '  File "wizard/train/backend.py", line 88',
                      "    trainer.train()", "RuntimeError: DataLoader worker (pid 4242) is killed by signal"])
    ev.append({"t": T0 + 50, "type": "error", "message": "RuntimeError: DataLoader worker is killed",
               "log_tail": tail})
    ev.append({"t": T0 + 50.5, "type": "status", "status": "failed"})
    return ev, T0 + 60


def completed_run():
    ev, _ = fresh_run()
    ev = [e for e in ev if e.get("step", 0) <= 120]
    for e in ev:
        if e["type"] == "start":
            e["total_steps"] = 120
    t = ev[-1]["t"] + 2
    ev += [{"t": t, "type": "end", "step": 120, "adapter": "adapter", "final_loss": loss_at(120),
            "best_loss": min(loss_at(s) for s in range(5, 121, 5)), "seconds": t - T0},
           {"t": t + 0.1, "type": "status", "status": "completed"}]
    return ev, t + 5


SCENARIOS = {"fresh": fresh_run, "resumed": resumed_run, "stalled": stalled_run, "nan": nan_run,
             "two_gpus": two_gpus_run, "failed": failed_run, "completed": completed_run}


def build(name: str) -> tuple[DashboardState, float]:
    events, now = SCENARIOS[name]()
    st = DashboardState(run_dir="runs/demo-shapes-20250101-120000")
    for e in events:
        st.apply(e)
    return st, now


def to_text(renderable, width: int) -> str:
    console = Console(record=True, width=width, force_terminal=False, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if os.environ.get("UPDATE_SNAPSHOTS") != "1":
            pytest.fail(f"new snapshot written: {path}; read it, then run again")
    assert text == path.read_text(encoding="utf-8"), \
        f"{name} differs from {path}; UPDATE_SNAPSHOTS=1 rewrites it after a deliberate change"


# ---------------------------------------------------------------------------- snapshots
@pytest.mark.parametrize("width,height", SIZES)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_snapshot(scenario, width, height):
    st, now = build(scenario)
    text = to_text(render(st, width=width, height=height, now=now), width)
    lines = text.splitlines()
    assert len(lines) <= height, f"{len(lines)} rows do not fit a {width}x{height} terminal"
    assert all(len(line) <= width for line in lines)
    assert "\x1b" not in text
    check_snapshot(f"{scenario}_{width}x{height}", text)


def test_fresh_run_shows_what_a_user_looks_for():
    st, now = build("fresh")
    text = to_text(render(st, width=80, height=24, now=now), 80)
    for expected in ("demo-shapes-20250101-120000", "demo/tiny-qwen2-vl-shapes", "lora", "cpu",
                     "recipe 3f2a1b9c0d1e", "running", "120/300", "epoch 1.20", "16.0 samples/s",
                     "RSS 1.2 GiB", "peak 1.4 GiB", "step", "┤", "◆", "checkpoint-100 saved"):
        assert expected in text, expected
    # 2 steps/s over this session's logs; 180 steps left, 1 s after the last log
    assert "ETA 1m 29s" in text


def test_resumed_eta_counts_only_this_sessions_steps():
    st, now = build("resumed")
    assert st.steps_per_s() == pytest.approx(1.0)
    assert st.eta(now) == pytest.approx(100.0)
    text = to_text(render(st, width=80, height=24, now=now), 80)
    assert "ETA 1m 40s" in text and "resumed at step 50" in text
    assert st.steps[0] == 5, "the chart keeps the loss from before the resume"
    assert st.steps.count(55) == 1 and st.steps.count(60) == 1, "steps redone after the resume replace the old ones"


def test_stall_shows_stalled_not_an_absurd_eta():
    st, now = build("stalled")
    assert st.stalled_for(now) == pytest.approx(300)
    text = to_text(render(st, width=80, height=24, now=now), 80)
    assert "STALLED: no step for 5m 00s" in text
    assert "ETA" not in text
    assert st.stalled_for(now - 295) is None, "a few seconds without a step is not a stall"


def test_nan_loss_is_loud():
    st, now = build("nan")
    assert st.nan_step == 60
    text = to_text(render(st, width=80, height=24, now=now), 80)
    assert "LOSS IS NaN (not a number) AT STEP 60" in text
    assert "✖" in text and "loss NaN" in text
    events, _ = nan_run()
    line = plain_line(events[-1], st)
    assert "loss NaN" in line and "NOT A NUMBER" in line


def test_two_gpus_each_get_a_row_and_a_full_one_warns():
    st, now = build("two_gpus")
    text = to_text(render(st, width=120, height=30, now=now), 120)
    rows = [line[:80] for line in text.splitlines() if "cuda:" in line and "alloc" in line]   # left column
    assert len(rows) == 2
    assert "95% ⚠" in rows[1] and "⚠" not in rows[0]
    assert "used 76.0 GiB of 80.0 GiB" in rows[1] or "used 76.0/80.0 GiB" in rows[1]
    assert pct_style(95) == "bold red" and pct_style(50) == "green"
    assert st.peak_memory == {"cuda:0": int(38.5 * GiB), "cuda:1": int(75.3 * GiB)}


def test_failed_run_shows_the_error_and_log_tail():
    st, now = build("failed")
    text = to_text(render(st, width=80, height=24, now=now), 80)
    assert "run failed" in text and "DataLoader worker is killed" in text
    assert "RuntimeError: DataLoader worker (pid 4242)" in text


def test_summary_says_where_the_adapter_is():
    st, _ = build("completed")
    text = to_text(summary(st, loss_png="runs/demo-shapes-20250101-120000/loss.png"), 100)
    assert "completed" in text
    assert "final loss" in text and f"{loss_at(120):.4f}" in text
    assert "best loss" in text and "peak memory" in text and "1.4 GiB (cpu)" in text
    assert "runs/demo-shapes-20250101-120000/adapter" in text
    assert "runs/demo-shapes-20250101-120000/loss.png" in text
    plain = "\n".join(plain_summary(st))
    assert "runs/demo-shapes-20250101-120000/adapter" in plain and "\x1b" not in plain


def test_renders_fit_small_and_large_terminals():
    for name in SCENARIOS:
        st, now = build(name)
        for width, height in ((60, 20), (80, 24), (100, 40), (200, 60)):
            lines = to_text(render(st, width=width, height=height, now=now), width).splitlines()
            assert len(lines) <= height, (name, width, height, len(lines))


def test_chart_uses_the_room_it_gets():
    st, now = build("fresh")
    small = to_text(render(st, width=80, height=24, now=now), 80)
    big = to_text(render(st, width=160, height=50, now=now), 160)
    assert big.count("│") > small.count("│")   # more chart rows
    assert max(len(x) for x in big.splitlines()) > 150


def test_empty_state_renders():
    text = to_text(render(DashboardState(), width=80, height=24, now=T0), 80)
    assert "waiting for the first logged step" in text


# ---------------------------------------------------------------------------- state and events
def test_read_events_tolerates_torn_lines_and_unknown_types(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"t": 1, "type": "start", "total_steps": 10}\nnot json\n{"t": 2, "type": "mystery"}\n'
                    '{"t": 3, "type": "log", "st', encoding="utf-8")
    reader = EventReader(path)
    events = reader.poll()
    assert [e["type"] for e in events] == ["start", "mystery"]
    with open(path, "a", encoding="utf-8") as f:
        f.write('ep": 1, "loss": 0.5}\n')
    more = reader.poll()
    assert more == [{"t": 3, "type": "log", "step": 1, "loss": 0.5}] and reader.offset == path.stat().st_size
    assert EventReader(tmp_path / "missing.jsonl").poll() == []
    # a writer killed mid-line, then a resumed one appending: the new event is still found
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"t": 4, "type": "lo' + '{"t": 5, "type": "start", "start_step": 1}\n')
    assert [e["t"] for e in reader.poll()] == [5]
    st = DashboardState()
    for e in read_events(path):
        st.apply(e)
    assert st.step == 1 and st.resumed


def test_smoothing_is_debiased_ema():
    st = DashboardState()
    for i, y in enumerate([2.0, 2.0, 2.0]):
        st.apply({"t": i, "type": "log", "step": i + 1, "loss": y})
    assert st.smoothed == pytest.approx([2.0, 2.0, 2.0])   # debiased: no pull towards 0 at the start
    st.apply({"t": 4, "type": "log", "step": 4, "loss": 1.0})
    assert 1.0 < st.smoothed[-1] < 2.0


def test_helpers():
    assert fmt_duration(59) == "59s" and fmt_duration(100) == "1m 40s" and fmt_duration(7300) == "2h 01m"
    assert fmt_duration(None) == "—" and fmt_duration(3 * 86400 + 7200) == "3d 2h"
    assert sparkline([1, 2, 3, 4], 4) == "▁▃▆█" and sparkline([1] * 50, 10) == "▄" * 10


def test_loss_png_with_one_point_and_a_nan(tmp_path):
    from wizard.plot import save_loss_plot
    from wizard.rundir.curve import LossCurve

    curve = LossCurve.from_events([{"type": "log", "step": 1, "loss": 2.5}, {"type": "log", "step": 2, "loss": None},
                                   {"type": "eval", "step": 2, "eval_loss": 2.7}])
    path = save_loss_plot(tmp_path / "loss.png", curve, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"


# ---------------------------------------------------------------------------- plain lines
def test_plain_lines_one_per_logged_step_without_escape_codes():
    events, _ = fresh_run()
    st = DashboardState()
    lines = []
    for e in events:
        st.apply(e)
        line = plain_line(e, st)
        if line is not None:
            lines.append(line)
    steps = [line for line in lines if line.startswith("step ")]
    assert len(steps) == sum(e["type"] == "log" for e in events) == 24
    assert steps[0].startswith("step 5/300") and steps[-1].startswith("step 120/300")
    last = steps[-1]
    for part in ("loss 0.", "lr 1.", "16.0 samples/s", "mem 1.2 GiB", "ETA 1m 30s"):
        assert part in last, part
    assert any(line.startswith("checkpoint saved: checkpoints/checkpoint-50") for line in lines)
    assert all("\x1b" not in line and "\r" not in line for line in lines)


# ---------------------------------------------------------------------------- following a real run dir
def write_state(run_dir: Path, **fields):
    state = {"name": run_dir.name, "status": "running", "pid": os.getpid(), "step": 0, "total_steps": 20,
             "last_checkpoint": None, "started": "2025-01-01T12:00:00+00:00", "recipe_hash": "3f2a1b9c0d1e",
             "model": "demo/tiny-qwen2-vl-shapes", "strategy": "lora", "last_loss": None}
    state.update(fields)
    tmp = run_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, run_dir / "state.json")
    if not (run_dir / "recipe.yaml").exists():  # a run folder has both (wizard.rundir.layout.is_run_dir)
        (run_dir / "recipe.yaml").write_text((ROOT / "recipes" / "demo-shapes.yaml").read_text())


def append(run_dir: Path, event: dict):
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")


def test_watch_plain_follows_a_growing_run(tmp_path):
    run_dir = tmp_path / "demo-shapes-20250101-120000"
    run_dir.mkdir()
    write_state(run_dir)
    append(run_dir, start_event(time.time(), total=20))

    def writer():
        for s in range(1, 21):
            time.sleep(0.05)
            append(run_dir, log_event(time.time(), s, total=20))
            if s % 10 == 0:
                append(run_dir, {"t": time.time(), "type": "checkpoint", "step": s,
                                 "path": f"checkpoints/checkpoint-{s}"})
        append(run_dir, {"t": time.time(), "type": "end", "step": 20, "adapter": "adapter",
                         "final_loss": loss_at(20), "best_loss": 0.5, "seconds": 2.0})
        append(run_dir, {"t": time.time(), "type": "status", "status": "completed"})
        write_state(run_dir, status="completed", step=20)

    proc = subprocess.Popen([CLI, "watch", str(run_dir), "--plain"], env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    first = proc.stdout.readline()        # watch is following: now the run makes progress
    assert "started: 20 steps" in first
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        rest, err = proc.communicate(timeout=60)
    finally:
        thread.join()
    assert proc.returncode == 0, err
    out = first + rest
    assert "\x1b" not in out
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == [f"{s}/20" for s in range(1, 21)]
    assert "checkpoint saved: checkpoints/checkpoint-10 (step 10)" in out
    assert "completed" in out and f"{run_dir}/adapter" in out
    assert (run_dir / "loss.png").stat().st_size > 1000


def _finished_run(folder, events, status):
    """A run directory whose backend has ended with `status`."""
    folder.mkdir()
    for e in events:
        append(folder, e)
    write_state(folder, status=status, pid=None)
    return folder


def test_watch_finished_failed_and_missing(tmp_path, cli):
    run_dir = _finished_run(tmp_path / "r", failed_run()[0], "failed")
    res = cli("watch", str(run_dir))
    assert res.returncode == 1
    assert "DataLoader worker is killed" in res.stdout and "\x1b" not in res.stdout

    done = _finished_run(tmp_path / "done", completed_run()[0], "completed")
    res = cli("watch", str(done))
    assert res.returncode == 0 and "step 120/120" in res.stdout and f"{done}/adapter" in res.stdout

    res = cli("watch", str(tmp_path / "nope"))
    assert res.returncode == 2 and str(tmp_path / "nope") in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("watch", str(empty))
    assert res.returncode == 2 and "not a run directory" in res.stderr


def test_watch_reports_a_vanished_backend(tmp_path, cli):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    for e in stalled_run()[0]:
        append(run_dir, e)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_dir / "train.log").write_text("step 80\nKilled\n")
    write_state(run_dir, pid=dead.pid)
    res = cli("watch", str(run_dir), "--plain")
    assert res.returncode == 1
    assert "is gone but the run never finished" in res.stdout and "Killed" in res.stdout


# A stand-in for the training backend: writes events like wizard.train does, stops on SIGINT
# (checkpoint, status stopped, exit 130). Lets attach() be tested without training a model.
FAKE_BACKEND = r'''
import json, os, signal, sys, time
run_dir, steps, delay, rc = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
stop = []
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
def emit(**e):
    e["t"] = time.time()
    with open(os.path.join(run_dir, "events.jsonl"), "a") as f:
        f.write(json.dumps(e) + "\n")
def state(status, step):
    tmp = os.path.join(run_dir, "state.tmp")
    with open(tmp, "w") as f:
        json.dump({"name": "fake", "status": status, "pid": os.getpid(), "step": step, "total_steps": steps}, f)
    os.replace(tmp, os.path.join(run_dir, "state.json"))
state("running", 0)
emit(type="status", status="running")
emit(type="start", run="fake", model="demo/tiny-qwen2-vl-shapes", strategy="lora", devices=["cpu"],
     recipe_hash="abc", total_steps=steps, start_step=0, resumed=False, batch_size=4)
for s in range(1, steps + 1):
    time.sleep(delay)
    emit(type="log", step=s, epoch=s / steps, loss=1.0 / s, learning_rate=1e-4, grad_norm=1.0,
         samples_per_s=10.0, memory={"kind": "cpu", "rss": 300 << 20, "peak_rss": 310 << 20, "total": 8 << 30})
    if stop:
        emit(type="checkpoint", step=s, path=f"checkpoints/checkpoint-{s}")
        emit(type="status", status="stopped")
        state("stopped", s)
        sys.exit(130)
if rc:
    with open(os.path.join(run_dir, "train.log"), "w") as f:
        f.write("boom: the fake backend failed\n")
    emit(type="status", status="failed")
    state("failed", steps)
    sys.exit(rc)
emit(type="end", step=steps, adapter="adapter", final_loss=1.0 / steps, best_loss=1.0 / steps, seconds=1.0)
emit(type="status", status="completed")
state("completed", steps)
'''


def fake_script(tmp_path) -> Path:
    script = tmp_path / "fake_backend.py"
    script.write_text(FAKE_BACKEND)
    return script


def fake_run_dir(tmp_path) -> Path:
    """A run folder as the runner makes it: recipe.yaml (state.json comes from the fake backend)."""
    run_dir = tmp_path / "fake-run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "recipe.yaml").write_text((ROOT / "recipes" / "demo-shapes.yaml").read_text())
    return run_dir


def start_fake(tmp_path, steps=10, delay=0.02, rc=0):
    run_dir = fake_run_dir(tmp_path)
    script = fake_script(tmp_path)
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir), str(steps), str(delay), str(rc)],
                            start_new_session=True)
    return run_dir, proc


@pytest.mark.parametrize("rc,expected", [(0, 0), (3, 1)])
def test_attach_with_proc_returns_the_runs_exit_status(tmp_path, rc, expected):
    run_dir, proc = start_fake(tmp_path, rc=rc)
    out = io.StringIO()
    code = attach(run_dir, plain=True, proc=proc, console=Console(file=out, width=100))
    assert code == expected
    text = out.getvalue()
    assert sum(line.startswith("step ") for line in text.splitlines()) == 10
    if expected == 1:
        assert "boom: the fake backend failed" in text


def test_ctrl_c_in_plain_mode_stops_training(tmp_path):
    run_dir, proc = start_fake(tmp_path, steps=400, delay=0.05)
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    out = io.StringIO()
    code = attach(run_dir, plain=True, proc=proc, console=Console(file=out, width=100))
    assert code == 130 and proc.returncode == 130
    text = out.getvalue()
    assert "stopping: the training process" in text and "status: stopped" in text
    assert "caption-wizard resume" in text


LIVE_DRIVER = r'''
import subprocess, sys
from wizard.dashboard import attach
run_dir, script = sys.argv[1], sys.argv[2]
proc = subprocess.Popen([sys.executable, script, run_dir, "60", "0.1", "0"], start_new_session=True)
sys.exit(attach(run_dir, proc=proc))
'''


def spawn_pty(args, **kw):
    pexpect = pytest.importorskip("pexpect")
    env = cli_env(COLUMNS="100", LINES="30", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    kw.setdefault("timeout", 30)
    # Ctrl-C makes the terminal drop queued output, which can cut a UTF-8 character: replace it
    return pexpect.spawn(args[0], args[1:], env=env, dimensions=(30, 100), encoding="utf-8",
                         codec_errors="replace", cwd=str(ROOT), **kw)


def test_live_ctrl_c_detach_then_watch_shows_completed(tmp_path):
    """In a pseudo-terminal: live dashboard, Ctrl-C, choose Detach; training finishes; watch says completed."""
    run_dir = fake_run_dir(tmp_path)
    driver = tmp_path / "driver.py"
    driver.write_text(LIVE_DRIVER)
    child = spawn_pty([sys.executable, str(driver), str(run_dir), str(fake_script(tmp_path))])
    child.expect("memory")          # the live screen is up
    child.expect("steps")
    child.sendcontrol("c")
    child.expect("What now")
    child.send("\x1b[A")            # arrow up from "Keep watching" to "Detach"
    child.send("\r")
    child.expect("detached")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0
    deadline = time.time() + 30
    while json.loads((run_dir / "state.json").read_text())["status"] == "running" and time.time() < deadline:
        time.sleep(0.2)
    res = subprocess.run([CLI, "watch", str(run_dir)], env=cli_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "completed" in res.stdout and "60/60" in res.stdout


def pexpect_timeout():
    import pexpect

    return pexpect.TIMEOUT


def pexpect_eof():
    import pexpect

    return pexpect.EOF


# ---------------------------------------------------------------------------- the real demo, in a pty
ANSI = r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]"


def screen_text(raw: str) -> str:
    """What was drawn, without escape codes (every redraw of the Live display is in there)."""
    import re

    return re.sub(ANSI, "", raw).replace("\r", "")


def demo_run(tmp_path, *overrides: str):
    return spawn_pty([CLI, "run", "recipes/demo-shapes.yaml", *overrides, "--runs-dir", str(tmp_path / "runs")],
                     timeout=300)


def the_run_dir(tmp_path) -> Path:
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    return run_dir


@pytest.mark.slow
def test_demo_run_shows_live_chart_memory_and_reaches_the_last_step(tmp_path):
    import re

    import pyte

    steps = 4
    child = demo_run(tmp_path, f"train.max_steps={steps}", "train.logging_steps=1", "train.save_steps=2")
    screen = pyte.Screen(100, 30)
    stream, raw, first_frame = pyte.Stream(screen), "", None
    while True:   # what the user sees, frame by frame, until the run ends
        try:
            chunk = child.read_nonblocking(100000, timeout=0.1)
        except pexpect_timeout():
            continue
        except pexpect_eof():
            break
        raw += chunk
        stream.feed(chunk)
        shown = "\n".join(screen.display)
        if first_frame is None and " steps " in shown:
            first_frame = (time.monotonic(), shown)
    child.close()
    text = screen_text(raw)
    # the dashboard's first frame already says what is happening (not a frozen "starting … ETA —")
    assert first_frame is not None and re.search(r"starting the training process|loading", first_frame[1]), \
        first_frame
    # each start-up stage is announced (a stage of a few milliseconds may fall between two frames,
    # so the screen is asked for the first, long one and the events file for all of them)
    assert "loading PyTorch and transformers" in text
    from wizard.rundir.events import read_events as all_events

    said = [e.get("message", "") for e in all_events(the_run_dir(tmp_path) / "events.jsonl")
            if e.get("type") == "status"]
    for stage in ("loading PyTorch and transformers", "loading the model", "building the dataset"):
        assert any(stage in m for m in said), (stage, said)
    assert re.search(r"time +\d+s \(training \d+s\)", text), "the wall time waited, and the training part"
    assert "caption-wizard export" in text, "the next steps mention export"
    assert child.exitstatus == 0, text[-3000:]
    assert re.search(r"\d\.\d+ ┤", text) and "└──" in text and "step" in text, "the loss chart"
    sizes = [float(x) for x in re.findall(r"RSS (\d+(?:\.\d+)?) (?:MiB|GiB)", text)]
    assert sizes and max(sizes) > 0, "the memory panel with a non-zero figure"
    assert f"{steps}/{steps} steps" in text, "progress reaching the last step"
    run_dir = the_run_dir(tmp_path)
    assert (run_dir / "loss.png").exists()
    assert "adapter" in text and (run_dir / "adapter").is_dir(), "the summary says where the adapter is"


@pytest.mark.slow
def test_demo_ctrl_c_detach_training_completes_and_watch_shows_it(tmp_path):
    import pexpect

    child = demo_run(tmp_path, "train.max_steps=10", "train.logging_steps=1", "train.save_steps=5")
    child.expect(r"[1-9]\d*/10 steps", timeout=240)     # the dashboard is up and training has begun
    child.sendcontrol("c")
    child.expect("What now")
    child.send("\x1b[A")                                # from "Keep watching" up to "Detach"
    child.send("\r")
    child.expect("detached")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    run_dir = the_run_dir(tmp_path)
    deadline = time.time() + 240
    while json.loads((run_dir / "state.json").read_text()).get("status") == "running":
        assert time.time() < deadline, "training did not finish after detaching"
        time.sleep(0.5)
    assert json.loads((run_dir / "state.json").read_text())["status"] == "completed"
    res = subprocess.run([CLI, "watch", str(run_dir)], env=cli_env(), capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "completed" in res.stdout and "10/10" in res.stdout


# ---------------------------------------------------------------------------- what a newcomer sees
def test_launch_shows_a_stage_at_once_and_elapsed_counts_from_the_command():
    st = DashboardState(run_dir="runs/x")
    st.apply({"type": "launch", "t": T0, "resume": False})
    text = to_text(render(st, width=80, height=24, now=T0 + 0.2), 80)
    assert "starting the training process" in text and "○ starting" in text
    st.apply({"t": T0 + 1, "type": "status", "status": "running", "message": "loading PyTorch and transformers"})
    st.apply({"t": T0 + 9, "type": "data", "train_images": 461, "eval_images": 51})
    st.apply({"t": T0 + 9, "type": "status", "status": "running", "message": "loading the model demo"})
    text = to_text(render(st, width=80, height=24, now=T0 + 10), 80)
    assert "loading the model demo" in text
    assert "○ starting" in text.splitlines()[0] and "● running" not in text.splitlines()[0]
    assert "elapsed 10s" in text  # from the command's start, not from the backend's first event
    st.apply({**start_event(T0 + 16), "num_train": 922, "num_eval": 102})
    text = to_text(render(st, width=120, height=30, now=T0 + 17), 120)
    assert "461/51 train/eval images (922/102 captions)" in text
    for s_ in (2, 4):
        st.apply(log_event(T0 + 16 + s_, s_))
    st.apply({"t": T0 + 62, "type": "end", "step": 4, "seconds": 38.0})
    st.apply({"t": T0 + 62, "type": "status", "status": "completed"})
    rows = dict(render_summary_rows(st))
    assert rows["time"] == "1m 02s (training 38s)"  # what the user waited, and the training part


def render_summary_rows(st):
    from wizard.dashboard.render import summary_rows

    return summary_rows(st)


def test_a_resume_says_resuming_from_its_checkpoint_never_stopped():
    events, _ = resumed_run()
    st = DashboardState(run_dir="runs/x")
    for e in events[: events.index(next(e for e in events if e.get("status") == "stopped")) + 1]:
        st.apply(e)
    assert "■ stopped" in to_text(render(st, width=80, height=24, now=T0 + 130), 80)
    st.apply({"type": "launch", "t": T0 + 700, "resume": True})  # `caption-wizard resume` started it
    text = to_text(render(st, width=80, height=24, now=T0 + 701), 80)
    assert "resuming from checkpoint-50" in text and "■ stopped" not in text
    # `watch` (no launch event): the backend's own first status is enough
    st2 = DashboardState(run_dir="runs/x")
    for e in events[: events.index(next(e for e in events if e.get("status") == "stopped")) + 1]:
        st2.apply(e)
    st2.apply({"t": T0 + 700, "type": "status", "status": "running",
               "message": "resuming: loading PyTorch and transformers"})
    text = to_text(render(st2, width=80, height=24, now=T0 + 701), 80)
    assert "■ stopped" not in text and "resuming: loading" in text


def test_long_run_names_are_never_cut_at_80_columns():
    name = "qwen2.5-vl-3b-coco-cn-lora-with-a-long-name-20261128-043607"
    st = DashboardState(run_dir=f"runs/{name}")
    st.apply(start_event(T0, run=name))
    st.apply(log_event(T0 + 5, 5))
    text = to_text(render(st, width=80, height=24, now=T0 + 6), 80)
    assert name in text and "…" not in text.splitlines()[0]
    st.apply({"t": T0 + 7, "type": "end", "step": 5})
    st.apply({"t": T0 + 7, "type": "status", "status": "completed"})
    panel = to_text(summary(st), 80)
    assert all(f"caption-wizard {c}" in panel for c in ("caption", "eval", "export"))
    unfolded = "".join(line.strip("│ ") for line in panel.splitlines())  # folded lines joined again
    assert unfolded.count(name) >= 3 and "…" not in panel  # each command names the whole run folder


def test_event_lines_are_cut_between_words_and_metrics_print_plainly():
    from wizard.dashboard.render import cut_words

    assert cut_words("stopping at step 164, saving a checkpoint", 20) == "stopping at step…"
    st = DashboardState(run_dir="runs/x")
    st.apply(start_event(T0))
    st.apply({"t": T0 + 1, "type": "status", "status": "running",
              "message": "stopping at step 164 and saving checkpoint-164 before the end"})
    st.apply({"t": T0 + 2, "type": "eval", "step": 0, "which": "base",
              "metrics": {"CIDEr": 3.18e-18, "BLEU-4": 0.0}})
    text = to_text(render(st, width=80, height=24, now=T0 + 3), 80)
    assert "step 16…" not in text and "3.18e-18" not in text and "CIDEr 0.000" in text


def test_loss_axis_goes_logarithmic_when_the_loss_spans_more_than_10x():
    from wizard.dashboard.chart import LossChart

    steps = list(range(1, 101))
    losses = [20 * 0.95 ** s + 0.05 for s in steps]  # 19 -> 0.17: most of the run would be one flat line
    lines = [t.plain for t in LossChart(steps, losses, losses, rows=12).lines(70)]
    labels = {i: float(x.split("┤")[0]) for i, x in enumerate(lines) if "┤" in x}
    assert labels[0] > 10 and labels[11] < 0.3
    per_row = [math.log10(labels[a] / labels[b]) / (b - a) for a, b in zip(labels, list(labels)[1:])]
    assert max(per_row) - min(per_row) < 0.01  # log axis: every row is the same factor
    # the second half of the run (losses 0.6 -> 0.17) spreads over several rows, not one flat line
    rows_after_40 = {i for i, x in enumerate(lines[:12]) if x[6:][len(x[6:]) * 2 // 5:].strip(" │┤")}
    assert len(rows_after_40) >= 4
    flat = [t.plain for t in LossChart(steps, [1 + 0.01 * s for s in steps], [1.0] * 100, rows=12).lines(70)]
    flat_labels = {i: float(x.split("┤")[0]) for i, x in enumerate(flat) if "┤" in x}
    steps_per_row = [(flat_labels[a] - flat_labels[b]) / (b - a) for a, b in zip(flat_labels, list(flat_labels)[1:])]
    assert max(steps_per_row) - min(steps_per_row) < 0.005  # under 10x: a linear axis, as before


def test_samples_per_second_is_smoothed_over_a_window():
    st = DashboardState(run_dir="runs/x")
    st.apply(start_event(T0))
    for i, rate in enumerate([100.0, 10.0, 100.0, 10.0]):
        st.apply({**log_event(T0 + i + 1, i + 1), "samples_per_s": rate})
    assert st.session_samples_per_s() == pytest.approx(55.0)


def test_building_the_dataset_reports_images_read_k_of_n():
    from wizard.train.stages import ImageProgress

    said = []

    class Recorder:
        def status(self, status, message=None):
            said.append(message)

    loader = ImageProgress(Recorder(), 3, loader=lambda ex: f"image {ex}")
    assert [loader(i) for i in range(3)] == ["image 0", "image 1", "image 2"]
    assert said[0] == "building the dataset: reading images (1/3)" and said[-1].endswith("(3/3)")
    loader.finish()
    loader(3)  # per-batch loading during training says nothing
    assert said[-1].endswith("(3/3)") and len(said) <= 3
    said.clear()
    many = ImageProgress(Recorder(), 1000, loader=lambda ex: ex)
    many.last = -1e9
    for i in range(1000):
        many(i)
        many.last = -1e9  # as if every image took long: still at most every 5%, plus the last
    assert 20 <= len(said) <= 21 and said[-1].endswith("(1000/1000)")
