"""WebDataset tar shards: KEY.jpg + KEY.txt (or KEY.json with a caption field) per sample.

    read_webdataset(path, spec)     # a .tar file, or a folder of shards (data.subset: a word in their names)

A sample is the files of one key (the member name up to its first dot, folders included, as the
webdataset library groups them). The image is the first of jpg/jpeg/png/webp; the caption is the
.txt file, or the caption/captions/text field of the .json file. The image bytes are read into
memory (the shards are the only copy); the example id is the key.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from wizard.data.adapters import CAPTION_COLUMNS, ReadResult, Row, caption_values
from wizard.errors import UserError

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp")
TEXT_EXTS = ("txt", "caption", "json")


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
    shards = shard_files(path, spec.subset)
    rows: list[Row] = []
    for shard in shards:
        rows += _shard_rows(shard)
    info = [f"{len(shards)} shard{'s' if len(shards) > 1 else ''}: " + ", ".join(s.name for s in shards[:3])
            + (" ..." if len(shards) > 3 else "")]
    return ReadResult(rows, shards[0] if len(shards) == 1 else path, None, info=info)


def _shard_rows(shard: Path) -> list[Row]:
    samples: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(shard) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, base = member.name.rpartition("/")
                stem, dot, ext = base.partition(".")
                if not dot or stem.startswith("."):
                    continue
                ext = ext.lower()
                if ext in IMAGE_EXTS or ext in TEXT_EXTS:
                    key = f"{folder}/{stem}" if folder else stem
                    samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError) as e:
        raise UserError(f"{shard} is not a readable tar file ({e})") from None
    rows = []
    for key, parts in samples.items():
        row = Row(f"{shard.name}:{key}", id=key, name=key)
        rows.append(row)
        image = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
        if image is None:
            row.problem = "no image (" + ", ".join(f"{key}.{e}" for e in parts) + ")"
            continue
        row.image = image
        try:
            row.captions = _caption(parts)
        except ValueError as e:
            row.problem = str(e)
    return rows


def _caption(parts: dict[str, bytes]) -> list[str]:
    for ext in ("txt", "caption"):
        if ext in parts:
            return caption_values(parts[ext].decode("utf-8-sig", errors="replace"))
    if "json" in parts:
        try:
            meta = json.loads(parts["json"].decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError("not valid JSON (the sample's .json)") from None
        if isinstance(meta, dict):
            key = next((k for k in CAPTION_COLUMNS if k in meta), None)
            return caption_values(meta[key]) if key else []
    return []
