"""Starting and resuming runs: the front end's side of a run, below the commands that print.

    started = start_run(recipe, recipe_path="recipes/demo-shapes.yaml", say=print)   # Started(run_dir, proc)
    started = resume_run("runs/demo-shapes-20250101-120000", say=print)              # None: already completed
    plan_resume(original, edited)                                                    # pure: what an edit may change

This process checks the recipe, prepares the data (before any run folder exists: bad data is exit 2
with nothing left behind), resolves the model (a download shows progress through `progress`),
creates the run folder (wizard.rundir), takes its lock, and starts the training process
(wizard.launch: `python -m wizard.train.backend RUN_DIR`, one per GPU through torchrun) in its own
session, handing it the lock. The commands (wizard.commands.run / resume) then follow it with the
dashboard. `say(line)` receives the lines a user should read, in order; nothing here prints.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from wizard import rundir
from wizard.errors import UserError
from wizard.fsutil import atomic_write_text
from wizard.progress import downloads_of
from wizard.recipe import Recipe, recipe_from_dict, recipe_hash, recipe_to_yaml

Say = Callable[[str], None]


def _silent(line: str) -> None:
    pass


@dataclass
class Started:
    run_dir: Path
    proc: subprocess.Popen


# ----------------------------------------------------------------------------- the run folder's lock
_HELD: dict = {}  # run folder -> FolderLock taken by this process, until launch_backend hands it over


def _releases_lock(func):
    """Whatever `func` returns or raises, a run-folder lock it took and did not hand on is released."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            while _HELD:
                _HELD.popitem()[1].close()
    return wrapper


def _lock_run(run_dir: Path) -> None:
    """Exclusive lock on the run folder (wizard.rundir.folder_lock), or exit 2 naming its holder."""
    from wizard.fsutil import unwritable_error
    from wizard.rundir.folder_lock import AlreadyLocked, FolderLock

    try:
        _HELD[Path(run_dir)] = FolderLock(run_dir)
    except OSError as e:
        raise unwritable_error(Path(run_dir) / FolderLock.NAME, e, f"run folder {run_dir}") from None
    except AlreadyLocked as e:
        raise UserError(f"{run_dir} is already running (pid {e.pid})",
                        hint=f"watch it with: caption-wizard watch {run_dir}") from None


# ----------------------------------------------------------------------------- run
@_releases_lock
def start_run(recipe: Recipe, *, recipe_path: str | os.PathLike | None = None,
              runs_dir: str | os.PathLike | None = None, say: Say = _silent, progress=None) -> Started:
    """Create the run folder and start the training process; the caller follows it."""
    from wizard.fsutil import check_writable_dir
    from wizard.hub import resolve_model
    from wizard.launch import plan_launch
    from wizard.preflight import check_model_folder, check_target_modules, preflight

    check_writable_dir(runs_dir or rundir.default_runs_dir(), "run folders", hint="choose another with --runs-dir DIR")
    preflight(recipe, recipe_path=recipe_path)  # before a download: devices and memory
    plan_launch(recipe)  # GPUs that are not here, sharding on the CPU: exit 2 before any run folder
    prepared = prepare_run_data(recipe, Path(recipe_path).parent if recipe_path else None, say=say, progress=progress)
    resolved = resolve_model(recipe.model, progress=downloads_of(progress))  # may download: progress shows there
    check_model_folder(recipe, resolved.path, warn=say)  # a supported family, its packages: exit 2 otherwise
    check_target_modules(recipe, resolved.path, recipe_path)  # from the config, before the run folder exists
    run_dir = create_run(recipe, resolved, runs_dir=runs_dir, recipe_path=recipe_path)
    _lock_run(run_dir)  # a new folder (exclusive mkdir): nobody else writes there yet
    record_prepared(run_dir, prepared)
    say(f"run folder: {run_dir}")
    return Started(run_dir, launch_backend(run_dir, recipe))


def prepare_run_data(recipe: Recipe, base_dir: Path | None, *, fingerprint: str | None = None, say: Say = _silent,
                     progress=None):
    """Read and verify the data here, before any run folder or training process exists; the training
    process reads the verified index (wizard.data.prepare). `fingerprint`: the data the run started
    with (resume): other data is refused here, before anything starts."""
    from wizard.data.prepare import prepare_data
    from wizard.images import limits_for

    prepared = prepare_data(recipe.data, seed=recipe.train.seed, base_dir=base_dir, progress=progress,
                            limits=limits_for(recipe.model))
    say(prepared.summary())
    found = prepared.captions.fingerprint
    if fingerprint and fingerprint != found:
        raise UserError(f"the data of {recipe.data.dataset} changed since this run started (fingerprint "
                        f"{fingerprint[:12]} -> {found[:12]}); resuming would train on other data",
                        hint="restore the original data, or start a new run with the run's recipe.yaml")
    return prepared


