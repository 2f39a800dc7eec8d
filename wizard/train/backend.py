"""The training process of one run.

    python -m wizard.train.backend RUN_DIR [--resume]

Started by `caption-wizard run` / `resume` (wizard.runner) in its own session, with stdout and
stderr going to RUN_DIR/train.log. It reads RUN_DIR/recipe.yaml and lock.json, and reports
only through files: events.jsonl, state.json, checkpoints/, adapter/ (it never draws).

Reads top to bottom: setup (determinism, model, data, trainer) -> train -> save -> cleanup.
Exit status: 0 completed, 1 failed (NaN loss, crash), 2 bad input (data), 130 stopped by a
signal (SIGINT/SIGTERM: the step in progress finishes and a checkpoint is saved first).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from wizard import rundir


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    run_dir = Path(args.run_dir)
    rank0 = int(os.environ.get("RANK", "0")) == 0  # several GPUs (torchrun): only rank 0 writes the run
    from wizard.rundir.folder_lock import AlreadyLocked

    try:
        held = _hold_run_lock(run_dir) if rank0 else None  # noqa: F841 - held (open) for the life of the process
    except AlreadyLocked as e:  # another process trains this run: write nothing
        print(f"error: {run_dir} is already running (pid {e.pid}); this process writes nothing", file=sys.stderr,
              flush=True)
        return 2
    if rank0:  # first thing: `runs` sees us alive. Under torchrun its agent, our parent, gets the signals
        rundir.write_state(run_dir, pid=os.getppid() if "LOCAL_RANK" in os.environ else os.getpid(), status="running")
    from wizard.rundir.events import RunRecorder

    recorder, stop = RunRecorder(run_dir, writes=rank0), None
    if not rank0:  # one voice in train.log: the other ranks' prints would repeat rank 0's (stderr stays)
        sys.stdout = open(os.devnull, "w")
    recorder.status("running", ("resuming: " if args.resume else "") + "loading PyTorch and transformers")  # stage
    try:
        from wizard.train.callbacks import StopFlag  # imports transformers: seconds, Ctrl-C may come meanwhile

        stop = StopFlag.install()
        return train(run_dir, recorder, stop, resume=args.resume)
    except KeyboardInterrupt:
        why = (stop and stop.requested) or "SIGINT"
        recorder.status("stopped", f"{why} before training started; nothing to save")
        return 130
    except Exception as e:  # every failure ends as an error event + a failed state, never silently
        return _fail(recorder, e)


def _hold_run_lock(run_dir: Path):
    """The run folder's exclusive lock (wizard.rundir.folder_lock), taken before anything is written:
    inherited from the front end, or taken here; AlreadyLocked when another process holds it."""
    from wizard.rundir.folder_lock import FolderLock

    if "LOCAL_RANK" in os.environ and FolderLock.ENV in os.environ:
        return None  # under torchrun: its agent, our parent, got the front end's lock and holds it
    return FolderLock.inherited(run_dir)


# ----------------------------------------------------------------------------- the recipe
def train(run_dir: Path, recorder, stop, *, resume: bool) -> int:
    from wizard.recipe import load_recipe
    from wizard.rundir.lock import read_lock

    from wizard.train.dist import bind_local_device, check_world_size

    bind_local_device()  # cuda:LOCAL_RANK before anything touches CUDA
    recipe, lock = load_recipe(run_dir / rundir.RECIPE_FILE), read_lock(run_dir)
    check_world_size(lock, resume=resume, warn=recorder.warning, run_dir=run_dir)  # other process count?
    checkpoint = _resume_point(run_dir, recorder) if resume else None
    recorder.status("running", f"resuming from {checkpoint.name}: reading the data and the model, then "
                    "restoring weights, optimizer, scheduler, RNG and data position" if checkpoint
                    else "reading the data")

    from wizard.data.prepare import no_gc  # 100k examples, targets, items: no collection walks while made

    with no_gc():
        captions = _read_data(run_dir, recipe, lock, recorder, resume=resume)  # first: bad data fails fast
    recorder.event("data", train_images=len(captions.train), eval_images=len(captions.eval))  # dashboard counts
    recorder.status("running", f"loading the model {recipe.model.id}")  # stage
    device, threads = _setup_determinism(recipe, lock, recorder)  # seeds right before LoRA weights are drawn
    model, processor = _load_model(recipe, lock, device)
    recorder.status("running", f"building the dataset: {len(captions.train) + len(captions.eval)} images")  # stage
    with no_gc():
        data = _build_data(captions, recipe, processor, recorder, model.wizard_plan.family)  # the model's processor
    _record_device(run_dir, device, threads, data, resume=resume)
    from wizard.train.dist import world_size
    from wizard.train.vision_cache import setup_vision_cache

    _, how = setup_vision_cache(recipe, lock, model, processor, captions, data, device, world=world_size())
    print(how, flush=True)  # tuning.cache_vision: on or off, and why
    trainer, events = _build_trainer(run_dir, recipe, model, processor, data, device, recorder, stop, checkpoint)

    stop.phase = "train"
    gc.freeze()  # the imports' millions of objects: out of every later collection (Trainer's start runs one)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    stop.phase = "finish"

    if events.stopped_at is not None and trainer.state.global_step < trainer.state.max_steps:
        _loss_plot(recorder)
        recorder.status("stopped", f"stopped at step {trainer.state.global_step}; resume with: "
                        f"caption-wizard resume {run_dir}")
        return 130
    _final_eval(trainer, data)
    adapter = _save_adapter(run_dir, trainer, processor, recipe)  # every rank takes part; rank 0 writes
    if trainer.is_world_process_zero():
        _finish(run_dir, recipe, recorder, events, trainer, adapter)
    trainer.accelerator.wait_for_everyone()  # the others leave once the run is recorded as completed
    return 0


# ----------------------------------------------------------------------------- setup
def _resume_point(run_dir: Path, recorder) -> Path | None:
    """The newest complete checkpoint whose files match their checksums; half-written ones (killed
    mid-save) are removed first, damaged ones set aside (by rank 0), and each is named in a warning."""
    for bad in (rundir.remove_incomplete_checkpoints(run_dir) if recorder.writes else []):
        recorder.warning(f"removed the incomplete checkpoint {bad.name} (the process died while saving it)")
    checkpoint, rejected = rundir.verified_checkpoint(run_dir, set_aside=recorder.writes)
    for name, problem in rejected:
        instead = f"resuming from {checkpoint.name} instead" if checkpoint else "no older checkpoint verifies"
        recorder.warning(f"{name} is damaged ({problem}): set aside as {rundir.CHECKPOINTS_DIR}/{name}.corrupt; "
                         f"{instead}")
    if checkpoint is None:
        recorder.warning("no complete checkpoint yet: starting again from step 0" if not rejected else
                         "no checkpoint verifies: starting again from step 0")
    return checkpoint


def _setup_determinism(recipe, lock: dict, recorder) -> tuple[str, int]:
    """Seeds, and the CPU thread count of the first session: same threads -> same float sums."""
    import torch
    from transformers import set_seed

    from wizard.train.load import pick_device

    device = pick_device(recipe)
    first = (lock.get("device") or {}).get("threads")
    threads = int(first or torch.get_num_threads())
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if first and threads > (available or threads):
        recorder.warning(f"this run started with {threads} CPU threads; this machine offers {available}. "
                         f"Using {threads} (same float sums), which is slower here")
    torch.set_num_threads(threads)
    set_seed(recipe.train.seed)  # python, numpy, torch (CPU and CUDA) before LoRA weights are drawn
    return device, threads


def _load_model(recipe, lock: dict, device: str):
    from wizard.train.load import load_model

    path = (lock.get("model") or {}).get("path")
    if not path:
        from wizard.hub import resolve_model

        path = resolve_model(recipe.model).path
    return load_model(recipe, path, for_training=True, device=device)


@dataclass
class Data:
    train: object  # CaptionDataset
    eval: object | None
    collator: object
    fingerprint: str
    eval_examples: list  # the held-out Examples (captioned for train.eval_metrics)


def _read_data(run_dir: Path, recipe, lock: dict, recorder, *, resume: bool):
    """The CaptionSet the front end prepared (wizard.data.prepare: its verified index, no image opened
    again); it must be the data the front end checked, and on resume the data the run started with."""
    from wizard.data.prepare import prepare_data, read_prepared
    from wizard.errors import UserError
    from wizard.images import limits_for

    dataset, t, limits = lock.get("dataset") or {}, time.perf_counter(), limits_for(recipe.model)
    captions = read_prepared(dataset.get("index"), recipe.data, seed=recipe.train.seed, limits=limits)
    how = "the prepared index"
    if captions is None:  # images embedded in data files, or no index: read again (verdicts are cached)
        captions = prepare_data(recipe.data, seed=recipe.train.seed, base_dir=lock.get("recipe_dir"),
                                limits=limits).captions
        how = "the data files"
    print("\n".join(captions.report.lines()), flush=True)
    print(f"data: read from {how} in {time.perf_counter() - t:.2f}s", flush=True)
    for note in captions.report.notes:
        recorder.warning(note)
    if captions.report.bad_rows:
        recorder.warning(f"skipped {captions.report.bad_rows} bad rows in {captions.report.file}, e.g. "
                         + "; ".join(str(b) for b in captions.report.first_bad[:3]))
    before = dataset.get("fingerprint")
    if before and before != captions.fingerprint:
        what = "since this run started; resuming would train on other data" if resume else "while the run was starting"
        raise UserError(f"the data of {recipe.data.dataset} changed {what} (fingerprint {before[:12]} -> "
                        f"{captions.fingerprint[:12]})",
                        hint="restore the original data, or start a new run: caption-wizard run "
                             f"{run_dir / rundir.RECIPE_FILE}")
    if not captions.train:
        raise UserError(f"data.dataset = {recipe.data.dataset!r}: no training examples left after the split")
    return captions


def _build_data(captions, recipe, processor, recorder, family=None) -> Data:
    """Tokenize every caption and process every image once (wizard.train.collate); `family`: the
    model's row of wizard/families.py (how its batches are built)."""
    from wizard.chat import resolve_prompt
    from wizard.train.collate import build_dataset, collator_for, pixel_cache
    from wizard.train.dist import world_size
    from wizard.train.stages import ImageProgress

    from wizard.data.prepare import index_dir

    prompt, longest, tokens = resolve_prompt(recipe, family), recipe.train.max_target_length, index_dir() / "tokens"
    t = time.perf_counter()
    loader = ImageProgress(recorder, len(captions.train) + len(captions.eval))  # the dashboard's k/N
    train = build_dataset(captions.train, processor, prompt, max_target_length=longest, loader=loader,
                          token_cache=tokens, cache=pixel_cache(recipe, captions.train, world_size()), family=family)
    evals = build_dataset(captions.eval, processor, prompt, max_target_length=longest, loader=loader,
                          token_cache=tokens, family=family) if captions.eval else None
    loader.finish()
    print(f"data: {len(train)} training targets from {len(captions.train)} images "
          f"({'cached' if train.images.cached else 'processed per batch'}) in {time.perf_counter() - t:.1f}s",
          flush=True)
    if train.truncated:
        recorder.warning(f"{train.truncated} captions are longer than train.max_target_length={longest} tokens "
                         "and were cut")
    return Data(train, evals, collator_for(processor, train), captions.fingerprint, list(captions.eval))


