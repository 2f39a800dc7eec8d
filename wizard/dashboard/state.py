"""Dashboard state: what the run's events.jsonl has said so far.

`DashboardState` is changed only by `state.apply(event)`; everything shown is
computed from it (plus an injected clock) by wizard.dashboard.render. Events come
from wizard.rundir.events (the contract, docs/architecture.md): unknown types are ignored.

Three event types are the dashboard's own and never appear in events.jsonl:
  {"type": "stop_requested"}           the user asked to stop; shown until the run ends
  {"type": "log_tail", "text": str}    train.log's tail, read when the backend died
  {"type": "launch", "t": command start, "resume": bool}
                                       this command started the backend: "starting" (or "resuming
                                       from checkpoint-N") until it reports, elapsed from the command's start
The backend's {"type": "data", "train_images", "eval_images"} labels the header's counts.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from wizard.rundir.curve import SMOOTHING, LossCurve  # noqa: F401  (SMOOTHING: the chart's legend)
from wizard.rundir.state import TERMINAL

STALL_FACTOR = 5.0       # no step for this many times the usual interval between logged steps...
STALL_MIN_S = 15.0       # ...and at least this long: the run is shown as stalled
RECENT_EVENTS = 12       # kept for the "recent" list
RATE_WINDOW = 8          # samples/s shown: the mean of the backend's last few figures (each is per log)


def num(x) -> float | None:
    """A float from an event field; None if absent. 'nan'/'inf' strings count as numbers."""
    if x is None or isinstance(x, bool):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


@dataclass
class Note:
    """One line of the "recent" list."""
    t: float
    kind: str        # checkpoint | warning | error | eval | status | start
    text: str


@dataclass
class DashboardState:
    run_dir: str = ""                 # set by the caller; used to print where things are
    # header (from "start")
    run: str = ""
    model: str = ""
    strategy: str = ""
    devices: list[str] = field(default_factory=list)
    recipe_hash: str = ""
    status: str = "starting"          # starting | running | stopped | failed | completed
    status_message: str | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    num_train: int | None = None
    num_eval: int | None = None
    batch_size: int | None = None
    data: str | None = None           # the front end's data summary: format, captions, skipped rows
    # progress
    total_steps: int = 0
    step: int = 0
    epoch: float | None = None
    first_t: float | None = None      # first event of the run
    last_t: float | None = None       # latest event of any kind
    # this session (since the latest "start"): ETA and stall detection use only these
    session_t: float | None = None
    session_start_step: int = 0
    resumed: bool = False
    session_logs: list[tuple[float, int]] = field(default_factory=list)   # (t, step)
    last_activity_t: float | None = None   # latest log/eval/checkpoint/start: the backend is moving
    # history over the whole run, resumed steps included (the chart)
    curve: LossCurve = field(default_factory=LossCurve)   # steps, losses, smoothed, lrs, grad norms, evals
    eval_metrics: dict = field(default_factory=dict)
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    memory: dict | None = None
    peak_memory: dict[str, int] = field(default_factory=dict)      # device -> peak bytes
    # endings
    notes: deque = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    error: str | None = None
    log_tail: str | None = None
    end: dict | None = None
    last_checkpoint: str | None = None
    stop_requested: bool = False
    command_t: float | None = None    # when the command that launched the backend started (launch event)
    images: tuple[int, int] | None = None     # (train, eval) images, from the backend's "data" event
    rates: deque = field(default_factory=lambda: deque(maxlen=RATE_WINDOW))

    # the curve's series, read by render and tests as the state's own
    steps = property(lambda self: self.curve.steps)
    losses = property(lambda self: self.curve.losses)
    smoothed = property(lambda self: self.curve.smoothed)
    lrs = property(lambda self: self.curve.lrs)
    grad_norms = property(lambda self: self.curve.grad_norms)
    evals = property(lambda self: self.curve.evals)
    best = property(lambda self: self.curve.best)
    nan_step = property(lambda self: self.curve.nan_step)
    nan_value = property(lambda self: self.curve.nan_value)

    # ---- the only mutator -------------------------------------------------
    def apply(self, event: dict) -> None:
        t = num(event.get("t"))
        if t is not None:
            if self.first_t is None:
                self.first_t = t
            self.last_t = t if self.last_t is None else max(self.last_t, t)
        handler = getattr(self, "_on_" + str(event.get("type")), None)
        if handler is not None:
            handler(event, t)

    def _note(self, t, kind, text):
        self.notes.append(Note(t if t is not None else (self.last_t or 0.0), kind, text))

    def _on_start(self, ev, t):
        self.run = ev.get("run") or self.run
        self.model = ev.get("model") or self.model
        self.strategy = ev.get("strategy") or self.strategy
        self.devices = list(ev.get("devices") or self.devices)
        self.recipe_hash = ev.get("recipe_hash") or self.recipe_hash
        for key in ("trainable_params", "total_params", "num_train", "num_eval", "batch_size", "data"):
            if ev.get(key) is not None:
                setattr(self, key, ev[key])
        self.total_steps = int(ev.get("total_steps") or self.total_steps)
        start = int(ev.get("start_step") or 0)
        self.resumed = bool(ev.get("resumed")) or start > 0
        self.session_t, self.session_start_step, self.session_logs = t, start, []
        self.rates.clear()
        self.last_activity_t = t
        self.step = start
        self.status, self.status_message, self.stop_requested = "running", None, False
        self.error, self.log_tail, self.end = None, None, None
        self.curve.apply(ev)  # steps after the checkpoint are redone: dropped
        self._note(t, "start", f"resumed at step {start}" if self.resumed else "training started")

    def _on_log(self, ev, t):
        step = ev.get("step")
        if step is None:
            return
        step = int(step)
        self.step = max(self.step, step)
        if ev.get("epoch") is not None:
            self.epoch = num(ev["epoch"])
        # the writer stores a NaN/inf loss as null (not JSON otherwise): a null loss is not finite
        loss = (math.nan if num(ev["loss"]) is None else num(ev["loss"])) if "loss" in ev else None
        if loss is not None:
            self.curve.add_log(step, loss, num(ev.get("learning_rate")), num(ev.get("grad_norm")))
        for key in ("samples_per_s", "tokens_per_s"):
            if ev.get(key) is not None:
                setattr(self, key, num(ev[key]))
        if num(ev.get("samples_per_s")) is not None:
            self.rates.append(num(ev["samples_per_s"]))
        if isinstance(ev.get("memory"), dict):
            self.memory = ev["memory"]
            self._track_peak(ev["memory"])
        if t is not None:
            self.session_logs.append((t, step))
            self.last_activity_t = t
        if self.status == "starting":
            self.status = "running"

    def _track_peak(self, mem: dict) -> None:
        if mem.get("kind") == "cpu":
            peak = max(num(mem.get("peak_rss")) or 0, num(mem.get("rss")) or 0)
            self.peak_memory["cpu"] = int(max(self.peak_memory.get("cpu", 0), peak))
            return
        for d in mem.get("devices") or []:
            name = f"cuda:{d.get('index', '?')}"
            peak = max(num(d.get("peak")) or 0, num(d.get("allocated")) or 0)
            self.peak_memory[name] = int(max(self.peak_memory.get(name, 0), peak))

    def _on_eval(self, ev, t):
        step = int(ev.get("step") or self.step)
        loss = num(ev.get("eval_loss"))
        if loss is not None:
            self.curve.add_eval(step, loss)
        metrics = ev.get("metrics") if isinstance(ev.get("metrics"), dict) else {}
        if metrics:
            self.eval_metrics[ev.get("which") or "tuned"] = metrics
        parts = [f"eval loss {loss:.4f}"] if loss is not None else []
        parts += [f"{k} {v:.3f}" if isinstance(v, (int, float)) and abs(v) < 1000 else f"{k} {v}"
                  for k, v in list(metrics.items())[:3]]
        which = f" ({ev['which']})" if ev.get("which") else ""
        self._note(t, "eval", f"step {step}{which}: " + (", ".join(parts) or "evaluated"))
        self.last_activity_t = t if t is not None else self.last_activity_t

    def _on_checkpoint(self, ev, t):
        path = ev.get("path") or f"checkpoints/checkpoint-{ev.get('step')}"
        self.last_checkpoint = path
        self._note(t, "checkpoint", f"{Path(path).name} saved")
        self.last_activity_t = t if t is not None else self.last_activity_t

    def _on_warning(self, ev, t):
        self._note(t, "warning", str(ev.get("message", "")))

    def _on_error(self, ev, t):
        self.error = str(ev.get("message") or "the training process failed")
        if ev.get("log_tail"):
            self.log_tail = str(ev["log_tail"])
        self._note(t, "error", self.error)

    def _on_status(self, ev, t):
        status = str(ev.get("status") or self.status)
        if status == "running" and self.status in TERMINAL:   # a resume is loading: no training yet
            self.session_t = None
        if status != self.status:
            text = status + (f": {ev['message']}" if ev.get("message") else "")
            self._note(t, "status", text)
        self.status = status
        self.status_message = ev.get("message") or None
        if status == "failed" and self.error is None and ev.get("message"):
            self.error = str(ev["message"])

    def _on_end(self, ev, t):
        self.end = dict(ev)
        if ev.get("step") is not None:
            self.step = max(self.step, int(ev["step"]))
        if self.status not in TERMINAL:
            self.status = "completed"

    def _on_launch(self, ev, t):
        """This command started the backend: until it reports, show that it is starting (or resuming)."""
        self.command_t = t
        if ev.get("resume"):
            where = Path(self.last_checkpoint).name if self.last_checkpoint else "the last checkpoint"
            self.status, self.status_message = "starting", f"resuming from {where}: loading"
        else:
            self.status, self.status_message = "starting", "starting the training process"
        self.session_t = None

    def _on_data(self, ev, t):
        train, evals = ev.get("train_images"), ev.get("eval_images")
        if isinstance(train, int):
            self.images = (train, int(evals or 0))

    def _on_stop_requested(self, ev, t):
        self.stop_requested = True

    def _on_log_tail(self, ev, t):
        self.log_tail = str(ev.get("text") or "") or self.log_tail

    # ---- derived numbers (pure; `now` is the injected clock) ------------------
    @property
    def name(self) -> str:
        """The run's name: from the start event, else its folder's name."""
        return self.run or Path(self.run_dir).name or "run"

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def best_loss(self) -> tuple[int, float] | None:
        return self.best

    def steps_per_s(self) -> float | None:
        """Speed over this session's logged steps only: a resume does not count the resumed steps."""
        logs = self.session_logs
        if len(logs) >= 2:
            (t0, s0), (t1, s1) = logs[0], logs[-1]
        elif len(logs) == 1 and self.session_t is not None:
            (t0, s0), (t1, s1) = (self.session_t, self.session_start_step), logs[0]
        else:
            return None
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None

    def usual_interval(self) -> float | None:
        """Median seconds between logged steps in this session (start -> first log if only one)."""
        times = [self.session_t] if self.session_t is not None else []
        times += [t for t, _ in self.session_logs]
        gaps = [b - a for a, b in zip(times, times[1:]) if b >= a]
        if len(gaps) > 1:
            gaps = gaps[1:]   # the first includes loading the model and data
        return statistics.median(gaps) if gaps else None

    def stalled_for(self, now: float) -> float | None:
        """Seconds without progress if that is several times the usual interval, else None."""
        if self.status != "running" or self.last_activity_t is None or self.stop_requested:
            return None   # (a stop is saving a checkpoint: quiet is expected)
        usual = self.usual_interval()
        if usual is None or not self.session_logs:
            return None
        quiet = now - self.last_activity_t
        return quiet if quiet > max(STALL_FACTOR * usual, STALL_MIN_S) else None

    def eta(self, now: float) -> float | None:
        """Seconds left, from this session's speed; None when unknown, finished or stalled."""
        rate = self.steps_per_s()
        if rate is None or self.total_steps <= 0 or self.finished or self.stalled_for(now):
            return None
        last_t = self.session_logs[-1][0] if self.session_logs else now
        return max(0.0, (self.total_steps - self.step) / rate - max(0.0, now - last_t))

    def elapsed(self, now: float) -> float:
        """Seconds of this session: from the command's start when this command launched it."""
        start = self.command_t if self.command_t is not None else (
            self.session_t if self.session_t is not None else self.first_t)
        if start is None:
            return 0.0
        stop = self.last_t if self.finished and self.last_t is not None else now
        return max(0.0, stop - start)

    def session_samples_per_s(self) -> float | None:
        """The backend's throughput; without it, this session's steps/s times the batch size."""
        if self.rates:   # smoothed: one slow or fast logging interval does not jump the figure
            return sum(self.rates) / len(self.rates)
        if self.samples_per_s is not None:
            return self.samples_per_s
        rate = self.steps_per_s()
        return rate * self.batch_size if rate is not None and self.batch_size else None
