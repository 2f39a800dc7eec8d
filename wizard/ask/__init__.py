"""The wizard's interactive side: questions as data and the pure answers -> Recipe (questions/), the thin
prompting layer (prompting.py, the only questionary user), the summary screen, and the main menu's entries.

May import planning (defaults, catalog, machine, estimate, recipe, plan, data), launch's per-GPU estimate and
wizard.console; never cli.py, commands/, dashboard/ or train/ (the menu's entries and the wizard's "start it
now" get the command runner handed in)."""
