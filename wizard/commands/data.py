"""`caption-wizard data RECIPE_OR_PATH`: check the data without training.

    caption-wizard data recipes/qwen2-vl-2b-coco-en.yaml     # the recipe's data section
    caption-wizard data ~/pets                               # a path: the default recipe with that data
    caption-wizard run RECIPE --dry-run                      # the same check, then the memory estimate

wizard.data.check measures; this prints its report (report_lines).
"""

from __future__ import annotations

from pathlib import Path

from wizard.data.check import SHOW_EXAMPLES, check_recipe, report_lines
from wizard.fsnames import shown


def recipe_for(target: str):
    """RECIPE_OR_PATH -> (recipe, base_dir): a recipe file, or this machine's default recipe reading
    the given dataset (a folder or a data file)."""
    from wizard.recipe import load_recipe, recipe_from_dict

    path = Path(target).expanduser()
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        return load_recipe(path), path.parent
    from wizard.defaults import default_recipe
    from wizard.machine import detect_machine

    d = default_recipe(detect_machine()).to_dict()
    # the data section's own defaults (no cap, no language of the demo set); the model's image size
    d["data"] = {"dataset": str(path.resolve()) if path.exists() else target,
                 "max_pixels": d["data"]["max_pixels"], "min_pixels": d["data"]["min_pixels"]}
    return recipe_from_dict(d, "default recipe"), None


def cmd_data(args) -> int:
    from wizard.console import console
    from wizard.ui.progress import RichProgress
    from wizard.recipe import apply_overrides

    recipe, base_dir = recipe_for(args.target)
    recipe = apply_overrides(recipe, list(getattr(args, "overrides", None) or []))
    check = check_recipe(recipe, base_dir=base_dir, progress=RichProgress())
    print_check(check, recipe, console)
    return 0


def print_check(check, recipe, console, *, examples: int = SHOW_EXAMPLES) -> None:
    for line in report_lines(check, recipe, examples=examples):
        console.print(shown(line), markup=False, highlight=False, soft_wrap=True)
