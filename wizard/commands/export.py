"""`caption-wizard export [RUN_DIR | --last] [--merge] [--out DIR]`: the adapter, or a merged model for
serving (wizard.export writes it; this says where, how big, and how to use it)."""

from __future__ import annotations

from wizard.export import export_run, usage_text
from wizard.inference import EXPORT_RECIPE
from wizard.units import fmt_bytes


def cmd_export(args) -> int:
    from rich.markup import escape

    from wizard.console import console, console_err
    from wizard.ui.progress import RichProgress
    from wizard.recipe import load_recipe

    what = "merging the adapter into the base model" if args.merge else "copying the adapter"
    with console_err.status(f"{what}...", spinner="dots"):
        out = export_run(args.run_dir, merge=args.merge, out=args.out, force=args.force, progress=RichProgress())
    recipe = load_recipe(out / EXPORT_RECIPE)
    merged = (out / "config.json").is_file() and not (out / "adapter_config.json").is_file()
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    kind = "merged model" if merged else "adapter"
    console.print(f"[bold green]exported[/] {kind} to {escape(str(out))} ({fmt_bytes(size)})", soft_wrap=True)
    console.print(usage_text(out, merged, recipe), soft_wrap=True, markup=False)
    return 0
