"""`caption-wizard new`: the questionnaire; with --defaults, this machine's default recipe and no questions.

    caption-wizard new [--out recipes/x.yaml] [--force]            the questionnaire (wizard/ask/prompting.py)
    caption-wizard new --defaults [--out x.yaml] [--force]         no questions (wizard/defaults.py)
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from wizard.console import console


def cmd_new(args) -> int:
    from wizard.machine import detect_machine

    machine = detect_machine()
    if not args.defaults:
        from wizard.ask.prompting import new_recipe  # questionary: only when asking

        return new_recipe(machine, out=args.out, force=args.force,
                          start=lambda path: args.run_command("run", [str(path)]))

    from wizard.defaults import default_recipe
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
