"""`caption-wizard resume [RUN_DIR]`: continue an interrupted run from its last complete checkpoint.

    caption-wizard resume runs/demo-shapes-20250101-120000   # or just its name
    caption-wizard resume                                    # choose from the resumable runs

An edited recipe.yaml is compared with the recipe the run started with (wizard.runner.plan_resume):
what cannot change is refused, what may change is said, the rest keeps the checkpoint's value.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from wizard import rundir
from wizard.commands.run import follow, say
from wizard.console import console
from wizard.ui.progress import RichProgress
from wizard.errors import UserError


def cmd_resume(args) -> int:
    from wizard.stopping import on_terminate

    with on_terminate():  # SIGTERM/SIGHUP: stop the training like Ctrl-C -> Stop (wizard.stopping)
        if args.run_dir:
            run_dir = Path(args.run_dir)
            by_name = Path(args.runs_dir or rundir.default_runs_dir()) / args.run_dir
            if not run_dir.is_dir() and by_name.is_dir():  # `resume NAME` works as well as `resume runs/NAME`
                run_dir = by_name
        else:
            run_dir = choose_run(args.runs_dir)
        return resume_and_follow(run_dir, plain=True if args.plain else None, allow_resize=args.allow_resize)


def resume_and_follow(run_dir: str | os.PathLike, *, plain: bool | None = None, allow_resize: bool = False) -> int:
    from wizard.runner import resume_run

    started = resume_run(run_dir, allow_resize=allow_resize, say=say, progress=RichProgress())
    return 0 if started is None else follow(started.run_dir, started.proc, plain)


def choose_run(runs_dir: str | os.PathLike | None) -> Path:
    """Pick a resumable run: a menu on a terminal; elsewhere the table and a request for RUN_DIR."""
    from wizard.commands.runs import runs_table, when

    candidates = [r for r in reversed(rundir.list_runs(runs_dir)) if r.resumable]  # newest first
    where = runs_dir or rundir.default_runs_dir()
    if not candidates:
        raise UserError(f"no run to resume in {where}/ (none is stopped, interrupted or failed)",
                        hint="start one with: caption-wizard run recipes/demo-shapes.yaml")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        console.print(runs_table(candidates, title="Resumable runs"))
        raise UserError("which run? pass its folder", hint=f"caption-wizard resume {candidates[0].path}")
    import questionary

    from wizard.commands.runs import loss_text, steps_text

    width = max(len(r.name) for r in candidates)
    choices = [questionary.Choice(f"{r.name:<{width}}  {r.status_text:<22} step {steps_text(r):<10} "
                                  f"loss {loss_text(r):<8} {when(r.updated)}", value=str(r.path))
               for r in candidates]
    return Path(questionary.select("Resume which run?", choices=choices).unsafe_ask())
