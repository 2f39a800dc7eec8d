"""wizard.progress.Progress drawn with Rich: what library code reports, on the front end's console.

    prepare_data(spec, seed=42, progress=RichProgress())          # status lines, bars, summary lines on stderr
    resolve_model(spec, progress=RichProgress().download)         # the hub's per-file download events
"""

from __future__ import annotations

from contextlib import contextmanager


class RichProgress:
    """wizard.progress.Progress on a Rich console: a spinner, a transient bar, plain lines."""

    def __init__(self, target=None):
        from wizard.console import console_err
        from wizard.ui.download_progress import RichDownloadProgress

        self.console = target or console_err
        self.download = RichDownloadProgress(self.console)  # what a model or dataset download reports to

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
        from wizard.fsnames import shown  # a file name that is not UTF-8 prints as caf\xe9.png

        self.console.print(shown(line), markup=False, highlight=False, soft_wrap=True)
