"""events.jsonl: what a run said, one JSON object per line (the contract between the processes).

    writer = EventWriter(run_dir / EVENTS_FILE)
    writer.emit("log", step=10, loss=1.23, ...)          # appended and flushed at once

    read_events(run_dir)                                  # every complete event so far
    reader = EventReader(run_dir); reader.poll()          # only the events appended since the last poll
    recorder = RunRecorder(run_dir); recorder.status("running")   # an event + state.json in step

The training process (rank 0) writes; the dashboard, `caption-wizard runs`, `eval` and `compare`
read. Every event has "t" (unix time, written first) and "type"; the types and their fields are
the TypedDicts below (docs/architecture.md lists them too). Readers ignore types they do not
know and fields they do not use. NaN and inf are not JSON: they are written as null.

Torn lines: a writer killed mid-line leaves a last line without its newline. A reader following a
live file leaves such a piece for its next poll; a reader of a finished file tries it once. The
next writer ends the torn line before appending (so the next event starts on a line of its own);
an event glued to a torn line by an older writer is still found (the parser looks for '{"t": ').
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Literal, TypedDict

from wizard.fsutil import json_text
from wizard.rundir.layout import EVENTS_FILE


# ----------------------------------------------------------------------------- the contract
class Event(TypedDict):
    t: float       # unix time
    type: str


class StatusEvent(Event, total=False):
    """The run's status changed, or (status running) the stage it is in ("loading the model ...")."""
    status: Literal["running", "stopped", "failed", "completed"]
    message: str


class DataEvent(Event, total=False):
    """The data as the training process read it (the dashboard labels its counts with it)."""
    train_images: int
    eval_images: int


class StartEvent(Event, total=False):
    """Training begins (again, after a resume: start_step > 0, resumed true)."""
    run: str
    model: str
    strategy: str
    devices: list[str]
    recipe_hash: str
    trainable_params: int
    total_params: int
    num_train: int
    num_eval: int
    batch_size: int
    data: str | None          # the front end's data summary (format, bad rows skipped)
    total_steps: int
    start_step: int
    resumed: bool


class LogEvent(Event, total=False):
    """One logged optimizer step (every train.logging_steps)."""
    step: int
    epoch: float
    loss: float | None        # null: NaN or inf
    learning_rate: float
    grad_norm: float | None
    samples_per_s: float
    tokens_per_s: float
    memory: dict[str, Any]    # {"kind": "cpu", "rss", "peak_rss", "total"} or
                              # {"kind": "cuda", "devices": [{"index", "name", "allocated", "reserved", "peak",
                              #                               "used", "total"}]}


class EvalEvent(Event, total=False):
    """Held-out scores: during training (which "tuned", eval_loss [+ metrics]) or from `caption-wizard eval`
    (which "base" or "tuned", n, metrics)."""
    step: int | None
    which: Literal["base", "tuned"]
    eval_loss: float
    n: int
    metrics: dict[str, float]


class CheckpointEvent(Event, total=False):
    """A complete checkpoint was written (its marker is on disk)."""
    step: int
    path: str                 # relative to the run folder: checkpoints/checkpoint-N


class WarningEvent(Event, total=False):
    message: str


class ErrorEvent(Event, total=False):
    """The run failed; a status "failed" follows."""
    message: str
    log_tail: str | None      # train.log's last lines, for crashes (null for bad input)


class EndEvent(Event, total=False):
    """The run completed; a status "completed" follows."""
    step: int
    adapter: str              # relative to the run folder
    final_loss: float | None
    best_loss: float | None
    seconds: float            # training time over all sessions


EVENT_TYPES: dict[str, type] = {"status": StatusEvent, "data": DataEvent, "start": StartEvent, "log": LogEvent,
                                "eval": EvalEvent, "checkpoint": CheckpointEvent, "warning": WarningEvent,
                                "error": ErrorEvent, "end": EndEvent}


