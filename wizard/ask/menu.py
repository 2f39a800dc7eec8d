"""The main menu (`caption-wizard`) and `caption-wizard new`.

    caption-wizard                                   main menu
    caption-wizard new [--out recipes/x.yaml]        the questionnaire
    caption-wizard new --defaults --out x.yaml       this machine's default recipe, no questions

Each menu entry calls the same function as its command (wizard/cli.py's
COMMANDS), with arguments built by the CLI's own parser, so the menu and the
command line cannot drift apart. An entry whose module has not landed yet says
so instead of pretending. Nothing heavy is imported before the menu shows.
"""

from __future__ import annotations

import importlib
import importlib.util
import shlex
from pathlib import Path
from typing import Any

from rich.markup import escape

from wizard.console import console, console_err
from wizard.errors import RunFailed, UserError

# (title, what it runs, module it needs)
ENTRIES = [
    ("New run: answer a few questions, save a recipe, train", "new", "wizard.ask.prompting"),
    ("Resume a run", "resume", "wizard.commands.resume"),
    ("Replay a recipe", "replay", "wizard.commands.run"),
    ("Runs", "runs", "wizard.commands.runs"),
    ("Caption images", "caption", "wizard.caption"),
    ("Evaluate a run", "eval", "wizard.evaluate"),
    ("Export a run", "export", "wizard.export"),
    ("Quit", "quit", None),
]


def _available(module: str | None) -> bool:
    return module is None or importlib.util.find_spec(module) is not None


def _not_available(what: str) -> int:
    console.print(f"[yellow]{what} is not available in this version yet.[/]")
    return 0


def _call(command: str, argv: list[str]) -> int:
    """Run a CLI command's function with arguments parsed by the CLI's parser."""
    from wizard.cli import COMMANDS, build_parser

    module_name, func_name = COMMANDS[command].split(":")
    args = build_parser().parse_args([command, *argv])
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            return _not_available(f"`caption-wizard {command}`")
        raise
    func = getattr(module, func_name, None)
    if func is None:
        return _not_available(f"`caption-wizard {command}`")
    return int(func(args) or 0)


def _runner(name: str):
    """start_run / resume_run: start (or resume) and follow with the dashboard (wizard.commands)."""
    from wizard.commands.resume import resume_and_follow
    from wizard.commands.run import run_and_follow

    return {"start_run": run_and_follow, "resume_run": resume_and_follow}[name]


# ----------------------------------------------------------------------------- choosing things
def _choose_run(message: str, *, only=lambda info: True, empty: str, or_model: bool = False) -> Any:
    """A run folder from ./runs (or typed: a folder, or a ModelScope id when `or_model`); a string or BACK."""
    from wizard.ask.prompting import BACK, ask_select, ask_text
    from wizard.ask.questions import Choice

    try:
        from wizard.rundir import list_runs
        runs = [r for r in list_runs() if only(r)]
    except ModuleNotFoundError:
        runs = []
    choices = []
    for r in reversed(runs):  # newest first
        step = f"step {r.step}/{r.total_steps}" if r.total_steps else f"step {r.step}"
        loss = f" · loss {r.last_loss:.3f}" if isinstance(r.last_loss, (int, float)) else ""
        choices.append(Choice(f"{r.name} · {r.status_text} · {step}{loss}", str(r.path)))
    if not choices:
        console.print(f"[dim]{empty}[/]")
    choices.append(Choice("Type a model id or folder" if or_model else "Type a run folder", "type"))
    picked = ask_select(message, choices)
    if picked != "type":
        return picked

    def folder(text: str) -> str:
        text = text.strip()
        if Path(text).expanduser().is_dir():
            return str(Path(text).expanduser())
        if or_model and text.count("/") == 1 and not text.startswith((".", "/", "~")):
            return text  # a ModelScope id
        raise ValueError(f"no folder at {text}" if text else "type a folder")

    return ask_text("Model id or folder:" if or_model else "Run folder:", parse=folder)


def _has_adapter(info) -> bool:
    return info.has_adapter


def _existing_file(text: str) -> str:
    if not Path(text.strip()).expanduser().is_file():
        raise ValueError(f"no file at {text.strip()}" if text.strip() else "type the path of a recipe file")
    return str(Path(text.strip()).expanduser())


def _parse_images(text: str) -> list[str]:
    items = shlex.split(text)
    if not items:
        raise ValueError("type an image file or a folder of images")
    missing = [i for i in items if not Path(i).expanduser().exists()]
    if missing:
        raise ValueError(f"nothing at {missing[0]}")
    return [str(Path(i).expanduser()) for i in items]


# ----------------------------------------------------------------------------- entries
def _new(machine) -> int:
    from wizard.ask.prompting import new_recipe

    return new_recipe(machine, from_menu=True)


def _resume(machine) -> int:
    from wizard.ask.prompting import BACK

    resume_run = _runner("resume_run")
    if resume_run is None:
        return _not_available("Resuming a run")
    run = _choose_run("Which run?", only=lambda r: r.resumable,
                      empty="No stopped or failed runs in ./runs to resume.")
    return 0 if run is BACK else int(resume_run(run) or 0)


