"""Where the data is and which format it has: data.dataset + data.format -> (format, file).

    locate(recipe.data, base_dir)   # Located(format="coco", path=.../captions_train2014.json, ...)

Rules (data.format=auto), first match wins:
  "shapes"                                     -> shapes (built in)
  a .parquet file                              -> hf
  a .csv / .jsonl with a file_name column      -> imagefolder (the images are next to it)
  a .jsonl with messages / query+response      -> messages
  a .json starting with "["                    -> messages (LLaMA-Factory array)
  a .json with "images" + "annotations"        -> coco
  a folder with dataset_dict.json, or state.json + dataset_info.json (save_to_disk) -> hf
  a folder with metadata.jsonl / metadata.csv (also in SUBSET/ or train/)          -> imagefolder
  a folder with .parquet files (up to 3 levels down)                               -> hf
  a folder with data/captioning/ (a copy of AI-ModelScope/M3IT)                    -> m3it
  a folder with *.csv.zip or a CSV with uniq_id,image_id,caption,image columns     -> coco_csv
  a folder with one kind of caption file (.json/.jsonl, also under annotations/)   -> that kind
  not a local path: a ModelScope id from the catalog                               -> its format (m3it, coco_csv)
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from wizard.errors import UserError

FORMATS = ("imagefolder", "coco", "messages", "hf", "shapes", "m3it", "coco_csv")
NOT_CAPTION_FILES = {"dataset_info.json", "dataset_dict.json", "state.json", "dataset_infos.json"}
_COCO_KEYS = re.compile(r'"(annotations|images)"\s*:\s*\[')
FORMATS_HINT = ("data.dataset is a folder or file — imagefolder (images + metadata.jsonl/.csv), COCO captions "
                ".json, messages .jsonl/.json (ms-swift, LLaMA-Factory), a datasets save_to_disk folder or "
                ".parquet — or 'shapes' (built in), or a ModelScope dataset from the catalog "
                "(modelscope/coco_2014_caption, AI-ModelScope/M3IT)")


@dataclass
class Located:
    format: str
    path: Path | None  # the file (or folder, for hf) to read; None: built in / to download
    detected: bool  # found by auto-detection (not set in data.format)


def search_dirs(base_dir: str | Path | None) -> list[Path]:
    dirs = [Path(base_dir)] if base_dir else []
    dirs.append(Path.cwd())
    return list(dict.fromkeys(d.resolve() for d in dirs))


def resolve_path(dataset: str, base_dir: str | Path | None) -> Path | None:
    """data.dataset as an existing path: absolute, or relative to base_dir, then to the cwd."""
    p = Path(dataset).expanduser()
    if p.is_absolute():
        return p if p.exists() else None
    for d in search_dirs(base_dir):
        if (d / p).exists():
            return d / p
    return None


def locate(spec, base_dir: str | Path | None = None) -> Located:
    from wizard.catalog import DATASETS, DEMO_DATASET_ID

    fmt, auto = spec.format, spec.format == "auto"
    if fmt == "shapes" or (auto and spec.dataset == DEMO_DATASET_ID):
        return Located("shapes", None, auto)
    path = resolve_path(spec.dataset, base_dir)
    if fmt in ("m3it", "coco_csv"):
        return Located(fmt, path, False)
    if path is None:
        known = [d for d in DATASETS if d.id == spec.dataset and d.source == "modelscope"]
        if auto and known:
            match = next((d for d in known if d.subset == spec.subset), known[0])
            return Located(match.format, None, True)
        raise _not_found(spec.dataset, base_dir)
    if auto:
        fmt, path = detect(path, spec.subset)
    return Located(fmt, pick_file(fmt, path, spec.subset), auto)


def _not_found(dataset: str, base_dir) -> UserError:
    dirs = search_dirs(base_dir)
    p = Path(dataset).expanduser()
    where = str(p) if p.is_absolute() else " or ".join(str(d / p) for d in dirs)
    hint = FORMATS_HINT
    parent = p.parent if p.is_absolute() else dirs[0] / p.parent
    if parent.is_dir():
        near = difflib.get_close_matches(p.name, [c.name for c in parent.iterdir()], n=1)
        if near:
            hint = f"did you mean {(p.parent / near[0]).as_posix()}? ({FORMATS_HINT})"
    also = "; nor a ModelScope dataset in the catalog" if re.fullmatch(r"[\w.-]+/[\w.-]+", dataset) else ""
    if also:
        hint += "; for another ModelScope dataset set data.format to m3it or coco_csv (the layouts read)"
    return UserError(f"dataset not found: data.dataset={dataset!r} (no file or folder {where}{also})", hint=hint)


# ----------------------------------------------------------------------------- detection
def sniff(path: Path) -> str | None:
    """The format of one file from its name and first bytes, or None."""
    suffix = path.suffix.lower()
    if path.name in NOT_CAPTION_FILES:
        return None
    if suffix == ".parquet":
        return "hf"
    if suffix == ".csv":
        return "imagefolder" if "file_name" in _head(path, 4096).split("\n")[0] else None
    if suffix not in (".json", ".jsonl"):
        return None
    head = _head(path, 1 << 20).lstrip()
    if suffix == ".json" and head.startswith("["):
        return "messages"
    for line in head.splitlines()[:20]:  # JSON Lines (also when named .json), or a one-line file
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            if "annotations" in rec and "images" in rec:
                return "coco"
            if {"messages", "conversations", "query", "response"} & set(rec):
                return "messages"
            return "imagefolder" if "file_name" in rec else None
    if suffix == ".json" and head.startswith("{") and _COCO_KEYS.search(head):
        return "coco"
    return None


def sniff_coco_csv(path: Path) -> bool:
    """modelscope/coco_2014_caption's CSV: columns uniq_id, image_id, caption, image."""
    if path.suffix.lower() != ".csv":
        return False
    header = _head(path, 4096).split("\n")[0]
    return all(c in header for c in ("uniq_id", "image_id", "caption", "image"))


