"""The one place that prints to the terminal (STYLE.md: one Console), and progress drawn on it."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from rich.console import Console


def _tolerant(stream) -> None:
    """Text the terminal cannot show (Chinese captions on LANG=C / PYTHONIOENCODING=ascii, a file name
    that is not UTF-8) prints as \\uXXXX / \\xNN escapes instead of ending the command in a traceback."""
    if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # a stream that cannot change now: leave it as it is
            pass


_tolerant(sys.stdout)
_tolerant(sys.stderr)
console = Console(highlight=False)
console_err = Console(stderr=True, highlight=False)


class RichProgress:
    """wizard.progress.Progress on a Rich console: a spinner, a transient bar, plain lines."""

    def __init__(self, target: Console | None = None):
        self.console = target or console_err

    @contextmanager
    def status(self, text: str):
        with self.console.status(text, spinner="dots") as status:
            yield status.update

    @contextmanager
    def bar(self, text: str, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn(text), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=self.console, transient=True) as bar:
            task = bar.add_task(text, total=total)
            yield lambda n=1: bar.advance(task, n)

    def say(self, line: str) -> None:
        from wizard.fsnames import shown

        self.console.print(shown(line), markup=False, highlight=False, soft_wrap=True)
