"""Command-line conveniences a newcomer meets first (wizard/cli.py calls these with a line each).

    caption-wizard rnu                      -> error: unknown command 'rnu': did you mean run?
    caption-wizard run                      -> the recipes in ./recipes, and `caption-wizard new`
    caption-wizard watch|eval|export        -> choose a run from ./runs (a terminal), or:
    caption-wizard eval --last              -> the newest run
    caption-wizard caption --last IMAGE...  -> the newest run's adapter

Only the standard library at import time (start-up stays instant).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from wizard.errors import UserError

RUN_COMMANDS = ("watch", "eval", "export")  # take RUN_DIR, or --last, or a choice from the list


class DefaultsHelp(argparse.HelpFormatter):
    """Every option's help says its default (when it has one worth saying)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default in (None, False, argparse.SUPPRESS) or isinstance(action, (
                argparse._HelpAction, argparse._VersionAction)) or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def did_you_mean(argv: list[str], commands: list[str]) -> None:
    """Exit 2 with a suggestion when the first word looks like a mistyped command."""
    if not argv or argv[0].startswith("-") or argv[0] in commands:
        return
    if argv[0].endswith((".yaml", ".yml")):  # a recipe without its command
        raise UserError(f"unknown command {argv[0]!r}", hint=f"to train it: caption-wizard run {argv[0]}")
    close = difflib.get_close_matches(argv[0], commands, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]}?" if close else "commands: " + ", ".join(commands)
    raise UserError(f"unknown command {argv[0]!r}", hint=f"{hint} (caption-wizard --help lists them)")


def no_recipe() -> UserError:
    """`caption-wizard run` with no recipe: the recipes here, and how to write one."""
    found = sorted(Path("recipes").glob("*.yaml")) + sorted(Path("recipes").glob("*.yml"))
    if not found:
        return UserError("run needs a recipe file, and there is none in ./recipes",
                         hint="write one with: caption-wizard new (or caption-wizard new --defaults)")
    listing = "\n    ".join(f"caption-wizard run {p}" for p in found)
    return UserError("run needs a recipe file; the recipes in ./recipes:\n    " + listing,
                     hint="or write a new one with: caption-wizard new")


def fill_run_dir(args: argparse.Namespace) -> None:
    """RUN_DIR for watch/eval/export/caption: given, the newest with --last, or chosen from ./runs."""
    command = args.command
    if command == "caption":
        if getattr(args, "last", False):  # `caption --last IMAGE...`: the first word was an image
            args.images = [args.source, *args.images] if args.source else args.images
            args.source = str(_runs(command)[-1].path) if args.images else args.source
        if not args.images:  # nargs="*" so that `caption --last ONE.jpg` parses; at least one is needed
            raise UserError("caption needs at least one image or folder",
                            hint="caption-wizard caption RUN_DIR_OR_MODEL IMAGE...   (or: caption-wizard caption "
                                 "--last IMAGE...)")
        return
    if command not in RUN_COMMANDS or args.run_dir:
        return
    runs = _runs(command)
    if getattr(args, "last", False):
        args.run_dir = str(runs[-1].path)
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        names = "\n    ".join(str(r.path) for r in reversed(runs[-5:]))
        raise UserError(f"{command} needs a run folder; the newest runs:\n    {names}",
                        hint=f"caption-wizard {command} {runs[-1].path}   (or: caption-wizard {command} --last)")
    from wizard.ask.prompting import BACK, ask_select
    from wizard.ask.questions import Choice

    choices = [Choice(f"{r.name} · {r.status_text} · step {r.step}"
                      + (f"/{r.total_steps}" if r.total_steps else ""), str(r.path)) for r in reversed(runs)]
    picked = ask_select(f"{command.capitalize()} which run?", choices, can_go_back=False)
    if picked is BACK:
        raise KeyboardInterrupt
    args.run_dir = picked


def _runs(command: str) -> list:
    from wizard.rundir import default_runs_dir, list_runs

    runs = list_runs()
    if command in ("eval", "export", "caption"):  # these need a trained adapter (or a checkpoint)
        runs = [r for r in runs if r.status != "running"] or runs
    if not runs:
        raise UserError(f"no runs in {default_runs_dir()}/",
                        hint="start one with: caption-wizard run recipes/demo-shapes.yaml")
    return runs