def _head(path: Path, n: int) -> str:
    with open(path, "rb") as f:
        return f.read(n).decode("utf-8-sig", errors="replace")


def detect(path: Path, subset: str | None) -> tuple[str, Path]:
    """(format, path) for data.format=auto; UserError saying what was found when it cannot tell."""
    from wizard.data.tables import is_saved_dataset

    if path.is_file():
        fmt = sniff(path)
        if fmt is None:
            raise UserError(f"cannot tell the format of {path}",
                            hint=f"set data.format (one of {', '.join(FORMATS)}); {FORMATS_HINT}")
        return fmt, path
    if is_saved_dataset(path):
        return "hf", path
    if _metadata_file(path, subset):
        return "imagefolder", path
    if any(_parquet_files(path)):
        return "hf", path
    if (path / "data" / "captioning").is_dir():  # a local copy of AI-ModelScope/M3IT
        return "m3it", path
    if any(f.name.lower().endswith(".csv.zip") or sniff_coco_csv(f) for f in path.iterdir()):
        return "coco_csv", path  # a local copy of modelscope/coco_2014_caption
    found = {f: sniff(f) for f in _caption_files(path)}
    kinds = sorted({k for k in found.values() if k})
    if len(kinds) == 1:
        return kinds[0], path
    if kinds:
        listing = ", ".join(f"{f.name} ({k})" for f, k in found.items() if k)
        raise UserError(f"{path} holds caption files of several formats: {listing}",
                        hint="point data.dataset at one file, or set data.format")
    n_images = sum(1 for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    what = f"{n_images} images but no metadata.jsonl, metadata.csv or caption file" if n_images \
        else "no caption data that caption-wizard reads"
    raise UserError(f"cannot tell the format of folder {path}: {what}",
                    hint="for a folder of images add metadata.jsonl with lines like "
                         '{"file_name": "0001.png", "text": "a red circle"}; ' + FORMATS_HINT)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _metadata_file(folder: Path, subset: str | None) -> Path | None:
    dirs = ([folder / subset] if subset else []) + [folder, folder / "train"]
    for d in dirs:
        for name in ("metadata.jsonl", "metadata.csv"):
            if (d / name).is_file():
                return d / name
    return None


def _parquet_files(folder: Path):
    for root, dirs, files in os.walk(folder):
        if len(Path(root).relative_to(folder).parts) >= 3:
            dirs.clear()
        for f in files:
            if f.endswith(".parquet"):
                yield Path(root) / f


def _caption_files(folder: Path) -> list[Path]:
    files = [f for d in (folder, folder / "annotations") if d.is_dir() for f in sorted(d.iterdir())
             if f.is_file() and f.suffix.lower() in (".json", ".jsonl")]
    return files


# ----------------------------------------------------------------------------- the one file to read
def pick_file(fmt: str, path: Path, subset: str | None) -> Path:
    """For a folder: the metadata / COCO JSON / messages file inside it (hf reads the folder)."""
    if fmt in ("hf", "m3it", "coco_csv") or path.is_file():
        if fmt == "imagefolder" and path.suffix.lower() not in (".jsonl", ".csv", ".json"):
            raise UserError(f"{path}: imagefolder metadata is a .jsonl or .csv file")
        return path
    if fmt == "imagefolder":
        meta = _metadata_file(path, subset)
        if meta is None:
            raise UserError(f"no metadata.jsonl or metadata.csv in {path}",
                            hint='imagefolder needs metadata.jsonl with lines like {"file_name": "0001.png", '
                                 '"text": "a red circle"}')
        return meta
    files = [f for f in _caption_files(path) if sniff(f) == fmt]
    if not files:
        raise UserError(f"no {fmt} caption file (.json/.jsonl) in {path}", hint=FORMATS_HINT)
    if subset and any(subset in f.name for f in files):
        files = [f for f in files if subset in f.name]
    if len(files) > 1 and any("train" in f.name for f in files):
        files = [f for f in files if "train" in f.name]
    if len(files) > 1:
        raise UserError(f"{path} holds several {fmt} files: {', '.join(f.name for f in files)}",
                        hint="point data.dataset at one of them, or set data.subset to a word in its name")
    return files[0]
