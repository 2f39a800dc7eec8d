"""`caption-wizard run RECIPE [KEY=VALUE ...]`: replay a recipe with no questions, and follow it.

    caption-wizard run recipes/demo-shapes.yaml train.max_steps=20   # new run folder, then train
    caption-wizard run recipes/demo-shapes.yaml --dry-run           # recipe, hash, data check, memory estimate
    caption-wizard run recipes/x.yaml --print-launch slurm          # a Slurm batch script, nothing runs

The runner (wizard.runner) prepares the data, the model and the run folder and starts the training
process in its own session; this follows it with the dashboard. Ctrl-C reaches only this process:
the dashboard asks, and a "stop" is forwarded as SIGINT. The exit status is the training process's:
0 completed, 1 failed, 130 stopped (2: bad input, found before or during start-up).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from wizard.console import console, console_err
from wizard.ui.progress import RichProgress
from wizard.recipe import Recipe, apply_overrides, load_recipe, recipe_hash, recipe_to_yaml


def say(line: str) -> None:
    """A line of the runner's, printed as it is (paths and hints stay whole: soft_wrap)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def cmd_run(args) -> int:
    from wizard.stopping import on_terminate

    recipe = apply_overrides(load_recipe(args.recipe), list(args.overrides or []))
    if getattr(args, "print_launch", None):  # a Slurm batch script for the recipe, nothing runs
        from wizard.launch import slurm_script

        console.print(slurm_script(recipe, args.recipe, list(args.overrides or [])), markup=False,
                      highlight=False, end="", soft_wrap=True)
        return 0
    if args.dry_run:
        return dry_run(recipe, args.recipe, overrides=list(args.overrides or []))
    with on_terminate():  # SIGTERM/SIGHUP: stop the training like Ctrl-C -> Stop (wizard.stopping)
        if recipe.launch.nodes > 1:
            return _several_machines(recipe, args)
        return run_and_follow(recipe, recipe_path=args.recipe, runs_dir=args.runs_dir,
                              plain=True if args.plain else None)


def run_and_follow(recipe: Recipe, *, recipe_path=None, runs_dir=None, plain: bool | None = None) -> int:
    """Start a run of `recipe` and follow it until it ends (or the user detaches): its exit status."""
    from wizard.runner import start_run

    started = start_run(recipe, recipe_path=recipe_path, runs_dir=runs_dir, say=say, progress=RichProgress())
    return follow(started.run_dir, started.proc, plain)


def follow(run_dir: Path, proc: subprocess.Popen, plain: bool | None) -> int:
    """The dashboard (or plain lines) until the run ends or the user detaches."""
    from wizard.dashboard import attach
    from wizard.stopping import Terminated, wait_stopped

    try:
        shown = attach(run_dir, plain=plain, proc=proc)
    except Terminated:  # SIGTERM/SIGHUP: the training was told to stop; wait for its checkpoint
        return wait_stopped(proc, run_dir)
    if proc.poll() is not None and proc.returncode in (0, 1, 2, 130):
        return proc.returncode  # the training process's own verdict (2: bad data it found)
    return shown  # detached (training goes on), or killed by a signal


def dry_run(recipe: Recipe, recipe_path: str | os.PathLike | None = None, overrides: list[str] = ()) -> int:
    """What would run: the resolved recipe (overrides applied), its hash, the data check, the plan and
    the memory estimate.

    Piped (`--dry-run > x.yaml`), stdout gets the YAML alone, unwrapped; the rest goes to stderr."""
    from wizard.commands.data import print_check
    from wizard.data.check import check_recipe, remote_data_note
    from wizard.ask.summary import render_estimate
    from wizard.estimate import estimate_memory
    from wizard.launch import describe_launch
    from wizard.plan import dry_run_plan, replay_comment
    from wizard.preflight import local_model_path, preflight

    warn = lambda line: console_err.print(line, markup=False)  # noqa: E731
    preflight(recipe, local_model_path(recipe), recipe_path, warn=warn)  # impossible sizes, unknown modules
    out = console if console.is_terminal else console_err
    console.print(replay_comment(recipe_to_yaml(recipe, recipe_path), recipe_path, overrides),
                  markup=False, highlight=False, end="", soft_wrap=True)
    out.print(f"recipe hash: {recipe_hash(recipe)}", markup=False)
    base_dir = Path(recipe_path).parent if recipe_path else None
    remote = remote_data_note(recipe, base_dir)  # a hub dataset: not downloaded by a dry run
    if remote:
        out.print(remote, markup=False, highlight=False)
    else:
        print_check(check_recipe(recipe, base_dir=base_dir, progress=RichProgress()), recipe, out)  # bad data: exit 2
    for line in dry_run_plan(recipe):
        out.print(line, markup=False, highlight=False)
    out.print(render_estimate(estimate_memory(recipe)))
    out.print(f"launch: {describe_launch(recipe)}", markup=False)
    out.print("dry run: nothing was trained. Start it with the same command without --dry-run.", markup=False)
    return 0


# ----------------------------------------------------------------------------- several machines
def _several_machines(recipe: Recipe, args) -> int:
    """Node 0 prints the other machines' command and trains; the others say where progress shows."""
    from wizard.launch import other_nodes_command, plan_launch

    plan = plan_launch(recipe)
    plain = True if args.plain else None
    if plan.node_rank == 0:
        say(f"machine 0 of {plan.nodes} ({plan.describe()}). On each other machine run:")
        for line in other_nodes_command(args.recipe, list(args.overrides or []), plan):
            say(f"  {line}")
        return run_and_follow(recipe, recipe_path=args.recipe, runs_dir=args.runs_dir, plain=plain)
    say(f"machine {plan.node_rank} of {plan.nodes}: training together with machine 0 "
        f"({plan.master_addr}:{plan.master_port}); progress and the run's record show there")
    return _follow_other_node(recipe, args, plan)


def _follow_other_node(recipe: Recipe, args, plan) -> int:
    """Machines 1..N-1: their processes write nothing (rank 0 does); this folder records how they ended."""
    import signal

    from wizard import rundir
    from wizard.hub import resolve_model
    from wizard.runner import create_run, launch_backend

    run_dir = create_run(recipe, resolve_model(recipe.model, progress=RichProgress().download), runs_dir=args.runs_dir,
                         recipe_path=args.recipe)
    proc = launch_backend(run_dir, recipe)
    rundir.write_state(run_dir, pid=proc.pid)
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # torchrun forwards it to this machine's processes; rank 0 saves the checkpoint
        proc.send_signal(signal.SIGINT)
        code = proc.wait()
    status = {0: "completed", 130: "stopped"}.get(code, "failed")
    rundir.write_state(run_dir, status=status, message=f"machine {plan.node_rank} of {plan.nodes}: events, "
                       "checkpoints and the adapter are in machine 0's run folder")
    say(f"machine {plan.node_rank}: {status} (exit status {code})")
    return code
