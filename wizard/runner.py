"""Starting, resuming and listing runs: `caption-wizard run | resume | runs`.

    caption-wizard run recipes/demo-shapes.yaml train.max_steps=20   # new run folder, then train
    caption-wizard run recipes/demo-shapes.yaml --dry-run           # recipe, hash, memory estimate
    caption-wizard resume runs/demo-shapes-20250101-120000          # from its last complete checkpoint
    caption-wizard resume                                           # choose from the resumable runs
    caption-wizard runs                                             # table of runs

This process prepares the run folder (wizard.runs), resolves the model (download if needed:
progress shows here), then starts the training process (wizard.train.backend; one per GPU
through torchrun: wizard.train.launch) in its own session and attaches the dashboard to it.
Ctrl-C in the terminal reaches only this process; the dashboard asks, and a "stop" is
forwarded as SIGINT. The exit status is the training process's: 0 completed, 1 failed,
130 stopped (2: bad input, found before or during start-up).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from wizard import runs
from wizard.console import console, console_err
from wizard.errors import UserError
from wizard.fsutil import atomic_write_text
from wizard.recipe import Recipe, apply_overrides, load_recipe, recipe_from_dict, recipe_hash, recipe_to_yaml


# ----------------------------------------------------------------------------- run
def cmd_run(args) -> int:
    from wizard.stopping import on_terminate

    recipe = apply_overrides(load_recipe(args.recipe), list(args.overrides or []))
    if getattr(args, "print_launch", None):  # a Slurm batch script for the recipe, nothing runs
        from wizard.train.launch import slurm_script

        console.print(slurm_script(recipe, args.recipe, list(args.overrides or [])), markup=False,
                      highlight=False, end="", soft_wrap=True)
        return 0
    if args.dry_run:
        return dry_run(recipe, args.recipe, overrides=list(args.overrides or []))
    with on_terminate():  # SIGTERM/SIGHUP: stop the training like Ctrl-C -> Stop (wizard.stopping)
        if recipe.launch.nodes > 1:
            from wizard.train.launch import announce_nodes

            return announce_nodes(recipe, args, start_run)
        return start_run(recipe, recipe_path=args.recipe, runs_dir=args.runs_dir,
                         plain=True if args.plain else None)


def dry_run(recipe: Recipe, recipe_path: str | os.PathLike | None = None, overrides: list[str] = ()) -> int:
    """What would run: the resolved recipe (overrides applied), its hash, the data check, the plan and
    the memory estimate.

    Piped (`--dry-run > x.yaml`), stdout gets the YAML alone, unwrapped; the rest goes to stderr."""
    from wizard.data.check import check_recipe, print_check, remote_data_note
    from wizard.estimate import estimate_memory, render_estimate
    from wizard.plan import dry_run_plan, replay_comment
    from wizard.preflight import local_model_path, preflight
    from wizard.train.launch import describe_launch

    warn = lambda line: console_err.print(line, markup=False)  # noqa: E731
    preflight(recipe, local_model_path(recipe), recipe_path, warn=warn)  # impossible sizes, unknown modules
    out = console if console.is_terminal else console_err
    console.print(replay_comment(recipe_to_yaml(recipe, recipe_path), recipe_path, overrides),
                  markup=False, highlight=False, end="", soft_wrap=True)
    out.print(f"recipe hash: {recipe_hash(recipe)}", markup=False)
    base_dir = Path(recipe_path).parent if recipe_path else None
    remote = remote_data_note(recipe, base_dir)  # a hub dataset: not downloaded by a dry run
    if remote:
        out.print(remote, markup=False, highlight=False)
    else:
        print_check(check_recipe(recipe, base_dir=base_dir, console=console_err), recipe, out)  # bad data: exit 2
    dry_run_plan(recipe, out)
    out.print(render_estimate(estimate_memory(recipe)))
    out.print(f"launch: {describe_launch(recipe)}", markup=False)
    out.print("dry run: nothing was trained. Start it with the same command without --dry-run.", markup=False)
    return 0


def _releases_lock(func):
    """Whatever `func` returns or raises, a run-folder lock it took and did not hand on is released."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            while _HELD:
                _HELD.popitem()[1].close()
    return wrapper


