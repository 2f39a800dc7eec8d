"""A download drawn with Rich: the hub's DownloadProgress events (wizard/hub/progress.py) on a console.

    resolve_model(recipe.model, progress=RichDownloadProgress(console_err))
    resolve_dataset(dataset_id, subset)                                      # no progress: silent

On a terminal: one bar of bytes (all files) plus one per file in flight. Piped: a line when the
download starts and one at each quarter, so a log shows it happened without a line per chunk.
"""

from __future__ import annotations

import threading
from typing import Any

from wizard.hub.progress import DownloadTally
from wizard.units import fmt_bytes


class RichDownloadProgress:
    """Fed from the client's worker threads: one lock around the tally and the bar."""

    def __init__(self, console):
        self.console = console
        self.lock = threading.Lock()
        self.tally: DownloadTally | None = None
        self.bar = None
        self.main = None
        self.tasks: dict[str, Any] = {}

    def start(self, what: str, total: int, n_files: int) -> None:
        with self.lock:
            self.tally = DownloadTally(what, total, n_files)
            self.tasks = {}
            if not self.console.is_terminal:
                self.console.print(f"downloading {what}: {n_files} files, {fmt_bytes(total)}", markup=False)
                return
            from rich.progress import Progress

            self.bar = Progress(*_columns(), console=self.console)
            self.bar.start()
            self.main = self.bar.add_task(self.tally.title, total=self.tally.total)

    def file_started(self, name: str, size: int) -> None:
        with self.lock:
            self.tally.file_started(name)
            if self.bar is not None:
                if name in self.tasks:  # a restart: its bar starts again from 0
                    self.bar.remove_task(self.tasks.pop(name))
                self.tasks[name] = self.bar.add_task(f"  {name}", total=max(size, 1))
            self._refresh()

    def file_advanced(self, name: str, delta: int) -> None:
        with self.lock:
            done = self.tally.file_advanced(name, delta)
            if self.bar is not None and name in self.tasks:
                self.bar.update(self.tasks[name], completed=done)
            self._refresh()

    def file_done(self, name: str) -> None:
        with self.lock:
            self.tally.file_done(name)
            if self.bar is not None and name in self.tasks:
                self.bar.remove_task(self.tasks.pop(name))
            self._refresh()

    def _refresh(self) -> None:
        t = self.tally
        if self.bar is not None:
            self.bar.update(self.main, completed=t.completed, description=t.title)
        elif (mark := t.quarter_reached()) is not None:
            self.console.print(f"  {mark}% ({fmt_bytes(t.completed)} of {fmt_bytes(t.total)})", markup=False)

    def stop(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    def note(self, text: str, *, warning: bool = False) -> None:
        self.console.print(text, style="yellow" if warning else None, markup=False, soft_wrap=True)


def _columns() -> list:
    """Name, bar, bytes done of total, speed, time left: sizes through fmt_bytes like everywhere else."""
    from rich.progress import BarColumn, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class Bytes(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{fmt_bytes(task.completed)}/{fmt_bytes(task.total or 0)}", style="progress.download")

    class Speed(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else f"{fmt_bytes(speed)}/s", style="progress.data.speed")

    return [TextColumn("{task.description}"), BarColumn(), Bytes(), Speed(), TimeRemainingColumn()]
