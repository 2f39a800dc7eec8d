"""The wizard's interactive side: questions as data and the pure answers -> Recipe (questions/), the thin
prompting layer (prompting.py, the only questionary user), the summary screen, and the main menu's entries.

May import planning (defaults, catalog, machine, estimate, recipe, plan, data) and runner; never cli.py or
commands/ (the menu's entries get the command runner handed in)."""
