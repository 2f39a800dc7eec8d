"""What differs between runs, how they scored, and their loss curves (`caption-wizard compare`, printed by
wizard.commands.compare).

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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard.errors import UserError
from wizard.rundir.curve import LossCurve

DEFAULT_PLOT = "compare-loss.png"


@dataclass
class RunSummary:
    name: str
    path: Path
    status: str
    recipe: dict[str, Any]  # flattened: {"train.learning_rate": 0.0001, ...}
    curve: LossCurve = field(default_factory=LossCurve)  # wizard.rundir.curve: the one loss-curve builder
    eval_result: dict | None = None  # eval.json

    steps = property(lambda self: self.curve.steps)
    losses = property(lambda self: self.curve.losses)
    evals = property(lambda self: self.curve.evals)  # (step, eval_loss)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load_summary(run_dir: str | os.PathLike) -> RunSummary:
    from wizard.rundir import EVAL_FILE, load_run, read_events

    info = load_run(run_dir)  # UserError unless it is a run folder
    recipe = flatten(info.recipe().to_dict())
    curve = LossCurve.from_events(read_events(info.path))
    result = None
    try:
        result = json.loads((info.path / EVAL_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except ValueError:
        raise UserError(f"{info.path / EVAL_FILE}: not valid JSON",
                        hint=f"score the run again with: caption-wizard eval {info.path}") from None
    return RunSummary(info.name, info.path, info.status_text, recipe, curve, result if isinstance(result, dict) else None)


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
