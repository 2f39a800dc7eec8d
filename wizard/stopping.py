"""SIGTERM and SIGHUP to the front end (`run`, `resume`): stop the training, never orphan it.

    with on_terminate():            # in cmd_run / cmd_resume
        proc = launch_backend(...)  # track(proc) is called there
        follow(...)                 # catches Terminated, waits for the stop, returns 130

`timeout`, a job scheduler or a closed terminal sends SIGTERM / SIGHUP to the front end. The
training runs in its own session (so the terminal's Ctrl-C stays with the dashboard), which
means nothing else would tell it. So each signal does what Ctrl-C -> Stop does: SIGINT to the
training process (it finishes the step, saves a checkpoint, writes status stopped, exits 130),
and the front end waits for that and exits with its status. Before the training starts, the
signal is an interrupt like Ctrl-C (exit 130). Only the dashboard's explicit Detach leaves a
training running without us.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)

_child = None  # the training process's Popen, once started
_stopping: str | None = None  # the name of the signal that asked us to stop


class Terminated(BaseException):
    """Raised in the front end by SIGTERM/SIGHUP once the training was asked to stop.

    Not a KeyboardInterrupt: the dashboard treats those as Ctrl-C and would ask what to do."""


def track(proc) -> None:
    global _child
    _child = proc


def _child_pid() -> int | None:
    if _child is None or _child.poll() is not None:
        return None
    return _child.pid


def _handler(signum, frame) -> None:
    global _stopping
    name = signal.Signals(signum).name
    if _stopping is not None:  # already stopping: wait for it
        return
    _stopping = name
    pid = _child_pid()
    if pid is None:
        raise KeyboardInterrupt(name)  # nothing started yet: an interrupt like Ctrl-C (exit 130)
    try:
        os.kill(pid, signal.SIGINT)  # what Ctrl-C -> Stop sends: checkpoint, status stopped, exit 130
    except ProcessLookupError:
        pass
    raise Terminated(name)


@contextmanager
def on_terminate():
    """SIGTERM/SIGHUP stop the training (see the module doc) while this block runs."""
    global _child, _stopping
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _handler) for s in SIGNALS}
    _child, _stopping = None, None
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _child, _stopping = None, None


def wait_stopped(proc, run_dir) -> int:
    """After Terminated: say so (if anyone still listens), wait for the checkpoint and the exit."""
    _say(f"{_stopping or 'signal'}: stopping the training (pid {proc.pid}): it saves a checkpoint, then stops; "
         f"resume with: caption-wizard resume {run_dir}")
    rc = proc.wait()
    return rc if rc in (0, 1, 2, 130) else 130 if rc in (-signal.SIGINT, -signal.SIGTERM) else 1


def _say(line: str) -> None:
    try:  # after SIGHUP the terminal may be gone: the message is a courtesy, the stop is not
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
