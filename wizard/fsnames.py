"""File names as the file system has them: bytes that need not be UTF-8, and Unicode in NFC or NFD.

    shown(path)              # 'caf\\xe9.png' for the Latin-1 bytes caf\xe9.png: printable, never an error
    json_text(obj)           # JSON (UTF-8 safe): such a name as "caf\\udce9.png", which json.loads and
                             # os.fsencode turn back into the very bytes
    find_normalized(path)    # cafe\u0301.png on disk (NFD, as macOS writes it) for café.png (NFC) in metadata

Python reads a name that is not valid UTF-8 with surrogateescape (os.fsdecode): each bad byte becomes a
lone surrogate, which is fine for opening the file and fatal for writing it to a UTF-8 file or a
terminal. So names go through shown() when printed and json_text() when written.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from wizard.fsutil import json_text  # noqa: F401 - the writer's half of this module's story

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def shown(name) -> str:
    """A printable form of a path or name: undecodable bytes as \\xNN (like `ls -b`)."""
    text = os.fspath(name) if isinstance(name, os.PathLike) else str(name)
    if not _SURROGATE.search(text):
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the bytes as the file system has them
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte (from JSON, say)
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", errors="backslashreplace")


_listings: dict[str, dict[str, str]] = {}


def find_normalized(path: Path) -> Path | None:
    """The existing file that `path` names up to Unicode normalization (NFC/NFD), or None.

    Tries the whole path in NFC and in NFD first, then each component against its folder's entries."""
    text = str(path)
    for form in ("NFC", "NFD"):
        other = unicodedata.normalize(form, text)
        if other != text and os.path.exists(other):
            return Path(other)
    parts = Path(text).parts
    current = Path(parts[0]) if parts else Path(".")
    for part in parts[1:]:
        candidate = current / part
        if not os.path.lexists(candidate):
            entry = _entries(current).get(unicodedata.normalize("NFC", part))
            if entry is None:
                return None
            candidate = current / entry
        current = candidate
    return current if current != path and os.path.exists(current) else None


def _entries(folder: Path) -> dict[str, str]:
    """NFC name -> name as stored, per folder (cached: a data set with many missing images lists once)."""
    key = str(folder)
    if key not in _listings:
        if len(_listings) > 1000:
            _listings.clear()
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        _listings[key] = {unicodedata.normalize("NFC", n): n for n in names}
    return _listings[key]
