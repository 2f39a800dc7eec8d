"""Atomic file writes: a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def json_text(obj, **kw) -> str:
    """json.dumps(obj, ensure_ascii=False) that always encodes as UTF-8: a file name that is not UTF-8
    (read by Python with surrogateescape) is written as "caf\\udce9.png", which json.loads and
    os.fsencode turn back into its bytes (wizard/fsnames.py)."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(obj, ensure_ascii=False, **kw))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` via a temporary file in the same folder, fsync, then rename."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    """Write `data` to `path` via a temporary file in the same folder, then rename. No fsync by
    default: for caches, where a file lost to a power cut is computed again (never half-read)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json_text(obj, indent=2) + "\n")


def create_exclusive_text(path: str | os.PathLike, text: str) -> Path:
    """Write a new file atomically; raise FileExistsError if `path` already exists.

    Written to a temporary name first, then hard-linked into place: link() fails
    if the target exists, so a concurrent writer can never be overwritten.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path


# ----------------------------------------------------------------------------- hostile targets
# What a write into a folder the user named can hit: read-only mounts (EROFS), permissions,
# a file where a folder should be, a full disk. Each becomes a UserError naming the folder.
import errno  # noqa: E402  (kept next to its first use)

_UNWRITABLE = {errno.EROFS: "is on a read-only file system", errno.EACCES: "is not writable (permission denied)",
               errno.EPERM: "is not writable (operation not permitted)", errno.ENOTDIR: "is not a folder",
               errno.ENOSPC: "has no space left", errno.EDQUOT: "is over its disk quota"}


def _existing_parent(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(folder: str | os.PathLike) -> int:
    """Free bytes (for an unprivileged user) on the file system holding `folder`."""
    try:
        st = os.statvfs(_existing_parent(Path(folder)))
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC, or what torch.save says when it ran out of room (`unexpected pos` in inline_container)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error)
        if "No space left on device" in text or ("inline_container" in text and "unexpected pos" in text):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full_message(folder: str | os.PathLike) -> str:
    from wizard.units import fmt_bytes

    return f"no space left on device ({fmt_bytes(free_bytes(folder))} free in {folder})"


def unwritable_error(target: str | os.PathLike, error: OSError, what: str = "", hint: str | None = None):
    """A UserError for a failed write to `target` (a file or folder): names the folder and the reason."""
    from wizard.errors import UserError

    target = Path(target)
    folder = target if target.is_dir() else target.parent
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = disk_full_message(folder)
        return UserError(f"cannot write {what or target}: {reason}", hint=hint or "free some space, or write elsewhere")
    why = _UNWRITABLE.get(error.errno, f"cannot be written ({error.strerror or error})")
    folder = Path(error.filename).parent if getattr(error, "filename", None) and error.errno == errno.ENOTDIR else folder
    return UserError(f"cannot write {what or target}: {folder} {why}",
                     hint=hint or "choose a writable folder")


def check_writable_dir(folder: str | os.PathLike, what: str = "", hint: str | None = None) -> Path:
    """Create `folder` if needed and prove a file can be written there (UserError naming it if not)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError as e:  # a file where the folder should be
        e.errno = errno.ENOTDIR
        raise unwritable_error(folder, e, what, hint) from None
    except OSError as e:
        raise unwritable_error(folder / "x", e, what or str(folder), hint) from None
    return folder


def check_new_file(path: str | os.PathLike, *, force: bool, flag: str = "--out") -> Path:
    """A file the user asked us to write: never an existing one without --force, never a folder;
    its folder must be writable. Checked before any work is done."""
    from wizard.errors import UserError

    raw = str(path)
    path = Path(path)
    if path.is_dir() or raw.endswith(("/", os.sep)):
        raise UserError(f"{flag} {raw}: is a folder; {flag} takes a file name",
                        hint=f"e.g. {flag} {path / 'captions.jsonl'}")
    if (path.exists() or path.is_symlink()) and not force:
        raise UserError(f"{path} already exists; not overwriting it",
                        hint=f"pass --force to replace it, or choose another file with {flag}")
    check_writable_dir(path.parent, str(path))
    return path


def write_user_file(path: str | os.PathLike, text: str, what: str = "", hint: str | None = None) -> Path:
    """atomic_write_text, with a failure (read-only, full, not a folder) as a UserError naming the folder."""
    try:
        return atomic_write_text(path, text)
    except FileExistsError as e:
        e.errno = errno.ENOTDIR
        raise unwritable_error(path, e, what, hint) from None
    except OSError as e:
        raise unwritable_error(path, e, what, hint) from None