@_releases_lock
def start_run(recipe: Recipe, *, recipe_path: str | os.PathLike | None = None,
              runs_dir: str | os.PathLike | None = None, plain: bool | None = None) -> int:
    """Create the run folder, start the training process, follow it; returns its exit status."""
    from wizard.fsutil import check_writable_dir
    from wizard.hub import resolve_model
    from wizard.train.launch import plan_launch

    check_writable_dir(runs_dir or runs.default_runs_dir(), "run folders", hint="choose another with --runs-dir DIR")
    from wizard.preflight import preflight

    preflight(recipe, recipe_path=recipe_path)  # before a download: devices and memory
    plan_launch(recipe)  # GPUs that are not here, sharding on the CPU: exit 2 before any run folder
    prepared = prepare_run_data(recipe, Path(recipe_path).parent if recipe_path else None)  # bad data: no run folder
    resolved = resolve_model(recipe.model, console=console_err)  # may download: progress shows here
    from wizard.preflight import check_target_modules

    check_target_modules(recipe, resolved.path, recipe_path)  # from the config, before the run folder exists
    run_dir = create_run(recipe, resolved, runs_dir=runs_dir, recipe_path=recipe_path)
    _lock_run(run_dir)  # a new folder (exclusive mkdir): nobody else writes there yet
    record_prepared(run_dir, prepared)
    console.print(f"run folder: {run_dir}", markup=False)
    proc = launch_backend(run_dir, recipe)
    return follow(run_dir, proc, plain)


def prepare_run_data(recipe: Recipe, base_dir: Path | None, *, fingerprint: str | None = None):
    """Read and verify the data here, before any run folder or training process exists; the training
    process reads the verified index (wizard.data.prepare). `fingerprint`: the data the run started
    with (resume): other data is refused here, before anything starts."""
    from wizard.data.prepare import prepare_data
    from wizard.images import limits_for

    prepared = prepare_data(recipe.data, seed=recipe.train.seed, base_dir=base_dir, console=console_err,
                            limits=limits_for(recipe.model))
    console.print(prepared.summary(), markup=False, highlight=False, soft_wrap=True)
    found = prepared.captions.fingerprint
    if fingerprint and fingerprint != found:
        raise UserError(f"the data of {recipe.data.dataset} changed since this run started (fingerprint "
                        f"{fingerprint[:12]} -> {found[:12]}); resuming would train on other data",
                        hint="restore the original data, or start a new run with the run's recipe.yaml")
    return prepared


def record_prepared(run_dir: Path, prepared) -> None:
    """lock.json: the fingerprint, the index the training process reads, and the summary it shows."""
    from wizard.train.lock import update_lock

    r = prepared.captions.report
    short = f"format {r.format}" + (f", {r.bad_rows:,} bad rows skipped" if r.bad_rows else "")
    update_lock(run_dir, dataset={"fingerprint": prepared.captions.fingerprint, "summary": short,
                                  "index": str(prepared.index) if prepared.index else None})


def create_run(recipe: Recipe, resolved: Any, *, runs_dir=None, recipe_path=None) -> Path:
    """runs/<name>-<stamp>/ with recipe.yaml, lock.json, state.json, events.jsonl, train.log, checkpoints/."""
    from wizard.train.lock import make_lock, write_lock

    run_dir = runs.new_run_dir(runs_dir, recipe.name)
    atomic_write_text(run_dir / runs.RECIPE_FILE, recipe_to_yaml(recipe, run_dir / runs.RECIPE_FILE))
    recipe_dir = Path(recipe_path).parent if recipe_path else None
    write_lock(run_dir, make_lock(recipe, resolved, recipe_dir=recipe_dir))
    now = runs.now_iso()
    runs.write_state(run_dir, name=run_dir.name, status="running", pid=None, step=0, total_steps=None,
                     last_checkpoint=None, started=now, recipe_hash=recipe_hash(recipe), model=recipe.model.id,
                     strategy=recipe.tuning.strategy.value, last_loss=None)
    (run_dir / runs.EVENTS_FILE).touch()
    (run_dir / runs.LOG_FILE).touch()
    return run_dir


def launch_backend(run_dir: Path, recipe: Recipe, *, resume: bool = False) -> subprocess.Popen:
    """The training process(es) in their own session (terminal Ctrl-C stays with us): wizard.train.launch."""
    from wizard.train.launch import start_backend

    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1")  # the model is already local: no network call from the trainer
    # OpenMP threads that spin while waiting make CPU training ~10x slower as soon as anything else
    # runs on the machine (measured: 6 vs 72 samples/s on a busy 2-core box); sleeping costs little.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    held = _HELD.pop(Path(run_dir), None)  # the run folder's lock goes to the training process
    env = held.child_env(env) if held else env
    proc = start_backend(run_dir, recipe, resume=resume, env=env, log_header="resume" if resume else "run",
                         pass_fds=(held.fd,) if held else ())
    from wizard.stopping import track

    track(proc)  # from now on SIGTERM/SIGHUP stop it instead of orphaning it
    if held:
        held.close()  # the training process holds the lock now (and the kernel drops it when it exits)
    return proc