def record_prepared(run_dir: Path, prepared) -> None:
    """lock.json: the fingerprint, the index the training process reads, and the summary it shows."""
    r = prepared.captions.report
    short = f"format {r.format}" + (f", {r.bad_rows:,} bad rows skipped" if r.bad_rows else "")
    rundir.update_lock(run_dir, dataset={"fingerprint": prepared.captions.fingerprint, "summary": short,
                                         "index": str(prepared.index) if prepared.index else None})


def create_run(recipe: Recipe, resolved: Any, *, runs_dir=None, recipe_path=None) -> Path:
    """runs/<name>-<stamp>/ with recipe.yaml, lock.json, state.json, events.jsonl, train.log, checkpoints/."""
    recipe_dir = Path(recipe_path).parent if recipe_path else None
    return rundir.create_run_folder(
        runs_dir, recipe.name, lambda path: recipe_to_yaml(recipe, path),
        rundir.make_lock(recipe, resolved, recipe_dir=recipe_dir),
        dict(status="running", pid=None, step=0, total_steps=None, last_checkpoint=None, started=rundir.now_iso(),
             recipe_hash=recipe_hash(recipe), model=recipe.model.id, strategy=recipe.tuning.strategy.value,
             last_loss=None))


def launch_backend(run_dir: Path, recipe: Recipe, *, resume: bool = False) -> subprocess.Popen:
    """The training process(es) in their own session (terminal Ctrl-C stays with us): wizard.launch."""
    from wizard.launch import start_backend
    from wizard.stopping import track

    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1")  # the model is already local: no network call from the trainer
    # OpenMP threads that spin while waiting make CPU training ~10x slower as soon as anything else
    # runs on the machine (measured: 6 vs 72 samples/s on a busy 2-core box); sleeping costs little.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    held = _HELD.pop(Path(run_dir), None)  # the run folder's lock goes to the training process
    env = held.child_env(env) if held else env
    proc = start_backend(run_dir, recipe, resume=resume, env=env, log_header="resume" if resume else "run",
                         pass_fds=(held.fd,) if held else ())
    track(proc)  # from now on SIGTERM/SIGHUP stop it instead of orphaning it
    if held:
        held.close()  # the training process holds the lock now (and the kernel drops it when it exits)
    return proc


# ----------------------------------------------------------------------------- resume
# What an edited recipe.yaml may change on resume. Anything not listed: the checkpoint's value wins.
REFUSED = ("model.", "tuning.strategy", "data.",  # other weights or other data: not this run any more
           "launch.strategy")  # DDP, FSDP and ZeRO checkpoints differ
APPLIED = ("train.learning_rate", "train.epochs", "train.max_steps", "launch.devices", "launch.processes",
           "launch.nodes")  # a different number of processes is refused later unless --allow-resize
FREE = ("train.save_steps", "train.save_total_limit", "train.logging_steps", "train.eval_steps",
        "train.eval_metrics", "generation.",  # bookkeeping and captioning: take the new value quietly
        "tuning.cache_vision",  # the same features, computed or looked up
        "launch.node_rank", "launch.master_addr", "launch.master_port")


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _set(d: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in patterns)


@dataclass
class ResumePlan:
    recipe: Recipe  # what the resumed run uses
    refused: list[str] = field(default_factory=list)  # "model.id: X -> Y"
    applied: list[str] = field(default_factory=list)  # announced and used
    kept: list[str] = field(default_factory=list)  # "train.seed in checkpoint 42, recipe says 7: using 42"


def plan_resume(original: Recipe, edited: Recipe) -> ResumePlan:
    """Compare the recipe the run started with against recipe.yaml as it is now (pure: tested alone)."""
    before, after = _flat(original.to_dict()), _flat(edited.to_dict())
    effective = original.to_dict()
    plan = ResumePlan(original)
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new or key == "schema_version":
            continue
        if _matches(key, REFUSED):
            plan.refused.append(f"{key}: {old!r} -> {new!r}")
        elif _matches(key, APPLIED):
            plan.applied.append(f"{key}: {old!r} -> {new!r}")
            _set(effective, key, new)
        elif _matches(key, FREE):
            _set(effective, key, new)
        else:
            plan.kept.append(f"{key} in checkpoint {old!r}, recipe says {new!r}: using {old!r}")
    plan.recipe = recipe_from_dict(effective, "resumed recipe")
    return plan


