"""Making a run folder with its first files, and reading the runs in a folder (`runs`, resume, eval, compare).

    run_dir = create_run_folder("runs", "demo-shapes", recipe_text, lock, state)   # recipe_text(run_dir) -> YAML
    info = load_run("runs/demo-shapes-20250101-120000")  # RunInfo: status, step, last loss, ...
    for info in list_runs("runs"): ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from wizard.errors import UserError
from wizard.fsutil import atomic_write_text
from wizard.rundir.checkpoints import last_good_checkpoint
from wizard.rundir.layout import (ADAPTER_DIR, EVENTS_FILE, LOG_FILE, RECIPE_FILE, STATE_FILE, default_runs_dir,
                                  is_run_dir, new_run_dir)
from wizard.rundir.lock import read_lock, write_lock
from wizard.rundir.state import effective_status, read_state, write_state


def create_run_folder(runs_dir, name: str, recipe_text: Callable[[Path], str], lock: dict[str, Any],
                      state: dict[str, Any]) -> Path:
    """runs/<name>-<stamp>/ with recipe.yaml, lock.json, state.json, an empty events.jsonl and train.log,
    and checkpoints/. Every file is there before anyone can take the folder for a run (is_run_dir)."""
    run_dir = new_run_dir(runs_dir, name)
    atomic_write_text(run_dir / RECIPE_FILE, recipe_text(run_dir / RECIPE_FILE))  # its replay line names itself
    write_lock(run_dir, lock)
    (run_dir / EVENTS_FILE).touch()
    (run_dir / LOG_FILE).touch()
    write_state(run_dir, name=run_dir.name, **state)  # last: with recipe.yaml, it makes the folder a run
    return run_dir


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

    @property
    def adapter_path(self) -> Path:
        return self.path / ADAPTER_DIR

    @property
    def has_adapter(self) -> bool:
        return self.adapter_path.is_dir()

    def recipe(self):
        from wizard.recipe import load_recipe

        return load_recipe(self.recipe_path)

    def lock(self) -> dict[str, Any]:
            return read_lock(self.path)

    def last_checkpoint(self) -> Path | None:
        return last_good_checkpoint(self.path)


def _info(path: Path) -> RunInfo | None:
    if not is_run_dir(path):
        return None
    state = read_state(path)
    return RunInfo(path=path, name=path.name, status=effective_status(path, state), state=state)


def load_run(run_dir: str | os.PathLike) -> RunInfo:
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"run folder not found: {path}", hint="list your runs with: caption-wizard runs")
    info = _info(path)
    if info is None:
        raise UserError(f"{path} is not a caption-wizard run folder (no {STATE_FILE} or {RECIPE_FILE})",
                        hint="list your runs with: caption-wizard runs")
    return info


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run under `runs_dir` (default ./runs), oldest first."""
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    if not root.is_dir():
        return []
    runs = [info for p in root.iterdir() if p.is_dir() and (info := _info(p)) is not None]
    return sorted(runs, key=lambda r: (r.started or "", r.name))
