"""The runs table for narrow terminals: each run's name whole on its own line (users copy it),
its status, step, loss and start time indented under it."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text


def runs_list(infos, title: str, colors: dict, steps, loss, when) -> Group:
    lines: list = [Text(title, style="italic")]
    for r in infos:
        lines.append(Text(r.name, style="bold", no_wrap=True, overflow="ignore"))
        lines.append(Text.assemble("  ", (r.status_text, colors.get(r.status, "white")),
                                   f" · step {steps(r)} · loss {loss(r)} · {when(r.started)}"))
    return Group(*lines)