def check_resize(lock: dict, recipe: Recipe, *, allow: bool) -> str | None:
    """Before a resume: another number of processes is refused, or (allow) announced: the line to say."""
    from wizard.launch import plan_launch
    from wizard.rundir.lock import RESIZE_HINT, resize_message, world_size_change

    change = world_size_change(lock, plan_launch(recipe).world_size)
    if change is None:
        return None
    if not allow:
        raise UserError(resize_message(*change), hint=RESIZE_HINT)
    return (f"  changed: processes {change[0]} -> {change[1]} (--allow-resize): the global batch and the data "
            "order change from here on")


@_releases_lock
def resume_run(run_dir: str | os.PathLike, *, allow_resize: bool = False, say: Say = _silent,
               progress=None) -> Started | None:
    """Continue a stopped, interrupted or failed run from its last complete checkpoint (None: it had
    already completed, and `say` was told where its adapter is)."""
    info = rundir.load_run(run_dir)
    run_dir = info.path
    _lock_run(run_dir)  # a second resume of this run stops here: exit 2 "already running (pid ...)"
    info = rundir.load_run(run_dir)  # as it is now that nobody else can change it
    if info.status == "completed":
        say(f"{run_dir} already completed ({info.step} steps); its adapter is in {info.adapter_path}")
        return None
    if info.status == "running":
        raise UserError(f"{run_dir} is still running (pid {info.state.get('pid')})",
                        hint=f"watch it with: caption-wizard watch {run_dir}")
    lock = rundir.read_lock(run_dir)
    edited = info.recipe()
    original = recipe_from_dict(lock["recipe"], f"{run_dir / rundir.LOCK_FILE}") if lock.get("recipe") else edited
    plan = plan_resume(original, edited)
    if plan.refused:
        raise UserError(f"{run_dir / rundir.RECIPE_FILE} was edited after the run started, and a resumed run "
                        f"cannot change this:\n  " + "\n  ".join(plan.refused),
                        hint=f"undo the edit to resume, or start a new run with: caption-wizard run "
                             f"{run_dir / rundir.RECIPE_FILE}")
    from wizard.preflight import check_devices

    check_devices(plan.recipe, run_dir / rundir.RECIPE_FILE)  # an edited launch.devices must exist here
    resized = check_resize(lock, plan.recipe, allow=allow_resize)  # another number of processes: refused or said
    if resized:
        say(resized)
    checkpoint = info.last_checkpoint()
    # the training process checks its checksums first, and says so if it has to take an older one
    where = (f"{checkpoint.name} (step {checkpoint.name.split('-')[-1]}, once its checksums verify)" if checkpoint
             else "the start (no checkpoint yet)")
    say(f"resuming {run_dir.name} from {where}")
    for line in plan.applied:
        say(f"  changed: {line}")
    for line in plan.kept:
        say(f"  {line}")
    if plan.applied or plan.kept or plan.recipe != edited:
        atomic_write_text(run_dir / rundir.RECIPE_FILE, recipe_to_yaml(plan.recipe, run_dir / rundir.RECIPE_FILE))
    lock.setdefault("resumes", []).append({"at": rundir.now_iso(), "checkpoint": checkpoint.name if checkpoint else None,
                                           "changed": plan.applied, "kept": plan.kept,
                                           "allow_resize": bool(resized)})  # the training processes read it
    _check_model_folder(lock, plan.recipe, progress)
    prepared = prepare_run_data(plan.recipe, Path(lock["recipe_dir"]) if lock.get("recipe_dir") else None,
                                fingerprint=(lock.get("dataset") or {}).get("fingerprint"), say=say, progress=progress)
    rundir.write_lock(run_dir, lock)
    record_prepared(run_dir, prepared)
    rundir.write_state(run_dir, status="running", pid=None, recipe_hash=recipe_hash(plan.recipe))
    return Started(run_dir, launch_backend(run_dir, plan.recipe, resume=True))


def _check_model_folder(lock: dict, recipe: Recipe, progress=None) -> None:
    """The model folder of the first session must still be there (re-fetch the pinned revision if not)."""
    model = lock.get("model") or {}
    if model.get("path") and Path(model["path"]).is_dir():
        return
    from wizard.hub import resolve_model

    resolved = resolve_model(recipe.model, revision=model.get("revision"), progress=downloads_of(progress))
    if model.get("files") and resolved.files and resolved.files != model["files"]:
        changed = sorted(k for k in set(model["files"]) | set(resolved.files)
                         if model["files"].get(k) != resolved.files.get(k))
        raise UserError(f"the model files of {recipe.model.id} changed since the run started: {', '.join(changed[:5])}",
                        hint="resume needs the same weights; start a new run instead")
    model["path"] = str(resolved.path)
    lock["model"] = model
