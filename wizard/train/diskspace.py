"""A full disk around checkpoint saves: warn early, refuse before writing, clean up after.

    check_before_save(run_dir, recorder)   # EventsCallback.on_step_end, when a save is due
    with cleaned_on_disk_full(folder):     # CaptionTrainer._save_checkpoint
        ...save...

torch.save on a full disk says `RuntimeError: [enforce fail at inline_container.cc:672] unexpected
pos ...`. Here it becomes DiskFull: "no space left on device (N MiB free in FOLDER)", the half-written
checkpoint is removed, and the run ends "failed", resumable from its last complete checkpoint.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

from wizard import rundir
from wizard.fsutil import disk_full_message, free_bytes, is_disk_full
from wizard.units import fmt_bytes

WARN_FACTOR = 3  # warn while fewer than this many more checkpoints fit


class DiskFull(RuntimeError):
    def __init__(self, folder, detail: str = ""):
        self.folder = Path(folder)
        super().__init__(disk_full_message(self.folder) + detail)
        self.hint = f"free some space there, then continue with: caption-wizard resume {runs_dir_of(self.folder)}"


def runs_dir_of(folder: Path) -> Path:
    """The run folder above a checkpoints/ folder (or the folder itself)."""
    return folder.parent if folder.name == rundir.CHECKPOINTS_DIR else folder


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def check_before_save(run_dir: Path, warn) -> None:
    """Before a checkpoint: stop (DiskFull) if the last checkpoint's size no longer fits, warn while
    fewer than WARN_FACTOR fit. `warn(message)` records a warning. No checkpoint yet: nothing to compare."""
    last = rundir.last_good_checkpoint(run_dir)
    if last is None:
        return
    need, free = folder_bytes(last), free_bytes(run_dir)
    folder = run_dir / rundir.CHECKPOINTS_DIR
    if free < need:
        raise DiskFull(folder, f"; a checkpoint takes {fmt_bytes(need)}, so the next one cannot be saved. "
                               f"Stopped before writing it; {last.name} is intact")
    if free < WARN_FACTOR * need:
        warn(f"disk almost full: {fmt_bytes(free)} free in {folder}, a checkpoint takes {fmt_bytes(need)} "
             f"(about {free // max(need, 1)} more fit)")


@contextmanager
def cleaned_on_disk_full(checkpoint: Path):
    """Run a checkpoint save; on a full disk remove what it half wrote and raise DiskFull."""
    try:
        yield
    except Exception as e:
        if not is_disk_full(e):
            raise
        shutil.rmtree(checkpoint, ignore_errors=True)
        for tmp in checkpoint.parent.glob(f".{checkpoint.name}*"):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise DiskFull(checkpoint.parent, f" while saving {checkpoint.name}; removed the half-written "
                                          "checkpoint, the earlier ones are intact") from None
