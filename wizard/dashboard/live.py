"""Follow a run directory until the run ends: Rich Live on a terminal, plain lines otherwise.

The backend process writes events.jsonl; this only reads it (4 times a second)
and draws. Ctrl-C here never reaches training by itself: the runner starts the
backend in its own session (`start_new_session=True`), and the menu decides:
stop (SIGINT to the backend, which saves a checkpoint and exits 130), detach
(return at once; training goes on) or keep watching.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from wizard.dashboard.render import plain_line, plain_summary, render, summary
from wizard.dashboard.state import DashboardState, num
from wizard.rundir.events import EventReader
from wizard.rundir.layout import EVENTS_FILE, LOSS_PLOT, log_tail
from wizard.rundir.state import TERMINAL, is_running, read_state

POLL_S = 0.25       # how often events.jsonl is read
REDRAW_S = 1.0      # redraw at least this often (the clocks move) even without new events
MIN_REDRAW_S = 0.5  # and at most this often however fast events come (a frame costs ~10 ms of CPU)
EXIT_CODES = {"completed": 0, "failed": 1, "stopped": 130}
STOP, DETACH, KEEP = "stop", "detach", "keep"


def command_start() -> float:
    """When this process started (Linux: /proc), so elapsed time counts what the user waited."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat", "rb") as f:
            start_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        started = boot + start_ticks / ticks
        return started if 0 <= time.time() - started < 86400 else time.time()
    except (OSError, ValueError, StopIteration, IndexError):
        return time.time()


def backend_running(run_dir: Path, st: dict) -> bool:
    """state.json says running and its process is alive (or is about to start). Any process: the
    dashboard follows whatever the caller started (tests follow stand-in backends too)."""
    return is_running(run_dir, st, backend_only=False)


def _status_from_rc(rc: int) -> str:
    if rc == 0:
        return "completed"
    if rc in (130, -signal.SIGINT):
        return "stopped"
    return "failed"


class _Follower:
    """Reads a run directory incrementally into a DashboardState and knows when the run is over."""

    def __init__(self, run_dir: Path, proc=None):
        self.run_dir, self.proc = run_dir, proc
        self.state = DashboardState(run_dir=str(run_dir))
        self.reader = EventReader(run_dir / EVENTS_FILE)
        self.rc: int | None = None
        self.launched = proc is None   # with proc: the "launch" event is added to the first poll
        self.launch_t = time.time()

    def poll(self) -> list[dict]:
        events = self.reader.poll()
        if not self.launched:   # this command started the backend: say so at once, with its own clock
            self.launched = True
            before = [ev for ev in events if (num(ev.get("t")) or 0) < self.launch_t]
            after = events[len(before):]
            resume = any(ev.get("type") == "start" for ev in before)
            events = before + [{"type": "launch", "t": command_start(), "resume": resume}] + after
        return events

    def backend_pid(self) -> int | None:
        pid = read_state(self.run_dir).get("pid")
        if isinstance(pid, int) and pid > 0:
            return pid
        return self.proc.pid if self.proc is not None else None

    def ended(self) -> str | None:
        """The final status once the run is over (the caller then reads the last events), else None."""
        if self.proc is not None:     # our child: its exit code decides
            self.rc = self.proc.poll()
            return None if self.rc is None else _status_from_rc(self.rc)
        if self.state.status in TERMINAL:
            return self.state.status
        st = read_state(self.run_dir)
        if st.get("status") in TERMINAL:
            return st["status"]
        if st and not backend_running(self.run_dir, st):
            return "gone"
        return None

    def conclude(self, how: str) -> list[dict]:
        """Make the state say how the run ended, where events did not (a crash, a kill, an exit
        code). Returns the events it applied, so plain output can print them."""
        st, now, added = self.state, time.time(), []
        if how == "gone" and st.status not in TERMINAL:
            pid = read_state(self.run_dir).get("pid")
            added.append({"type": "status", "t": now, "status": "failed",
                          "message": f"the training process (pid {pid}) is gone but the run never finished: "
                                     f"it was killed or crashed"})
        elif how in TERMINAL and st.status != how:   # the exit code disagrees with what events said
            msg = f"the training process exited with status {self.rc}" if how == "failed" else None
            added.append({"type": "status", "t": now, "status": how, "message": msg})
        for ev in added:
            st.apply(ev)
        if st.status == "failed" and not st.log_tail:
            st.apply({"type": "log_tail", "text": log_tail(self.run_dir)})
        return added

    @property
    def exit_code(self) -> int:
        if self.rc == 2:   # the backend found bad input (data): the CLI's "fix your input" status
            return 2
        return EXIT_CODES.get(self.state.status, 1)


