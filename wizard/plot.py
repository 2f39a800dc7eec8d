"""loss.png: the run's loss curve as an image, written at the end of a run (matplotlib, Agg).

    from wizard.plot import save_loss_plot
    save_loss_plot("runs/NAME/loss.png", steps, losses, evals=[(100, 0.61)], title="NAME")

matplotlib is imported inside the function: importing this module costs nothing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

SMOOTHING = 0.8   # the dashboard's EMA weight, so the image matches the terminal chart


def ema(values, weight: float = SMOOTHING) -> list[float]:
    """TensorBoard's debiased exponential moving average; non-finite values are skipped."""
    out, last, n = [], 0.0, 0
    for y in values:
        if math.isfinite(y):
            last, n = last * weight + (1 - weight) * y, n + 1
        out.append(last / (1 - weight ** n) if n else math.nan)
    return out


def save_loss_plot(path: str | os.PathLike, steps, losses, *, evals=(), title: str = "",
                   smoothing: float = SMOOTHING) -> Path:
    """Write raw + smoothed training loss (and eval loss points) over steps to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure   # no pyplot: no global state, no GUI backend

    path = Path(path)
    pts = [(s, y) for s, y in zip(steps, losses) if math.isfinite(y)]
    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    if pts:
        xs, ys = zip(*pts)
        ax.plot(xs, ys, color="tab:blue", alpha=0.3, linewidth=1, label="loss (raw)",
                marker="o" if len(xs) < 20 else None, markersize=3)
        ax.plot(xs, ema(ys, smoothing), color="tab:blue", linewidth=2,
                label=f"loss (smoothed, EMA {smoothing})")
    bad = [s for s, y in zip(steps, losses) if not math.isfinite(y)]
    if bad:
        for s in bad:
            ax.axvline(s, color="tab:red", linestyle=":", linewidth=1)
        ax.plot([], [], color="tab:red", linestyle=":", label=f"NaN/inf loss (first at step {bad[0]})")
    ev = [(s, y) for s, y in evals if math.isfinite(y)]
    if ev:
        ax.plot(*zip(*ev), color="tab:purple", marker="D", linestyle="--", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "training loss")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)   # a half-written image never carries the final name
    return path
