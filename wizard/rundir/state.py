"""state.json: the run's status, pid, step and last checkpoint, rewritten atomically.

    state = read_state(run_dir)                       # {} when missing or unreadable
    write_state(run_dir, status="running", pid=123)   # merged in, "updated" stamped
    effective_status(run_dir, state)                  # "interrupted" when running but its process is gone

Written by whoever owns the run at the time: the front end before the training process starts
(status running, pid null), then the training process (rank 0). A "running" state whose process
is gone reads as "interrupted": it is resumable. The front end writes "running" with pid null a
moment before the process starts: for STARTUP_GRACE_S after that write the run counts as running.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from wizard.fsutil import atomic_write_json, json_text
from wizard.rundir.layout import BACKEND_MODULE, STATE_FILE, now_iso

STATUSES = ("running", "stopped", "failed", "completed")
TERMINAL = ("completed", "failed", "stopped")
STARTUP_GRACE_S = 30  # status running + pid null this recently: the training process is about to start


def read_state(run_dir: str | os.PathLike) -> dict[str, Any]:
    """state.json as a dict; {} when it is missing or unreadable (atomic writes make that unlikely)."""
    try:
        state = json.loads((Path(run_dir) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(run_dir: str | os.PathLike, *, durable: bool = True, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into state.json (atomic rewrite) and stamp "updated".

    durable=False skips the fsync: for the step/loss updates at each logged step, where losing the
    latest one to a power cut costs nothing (status changes and checkpoints are always durable).
    """
    state = read_state(run_dir)
    state.update(changes)
    state["updated"] = now_iso()
    path = Path(run_dir) / STATE_FILE
    if durable:
        atomic_write_json(path, state)
    else:
        tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json_text(state, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:  # a full disk: no empty temp file left behind
            tmp.unlink(missing_ok=True)
            raise
    return state


def pid_alive(pid: Any, *, backend_only: bool = True) -> bool:
    """Is `pid` a live caption-wizard training process? (False for None, dead, zombie or reused pids.)

    backend_only=False: any live process (the dashboard follows whatever the caller started)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        return not backend_only or BACKEND_MODULE.encode() in (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(pid, 0)


def starting(run_dir: str | os.PathLike, state: dict[str, Any]) -> bool:
    """Running with no pid yet, written within the grace period: the process is about to start."""
    if state.get("status") != "running" or state.get("pid") is not None:
        return False
    try:
        return time.time() - (Path(run_dir) / STATE_FILE).stat().st_mtime < STARTUP_GRACE_S
    except OSError:
        return False


def is_running(run_dir: str | os.PathLike, state: dict[str, Any], *, backend_only: bool = True) -> bool:
    """state.json says running and its process is alive (or is about to start)."""
    if state.get("status") != "running":
        return False
    if state.get("pid") is None:
        return starting(run_dir, state)
    return pid_alive(state.get("pid"), backend_only=backend_only)


def effective_status(run_dir: str | os.PathLike, state: dict[str, Any]) -> str:
    """The status a user should see: "interrupted" for a running state whose process is gone."""
    status = state.get("status", "stopped")
    if status == "running" and not is_running(run_dir, state):
        return "interrupted"
    return status
