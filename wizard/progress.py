"""How long work reports progress without printing: the one seam between library code and the screen.

    def fetch(urls, progress: Progress | None = None):
        progress = as_progress(progress)
        with progress.bar("downloading images", total=len(urls)) as advance:
            for url in urls: ...; advance(1)
        progress.say("12 images downloaded")

Library modules (data/, hub/, evaluate, export, ...) take `progress=` and call these three methods;
they never import rich. The front end passes wizard.console.RichProgress (a spinner, a bar, a
line on its console); None is silence. Tests can pass a recorder.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, ContextManager, Protocol


class Progress(Protocol):
    def status(self, text: str) -> ContextManager[Callable[[str], None]]:
        """A line that shows while a step runs; yields update(text)."""

    def bar(self, text: str, total: int) -> ContextManager[Callable[[int], None]]:
        """A bar over `total` items; yields advance(n)."""

    def say(self, line: str) -> None:
        """One line for the user (a summary, a note)."""


class Silent:
    """Progress that shows nothing."""

    @contextmanager
    def status(self, text: str):
        yield lambda text: None

    @contextmanager
    def bar(self, text: str, total: int):
        yield lambda n=1: None

    def say(self, line: str) -> None:
        pass


SILENT = Silent()


def as_progress(progress: Progress | None) -> Progress:
    return SILENT if progress is None else progress


def console_of(progress: Progress | None):
    """The Rich console behind a RichProgress (for wizard.hub, which still draws its own download bars)."""
    return getattr(progress, "console", None)