# ----------------------------------------------------------------------------- writing
def _finite(value: Any) -> Any:
    """NaN/inf are not JSON: write them as null (the error event says what happened)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class EventWriter:
    """Appends one line per event and flushes it, so a reader (or a crash) sees whole lines."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        _repair_torn_tail(self.path)
        self._file = open(self.path, "a", encoding="utf-8")

    def emit(self, type: str, *, sync: bool = False, **fields: Any) -> dict:
        event = {"t": time.time(), "type": type, **_finite(fields)}
        self._file.write(json_text(event) + "\n")  # a file name that is not UTF-8 cannot break the line
        self._file.flush()
        if sync:  # status changes and checkpoints survive a power cut
            os.fsync(self._file.fileno())
        return event

    def close(self) -> None:
        self._file.close()


def _repair_torn_tail(path: Path) -> None:
    """A writer killed mid-line left a last line without its newline: end it, so the next event
    starts on a line of its own instead of being glued to the torn one (readers skip that)."""
    try:
        with open(path, "rb+") as f:
            if f.seek(0, os.SEEK_END) and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
                f.write(b"\n")
    except FileNotFoundError:
        pass


# ----------------------------------------------------------------------------- reading
_EVENT_START = b'{"t": '


def parse_line(line: bytes) -> dict | None:
    """One line -> an event, or None (blank, torn, not an object with a string "type").

    A line that does not parse may be a torn line with a whole event glued after it (written before
    writers repaired torn tails): the first event start that parses after it is taken."""
    line = line.strip()
    start = 0
    while line:
        try:
            event = json.loads(line[start:].decode("utf-8", "replace"))
        except ValueError:
            start = line.find(_EVENT_START, start + 1)
            if start < 0:
                return None
            continue
        return event if isinstance(event, dict) and isinstance(event.get("type"), str) else None
    return None


def _events_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / EVENTS_FILE if path.is_dir() else path


class EventReader:
    """Follows a growing events file: `poll()` returns the events appended since the last call.

    A last piece without its newline is still being written: it waits for the next poll.
    `path`: the run folder or its events file; a missing file is no events yet."""

    def __init__(self, path: str | os.PathLike):
        self.path = _events_path(path)
        self.offset = 0
        self._partial = b""

    def poll(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        return [event for line in lines if (event := parse_line(line)) is not None]

    def rest(self) -> list[dict]:
        """The writer is gone: its torn last piece, if it still parses (then nothing is pending)."""
        piece, self._partial = self._partial, b""
        event = parse_line(piece)
        return [event] if event is not None else []


def read_events(path: str | os.PathLike) -> list[dict]:
    """All events of a finished (or running) file, the last unterminated piece tried once; [] when missing."""
    reader = EventReader(path)
    return reader.poll() + reader.rest()


# ----------------------------------------------------------------------------- the training process's voice
class RunRecorder:
    """Appends events and keeps state.json in step with them.

    `writes=False` (ranks other than 0 under torchrun) makes every call a no-op.
    """

    def __init__(self, run_dir: str | os.PathLike, *, writes: bool = True):
        self.dir = Path(run_dir)
        self.writes = writes
        self._events = EventWriter(self.dir / EVENTS_FILE) if writes else None

    def event(self, type: str, *, sync: bool = False, **fields: Any) -> None:
        if self._events is not None:
            self._events.emit(type, sync=sync, **fields)

    def state(self, *, durable: bool = True, **changes: Any) -> None:
        if self.writes:
            from wizard.rundir.state import write_state

            write_state(self.dir, durable=durable, **changes)

    def status(self, status: str, message: str | None = None, **state: Any) -> None:
        fields = {"status": status} if message is None else {"status": status, "message": message}
        self.event("status", sync=True, **fields)
        self.state(status=status, **state)

    def warning(self, message: str) -> None:
        if self.writes:  # rank 0 alone prints, as it alone writes
            print(f"warning: {message}", flush=True)
        self.event("warning", message=message)
