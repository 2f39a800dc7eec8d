"""The one place that prints to the terminal (STYLE.md: one Console), and progress drawn on it."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console

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
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
