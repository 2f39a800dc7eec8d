"""Download progress as events, and the arithmetic behind a bar. Nothing here draws.

    resolve_model(recipe.model, progress=RichDownloadProgress(console_err))   # wizard/ui/download_progress.py
    resolve_model(recipe.model)                                               # silent (inside a rank, tests)

The hub reports to a DownloadProgress, any object with the methods below. The client calls the
file_* methods from its worker threads; a file that restarts (after a failed check, or from a server
that ignored Range) is started again and counts from 0, so the total stays right.
DownloadTally holds the numbers a renderer needs (bytes done, files finished, the quarter marks of
a plain log); it is not locked: a renderer feeds it under its own lock.
"""

from __future__ import annotations

from typing import Protocol


class DownloadProgress(Protocol):
    def start(self, what: str, total: int, n_files: int) -> None:
        """A download of `n_files` files, `total` bytes, begins (`what`: "Qwen/Qwen2-VL-2B-Instruct")."""

    def file_started(self, name: str, size: int) -> None: ...

    def file_advanced(self, name: str, delta: int) -> None:
        """`delta` more bytes of `name` (on resume, the first call reports what was on disk)."""

    def file_done(self, name: str) -> None: ...

    def stop(self) -> None:
        """The download ended (done, failed or interrupted); may be called twice."""

    def note(self, text: str, *, warning: bool = False) -> None:
        """A line for the user: an offline fallback (warning), a URL being fetched, an interruption."""


class Silent:
    """The DownloadProgress of a caller that shows nothing."""

    def start(self, what: str, total: int, n_files: int) -> None:
        pass

    def file_started(self, name: str, size: int) -> None:
        pass

    def file_advanced(self, name: str, delta: int) -> None:
        pass

    def file_done(self, name: str) -> None:
        pass

    def stop(self) -> None:
        pass

    def note(self, text: str, *, warning: bool = False) -> None:
        pass


class DownloadTally:
    """Bytes done per file, files finished, and the 25/50/75% marks of a plain log."""

    def __init__(self, what: str, total: int, n_files: int):
        self.what, self.total, self.n_files = what, max(total, 1), n_files
        self.done: dict[str, int] = {}
        self.finished: set[str] = set()
        self._next_mark = 25

    def file_started(self, name: str) -> None:
        self.done[name] = 0

    def file_advanced(self, name: str, delta: int) -> int:
        """Bytes of `name` done so far (never below 0: a restart can report a negative delta)."""
        self.done[name] = max(0, self.done.get(name, 0) + delta)
        return self.done[name]

    def file_done(self, name: str) -> None:
        self.finished.add(name)

    @property
    def completed(self) -> int:
        return min(sum(self.done.values()), self.total)

    @property
    def title(self) -> str:
        return f"{self.what}  {len(self.finished)}/{self.n_files} files"

    def quarter_reached(self) -> int | None:
        """25, 50 or 75 the first time the bytes done pass that share; else None (100: the summary says it)."""
        mark = self.completed * 100 // self.total // 25 * 25
        if self._next_mark <= mark < 100:
            self._next_mark = mark + 25
            return mark
        return None
