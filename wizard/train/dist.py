"""Inside each training process: which rank this is, its device, and what several processes need.

    rank(), world_size()             from torchrun's environment (0 and 1 for a single process)
    bind_local_device()              cuda:LOCAL_RANK before anything touches CUDA
    check_world_size(lock, ...)      a resume with another process count: refused unless allowed
    training_arguments(recipe, ...)  the Trainer's DDP / FSDP / DeepSpeed settings (configs in RUN/launch/)
    peer_lost(error)                 did a collective fail because another process died?

The front end (wizard.launch) plans and starts the processes; the two sides share only the run
folder (wizard.rundir): the FSDP/DeepSpeed configs it wrote, and lock.json's resume record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from wizard import rundir
from wizard.errors import UserError
from wizard.recipe import LaunchStrategy, Recipe


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def bind_local_device() -> None:
    """torch.cuda.set_device(LOCAL_RANK) before anything touches CUDA: no stray context on GPU 0."""
    if "LOCAL_RANK" not in os.environ or os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


def check_world_size(lock: dict, *, resume: bool, warn=None, run_dir: str | os.PathLike | None = None) -> None:
    """In each process of a resume: another number of processes than the checkpoint's is refused
    (it changes the global batch and the data position) unless the front end allowed it (--allow-resize,
    recorded in lock.json's latest resume)."""
    from wizard.rundir.lock import RESIZE_HINT, resize_allowed, resize_message, world_size_change

    change = world_size_change(lock, world_size()) if resume else None
    if change is None:
        return
    before, now = change
    if not resize_allowed(lock):
        raise UserError(resize_message(before, now), hint=RESIZE_HINT)
    if warn is not None:
        warn(f"resumed with {now} processes after {before} (--allow-resize): the global batch is now {now} x "
             "batch_size and the data order differs from an uninterrupted run")
    if run_dir is not None and rank() == 0:
        rundir.update_lock(run_dir, device={"world_size": now})


def training_arguments(recipe: Recipe, run_dir: str | os.PathLike, world_size: int) -> dict[str, Any]:
    """TrainingArguments keywords for several processes (an empty dict for one)."""
    if world_size <= 1:
        return {}
    kw: dict[str, Any] = {
        # every trainable weight (LoRA, modules_to_save, the vision tower when it trains) takes part in
        # every forward: no search for unused ones (it costs a graph walk per step)
        "ddp_find_unused_parameters": False,
        "ddp_timeout": 1800,  # a rank saving a big checkpoint must not time out the others' barrier
        "save_on_each_node": False,
    }
    folder = Path(run_dir) / rundir.LAUNCH_DIR  # written by the front end (wizard.launch.write_configs)
    strategy = recipe.launch.strategy
    if strategy == LaunchStrategy.fsdp:
        kw["fsdp"] = "full_shard auto_wrap"
        kw["fsdp_config"] = json.loads((folder / "fsdp.json").read_text(encoding="utf-8"))
    elif strategy in (LaunchStrategy.zero2, LaunchStrategy.zero3):
        kw["deepspeed"] = str(folder / "deepspeed.json")
    return kw


def peer_lost(error: BaseException) -> bool:
    """Did a collective fail because another process of the run died (killed, OOM-killed, node lost)?"""
    if world_size() <= 1:
        return False
    try:
        from torch.distributed import DistBackendError
    except ImportError:  # older torch
        DistBackendError = ()  # noqa: N806
    text = str(error)
    return isinstance(error, DistBackendError) or (isinstance(error, RuntimeError) and any(
        s in text for s in ("Connection reset by peer", "Connection closed by peer", "Broken pipe",
                            "Socket Timeout", "NCCL communicator was aborted")))
