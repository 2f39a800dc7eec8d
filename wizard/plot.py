"""Loss curves as images (matplotlib, Agg): loss.png at the end of a run, and `compare`'s overlay.

    write_loss_plot(run_dir)                  # RUN/loss.png from its events (the training process, rank 0)
    save_loss_plot(path, curve, title=...)    # one wizard.rundir.curve.LossCurve
    save_compare_plot(path, [(name, curve), ...])

matplotlib is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from wizard.rundir.curve import SMOOTHING, LossCurve, ema
from wizard.rundir.events import read_events
from wizard.rundir.layout import LOSS_PLOT


def _figure(size):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure   # no pyplot: no global state, no GUI backend

    return Figure(figsize=size, dpi=100, layout="constrained"), matplotlib


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)   # a half-written image never carries the final name
    return path


def write_loss_plot(run_dir: str | os.PathLike) -> Path | None:
    """RUN/loss.png from the run's events; None when no step was logged."""
    run_dir = Path(run_dir)
    curve = LossCurve.from_events(read_events(run_dir))
    if not curve.steps:
        return None
    return save_loss_plot(run_dir / LOSS_PLOT, curve, title=run_dir.name)


def save_loss_plot(path: str | os.PathLike, curve: LossCurve, *, title: str = "") -> Path:
    """Write raw + smoothed training loss (and eval loss points) over steps to `path` (PNG)."""
    fig, _ = _figure((8, 4.5))
    ax = fig.add_subplot()
    pts = [(s, y) for s, y in zip(curve.steps, curve.losses) if math.isfinite(y)]
    if pts:
        xs, ys = zip(*pts)
        ax.plot(xs, ys, color="tab:blue", alpha=0.3, linewidth=1, label="loss (raw)",
                marker="o" if len(xs) < 20 else None, markersize=3)
        ax.plot(xs, ema(ys), color="tab:blue", linewidth=2, label=f"loss (smoothed, EMA {SMOOTHING})")
    bad = [s for s, y in zip(curve.steps, curve.losses) if not math.isfinite(y)]
    if bad:
        for s in bad:
            ax.axvline(s, color="tab:red", linestyle=":", linewidth=1)
        ax.plot([], [], color="tab:red", linestyle=":", label=f"NaN/inf loss (first at step {bad[0]})")
    ev = [(s, y) for s, y in curve.evals if math.isfinite(y)]
    if ev:
        ax.plot(*zip(*ev), color="tab:purple", marker="D", linestyle="--", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "training loss")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")
    return _save(fig, Path(path))


def save_compare_plot(path: str | os.PathLike, runs: list[tuple[str, LossCurve]]) -> Path:
    """One PNG: each run's loss (raw faint, smoothed solid) and eval loss points, one colour per run."""
    fig, matplotlib = _figure((9, 5))
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab10"]
    for i, (name, curve) in enumerate(runs):
        colour = colours(i % 10)
        pts = [(s, y) for s, y in zip(curve.steps, curve.losses) if math.isfinite(y)]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, color=colour, alpha=0.25, linewidth=1)
            ax.plot(xs, ema(ys), color=colour, linewidth=2, label=name)
        else:
            ax.plot([], [], color=colour, label=f"{name} (no logged loss)")
        if curve.evals:
            ax.plot(*zip(*curve.evals), color=colour, marker="D", linestyle="--", linewidth=1)
    if any(curve.evals for _, curve in runs):
        ax.plot([], [], color="grey", marker="D", linestyle="--", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (smoothed; raw faint)")
    ax.set_title("loss curves")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    return _save(fig, Path(path))
