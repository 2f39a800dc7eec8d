"""Run directories: where each fine-tune keeps everything it did.

    runs/<recipe-name>-<YYYYmmdd-HHMMSS>/
      recipe.yaml  lock.json  state.json  events.jsonl  train.log
      checkpoints/checkpoint-N/   adapter/   tensorboard/

    info = load_run("runs/demo-shapes-20250101-120000")   # RunInfo: status, step, last loss, ...
    for info in list_runs("runs"): ...

state.json is small and rewritten atomically by whoever owns the run at the time
(the parent before the training process starts, then the training process). A
"running" state whose process is gone reads as "interrupted": it is resumable.

A checkpoint counts only when it is complete: the training process writes
CHECKPOINT_MARKER into checkpoint-N/ last, after every other file is on disk
(fsync), and the marker lists those files with their sizes. A half-written
checkpoint (SIGKILL or power cut during the save) has no valid marker and is
never resumed from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from wizard.errors import UserError
from wizard.fsutil import atomic_write_json

RECIPE_FILE = "recipe.yaml"
LOCK_FILE = "lock.json"
STATE_FILE = "state.json"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "train.log"
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_MARKER = "wizard-checkpoint.json"

STATUSES = ("running", "stopped", "failed", "completed")
BACKEND_MODULE = "wizard.train.backend"


def default_runs_dir() -> Path:
    return Path("runs")


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- creating
def new_run_dir(runs_dir: str | os.PathLike | None, name: str, when: datetime | None = None) -> Path:
    """Create runs/<name>-<YYYYmmdd-HHMMSS>/ (with -2, -3... if that second is taken) and its checkpoints/."""
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = (when or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = f"{name}-{stamp}"
    for n in range(1, 1000):
        path = runs_dir / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()  # exclusive: two runs started in the same second get different folders
        except FileExistsError:
            continue
        (path / CHECKPOINTS_DIR).mkdir()
        return path
    raise UserError(f"{runs_dir}: could not create a run folder named {base}")


# ----------------------------------------------------------------------------- state
def read_state(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError:  # atomic writes make this unlikely; treat as unknown rather than crash
        return {}


def write_state(run_dir: str | os.PathLike, *, durable: bool = True, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into state.json (atomic rewrite) and stamp "updated".

    durable=False skips the fsync: for the step/loss updates at each logged step, where losing the
    latest one to a power cut costs nothing (status changes and checkpoints are always durable).
    """
    state = read_state(run_dir)
    state.update(changes)
    state["updated"] = now_iso()
    path = Path(run_dir) / STATE_FILE
    if durable:
        atomic_write_json(path, state)
    else:
        tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:  # a full disk: no empty temp file left behind
            tmp.unlink(missing_ok=True)
            raise
    return state


def pid_alive(pid: Any, *, backend_only: bool = True) -> bool:
    """Is `pid` a live caption-wizard training process? (False for None, dead, zombie or reused pids.)

    backend_only=False: any live process (the dashboard follows whatever the caller started)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        return not backend_only or BACKEND_MODULE.encode() in (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(pid, 0)


# ----------------------------------------------------------------------------- checkpoints
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_is_complete(path: str | os.PathLike) -> bool:
    """True when the marker exists, parses, and every file it lists is there with its size."""
    path = Path(path)
    try:
        marker = json.loads((path / CHECKPOINT_MARKER).read_text(encoding="utf-8"))
        files = marker["files"]
        return all((path / rel).stat().st_size == size for rel, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def read_checkpoint_marker(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(path) / CHECKPOINT_MARKER).read_text(encoding="utf-8"))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def mark_checkpoint_complete(path: str | os.PathLike, step: int, **extra: Any) -> None:
    """fsync every file of the checkpoint, then write the marker (itself atomically) last."""
    path = Path(path)
    files: dict[str, int] = {}
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != CHECKPOINT_MARKER):
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
        files[f.relative_to(path).as_posix()] = f.stat().st_size
    _fsync_dir(path)
    atomic_write_json(path / CHECKPOINT_MARKER, {"step": step, "files": files, **extra})
    _fsync_dir(path)


def checkpoint_dirs(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Every checkpoint-N folder (complete or not), oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = []
    for p in root.iterdir() if root.is_dir() else []:
        m = _CKPT.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def good_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    return [(step, p) for step, p in checkpoint_dirs(run_dir) if checkpoint_is_complete(p)]


def last_good_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    good = good_checkpoints(run_dir)
    return good[-1][1] if good else None


def remove_incomplete_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Delete half-written checkpoints (no valid marker); returns what was removed."""
    removed = []
    for _, p in checkpoint_dirs(run_dir):
        if not checkpoint_is_complete(p):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def rotate_checkpoints(run_dir: str | os.PathLike, keep: int | None) -> list[Path]:
    """Keep the newest `keep` complete checkpoints (None: all). Incomplete ones are left to resume's cleanup."""
    if not keep:
        return []
    good = good_checkpoints(run_dir)
    removed = []
    for _, p in good[: max(0, len(good) - keep)]:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


# ----------------------------------------------------------------------------- reading runs
@dataclass
class RunInfo:
    path: Path
    name: str
    status: str  # running | stopped | failed | completed | interrupted (running, but its process is gone)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def step(self) -> int:
        return int(self.state.get("step") or 0)

    @property
    def total_steps(self) -> int | None:
        return self.state.get("total_steps")

    @property
    def last_loss(self) -> float | None:
        return self.state.get("last_loss")

    @property
    def started(self) -> str | None:
        return self.state.get("started")

    @property
    def updated(self) -> str | None:
        return self.state.get("updated")

    @property
    def status_text(self) -> str:
        return "stopped (interrupted)" if self.status == "interrupted" else self.status

    @property
    def resumable(self) -> bool:
        return self.status in ("stopped", "interrupted", "failed")

    @property
    def recipe_path(self) -> Path:
        return self.path / RECIPE_FILE

    def recipe(self):
        from wizard.recipe import load_recipe

        return load_recipe(self.recipe_path)

    def lock(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / LOCK_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def last_checkpoint(self) -> Path | None:
        return last_good_checkpoint(self.path)


def _info(path: Path) -> RunInfo | None:
    if not (path / STATE_FILE).is_file() or not (path / RECIPE_FILE).is_file():
        return None
    state = read_state(path)
    status = state.get("status", "stopped")
    if status == "running" and not pid_alive(state.get("pid")):
        # the parent writes "running" with pid None a moment before the process starts
        fresh = state.get("pid") is None and time.time() - (path / STATE_FILE).stat().st_mtime < 30
        status = "running" if fresh else "interrupted"
    return RunInfo(path=path, name=path.name, status=status, state=state)


def load_run(run_dir: str | os.PathLike) -> RunInfo:
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"run folder not found: {path}", hint="list your runs with: caption-wizard runs")
    info = _info(path)
    if info is None:
        raise UserError(f"{path} is not a caption-wizard run folder (no state.json or recipe.yaml)",
                        hint="list your runs with: caption-wizard runs")
    return info


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run under `runs_dir` (default ./runs), oldest first."""
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    if not root.is_dir():
        return []
    runs = [info for p in root.iterdir() if p.is_dir() and (info := _info(p)) is not None]
    return sorted(runs, key=lambda r: (r.started or "", r.name))