def _replay(machine) -> int:
    from wizard.ask.prompting import BACK, ask_confirm, ask_select, ask_text, show_summary
    from wizard.ask.questions import Choice
    from wizard.recipe import load_recipe

    start_run = _runner("start_run")
    if start_run is None:
        return _not_available("Replaying a recipe")
    recipes = sorted(Path("recipes").glob("*.yaml")) + sorted(Path("recipes").glob("*.yml"))
    choices = [Choice(str(p), str(p)) for p in recipes] + [Choice("Type a recipe path", "type")]
    if not recipes:
        console.print("[dim]No recipes in ./recipes yet: New run writes one.[/]")
    picked = ask_select("Which recipe?", choices)
    if picked == "type":
        picked = ask_text("Recipe file:", parse=_existing_file)
    if picked is BACK:
        return 0
    recipe = load_recipe(picked)
    show_summary(recipe, Path(picked), machine)
    if ask_confirm("Start training with this recipe?", default=True) is not True:  # no, or back
        return 0
    return int(start_run(recipe, recipe_path=Path(picked)) or 0)


def _runs(machine) -> int:
    from wizard.ask.prompting import ask_checkbox, ask_confirm
    from wizard.ask.questions import Choice
    from wizard.rundir import list_runs

    status, runs = _call("runs", []), list_runs()
    if len(runs) >= 2 and ask_confirm("Compare runs?", default=False) is True:
        picked = ask_checkbox("Compare which runs? (space picks, enter compares)",
                              [Choice(r.name, str(r.path)) for r in runs], [])
        return _call("compare", picked) if isinstance(picked, list) and len(picked) >= 2 else status
    return status


def _caption(machine) -> int:
    from wizard.ask.prompting import BACK, ask_text

    source = _choose_run("Caption with which run (its adapter) or model?", only=_has_adapter, or_model=True,
                         empty="No finished runs with an adapter in ./runs: type a run folder, a model "
                               "folder or a ModelScope id.")
    if source is BACK:
        return 0
    images = ask_text("Image file(s) or folder (separate several with spaces):", parse=_parse_images)
    if images is BACK:
        return 0
    return _call("caption", [source, *images])


def _eval(machine) -> int:
    from wizard.ask.prompting import BACK

    run = _choose_run("Evaluate which run?", only=_has_adapter, empty="No finished runs in ./runs yet.")
    return 0 if run is BACK else _call("eval", [run])


def _export(machine) -> int:
    from wizard.ask.prompting import BACK, ask_select
    from wizard.ask.questions import Choice

    run = _choose_run("Export which run?", only=_has_adapter, empty="No finished runs in ./runs yet.")
    if run is BACK:
        return 0
    how = ask_select("Export as", [
        Choice("The adapter (small; loaded on top of the base model)", "adapter"),
        Choice("A merged model (LoRA merged into the full-precision base; for serving)", "merged")])
    if how is BACK:
        return 0
    return _call("export", [run] + (["--merge"] if how == "merged" else []))


ACTIONS = {"new": _new, "resume": _resume, "replay": _replay, "runs": _runs, "caption": _caption,
           "eval": _eval, "export": _export}


def main_menu(args) -> int:
    """`caption-wizard`: the menu, until Quit. Ctrl-C anywhere: exit 130 (cli.py)."""
    from wizard import __version__
    from wizard.ask.prompting import BACK, ask_select, require_terminal
    from wizard.ask.questions import Choice
    from wizard.machine import detect_machine

    require_terminal()
    machine = detect_machine()
    console.print(f"[bold]caption-wizard {__version__}[/] · fine-tune your own image-captioning model")
    console.print(f"[dim]This machine: {machine.describe()}[/]")
    choices = [Choice(title if _available(module) else f"{title} (not available yet)", key)
               for title, key, module in ENTRIES]
    last = "new"
    while True:
        picked = ask_select("What do you want to do?", choices, last, can_go_back=False)
        if picked in ("quit", BACK):
            return 0
        last = picked
        try:
            ACTIONS[picked](machine)
        except (UserError, RunFailed) as e:  # say what went wrong, then back to the menu
            console_err.print(f"[bold red]error:[/] {escape(str(getattr(e, 'message', e)))}", highlight=False)
            if getattr(e, "hint", None):
                console_err.print(f"  [yellow]hint:[/] {escape(e.hint)}", highlight=False)
        console.print()


def cmd_new(args) -> int:
    """`caption-wizard new`: the questionnaire; with --defaults, no questions."""
    from wizard.machine import detect_machine

    machine = detect_machine()
    if not args.defaults:
        from wizard.ask.prompting import new_recipe

        return new_recipe(machine, out=args.out, force=args.force)

    from wizard.ask.questions import default_recipe
    from wizard.estimate import estimate_memory
    from wizard.recipe import save_recipe

    recipe = default_recipe(machine)
    path = Path(args.out) if args.out else Path("recipes") / f"{recipe.name}.yaml"
    save_recipe(recipe, path, overwrite=args.force)  # UserError (exit 2) if it exists without --force
    console.print(f"Wrote {escape(str(path))}: {escape(recipe.model.id)}, {recipe.tuning.strategy.value}, "
                  f"{escape(recipe.data.dataset)} "
                  f"(defaults for this machine: {machine.describe()})")
    est = estimate_memory(recipe, list(machine.gpus), ram_bytes=machine.ram_bytes)
    if est.warning:
        console.print(f"[yellow]warning: {escape(est.warning)}[/]")
        if est.suggestion:
            console.print(f"[green]suggestion: {escape(est.suggestion)}[/]")
    console.print(f"Replay it with: caption-wizard run {path}", markup=False)
    return 0
