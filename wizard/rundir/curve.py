"""The loss curve of a run, read from its events: the one builder, and its smoothing.

    curve = LossCurve.from_events(read_events(run_dir))     # compare, loss.png
    curve.add_log(step, loss, lr, grad_norm); curve.truncate(step)   # the dashboard, event by event

A resumed run redoes the steps after its checkpoint: a "start" event at start_step S drops every
point after S, and a repeated step replaces the newer points (the newest value is kept).
Smoothing is TensorBoard's debiased EMA (weight SMOOTHING), non-finite losses skipped: the
terminal chart, loss.png and `compare` show the same smoothed line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SMOOTHING = 0.8  # EMA weight for the smoothed loss (TensorBoard's slider; 0.6 is its default)


def ema(values, weight: float = SMOOTHING) -> list[float]:
    """TensorBoard's debiased exponential moving average; a non-finite value holds the last one."""
    out, last, n = [], 0.0, 0
    for y in values:
        if math.isfinite(y):
            last, n = last * weight + (1 - weight) * y, n + 1
        out.append(last / (1 - weight ** n) if n else y)
    return out


def _num(x) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


@dataclass
class LossCurve:
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)      # NaN where the loss was NaN/inf (null in the file)
    smoothed: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)   # (step, eval_loss)
    best: tuple[int, float] | None = None                  # (step, loss) of the lowest finite loss
    nan_step: int | None = None                            # first step whose loss was not finite
    nan_value: float | None = None
    _ema: float = 0.0
    _ema_n: int = 0

    @classmethod
    def from_events(cls, events) -> "LossCurve":
        curve = cls()
        for event in events:
            curve.apply(event)
        return curve

    def apply(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "start":
            start = int(event.get("start_step") or 0)
            if any(s > start for s in self.steps):  # steps after the checkpoint are redone: drop them
                self.truncate(start)
        elif kind == "log" and "loss" in event and _num(event.get("step")) is not None:
            loss = _num(event["loss"])
            self.add_log(int(event["step"]), math.nan if loss is None else loss,
                         _num(event.get("learning_rate")), _num(event.get("grad_norm")))
        elif kind == "eval" and _num(event.get("eval_loss")) is not None and _num(event.get("step")) is not None:
            self.add_eval(int(event["step"]), _num(event["eval_loss"]))

    def add_log(self, step: int, loss: float, lr: float | None = None, grad_norm: float | None = None) -> None:
        if self.steps and step <= self.steps[-1]:  # a repeated step: keep the newest value
            self.truncate(step - 1)
        self.steps.append(step)
        self.losses.append(loss)
        self._smooth(loss)
        if math.isfinite(loss) and (self.best is None or loss < self.best[1]):
            self.best = (step, loss)
        self.lrs.append(lr if lr is not None else math.nan)
        self.grad_norms.append(grad_norm if grad_norm is not None else math.nan)
        if not math.isfinite(loss) and self.nan_step is None:
            self.nan_step, self.nan_value = step, loss

    def add_eval(self, step: int, loss: float) -> None:
        self.evals = [(s, v) for s, v in self.evals if s != step] + [(step, loss)]

    def truncate(self, step: int) -> None:
        """Drop every point after `step` (and recompute the smoothing and the best loss)."""
        keep = [i for i, s in enumerate(self.steps) if s <= step]
        self.steps = [self.steps[i] for i in keep]
        self.losses = [self.losses[i] for i in keep]
        self.lrs = self.lrs[: len(keep)]
        self.grad_norms = self.grad_norms[: len(keep)]
        self.evals = [(s, v) for s, v in self.evals if s <= step]
        if self.nan_step is not None and self.nan_step > step:
            self.nan_step = self.nan_value = None
        self.smoothed, self._ema, self._ema_n, self.best = [], 0.0, 0, None
        for s, y in zip(self.steps, self.losses):
            self._smooth(y)
            if math.isfinite(y) and (self.best is None or y < self.best[1]):
                self.best = (s, y)

    def _smooth(self, y: float) -> None:
        """One more point of `ema`, kept incrementally (a frame must not redo the whole curve)."""
        if math.isfinite(y):
            self._ema = self._ema * SMOOTHING + (1 - SMOOTHING) * y
            self._ema_n += 1
        self.smoothed.append(self._ema / (1 - SMOOTHING ** self._ema_n) if self._ema_n else y)
