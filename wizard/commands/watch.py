"""`caption-wizard watch RUN_DIR [--plain]`: attach the dashboard to a running run, or show a finished one."""

from __future__ import annotations

from pathlib import Path

from wizard import rundir
from wizard.console import console
from wizard.errors import UserError


def cmd_watch(args) -> int:
    from wizard.dashboard import attach, backend_running, show_finished

    run_dir = Path(args.run_dir)
    hint = "`caption-wizard runs` lists the runs; a run directory looks like runs/NAME-YYYYmmdd-HHMMSS"
    if not run_dir.is_dir():
        raise UserError(f"no run directory {run_dir}", hint=hint)
    if not rundir.is_run_dir(run_dir):
        raise UserError(f"{run_dir} is not a run directory (no {rundir.STATE_FILE} and {rundir.RECIPE_FILE} in it)",
                        hint=hint)
    plain = True if getattr(args, "plain", False) else None
    if backend_running(run_dir, rundir.read_state(run_dir)):
        return attach(run_dir, plain=plain, console=console)
    return show_finished(run_dir, console, plain=not console.is_terminal if plain is None else plain)
