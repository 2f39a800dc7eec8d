"""The events stream of a run: RUN/events.jsonl, one JSON object per line.

    writer = EventWriter(run_dir / "events.jsonl")
    writer.emit("log", step=10, loss=1.23, ...)       # appended and flushed at once

    for event in read_events(run_dir / "events.jsonl"):   # tolerant of a half-written last line
        ...
    reader = EventReader(path); reader.poll()              # only the events appended since the last poll
    recorder = RunRecorder(run_dir); recorder.status("running")   # an event + state.json in step

The training process writes; the dashboard, `caption-wizard runs` and the plain
follower read. Every event has "t" (unix time) and "type"; the types and their
fields are listed in docs/architecture.md ("The events contract"). Readers ignore
types they do not know.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterator

EVENTS_FILE = "events.jsonl"


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
        self._file.write(json.dumps(event, ensure_ascii=False) + "\n")
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


def _parse(line: str) -> dict | None:
    try:
        event = json.loads(line)
    except ValueError:  # a torn line; an event glued to one (files written before the repair) is kept
        start = line.rfind('{"t": ', 1)
        return _parse(line[start:]) if start > 0 else None
    return event if isinstance(event, dict) and "type" in event else None


def read_events(path: str | os.PathLike) -> list[dict]:
    """All complete events in the file ([] when it does not exist); bad or partial lines are skipped."""
    return list(iter_events(path))


def iter_events(path: str | os.PathLike) -> Iterator[dict]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    lines = text.split("\n")
    for line in lines[:-1]:  # the last piece has no newline yet: still being written
        event = _parse(line)
        if event is not None:
            yield event
    if lines[-1].strip():  # a finished file whose writer died mid-line: try it anyway
        event = _parse(lines[-1])
        if event is not None:
            yield event


class EventReader:
    """Follows a growing events file: `poll()` returns the events appended since the last call."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        events = []
        for line in lines:
            event = _parse(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events


class RunRecorder:
    """The training process's voice: appends events and keeps state.json in step with them.

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
            from wizard.runs import write_state

            write_state(self.dir, durable=durable, **changes)

    def status(self, status: str, message: str | None = None, **state: Any) -> None:
        fields = {"status": status} if message is None else {"status": status, "message": message}
        self.event("status", sync=True, **fields)
        self.state(status=status, **state)

    def warning(self, message: str) -> None:
        if self.writes:  # rank 0 alone prints, as it alone writes
            print(f"warning: {message}", flush=True)
        self.event("warning", message=message)
