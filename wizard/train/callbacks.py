"""What the training process tells the world: events, state.json, checkpoints, signals.

    recorder = RunRecorder(run_dir)             # wizard.events: events.jsonl + state.json
    stop = StopFlag.install()                   # SIGINT/SIGTERM: finish the step, save, stop
    trainer.add_callback(EventsCallback(recorder, losses, stop, ...))

The training process never draws: the dashboard (or `runs`, or a plain follower) reads
events.jsonl and state.json. Events are listed in docs/architecture.md ("The events contract").
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from wizard import rundir
from wizard.rundir.events import RunRecorder

# Tests that press keys while a tiny model trains set this (seconds per step) so that a human-speed
# interaction (Ctrl-C at step 4 of 12) does not race a model that finishes in under a second.
STEP_DELAY_S = float(os.environ.get("CAPTION_WIZARD_STEP_DELAY_S") or 0)


# ----------------------------------------------------------------------------- memory
def _proc_rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _mem_total() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def memory_snapshot(device: str) -> dict[str, Any]:
    """CPU: this process's RSS and peak RSS. CUDA: this process's GPU: allocated/reserved/peak from its
    own allocator, used/total from NVML (the handle matched by UUID or PCI bus id, not by index)."""
    if not device.startswith("cuda"):
        rss = _proc_rss()
        from wizard.machine import peak_rss

        return {"kind": "cpu", "rss": rss, "peak_rss": max(peak_rss(), rss), "total": _mem_total()}
    import torch

    from wizard.machine import cuda_device_ids, nvml_memory

    i = torch.device(device).index or 0
    used, total = nvml_memory(*cuda_device_ids(i))
    return {"kind": "cuda", "devices": [{
        "index": int(os.environ.get("RANK", i)), "name": torch.cuda.get_device_name(i),
        "allocated": torch.cuda.memory_allocated(i), "reserved": torch.cuda.memory_reserved(i),
        "peak": torch.cuda.max_memory_allocated(i), "used": used, "total": total}]}


def gather_memory(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Every rank's snapshot, merged (a collective: all ranks call it): one row per GPU, each from the
    process that owns it; on the CPU the processes' RSS added up (they share the machine's RAM)."""
    if not _distributed():
        return snapshot
    from accelerate.utils import gather_object

    return merge_memory(gather_object([snapshot]))


def merge_memory(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    if snapshots[0].get("kind") == "cpu":
        return {"kind": "cpu", "rss": sum(s.get("rss") or 0 for s in snapshots),
                "peak_rss": sum(s.get("peak_rss") or 0 for s in snapshots), "total": snapshots[0].get("total"),
                "processes": len(snapshots)}
    return {"kind": "cuda", "devices": [d for s in snapshots for d in s.get("devices") or []]}


# ----------------------------------------------------------------------------- signals
class StopFlag:
    """SIGINT/SIGTERM handling.

    While the model and data load ("setup") a signal interrupts at once (nothing to save).
    While training it only sets the flag: the step in progress finishes, a checkpoint is
    saved at that step, and training stops. After training ("finish") it is ignored: the
    adapter is being written and the run is about to complete anyway.
    """

    def __init__(self):
        self.phase = "setup"
        self.requested: str | None = None  # the signal's name once one arrived

    @classmethod
    def install(cls) -> "StopFlag":
        flag = cls()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, flag._handle)
        return flag

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.phase == "setup":
            self.requested = name
            raise KeyboardInterrupt(name)
        if self.requested is None:
            self.requested = name
            print(f"{name}: finishing this step, then saving a checkpoint", flush=True)


# ----------------------------------------------------------------------------- losses
class LossTracker:
    """The exact loss of every optimizer step, and the ones not yet logged.

    The Trainer adds each micro-batch's loss; a step's loss is their sum (the Trainer scales
    them for gradient accumulation). A logged loss is the mean over the steps since the last
    log. The steps not yet logged travel in the checkpoint marker, so a resumed run logs
    exactly what an uninterrupted one does.
    """

    def __init__(self):
        self._step = None
        self.pending: list[float] = []
        self.last: float | None = None
        self.best: float | None = None

    def add(self, loss) -> None:
        self._step = loss if self._step is None else self._step + loss

    def end_step(self) -> None:
        if self._step is not None:
            self.pending.append(float(self._step))
            self._step = None

    def take(self) -> float | None:
        if not self.pending:
            return None
        value = sum(self.pending) / len(self.pending)
        self.pending = []
        self.last = value
        self.best = value if self.best is None else min(self.best, value)
        return value


