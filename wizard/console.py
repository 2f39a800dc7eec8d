"""The one place that prints to the terminal (STYLE.md: one Console); progress drawn on it: wizard.ui."""

from __future__ import annotations

import sys

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
