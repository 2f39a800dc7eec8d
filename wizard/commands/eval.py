"""`caption-wizard eval [RUN_DIR | --last]`: caption metrics on the held-out split, base vs tuned
(wizard.evaluate scores; this prints the sample and metric tables and writes eval.json)."""

from __future__ import annotations

from wizard.evaluate import METRICS, evaluate_run, save_eval


def render_eval(result: dict):
    """A rich table: metric | base | tuned | delta (pure: result dict -> renderable)."""
    from rich.table import Table

    base = result.get("base")
    table = Table(title=f"step {result.get('step')}", title_justify="left")
    table.add_column("metric")
    if base:
        table.add_column("base", justify="right")
    table.add_column("tuned", justify="right")
    if base:
        table.add_column("delta", justify="right")
    for m in METRICS:
        tuned = result["tuned"][m]
        if base:
            d = tuned - base[m]
            colour = "green" if d > 0 else "red" if d < 0 else ""
            table.add_row(m, f"{base[m]:.3f}", f"{tuned:.3f}", f"[{colour}]{d:+.3f}[/]" if colour else f"{d:+.3f}")
        else:
            table.add_row(m, f"{tuned:.3f}")
    return table


def render_samples(result: dict, k: int = 5):
    from rich.markup import escape
    from rich.table import Table

    base = result.get("base")
    table = Table(title=f"first {min(k, len(result['samples']))} held-out image(s)", title_justify="left")
    table.add_column("reference")
    if base:
        table.add_column("base")
    table.add_column("tuned")
    for s in result["samples"][:k]:
        row = [s["references"][0] if s["references"] else ""]
        if base:
            row.append(s.get("base", ""))
        row.append(s["tuned"])
        table.add_row(*(escape(str(cell)) for cell in row))
    return table


def cmd_eval(args) -> int:
    from wizard.console import console, console_err
    from wizard.ui.progress import RichProgress
    from wizard.fsutil import check_new_file

    if getattr(args, "out", None):  # checked before the work as well as after
        check_new_file(args.out, force=getattr(args, "force", False))

    which = "tuned and base models" if not args.no_base else "tuned model"
    with console_err.status(f"loading the {which}...", spinner="dots") as status:
        def on_batch(done: int, total: int) -> None:
            status.update(f"captioning the held-out images with the {which}: {done}/{total}...")

        result = evaluate_run(args.run_dir, limit=args.limit, base=not args.no_base, progress=RichProgress(),
                              on_batch=on_batch, write=False)
    console.print(render_samples(result))
    both = "; base and tuned captioned with the same prompt and settings" if result.get("base") else ""
    console.print(f"{result['run']}: {result['n']} held-out image(s), references in "
                  f"{result['language']!r}{both}", soft_wrap=True)
    console.print(render_eval(result))
    if getattr(args, "out", None):
        check_new_file(args.out, force=getattr(args, "force", False))
    path = save_eval(args.run_dir, result, getattr(args, "out", None))  # after the table: a failed write loses nothing
    console.print(f"wrote {path}", soft_wrap=True, markup=False)
    return 0
