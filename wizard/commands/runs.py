"""`caption-wizard runs`: the table of runs (name, status, step/total, last loss, started)."""

from __future__ import annotations

from datetime import datetime

from wizard import rundir
from wizard.console import console


def when(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def steps_text(info: rundir.RunInfo) -> str:
    return f"{info.step}/{info.total_steps}" if info.total_steps else f"{info.step}/?"


def loss_text(info: rundir.RunInfo) -> str:
    return "-" if info.last_loss is None else f"{info.last_loss:.4f}"


def runs_table(infos: list[rundir.RunInfo], title: str = "Runs"):
    from rich.markup import escape
    from rich.table import Table

    colors = {"completed": "green", "running": "cyan", "failed": "red", "stopped": "yellow", "interrupted": "yellow"}
    table = Table(title=title, title_justify="left")
    for col, justify in (("name", "left"), ("status", "left"), ("step/total", "right"), ("last loss", "right"),
                         ("started", "left")):
        table.add_column(col, justify=justify, no_wrap=col != "name")
    for r in infos:
        table.add_row(escape(r.name), f"[{colors.get(r.status, 'white')}]{r.status_text}[/]", steps_text(r),
                      loss_text(r), when(r.started))
    if console.measure(table, options=console.options.update_width(1000)).maximum > console.width:  # too narrow
        return _runs_list(infos, title, colors)
    return table


def _runs_list(infos, title: str, colors: dict):
    """For narrow terminals: each run's name whole on its own line (users copy it), its status, step,
    loss and start time indented under it."""
    from rich.console import Group
    from rich.text import Text

    lines: list = [Text(title, style="italic")]
    for r in infos:
        lines.append(Text(r.name, style="bold", no_wrap=True, overflow="ignore"))
        lines.append(Text.assemble("  ", (r.status_text, colors.get(r.status, "white")),
                                   f" · step {steps_text(r)} · loss {loss_text(r)} · {when(r.started)}"))
    return Group(*lines)


def cmd_runs(args) -> int:
    infos = rundir.list_runs(args.runs_dir)
    where = args.runs_dir or rundir.default_runs_dir()
    if not infos:
        console.print(f"no runs in {where}/ yet. Start one with: caption-wizard run recipes/demo-shapes.yaml",
                      markup=False)
        return 0
    console.print(runs_table(infos))
    if any(r.resumable for r in infos):
        console.print("resume one with: caption-wizard resume RUN_DIR (or just caption-wizard resume)", markup=False)
    return 0