def _record_device(run_dir: Path, device: str, threads: int, data: Data, *, resume: bool) -> None:
    from wizard.rundir.lock import update_lock

    if resume:
        return
    import torch

    from wizard.train.dist import rank, world_size

    if rank() != 0:
        return
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if device != "cpu" else []
    update_lock(run_dir, device={"kind": "cpu" if device == "cpu" else "cuda", "threads": threads, "gpus": names,
                                 "world_size": world_size()},
                dataset={"fingerprint": data.fingerprint, "num_train": len(data.train),
                         "num_eval": len(data.eval) if data.eval else 0})


def _training_args(run_dir: Path, recipe, device: str, has_eval: bool, workers: int = 0):
    from transformers import TrainingArguments

    from wizard.train.dist import training_arguments, world_size
    from wizard.train.load import resolve_precision

    t = recipe.train
    precision = resolve_precision(t.precision, device)
    evaluate = has_eval and t.eval_steps is not None
    args = TrainingArguments(
        output_dir=str(run_dir / rundir.CHECKPOINTS_DIR),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,  # below 1: a fraction of the total steps
        weight_decay=t.weight_decay,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        logging_steps=t.logging_steps,
        logging_nan_inf_filter=False,  # a NaN must stop the run, not be averaged away
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=None,  # rotated by EventsCallback, and only after the new checkpoint is complete
        eval_strategy="steps" if evaluate else "no",
        eval_steps=t.eval_steps if evaluate else None,
        seed=t.seed,
        data_seed=t.seed,  # the shuffle order: seeded per epoch, independent of the model's RNG use
        report_to="none",  # TensorBoard is added by hand, to write into RUN/tensorboard
        disable_tqdm=True,  # train.log gets one line per logged step, not progress-bar spam
        dataloader_num_workers=workers,  # >0 only when images are processed per batch (not cached)
        remove_unused_columns=False,
        label_names=["labels"],
        use_cpu=device == "cpu",
        save_only_model=False,
        **training_arguments(recipe, run_dir, world_size()),  # DDP / FSDP / DeepSpeed: the Trainer's own
    )
    if args.n_gpu > 1:  # one process seeing several GPUs: never nn.DataParallel (it splits pixel_values by patch)
        args._n_gpu = 1
    return args


