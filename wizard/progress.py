"""How long work reports progress without printing: the one seam between library code and the screen.

    def fetch(urls, progress: Progress | None = None):
        progress = as_progress(progress)
        with progress.bar("downloading images", total=len(urls)) as advance:
            for url in urls: ...; advance(1)
        progress.say("12 images downloaded")

Library modules (data/, evaluate, export, ...) take `progress=` and call these three methods; a model or
dataset download inside them reports to `downloads_of(progress)` (the hub's own, finer protocol: bytes
per file, from worker threads). They never import rich. The front end passes wizard.ui.progress.RichProgress (a spinner, a bar, a
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


def downloads_of(progress: Progress | None):
    """The hub's DownloadProgress (wizard/hub/progress.py: per-file byte events) that goes with `progress`:
    its `download` attribute (wizard.ui.progress.RichProgress draws one), or None: silent."""
    return getattr(progress, "download", None)
