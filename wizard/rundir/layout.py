"""Where everything of a run lives: the names, a new folder, and which folders are runs.

    run_dir = new_run_dir("runs", "demo-shapes")        # runs/demo-shapes-20250101-120000/ (+ checkpoints/)
    is_run_dir(run_dir)                                  # the one rule

Every file and folder name of a run is defined here and nowhere else (tests/test_layers.py checks).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from wizard.errors import UserError

RECIPE_FILE = "recipe.yaml"       # exactly what runs (overrides applied): the replayable truth
LOCK_FILE = "lock.json"           # resolved facts: model files, data fingerprint, packages, device
STATE_FILE = "state.json"         # status, pid, step, last checkpoint (rewritten atomically)
EVENTS_FILE = "events.jsonl"      # one JSON object per line (wizard.rundir.events)
LOG_FILE = "train.log"            # the training process's own output
CHECKPOINTS_DIR = "checkpoints"   # checkpoint-N/ folders
ADAPTER_DIR = "adapter"           # the final adapter (or full weights) + processor
TENSORBOARD_DIR = "tensorboard"   # TensorBoard event files
LAUNCH_DIR = "launch"             # the generated FSDP / DeepSpeed configs
LOSS_PLOT = "loss.png"            # the loss curve, written by the training process at the end
EVAL_FILE = "eval.json"           # `caption-wizard eval`'s scores
CHECKPOINT_MARKER = "wizard-checkpoint.json"  # written last into a complete checkpoint
RUN_LOCK_FILE = "running.lock"    # flock'ed by the one process that writes the run (wizard.rundir.folder_lock)

BACKEND_MODULE = "wizard.train.backend"  # the training process: python -m wizard.train.backend RUN_DIR


def default_runs_dir() -> Path:
    return Path("runs")


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def is_run_dir(path: str | os.PathLike) -> bool:
    """The one rule: a folder with a recipe.yaml and a state.json."""
    path = Path(path)
    return (path / STATE_FILE).is_file() and (path / RECIPE_FILE).is_file()


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


def log_tail(run_dir: str | os.PathLike, lines: int = 15) -> str:
    """The last `lines` lines of train.log ('' if there is none)."""
    try:
        with open(Path(run_dir, LOG_FILE), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