# ----------------------------------------------------------------------------- the callback
class EventsCallback(TrainerCallback):
    """Trainer hooks -> events.jsonl + state.json + complete checkpoints + graceful stop."""

    def __init__(self, recorder: RunRecorder, losses: LossTracker, stop: StopFlag, *, device: str,
                 start_fields: dict[str, Any], samples_per_step: int, token_counter, save_total_limit: int | None,
                 seconds_before: float = 0.0, caption_sample: tuple | None = None):
        self.rec = recorder
        self.losses = losses
        self.stop = stop
        self.device = device
        self.start_fields = start_fields
        self.samples_per_step = samples_per_step
        self.token_counter = token_counter  # a TokenCounter: .tokens grows as the trainer takes batches
        self.save_total_limit = save_total_limit
        self.seconds_before = seconds_before  # training time of earlier sessions of this run
        self.caption_sample = caption_sample  # (recipe, held-out examples) when train.eval_metrics is on
        self.stopped_at: int | None = None

    # timing window between two log events
    def _reset_window(self, step: int) -> None:
        self._window = (time.perf_counter(), step, self.token_counter.tokens)

    def seconds(self) -> float:
        return self.seconds_before + (time.perf_counter() - self._t0)

    def on_train_begin(self, args, state, control, **kw):
        self._t0 = time.perf_counter()
        self._reset_window(state.global_step)
        resumed = state.global_step > 0
        self.rec.event("start", total_steps=state.max_steps, start_step=state.global_step, resumed=resumed,
                       **self.start_fields)
        self.rec.state(status="running", step=state.global_step, total_steps=state.max_steps)
        print(f"training: steps {state.global_step + 1}..{state.max_steps}", flush=True)

    def on_step_end(self, args, state, control, **kw):
        if STEP_DELAY_S:
            time.sleep(STEP_DELAY_S)
        self._step_ended = time.perf_counter()
        self.losses.end_step()
        if self.stopped_at is None and _any_rank(self.stop.requested is not None, self.device):
            self.stopped_at = state.global_step
            control.should_save = True  # checkpoint at exactly this step...
            control.should_training_stop = True  # ...then leave the loop
            self.rec.warning(f"{self.stop.requested or 'stop'}: stopping at step {state.global_step}; "
                             "saving a checkpoint")
        if control.should_save and state.is_world_process_zero:  # room for it? (DiskFull, or a warning)
            from wizard.train.diskspace import check_before_save

            check_before_save(self.rec.dir, self._warn_once)
        return control

    def _warn_once(self, message: str) -> None:
        if not getattr(self, "_disk_warned", False):
            self._disk_warned = True
            self.rec.warning(message)

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        if "loss" not in logs or "train_runtime" in logs:
            return  # eval metrics arrive through on_evaluate; the final summary is not a step
        loss = self.losses.take()  # exact; with several processes already the mean over them (CaptionTrainer)
        loss = logs["loss"] if loss is None else loss
        memory = gather_memory(memory_snapshot(self.device))  # every rank: a collective
        t0, step0, tokens0 = self._window
        dt = max(time.perf_counter() - t0, 1e-9)
        steps = state.global_step - step0
        grad_norm = logs.get("grad_norm")
        self.rec.event("log", step=state.global_step, epoch=round(state.epoch or 0.0, 4), loss=loss,
                       learning_rate=logs.get("learning_rate"),
                       grad_norm=None if grad_norm is None else float(grad_norm),
                       samples_per_s=steps * self.samples_per_step / dt,
                       tokens_per_s=(self.token_counter.tokens - tokens0) / dt,
                       memory=memory)
        self.rec.state(durable=False, step=state.global_step, last_loss=loss)
        print(f"step {state.global_step}/{state.max_steps} loss {loss:.4f} lr {logs.get('learning_rate', 0):.3g}",
              flush=True)
        self._reset_window(state.global_step)

    def on_evaluate(self, args, state, control, metrics=None, model=None, processing_class=None, **kw):
        metrics = metrics or {}
        if "eval_loss" not in metrics:
            return
        fields = {"eval_loss": float(metrics["eval_loss"])}
        scores = self._caption_metrics(model, processing_class) if self.caption_sample else None
        if scores:
            fields["metrics"] = scores
        self.rec.event("eval", step=state.global_step, which="tuned", **fields)
        print(f"eval at step {state.global_step}: eval_loss {fields['eval_loss']:.4f}"
              + (f" {scores}" if scores else ""), flush=True)

    def _caption_metrics(self, model, processor) -> dict | None:
        """Caption a few held-out images and score them; the RNG is left exactly as it was."""
        from wizard.evaluate import sample_metrics

        recipe, examples = self.caption_sample
        saved = _rng_state()
        try:
            return sample_metrics(model, processor, examples, recipe)
        except Exception as e:  # noqa: BLE001 - scores are a bonus; training goes on without them
            self.rec.warning(f"caption metrics skipped: {type(e).__name__}: {e}")
            return None
        finally:
            _set_rng_state(saved)

    def on_save(self, args, state, control, **kw):
        _barrier()  # every rank has written its part of the checkpoint before rank 0 marks it complete
        if not state.is_world_process_zero:
            return
        saving_started = time.perf_counter()
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        rundir.mark_checkpoint_complete(
            path, state.global_step, pending_losses=self.losses.pending, last_loss=self.losses.last,
            best_loss=self.losses.best, seconds=self.seconds(),
        )
        rundir.rotate_checkpoints(self.rec.dir, self.save_total_limit)
        rel = path.relative_to(self.rec.dir).as_posix()
        self.rec.event("checkpoint", sync=True, step=state.global_step, path=rel)
        self.rec.state(step=state.global_step, last_checkpoint=rel)
        print(f"checkpoint: {rel}", flush=True)
        # samples/s measures training, not saving: move the window start past the time the save took
        t0, step0, tokens0 = self._window
        self._window = (t0 + time.perf_counter() - min(saving_started, getattr(self, "_step_ended", saving_started)),
                        step0, tokens0)


# ----------------------------------------------------------------------------- helpers
def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _any_rank(flag: bool, device: str) -> bool:
    """With several processes, all stop at the same step when any of them got the signal."""
    if not _distributed():
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _barrier() -> None:
    if _distributed():
        import torch.distributed as dist

        dist.barrier()


def _rng_state():
    import random

    import numpy as np
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def _set_rng_state(saved) -> None:
    import random

    import numpy as np
    import torch

    py, npy, cpu, cuda = saved
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)
