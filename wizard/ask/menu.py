"""The main menu's entries: what each asks before it runs (which run, which images, adapter or merged).

    caption-wizard                                   the menu: wizard/commands/menu.py shows it, then
                                                     ACTIONS[entry](machine, run_command)

An entry that runs a command does it through `run_command(command, argv)` (wizard/cli.py's, handed over by
the menu command), so it gets the same function and the same parsed arguments as the command line: the
menu and the command line cannot drift apart. Nothing heavy is imported before the menu shows. Imports no cli and no commands.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Callable

from wizard.console import console

RunCommand = Callable[[str, list[str]], int]  # (command, argv) -> exit status, as on the command line

ENTRIES = [  # (title, what it runs)
    ("New run: answer a few questions, save a recipe, train", "new"),
    ("Resume a run", "resume"),
    ("Replay a recipe", "replay"),
    ("Runs", "runs"),
    ("Caption images", "caption"),
    ("Evaluate a run", "eval"),
    ("Export a run", "export"),
    ("Quit", "quit"),
]


# ----------------------------------------------------------------------------- choosing things
def _choose_run(message: str, *, only=lambda info: True, empty: str, or_model: bool = False) -> Any:
    """A run folder from ./runs (or typed: a folder, or a ModelScope id when `or_model`); a string or BACK."""
    from wizard.ask.prompting import ask_select, ask_text
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
def _new(machine, call: RunCommand) -> int:
    from wizard.ask.prompting import new_recipe

    return new_recipe(machine, from_menu=True, start=lambda path: call("run", [str(path)]))


def _resume(machine, call: RunCommand) -> int:
    from wizard.ask.prompting import BACK

    run = _choose_run("Which run?", only=lambda r: r.resumable,
                      empty="No stopped or failed runs in ./runs to resume.")
    return 0 if run is BACK else call("resume", [run])


def _replay(machine, call: RunCommand) -> int:
    from wizard.ask.prompting import BACK, ask_confirm, ask_select, ask_text, show_summary
    from wizard.ask.questions import Choice
    from wizard.recipe import load_recipe

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
    return call("run", [str(picked)])


def _runs(machine, call: RunCommand) -> int:
    from wizard.ask.prompting import ask_checkbox, ask_confirm
    from wizard.ask.questions import Choice
    from wizard.rundir import list_runs

    status, runs = call("runs", []), list_runs()
    if len(runs) >= 2 and ask_confirm("Compare runs?", default=False) is True:
        picked = ask_checkbox("Compare which runs? (space picks, enter compares)",
                              [Choice(r.name, str(r.path)) for r in runs], [])
        return call("compare", picked) if isinstance(picked, list) and len(picked) >= 2 else status
    return status


def _caption(machine, call: RunCommand) -> int:
    from wizard.ask.prompting import BACK, ask_text

    source = _choose_run("Caption with which run (its adapter) or model?", only=_has_adapter, or_model=True,
                         empty="No finished runs with an adapter in ./runs: type a run folder, a model "
                               "folder or a ModelScope id.")
    if source is BACK:
        return 0
    images = ask_text("Image file(s) or folder (separate several with spaces):", parse=_parse_images)
    if images is BACK:
        return 0
    return call("caption", [source, *images])


def _eval(machine, call: RunCommand) -> int:
    from wizard.ask.prompting import BACK

    run = _choose_run("Evaluate which run?", only=_has_adapter, empty="No finished runs in ./runs yet.")
    return 0 if run is BACK else call("eval", [run])


def _export(machine, call: RunCommand) -> int:
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
    return call("export", [run] + (["--merge"] if how == "merged" else []))


ACTIONS = {"new": _new, "resume": _resume, "replay": _replay, "runs": _runs, "caption": _caption,
           "eval": _eval, "export": _export}


def menu_choices() -> list:
    """The entries as a list to choose from."""
    from wizard.ask.questions import Choice

    return [Choice(title, key) for title, key in ENTRIES]