_HELD: dict = {}  # run folder -> FolderLock taken by this process, until launch_backend hands it over


def _lock_run(run_dir: Path) -> None:
    """Exclusive lock on the run folder (wizard.fsutil.FolderLock), or exit 2 naming its holder."""
    from wizard.fsutil import AlreadyLocked, FolderLock, unwritable_error

    try:
        _HELD[Path(run_dir)] = FolderLock(run_dir)
    except OSError as e:
        raise unwritable_error(Path(run_dir) / FolderLock.NAME, e, f"run folder {run_dir}") from None
    except AlreadyLocked as e:
        raise UserError(f"{run_dir} is already running (pid {e.pid})",
                        hint=f"watch it with: caption-wizard watch {run_dir}") from None


def follow(run_dir: Path, proc: subprocess.Popen, plain: bool | None) -> int:
    """The dashboard (or plain lines) until the run ends or the user detaches."""
    from wizard.dashboard import attach
    from wizard.stopping import Terminated, wait_stopped

    try:
        shown = attach(run_dir, plain=plain, proc=proc)
    except Terminated:  # SIGTERM/SIGHUP: the training was told to stop; wait for its checkpoint
        return wait_stopped(proc, run_dir)
    if proc.poll() is not None and proc.returncode in (0, 1, 2, 130):
        return proc.returncode  # the training process's own verdict (2: bad data it found)
    return shown  # detached (training goes on), or killed by a signal


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


def cmd_resume(args) -> int:
    from wizard.stopping import on_terminate

    with on_terminate():  # SIGTERM/SIGHUP: stop the training like Ctrl-C -> Stop (wizard.stopping)
        return _cmd_resume(args)


def _cmd_resume(args) -> int:
    if args.run_dir:
        run_dir = Path(args.run_dir)
        by_name = Path(args.runs_dir or runs.default_runs_dir()) / args.run_dir
        if not run_dir.is_dir() and by_name.is_dir():  # `resume NAME` works as well as `resume runs/NAME`
            run_dir = by_name
        return resume_run(run_dir, plain=True if args.plain else None, allow_resize=args.allow_resize)
    choice = choose_run(args.runs_dir)
    return resume_run(choice, plain=True if args.plain else None, allow_resize=args.allow_resize)


@_releases_lock
def resume_run(run_dir: str | os.PathLike, *, plain: bool | None = None, allow_resize: bool = False) -> int:
    """Continue a stopped, interrupted or failed run from its last complete checkpoint."""
    from wizard.train.lock import read_lock, write_lock

    info = runs.load_run(run_dir)
    run_dir = info.path
    _lock_run(run_dir)  # a second resume of this run stops here: exit 2 "already running (pid ...)"
    info = runs.load_run(run_dir)  # as it is now that nobody else can change it
    if info.status == "completed":
        console.print(f"{run_dir} already completed ({info.step} steps); its adapter is in {run_dir / 'adapter'}",
                      markup=False)
        return 0
    if info.status == "running":
        raise UserError(f"{run_dir} is still running (pid {info.state.get('pid')})",
                        hint=f"watch it with: caption-wizard watch {run_dir}")
    lock = read_lock(run_dir)
    edited = info.recipe()
    original = recipe_from_dict(lock["recipe"], f"{run_dir}/lock.json") if lock.get("recipe") else edited
    plan = plan_resume(original, edited)
    if plan.refused:
        raise UserError(f"{run_dir / runs.RECIPE_FILE} was edited after the run started, and a resumed run "
                        f"cannot change this:\n  " + "\n  ".join(plan.refused),
                        hint=f"undo the edit to resume, or start a new run with: caption-wizard run "
                             f"{run_dir / runs.RECIPE_FILE}")
    from wizard.preflight import check_devices

    check_devices(plan.recipe, run_dir / runs.RECIPE_FILE)  # an edited launch.devices must exist here
    from wizard.train.launch import check_resize

    check_resize(lock, plan.recipe, allow=allow_resize)  # another number of processes: refused or announced
    checkpoint = info.last_checkpoint()
    where = f"{checkpoint.name} (step {checkpoint.name.split('-')[-1]})" if checkpoint else "the start (no checkpoint yet)"
    console.print(f"resuming {run_dir.name} from {where}", markup=False)
    for line in plan.applied:
        console.print(f"  changed: {line}", markup=False)
    for line in plan.kept:
        console.print(f"  {line}", markup=False)
    if plan.applied or plan.kept or plan.recipe != edited:
        atomic_write_text(run_dir / runs.RECIPE_FILE, recipe_to_yaml(plan.recipe, run_dir / runs.RECIPE_FILE))
    lock.setdefault("resumes", []).append({"at": runs.now_iso(), "checkpoint": checkpoint.name if checkpoint else None,
                                           "changed": plan.applied, "kept": plan.kept})
    _check_model_folder(lock, plan.recipe)
    prepared = prepare_run_data(plan.recipe, Path(lock["recipe_dir"]) if lock.get("recipe_dir") else None,
                                fingerprint=(lock.get("dataset") or {}).get("fingerprint"))
    write_lock(run_dir, lock)
    record_prepared(run_dir, prepared)
    runs.write_state(run_dir, status="running", pid=None, recipe_hash=recipe_hash(plan.recipe))
    proc = launch_backend(run_dir, plan.recipe, resume=True)
    return follow(run_dir, proc, plain)


