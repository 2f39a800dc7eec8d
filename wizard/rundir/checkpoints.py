"""checkpoints/checkpoint-N/ and their completion markers.

A checkpoint counts only when it is complete: the training process writes CHECKPOINT_MARKER into
checkpoint-N/ last, after every other file is on disk (fsync), and the marker lists those files
with their sizes and sha256. A half-written checkpoint (SIGKILL or power cut during the save) has no
valid marker and is never resumed from. Before a resume, verified_checkpoint() checks the checksums
too: a file that rotted on disk without changing its size (a bad sector, a sync tool) makes that
checkpoint be set aside (checkpoint-N.corrupt) and the newest one that verifies be used instead.
"""

from __future__ import annotations

import hashlib
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


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """None when every file the marker lists is there with its size and sha256, else what is wrong
    ("optimizer.pt: its sha256 differs from the one recorded when it was saved"). Markers written
    before checksums were recorded are checked by size alone."""
    path = Path(path)
    try:
        marker = read_checkpoint_marker(path)
        sizes, sums = marker["files"], marker.get("sha256") or {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "no valid completion marker"
    for rel, size in sizes.items():
        try:
            if (path / rel).stat().st_size != size:
                return f"{rel}: {(path / rel).stat().st_size} bytes, {size} when it was saved"
            if rel in sums and _sha256(path / rel) != sums[rel]:
                return f"{rel}: its sha256 differs from the one recorded when it was saved"
        except OSError as e:
            return f"{rel}: {e.strerror or e}"
    return None


def verified_checkpoint(run_dir: str | os.PathLike, *, set_aside: bool = False) -> tuple[Path | None, list]:
    """(the newest complete checkpoint whose files verify, [(name, problem)] of the newer ones that do
    not). `set_aside`: rename those to checkpoint-N.corrupt, so a later save of step N starts clean and
    nothing tries them again (rank 0 alone, as it alone writes the run folder)."""
    rejected = []
    for _, path in reversed(good_checkpoints(run_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, rejected
        rejected.append((path.name, problem))
        if set_aside:
            aside = path.with_name(path.name + ".corrupt")
            shutil.rmtree(aside, ignore_errors=True)
            try:
                path.rename(aside)
            except OSError:
                pass
    return None, rejected


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    """fsync every file of the checkpoint, then write the marker (itself atomically) last, with each
    file's size and sha256 (read back once, from the page cache)."""
    path = Path(path)
    files: dict[str, int] = {}
    sums: dict[str, str] = {}
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != CHECKPOINT_MARKER):
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
        rel = f.relative_to(path).as_posix()
        files[rel], sums[rel] = f.stat().st_size, _sha256(f)
    _fsync_dir(path)
    atomic_write_json(path / CHECKPOINT_MARKER, {"step": step, "files": files, "sha256": sums, **extra})
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