def _build_trainer(run_dir: Path, recipe, model, processor, data: Data, device: str, recorder, stop, checkpoint):
    from transformers import PrinterCallback

    from wizard.recipe import recipe_hash
    from wizard.train.callbacks import EventsCallback, LossTracker
    from wizard.train.collate import TokenCounter, loader_workers
    from wizard.train.load import count_parameters
    from wizard.rundir.lock import read_lock
    from wizard.train.trainer import CaptionTrainer

    args = _training_args(run_dir, recipe, device, data.eval is not None, workers=loader_workers(data.train))
    losses = LossTracker()
    seconds_before = 0.0
    if checkpoint is not None:  # the losses not yet logged when the checkpoint was written
        marker = rundir.read_checkpoint_marker(checkpoint)
        losses.pending = list(marker.get("pending_losses") or [])
        losses.last, losses.best = marker.get("last_loss"), marker.get("best_loss")
        seconds_before = float(marker.get("seconds") or 0.0)
    trainable, total = count_parameters(model)
    devices = ([device] if args.world_size <= 1 else [f"cpu x{args.world_size} (gloo)"] if device == "cpu"
               else [f"cuda:{i}" for i in range(args.world_size)])
    start = {"run": run_dir.name, "model": recipe.model.id, "strategy": recipe.tuning.strategy.value,
             "devices": devices, "recipe_hash": recipe_hash(recipe), "trainable_params": trainable,
             "total_params": total, "num_train": len(data.train), "num_eval": len(data.eval) if data.eval else 0,
             "batch_size": recipe.train.batch_size, "data": (read_lock(run_dir).get("dataset") or {}).get("summary")}
    tokens = TokenCounter()
    events = EventsCallback(recorder, losses, stop, device=device, start_fields=start,
                            samples_per_step=recipe.train.batch_size * recipe.train.grad_accum * args.world_size,
                            token_counter=tokens, save_total_limit=recipe.train.save_total_limit,
                            seconds_before=seconds_before,
                            caption_sample=(recipe, data.eval_examples) if recipe.train.eval_metrics else None)
    trainer = CaptionTrainer(
        model=model, args=args, train_dataset=data.train, eval_dataset=data.eval, data_collator=data.collator,
        processing_class=processor, callbacks=[events, _tensorboard(run_dir)], losses=losses, tokens=tokens,
    )
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; EventsCallback prints readable lines
    return trainer, events