class _CtrlC:
    """SIGINT sets a flag instead of raising in the middle of a redraw; restored on exit."""

    def __init__(self):
        self.hit, self._old = False, None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGINT, self._handler)
        except ValueError:    # not the main thread: KeyboardInterrupt is caught instead
            self._old = None
        return self

    def _handler(self, signum, frame):
        self.hit = True

    def pop(self) -> bool:
        hit, self.hit = self.hit, False
        return hit

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _send_sigint(pid: int | None) -> str:
    if pid is None:
        return "the training process is unknown (no pid in state.json): cannot stop it"
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return f"the training process (pid {pid}) is already gone"
    return f"stopping: the training process (pid {pid}) saves a checkpoint, then stops"


def _shares_our_group(pid: int | None) -> bool:
    """True if the backend got the terminal's Ctrl-C too (it was not started in its own session)."""
    try:
        return pid is not None and os.getpgid(pid) == os.getpgrp()
    except OSError:
        return False


def _ask(run_dir: Path) -> str:
    import questionary

    choices = [
        questionary.Choice("Stop training (save a checkpoint, then stop)", value=STOP),
        questionary.Choice(f"Detach (training goes on; re-attach with: caption-wizard watch {run_dir})",
                           value=DETACH),
        questionary.Choice("Keep watching", value=KEEP),
    ]
    try:
        return questionary.select("Training is still running. What now?", choices=choices,
                                  default=choices[2]).unsafe_ask()
    except (KeyboardInterrupt, EOFError):   # Ctrl-C again: leave, and leave training alone
        return DETACH


def _write_loss_png(st: DashboardState, run_dir: Path, console) -> str | None:
    """RUN/loss.png: the training process writes it at the end; a run that ended without (killed)
    gets it here, from the same events. Its path, or None."""
    path = run_dir / LOSS_PLOT
    if not path.exists() and st.steps:
        try:
            from wizard.plot import write_loss_plot

            write_loss_plot(run_dir)
        except Exception as e:  # a missing plot must not hide the summary
            _out(console, f"warning: could not write {path}: {e}")
            return None
    return str(path) if path.exists() else None


def _out(console, line: str) -> None:
    """A plain line: no markup, wrapping or escape codes; flushed (piped output is block-buffered)."""
    try:
        console.file.write(line + "\n")
    except UnicodeEncodeError:   # a non-UTF-8 stdout: keep the line, lose the odd character
        enc = getattr(console.file, "encoding", None) or "ascii"
        console.file.write(line.encode(enc, "replace").decode(enc) + "\n")
    console.file.flush()


def _print_plain(console, ev: dict, st: DashboardState) -> None:
    line = plain_line(ev, st)
    if line:
        _out(console, line)


def _follow_plain(f: _Follower, console, ctrl_c: _CtrlC) -> bool:
    """Print a line per event until the run ends (True) or the user stops waiting (False)."""
    stopping = False
    while True:
        try:
            how = f.ended()   # asked before reading: every event written before the end gets read
            for ev in f.poll():
                f.state.apply(ev)
                _print_plain(console, ev, f.state)
            if how is not None:
                for ev in f.conclude(how):
                    _print_plain(console, ev, f.state)
                return True
            time.sleep(POLL_S)
        except KeyboardInterrupt:
            ctrl_c.hit = True
        if ctrl_c.pop():
            if stopping:   # a second Ctrl-C: stop waiting
                _out(console, f"not waiting any longer; re-attach with: caption-wizard watch {f.run_dir}")
                return False
            pid = f.backend_pid()
            if not _shares_our_group(pid):
                _out(console, _send_sigint(pid))
            f.state.apply({"type": "stop_requested", "t": time.time()})
            stopping = True


