"""`python -m wizard.commands.prepare RECIPE [KEY=VALUE ...]`: make the run folder, print its path.

The first step of a cluster job (wizard.launch.slurm_script): the folder is made once, on storage every
node sees; then srun starts one torchrun per node on it.
"""

from __future__ import annotations

import sys

from wizard.errors import UserError
from wizard.launch import write_configs


def _prepare(argv: list[str]) -> int:
    """Make the run folder for RECIPE (a cluster job's first step) and print its path."""
    from wizard.console import console_err
    from wizard.ui.download_progress import RichDownloadProgress
    from wizard.hub import resolve_model
    from wizard.recipe import apply_overrides, load_recipe
    from wizard.runner import create_run

    recipe_path, *overrides = argv
    recipe = apply_overrides(load_recipe(recipe_path), overrides)
    resolved = resolve_model(recipe.model, progress=RichDownloadProgress(console_err))
    run_dir = create_run(recipe, resolved, recipe_path=recipe_path)
    write_configs(recipe, run_dir)
    print(run_dir.resolve())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 1 or argv[0].startswith("-"):
        print("usage: python -m wizard.commands.prepare RECIPE [KEY=VALUE ...]", file=sys.stderr)
        return 2
    try:
        return _prepare(argv)
    except UserError as e:
        print(f"error: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