def _tensorboard(run_dir: Path):
    """TensorBoard scalars in RUN/tensorboard (the env var also covers the writer reopened for the final eval)."""
    from transformers.integrations import TensorBoardCallback

    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / rundir.TENSORBOARD_DIR)
    return TensorBoardCallback()


# ----------------------------------------------------------------------------- after training
def _final_eval(trainer, data: Data) -> None:
    """Eval loss on the held-out split at the end (unless the last step just did it)."""
    if data.eval is None:
        return
    already = trainer.args.eval_strategy != "no" and trainer.state.global_step % trainer.args.eval_steps == 0
    if not already:
        trainer.evaluate()


def _save_adapter(run_dir: Path, trainer, processor, recipe) -> Path:
    """adapter/: the PEFT adapter + processor (full: the whole model), written to a temp dir then renamed.

    Every rank calls it (FSDP and ZeRO-3 gather the weights from all of them); rank 0 alone writes."""
    final = run_dir / rundir.ADAPTER_DIR
    tmp = run_dir / f".{rundir.ADAPTER_DIR}.tmp"
    zero = trainer.is_world_process_zero()
    if zero:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    if trainer.args.world_size > 1:
        if trainer.is_fsdp_enabled:  # checkpoints stay sharded; the adapter is one whole file
            trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        trainer.save_model(str(tmp))  # the Trainer's own gather for FSDP/DeepSpeed; writes on rank 0
    else:
        trainer.model.save_pretrained(str(tmp))
    if not zero:
        return final
    processor.save_pretrained(str(tmp))
    rundir.mark_checkpoint_complete(tmp, trainer.state.global_step, strategy=recipe.tuning.strategy.value)
    old = run_dir / f".{rundir.ADAPTER_DIR}.old"
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _loss_plot(recorder) -> None:
    """RUN/loss.png from the events so far, watched or not (rank 0 alone: it alone writes)."""
    if not recorder.writes:
        return
    try:
        from wizard.plot import write_loss_plot

        write_loss_plot(recorder.dir)
    except Exception as e:  # noqa: BLE001 - a missing picture must not fail a finished run
        recorder.warning(f"could not write {rundir.LOSS_PLOT}: {type(e).__name__}: {e}")


