"""lock.json: the facts a recipe does not pin but a replay depends on.

    lock = make_lock(recipe, resolved, recipe_dir=...)   # written by the front end with the run folder
    update_lock(run_dir, device=..., dataset=...)        # the training process adds what it learns

  packages (torch, transformers, peft, bitsandbytes, accelerate, caption-wizard), python,
  device and torch threads, seed, model revision + sha256 of each model file, dataset
  fingerprint, recipe hash and the recipe itself as it was when the run started (resume
  compares an edited recipe.yaml against it), and each resume (when, from which checkpoint,
  what changed, whether another process count was allowed).

No torch import here: the front end writes the lock before the training process starts.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from wizard.fsutil import atomic_write_json
from wizard.rundir.layout import LOCK_FILE, now_iso

PACKAGES = ["caption-wizard", "torch", "torchvision", "transformers", "peft", "bitsandbytes", "accelerate",
            "tokenizers", "safetensors", "pillow", "datasets", "modelscope"]


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def make_lock(recipe, resolved: Any, *, recipe_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    from wizard.recipe import recipe_hash

    files = dict(getattr(resolved, "files", None) or {})
    return {
        "created": now_iso(),
        "recipe_hash": recipe_hash(recipe),
        "seed": recipe.train.seed,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "model": {
            "id": recipe.model.id,
            "source": recipe.model.source,
            "revision": getattr(resolved, "revision", None) or recipe.model.revision,
            "path": str(Path(getattr(resolved, "path", resolved)).resolve()),
            "files": files,
        },
        "dataset": {"dataset": recipe.data.dataset, "subset": recipe.data.subset, "fingerprint": None},
        "device": None,  # filled in by the training process
        "recipe_dir": str(Path(recipe_dir).resolve()) if recipe_dir else None,
        "cwd": os.getcwd(),
        "recipe": recipe.to_dict(),
        "resumes": [],
    }


def read_lock(run_dir: str | os.PathLike) -> dict[str, Any]:
    """lock.json as a dict; {} when it is missing or unreadable."""
    try:
        lock = json.loads((Path(run_dir) / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return lock if isinstance(lock, dict) else {}


def write_lock(run_dir: str | os.PathLike, lock: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / LOCK_FILE, lock)


def update_lock(run_dir: str | os.PathLike, **changes: Any) -> dict[str, Any]:
    lock = read_lock(run_dir)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(lock.get(key), dict):
            lock[key] = {**lock[key], **value}
        else:
            lock[key] = value
    write_lock(run_dir, lock)
    return lock


def resize_allowed(lock: dict[str, Any]) -> bool:
    """Did the front end allow this resume another number of processes (--allow-resize)?"""
    resumes = lock.get("resumes") or []
    return bool(resumes and isinstance(resumes[-1], dict) and resumes[-1].get("allow_resize"))


RESIZE_HINT = ("resume with the same launch.processes / launch.devices / launch.nodes, or pass --allow-resize "
               "to accept a different global batch and data order")


def world_size_change(lock: dict[str, Any], now: int) -> tuple[int, int] | None:
    """(processes the run trained with, `now`) when they differ; None when the same or not yet known."""
    device = lock.get("device")
    if not isinstance(device, dict) or not device:
        return None  # the first session never started training: nothing to compare with
    before = int(device.get("world_size") or 1)
    return None if before == now else (before, now)


def resize_message(before: int, now: int) -> str:
    return (f"this run trained with {before} process{'es' if before > 1 else ''}; resuming with {now} changes the "
            f"global batch ({before} x batch_size -> {now} x batch_size), so the learning-rate schedule and the "
            "position in the data no longer match the checkpoint")
