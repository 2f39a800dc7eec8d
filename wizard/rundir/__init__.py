"""The run folder: the only code that knows its layout, its files and their contract.

    runs/<recipe-name>-<YYYYmmdd-HHMMSS>/
      recipe.yaml  lock.json  state.json  events.jsonl  train.log  running.lock
      checkpoints/checkpoint-N/ (+ wizard-checkpoint.json)   adapter/   tensorboard/   launch/
      loss.png   eval.json

    layout       the names, creating a folder, "is this a run folder?"
    runs         listing and loading runs (RunInfo: status, step, last loss, checkpoint)
    state        state.json: status, pid, step; the one "is it still running?" rule (with its grace period)
    events       events.jsonl: the writer, one incremental parser, the event types (the contract)
    curve        the loss curve read from the events, with its smoothing (dashboard, loss.png, compare)
    lock         lock.json: the facts a replay depends on
    checkpoints  checkpoint-N folders and their completion markers

Both processes meet only here: the front end creates the folder and follows it, the training
process writes it (rank 0 alone). docs/architecture.md describes the contract.

May import: the standard library, wizard.errors, wizard.fsutil, wizard.recipe (lock.json and
RunInfo read recipes). Imported by everything above; imports nothing above it.
"""

from wizard.rundir.checkpoints import (  # noqa: E402
    checkpoint_dirs, checkpoint_is_complete, checkpoint_problem, good_checkpoints, last_good_checkpoint,
    mark_checkpoint_complete, read_checkpoint_marker, remove_incomplete_checkpoints, rotate_checkpoints,
    verified_checkpoint,
)
from wizard.rundir.events import EventReader, EventWriter, RunRecorder, read_events  # noqa: E402
from wizard.rundir.layout import (  # noqa: E402
    ADAPTER_DIR, BACKEND_MODULE, CHECKPOINT_MARKER, CHECKPOINTS_DIR, EVAL_FILE, EVENTS_FILE, LAUNCH_DIR, LOCK_FILE,
    LOG_FILE, LOSS_PLOT, RECIPE_FILE, STATE_FILE, TENSORBOARD_DIR, default_runs_dir, is_run_dir, log_tail,
    new_run_dir, now_iso,
)
from wizard.rundir.runs import RunInfo, create_run_folder, list_runs, load_run  # noqa: E402
from wizard.rundir.lock import make_lock, read_lock, update_lock, write_lock  # noqa: E402
from wizard.rundir.state import (  # noqa: E402
    STARTUP_GRACE_S, STATUSES, TERMINAL, effective_status, is_running, pid_alive, read_state, write_state,
)

__all__ = [
    "checkpoint_dirs",
    "checkpoint_is_complete",
    "checkpoint_problem",
    "good_checkpoints",
    "last_good_checkpoint",
    "mark_checkpoint_complete",
    "read_checkpoint_marker",
    "remove_incomplete_checkpoints",
    "rotate_checkpoints",
    "verified_checkpoint",
    "EventReader",
    "EventWriter",
    "RunRecorder",
    "read_events",
    "ADAPTER_DIR",
    "BACKEND_MODULE",
    "CHECKPOINT_MARKER",
    "CHECKPOINTS_DIR",
    "EVAL_FILE",
    "EVENTS_FILE",
    "LAUNCH_DIR",
    "LOCK_FILE",
    "LOG_FILE",
    "LOSS_PLOT",
    "RECIPE_FILE",
    "STATE_FILE",
    "TENSORBOARD_DIR",
    "RunInfo",
    "create_run_folder",
    "default_runs_dir",
    "is_run_dir",
    "list_runs",
    "load_run",
    "log_tail",
    "new_run_dir",
    "now_iso",
    "make_lock",
    "read_lock",
    "update_lock",
    "write_lock",
    "STARTUP_GRACE_S",
    "STATUSES",
    "TERMINAL",
    "effective_status",
    "is_running",
    "pid_alive",
    "read_state",
    "write_state",
]