def _follow_live(f: _Follower, console, ctrl_c: _CtrlC) -> bool:
    """Redraw until the run ends (True) or the user detaches (False)."""
    from rich.live import Live

    def draw(live):
        w, h = console.size
        live.update(render(f.state, width=w, height=max(10, h - 1), now=time.time()), refresh=True)

    live = Live(console=console, screen=False, auto_refresh=False)
    live.start()
    last_draw, dirty = 0.0, False
    try:
        while True:
            try:
                how = f.ended()   # asked before reading: every event written before the end gets read
                events = f.poll()
                for ev in events:
                    f.state.apply(ev)
                if how is not None:
                    f.conclude(how)
                dirty = dirty or bool(events)
                since = time.time() - last_draw
                if how is not None or since >= REDRAW_S or (dirty and since >= MIN_REDRAW_S):
                    draw(live)
                    last_draw, dirty = time.time(), False
                if how is not None:
                    return True
                time.sleep(POLL_S)
            except KeyboardInterrupt:
                ctrl_c.hit = True
            if not ctrl_c.pop():
                continue
            pid = f.backend_pid()
            if _shares_our_group(pid):   # the terminal's Ctrl-C reached training itself: it is stopping
                f.state.apply({"type": "stop_requested", "t": time.time()})
                continue
            live.stop()
            choice = _ask(f.run_dir) if sys.stdin.isatty() else STOP
            if choice == DETACH:
                from rich.markup import escape

                console.print(f"detached: training goes on (pid {pid}). Re-attach with:", highlight=False)
                console.print(f"  [bold]caption-wizard watch {escape(str(f.run_dir))}[/]", highlight=False,
                              soft_wrap=True)  # on its own line, never folded: users copy it
                return False
            if choice == STOP:
                console.print(_send_sigint(pid), highlight=False)
                f.state.apply({"type": "stop_requested", "t": time.time()})
            live = Live(console=console, screen=False, auto_refresh=False)
            live.start()
            last_draw = 0.0
    finally:
        live.stop()


def attach(run_dir, *, plain: bool | None = None, proc=None, console=None) -> int:
    """Show run `run_dir` until it ends; write loss.png and print the summary. Returns the exit status.

    0 completed (or detached: training goes on), 1 failed (2 if the backend exited 2: bad
    input), 130 stopped. With `proc` (the backend's Popen) its exit code decides; else
    state.json and its pid do. Plain lines when `plain` or the console is not a terminal.
    """
    if console is None:
        from wizard.console import console
    run_dir = Path(run_dir)
    plain = (not console.is_terminal) if plain is None else plain
    f = _Follower(run_dir, proc)
    with _CtrlC() as ctrl_c:
        ended = (_follow_plain if plain else _follow_live)(f, console, ctrl_c)
    if not ended:   # detached (training goes on: 0), or gave up waiting for a stop (130)
        return 130 if plain and f.state.stop_requested else 0
    _print_end(f.state, run_dir, console, plain)
    return f.exit_code


def _print_end(st: DashboardState, run_dir: Path, console, plain: bool) -> None:
    png = _write_loss_png(st, run_dir, console)
    if plain:
        for line in plain_summary(st, loss_png=png):
            _out(console, line)
    else:
        console.print(summary(st, loss_png=png))


def show_finished(run_dir: Path, console, *, plain: bool) -> int:
    """The final screen (or last plain line) and the summary of a run nobody is running."""
    f = _Follower(run_dir)
    last_log = None
    for ev in f.poll():
        f.state.apply(ev)
        if ev.get("type") == "log":
            last_log = ev
    how = f.ended()
    if how is not None:
        f.conclude(how)
    st = f.state
    if plain:
        if last_log is not None:
            _print_plain(console, last_log, st)
    else:
        w, h = console.size
        console.print(render(st, width=w, height=max(24, h - 12), now=st.last_t or time.time()))
    _print_end(st, run_dir, console, plain)
    return 1 if st.status == "failed" else 0
