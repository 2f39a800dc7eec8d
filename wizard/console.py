"""The one place that prints to the terminal (STYLE.md: one Console); progress drawn on it: wizard.ui."""

from __future__ import annotations

from rich.console import Console

console = Console(highlight=False)
console_err = Console(stderr=True, highlight=False)
