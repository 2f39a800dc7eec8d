"""Real hostile file systems for the fault tests: a full disk (a small tmpfs) and a read-only folder.

Tests run as root in CI, where chmod does not stop a write: a read-only folder is a tmpfs
remounted read-only (or, where mounting is not allowed, chmod 555 for a normal user).
Where neither works the fixture skips with a reason saying so (pytest -rs shows it).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


@contextmanager
def small_disk(path: Path, size: str = "2m"):
    """`path` is a fresh tmpfs of `size` (a full disk once that is written)."""
    if not _mount(path, f"size={size}"):
        pytest.skip("cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): the full-disk test needs one")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def writable(folder: Path) -> bool:
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


@contextmanager
def read_only(path: Path, fill=None):
    """`path` as a read-only folder; `fill(path)` writes its contents first."""
    mounted = _mount(path, "size=64m")
    if fill is not None:
        fill(path)
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
    elif os.geteuid() != 0:
        for p in [path, *path.rglob("*")]:
            if p.is_dir():
                p.chmod(0o555)
    else:
        pytest.skip("root without mount: no way to make a read-only folder here")
    assert not writable(path), f"{path} is still writable"
    try:
        yield path
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        else:
            for p in [path, *path.rglob("*")]:
                if p.is_dir():
                    p.chmod(0o755)
