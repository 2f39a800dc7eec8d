"""`caption-wizard` with no command: the main menu, until Quit.

    caption-wizard                                   main menu

Each entry (wizard/ask/menu.py) runs its command through `args.run_command`, which wizard/cli.py hands over:
the command line's own parser and function table, so the menu and the command line cannot drift apart
(and nothing here imports cli). A bad input or a failed run is reported and the menu shows again; Ctrl-C
anywhere: exit 130 (cli.py). Nothing heavy is imported before the menu shows.
"""

from __future__ import annotations

from rich.markup import escape

from wizard.ask.menu import ACTIONS, menu_choices
from wizard.console import console, console_err
from wizard.errors import RunFailed, UserError


def main_menu(args) -> int:
    """`caption-wizard`: the menu, until Quit."""
    from wizard import __version__
    from wizard.ask.prompting import BACK, ask_select, require_terminal
    from wizard.machine import detect_machine

    require_terminal()
    machine = detect_machine()
    console.print(f"[bold]caption-wizard {__version__}[/] · fine-tune your own image-captioning model")
    console.print(f"[dim]This machine: {machine.describe()}[/]")
    choices = menu_choices()
    last = "new"
    while True:
        picked = ask_select("What do you want to do?", choices, last, can_go_back=False)
        if picked in ("quit", BACK):
            return 0
        last = picked
        try:
            ACTIONS[picked](machine, args.run_command)
        except (UserError, RunFailed) as e:  # say what went wrong, then back to the menu
            console_err.print(f"[bold red]error:[/] {escape(str(getattr(e, 'message', e)))}", highlight=False)
            if getattr(e, "hint", None):
                console_err.print(f"  [yellow]hint:[/] {escape(e.hint)}", highlight=False)
        console.print()