def _finish(run_dir: Path, recipe, recorder, events, trainer, adapter: Path) -> None:
    losses = events.losses
    _loss_plot(recorder)
    recorder.event("end", sync=True, step=trainer.state.global_step, adapter=adapter.name,
                   final_loss=losses.last, best_loss=losses.best, seconds=round(events.seconds(), 3))
    recorder.status("completed", f"adapter saved to {adapter}", step=trainer.state.global_step,
                    last_loss=losses.last)
    print(f"completed: {adapter}", flush=True)


def _fail(recorder, error: Exception) -> int:
    from wizard.errors import UserError
    from wizard.fsutil import is_disk_full
    from wizard.train.diskspace import DiskFull
    from wizard.train.dist import peer_lost
    from wizard.train.trainer import NonFiniteLoss

    if peer_lost(error):  # another rank died: every rank stops; the run reads as interrupted, resumable
        recorder.warning(f"another process of this run died ({str(error).splitlines()[0][:160]}); all stop. "
                         f"Resume from the last checkpoint with: caption-wizard resume {recorder.dir}")
        return 130
    if not isinstance(error, DiskFull) and is_disk_full(error):  # e.g. events.jsonl or a log line
        error = DiskFull(recorder.dir)
    if isinstance(error, DiskFull):
        message, code = f"{error}\n  hint: {error.hint}", 1
        print(message, file=sys.stderr, flush=True)
        try:  # a few bytes still fit once the half-written checkpoint is gone; if not, `runs` says interrupted
            recorder.event("error", sync=True, message=message, log_tail=None)
            recorder.status("failed", message)
        except OSError as e:
            print(f"could not record the failure: {e}", file=sys.stderr, flush=True)
        return code
    if isinstance(error, NonFiniteLoss):
        message = (f"{error}: training stopped before that step changed the weights; the last checkpoint "
                   f"is intact. Lower train.learning_rate, or use train.precision=fp32")
        code = 1
    elif isinstance(error, UserError):
        message = error.message + (f"\n  hint: {error.hint}" if error.hint else "")
        code = 2
    elif _out_of_memory(error):
        message = (f"out of memory: {str(error).splitlines()[0][:200]}\n  hint: the last checkpoint is intact. "
                   f"Start again with less memory, e.g. caption-wizard run {recorder.dir / rundir.RECIPE_FILE} "
                   "train.gradient_checkpointing=true (or a smaller train.batch_size with a larger "
                   "train.grad_accum, or tuning.strategy=qlora); `--dry-run` shows the estimate")
        code = 1
    else:
        message = f"{type(error).__name__}: {error}"
        code = 1
    tail = traceback.format_exc()
    if not recorder.writes and isinstance(error, NonFiniteLoss):
        tail = message  # every rank stops on it; rank 0 reports it once
    print(tail if code != 2 else message, file=sys.stderr, flush=True)
    if code != 2:
        _loss_plot(recorder)  # a diverged run's curve shows where
    recorder.event("error", sync=True, message=message, log_tail=tail[-4000:] if code != 2 else None)
    recorder.status("failed", message)
    return code


def _out_of_memory(error: Exception) -> bool:
    """A CUDA out-of-memory error, or the CPU allocator's."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and ("DefaultCPUAllocator: can't allocate" in str(error)
                                                or "CUDA out of memory" in str(error))


def _parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m wizard.train.backend", description=__doc__.split("\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
