"""The interactive wizard: questions as data, a pure answers -> recipe function, the prompting, the summary.

May import: questionary and rich (the prompting), wizard.console, the torch-free planning modules
(recipe, catalog, model, estimate, machine, data.check, launch's per-GPU estimate). Never commands,
dashboard or train/; starting a run is handed back to the command that asked (wizard.commands).
"""
