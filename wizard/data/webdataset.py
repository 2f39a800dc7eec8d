"""WebDataset tar shards: KEY.jpg + KEY.txt (or KEY.json with a caption field) per sample.

    read_webdataset(path, spec)     # a .tar file, or a folder of shards (data.subset: a word in their names)

A sample is the files of one key (the member name up to its first dot, folders included, as the
webdataset library groups them). The image is the first of jpg/jpeg/png/webp; the caption is the
.txt file, or the caption/captions/text field of the .json file. The example id is the key.

Each shard is unpacked once, streaming, into the cache (wizard.paths.cache_dir("webdataset"),
~/.cache/caption-wizard/webdataset/ by default, one folder per shard named by its path, size and
modification time, with an index.json written last): images then live in files like any other dataset's (no shard is held in memory), and a
second run reads only the index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from wizard.data.adapters import CAPTION_COLUMNS, ReadResult, Row, caption_values
from wizard.errors import UserError
from wizard.fsutil import json_text

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp")
TEXT_EXTS = ("txt", "caption", "json")
INDEX = "index.json"


def shard_files(path: Path, subset: str | None) -> list[Path]:
    if path.is_file():
        return [path]
    shards = sorted(p for p in path.rglob("*.tar") if len(p.relative_to(path).parts) <= 2)
    if subset:
        shards = [p for p in shards if subset in p.relative_to(path).as_posix()]
    elif any("train" in p.name for p in shards) and not all("train" in p.name for p in shards):
        shards = [p for p in shards if "train" in p.name]
    if not shards:
        raise UserError(f"no .tar shards in {path}" + (f" with {subset!r} in their names" if subset else ""),
                        hint="point data.dataset at a shard or the folder of shards")
    return shards


def read_webdataset(path: Path, spec) -> ReadResult:
    from wizard.paths import cache_dir

    shards = shard_files(path, spec.subset)
    cache = cache_dir("webdataset")
    rows: list[Row] = []
    for shard in shards:
        rows += _shard_rows(shard, cache)
    info = [f"{len(shards)} shard{'s' if len(shards) > 1 else ''}: " + ", ".join(s.name for s in shards[:3])
            + (" ..." if len(shards) > 3 else "") + f"; unpacked in {cache}"]
    return ReadResult(rows, shards[0] if len(shards) == 1 else path, None, info=info)


def _shard_rows(shard: Path, cache: Path) -> list[Row]:
    st = shard.stat()
    key = f"{shard.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}"
    folder = cache / hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    if not (folder / INDEX).is_file():
        _unpack(shard, folder)
    entries = json.loads((folder / INDEX).read_text(encoding="utf-8"))
    rows = []
    for e in entries:
        row = Row(f"{shard.name}:{e['key']}", id=e["key"], name=e["key"])
        rows.append(row)
        if e.get("problem"):
            row.problem = e["problem"]
        else:
            row.image, row.captions = folder / e["image"], e["captions"]
    return rows


def _unpack(shard: Path, folder: Path) -> None:
    """Write the shard's images under `folder` and index.json (key, image file, captions or problem)."""
    tmp = folder.with_name(f".{folder.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    samples: dict[str, dict] = {}
    try:
        with tarfile.open(shard) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder_name, _, base = member.name.rpartition("/")
                stem, dot, ext = base.partition(".")
                ext = ext.lower()
                if not dot or stem.startswith(".") or (ext not in IMAGE_EXTS and ext not in TEXT_EXTS):
                    continue
                name = f"{folder_name}/{stem}" if folder_name else stem
                sample = samples.setdefault(name, {})
                data = tar.extractfile(member).read()
                if ext in TEXT_EXTS:
                    sample[ext] = data
                elif "image" not in sample and _safe(name):
                    target = tmp / f"{name}.{ext}"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    sample["image"] = f"{name}.{ext}"
    except (tarfile.TarError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{shard} is not a readable tar file ({e})") from None
    index = [_entry(name, sample) for name, sample in samples.items()]
    (tmp / INDEX).write_text(json_text(index), encoding="utf-8")
    try:
        os.replace(tmp, folder)  # atomic: a half-unpacked shard never looks done
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)


def _safe(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts


def _entry(name: str, sample: dict) -> dict:
    entry = {"key": name}
    if "image" not in sample:
        entry["problem"] = "no image (" + ", ".join(f"{name}.{e}" for e in sample) + ")"
        return entry
    entry["image"] = sample["image"]
    try:
        entry["captions"] = _caption(sample)
    except ValueError as e:
        entry["problem"] = str(e)
    return entry


def _text(raw: bytes, ext: str) -> str:
    """A sample's text part in UTF-8, UTF-16 or GBK (wizard.data.textfile); ValueError when it is none."""
    from wizard.data.textfile import decode

    try:
        return decode(raw, f"sample.{ext}")
    except UserError:
        raise ValueError(f"the sample's .{ext} is not UTF-8 text") from None


def _caption(parts: dict) -> list[str]:
    for ext in ("txt", "caption"):
        if ext in parts:
            return caption_values(_text(parts[ext], ext))
    if "json" in parts:
        try:
            meta = json.loads(_text(parts["json"], "json"))
        except (UserError, json.JSONDecodeError, RecursionError):
            raise ValueError("not valid JSON (the sample's .json)") from None
        if isinstance(meta, dict):
            key = next((k for k in CAPTION_COLUMNS if k in meta), None)
            return caption_values(meta[key]) if key else []
    return []
