"""`caption-wizard compare RUN RUN...`: recipe differences, eval metrics and overlaid loss curves
(wizard.compare reads the runs; this prints the tables and writes the PNG)."""

from __future__ import annotations

import math
from typing import Any

from wizard.compare import DEFAULT_PLOT, RunSummary, load_summary, recipe_differences
from wizard.errors import UserError
from wizard.metrics import METRICS


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "null" if value is None else str(value)


def _last(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return finite[-1] if finite else None


def render_runs(runs: list[RunSummary]):
    from rich.table import Table

    table = Table(title="runs", title_justify="left")
    for col in ("run", "status", "steps", "last loss", "last eval loss"):
        table.add_column(col, justify="left" if col in ("run", "status") else "right")
    for r in runs:
        loss, ev = _last(r.losses), (r.evals[-1][1] if r.evals else None)
        table.add_row(r.name, r.status, str(r.steps[-1]) if r.steps else "-",
                      f"{loss:.4f}" if loss is not None else "-", f"{ev:.4f}" if ev is not None else "-")
    return table


def render_differences(runs: list[RunSummary]):
    from rich.table import Table

    diffs = recipe_differences(runs)
    table = Table(title=f"recipe keys that differ ({len(diffs)})", title_justify="left")
    table.add_column("key")
    for r in runs:
        table.add_column(r.name, overflow="fold")
    from rich.text import Text

    for key, values in diffs:
        table.add_row(key, *(Text(_fmt(v)) for v in values))  # Text: "[q_proj, v_proj]" is not markup
    return table


def render_metrics(runs: list[RunSummary]):
    """metric | RUN base | RUN tuned | ... for the runs that have an eval.json."""
    from rich.table import Table

    scored = [r for r in runs if r.eval_result and isinstance(r.eval_result.get("tuned"), dict)]
    table = Table(title="eval metrics (eval.json; held-out split, base and tuned)", title_justify="left")
    table.add_column("metric")
    for r in scored:
        n = r.eval_result.get("n")
        if r.eval_result.get("base"):
            table.add_column(f"{r.name} base", justify="right")
        table.add_column(f"{r.name} tuned" + (f" (n={n})" if n else ""), justify="right")
    for m in METRICS:
        row = [m]
        for r in scored:
            base, tuned = r.eval_result.get("base"), r.eval_result["tuned"]
            if base:
                row.append(_num(base.get(m)))
            row.append(_num(tuned.get(m)))
        table.add_row(*row)
    return table, [r for r in runs if r not in scored]


def _num(v) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "-"


def cmd_compare(args) -> int:
    from wizard.console import console

    if len(args.runs) < 2:
        raise UserError("compare needs at least two run folders",
                        hint="list your runs with: caption-wizard runs")
    runs = [load_summary(p) for p in args.runs]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # same folder name under different parents: show the paths
        for r in runs:
            r.name = str(r.path)
    console.print(render_runs(runs))
    console.print(render_differences(runs))
    table, unscored = render_metrics(runs)
    if len(unscored) < len(runs):
        console.print(table)
    for r in unscored:
        console.print(f"{r.name}: no eval.json; score it with: caption-wizard eval {r.path}", soft_wrap=True)
    from wizard.plot import save_compare_plot

    out = save_compare_plot(args.out or DEFAULT_PLOT, [(r.name, r.curve) for r in runs])
    console.print(f"wrote {out} (loss curves of {len(runs)} runs)", soft_wrap=True)
    return 0