def _check_model_folder(lock: dict, recipe: Recipe) -> None:
    """The model folder of the first session must still be there (re-fetch the pinned revision if not)."""
    model = lock.get("model") or {}
    if model.get("path") and Path(model["path"]).is_dir():
        return
    from wizard.hub import resolve_model

    resolved = resolve_model(recipe.model, revision=model.get("revision"), console=console_err)
    if model.get("files") and resolved.files and resolved.files != model["files"]:
        changed = sorted(k for k in set(model["files"]) | set(resolved.files)
                         if model["files"].get(k) != resolved.files.get(k))
        raise UserError(f"the model files of {recipe.model.id} changed since the run started: {', '.join(changed[:5])}",
                        hint="resume needs the same weights; start a new run instead")
    model["path"] = str(resolved.path)
    lock["model"] = model


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _steps(info: runs.RunInfo) -> str:
    return f"{info.step}/{info.total_steps}" if info.total_steps else f"{info.step}/?"


def _loss(info: runs.RunInfo) -> str:
    return "-" if info.last_loss is None else f"{info.last_loss:.4f}"


def choose_run(runs_dir: str | os.PathLike | None) -> Path:
    """Pick a resumable run: a menu on a terminal; elsewhere the table and a request for RUN_DIR."""
    candidates = [r for r in reversed(runs.list_runs(runs_dir)) if r.resumable]  # newest first
    where = runs_dir or runs.default_runs_dir()
    if not candidates:
        raise UserError(f"no run to resume in {where}/ (none is stopped, interrupted or failed)",
                        hint="start one with: caption-wizard run recipes/demo-shapes.yaml")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        console.print(_runs_table(candidates, title="Resumable runs"))
        raise UserError("which run? pass its folder", hint=f"caption-wizard resume {candidates[0].path}")
    import questionary

    width = max(len(r.name) for r in candidates)
    choices = [questionary.Choice(f"{r.name:<{width}}  {r.status_text:<22} step {_steps(r):<10} "
                                  f"loss {_loss(r):<8} {_when(r.updated)}", value=str(r.path))
               for r in candidates]
    return Path(questionary.select("Resume which run?", choices=choices).unsafe_ask())


# ----------------------------------------------------------------------------- runs
def _runs_table(infos: list[runs.RunInfo], title: str = "Runs"):
    from rich.markup import escape
    from rich.table import Table

    colors = {"completed": "green", "running": "cyan", "failed": "red", "stopped": "yellow", "interrupted": "yellow"}
    table = Table(title=title, title_justify="left")
    for col, justify in (("name", "left"), ("status", "left"), ("step/total", "right"), ("last loss", "right"),
                         ("started", "left")):
        table.add_column(col, justify=justify, no_wrap=col != "name")
    for r in infos:
        table.add_row(escape(r.name), f"[{colors.get(r.status, 'white')}]{r.status_text}[/]", _steps(r), _loss(r),
                      _when(r.started))
    if console.measure(table, options=console.options.update_width(1000)).maximum > console.width:  # too narrow
        from wizard.dashboard.runs_list import runs_list  # each name whole on its own line

        return runs_list(infos, title, colors, _steps, _loss, _when)
    return table


def cmd_runs(args) -> int:
    infos = runs.list_runs(args.runs_dir)
    where = args.runs_dir or runs.default_runs_dir()
    if not infos:
        console.print(f"no runs in {where}/ yet. Start one with: caption-wizard run recipes/demo-shapes.yaml",
                      markup=False)
        return 0
    console.print(_runs_table(infos))
    if any(r.resumable for r in infos):
        console.print("resume one with: caption-wizard resume RUN_DIR (or just caption-wizard resume)", markup=False)
    return 0
