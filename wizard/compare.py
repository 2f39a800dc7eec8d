"""`caption-wizard compare RUN RUN...`: what differs between runs, how they scored, and their loss curves.

    caption-wizard compare runs/demo-shapes-20250101-120000 runs/demo-shapes-20250102-090000
    caption-wizard compare runs/a runs/b runs/c --out compare.png

Prints three tables (pure functions of the runs, tested without training):
  runs      status, steps, last loss, last eval loss
  recipe    every recipe key whose value is not the same in all runs (the run name aside)
  metrics   each run's eval.json (`caption-wizard eval`): base and tuned, per metric
and writes one PNG with the runs' training-loss curves overlaid (smoothed, raw faint; eval loss as points).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard.errors import UserError
from wizard.metrics import METRICS

DEFAULT_PLOT = "compare-loss.png"


@dataclass
class RunSummary:
    name: str
    path: Path
    status: str
    recipe: dict[str, Any]  # flattened: {"train.learning_rate": 0.0001, ...}
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, eval_loss)
    eval_result: dict | None = None  # eval.json


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def loss_curve(events: list[dict]) -> tuple[list[int], list[float], list[tuple[int, float]]]:
    """(steps, losses, evals) from a run's events; a resumed run's repeated steps keep the latest value."""
    losses: dict[int, float] = {}
    evals: dict[int, float] = {}
    for e in events:
        step = e.get("step")
        if not isinstance(step, int):
            continue
        if e.get("type") == "log" and "loss" in e:
            losses[step] = math.nan if e["loss"] is None else float(e["loss"])
        elif e.get("type") == "eval" and isinstance(e.get("eval_loss"), (int, float)):
            evals[step] = float(e["eval_loss"])
    steps = sorted(losses)
    return steps, [losses[s] for s in steps], sorted(evals.items())


def load_summary(run_dir: str | os.PathLike) -> RunSummary:
    from wizard.events import read_events
    from wizard.runs import EVENTS_FILE, load_run

    info = load_run(run_dir)  # UserError unless it is a run folder
    recipe = flatten(info.recipe().to_dict())
    steps, losses, evals = loss_curve(read_events(info.path / EVENTS_FILE))
    result = None
    try:
        result = json.loads((info.path / "eval.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except ValueError:
        raise UserError(f"{info.path / 'eval.json'}: not valid JSON",
                        hint=f"score the run again with: caption-wizard eval {info.path}") from None
    return RunSummary(info.name, info.path, info.status_text, recipe, steps, losses, evals,
                      result if isinstance(result, dict) else None)


def recipe_differences(runs: list[RunSummary]) -> list[tuple[str, list[Any]]]:
    """[(dotted key, [value in each run])] for the keys whose values are not all equal; `name` left out."""
    keys = sorted(set().union(*(r.recipe for r in runs)) - {"name"})
    missing = object()
    out = []
    for key in keys:
        values = [r.recipe.get(key, missing) for r in runs]
        if any(v != values[0] for v in values[1:]):
            out.append((key, [None if v is missing else v for v in values]))
    return out


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


def save_compare_plot(path: str | os.PathLike, runs: list[RunSummary]) -> Path:
    """One PNG: each run's loss (raw faint, smoothed solid) and eval loss points, one colour per run."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    from wizard.plot import ema

    path = Path(path)
    fig = Figure(figsize=(9, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab10"]
    for i, r in enumerate(runs):
        colour = colours(i % 10)
        pts = [(s, y) for s, y in zip(r.steps, r.losses) if math.isfinite(y)]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, color=colour, alpha=0.25, linewidth=1)
            ax.plot(xs, ema(ys), color=colour, linewidth=2, label=r.name)
        else:
            ax.plot([], [], color=colour, label=f"{r.name} (no logged loss)")
        if r.evals:
            ax.plot(*zip(*r.evals), color=colour, marker="D", linestyle="--", linewidth=1)
    if any(r.evals for r in runs):
        ax.plot([], [], color="grey", marker="D", linestyle="--", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (smoothed; raw faint)")
    ax.set_title("loss curves")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path


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
    out = save_compare_plot(args.out or DEFAULT_PLOT, runs)
    console.print(f"wrote {out} (loss curves of {len(runs)} runs)", soft_wrap=True)
    return 0
