"""checkpoints/checkpoint-N/ and their completion markers.

A checkpoint counts only when it is complete: the training process writes CHECKPOINT_MARKER into
checkpoint-N/ last, after every other file is on disk (fsync), and the marker lists those files
with their sizes. A half-written checkpoint (SIGKILL or power cut during the save) has no valid
marker and is never resumed from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from wizard.fsutil import atomic_write_json
from wizard.rundir.layout import CHECKPOINT_MARKER, CHECKPOINTS_DIR

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
