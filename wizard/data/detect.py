"""Where the data is and which format it has: data.dataset + data.format -> (format, file).

    locate(recipe.data, base_dir)   # Located(format="coco", path=.../captions_train2014.json, ...)

Rules (data.format=auto), first match wins:
  "shapes"                                     -> shapes (built in)
  a .parquet file                              -> hf
  a .tar file                                  -> webdataset
  a .txt/.token with IMAGE.jpg#N<TAB>caption   -> flickr (COCO_val2014_...#N: coco_cn)
  a .csv / .jsonl with a file_name column      -> imagefolder (the images are next to it)
  a .csv with query,response(,images) columns  -> messages (ms-swift CSV)
  a .csv/.tsv/.txt/.jsonl with an image and a caption column (captions.txt, results.csv) -> table
  a .json/.jsonl of messages / conversations / conversation / query+response / instruction+output -> messages
  a .json array of {url, image_id, caption}    -> aic;  of {image, caption} -> blip
  a .json with "images": [{..."sentences"...}] -> karpathy (decided from the first 64 KB)
  a .json with "images" + "annotations"        -> coco (instances_*/person_keypoints_* files are skipped)
  data.columns set: any .csv/.tsv/.txt/.json/.jsonl -> table
  a folder with dataset_dict.json, or state.json + dataset_info.json (save_to_disk) -> hf
  a folder with a LLaMA-Factory dataset_info.json (also in data/)                  -> llama_factory
  a folder with metadata.jsonl / metadata.csv (also in SUBSET/ or train/)          -> imagefolder
  a folder with .parquet files (up to 3 levels down)                               -> hf
  a folder with data/captioning/ (a copy of AI-ModelScope/M3IT)                    -> m3it
  a folder with *.csv.zip or a CSV with uniq_id,image_id,caption,image columns     -> coco_csv
  a folder with .tar shards                                                        -> webdataset
  a folder with one kind of caption file (also under annotations/ or *_text/)      -> that kind
  not a local path: a ModelScope id from the catalog                               -> its format (m3it, coco_csv)
An explicit data.format that contradicts data.dataset (shapes with a path; a format whose file is
not there while the data is of another detected format) is an error naming both keys.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from wizard.errors import UserError

FORMATS = ("imagefolder", "coco", "messages", "hf", "shapes", "m3it", "coco_csv", "karpathy", "blip", "flickr",
           "coco_cn", "aic", "table", "webdataset", "llama_factory")
NOT_CAPTION_FILES = {"dataset_info.json", "dataset_dict.json", "state.json", "dataset_infos.json"}
_COCO_KEYS = re.compile(r'"(annotations|images)"\s*:\s*\[')
FORMATS_HINT = ("data.dataset is a folder or file — imagefolder (images + metadata.jsonl/.csv), COCO captions "
                ".json or annotations/ folder, Karpathy dataset_*.json, BLIP/LAVIS lists, Flickr token files, "
                "captions.txt / results.csv, AI Challenger or COCO-CN caption files, WebDataset .tar shards, "
                "messages .jsonl/.json/.csv (ms-swift, LLaMA-Factory) or a LLaMA-Factory data/ folder, a "
                "datasets save_to_disk folder or .parquet, any CSV/JSONL with data.columns — or 'shapes' "
                "(built in), or a ModelScope dataset from the catalog (modelscope/coco_2014_caption, "
                "AI-ModelScope/M3IT)")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".token", ".json", ".jsonl")
_KARPATHY = re.compile(r'"images"\s*:\s*\[\s*\{')
_TOKEN_LINE = re.compile(r"^(\S+)#\d+\s")
_COCO_ID = re.compile(r"^COCO_(train|val)\d{4}_\d+$")
NOT_COCO_CAPTIONS = ("instances_", "person_keypoints_", "image_info_", "stuff_", "panoptic_")
# A forced data.format that can read data of the detected one (e.g. a BLIP list is a table too).
READS_ALSO = {"table": {"blip", "aic", "imagefolder"}, "blip": {"table", "aic"}, "aic": {"table", "blip"},
              "flickr": {"coco_cn"}, "coco_cn": {"flickr"}, "messages": {"llama_factory"}}


@dataclass
class Located:
    format: str
    path: Path | None  # the file (or folder, for hf) to read; None: built in / to download
    detected: bool  # found by auto-detection (not set in data.format)
    why: str = ""  # what decided it, for the data check: "dataset_coco.json: images[] with filename/split/sentences"


# What auto-detection saw, per format (Located.why).
WHY = {"imagefolder": "a metadata file with a file_name column", "coco": "a JSON object with images + annotations",
       "karpathy": "a JSON object whose images[] carry filename/split/sentences (a Karpathy split file)",
       "blip": "a JSON array of {image, caption} records (BLIP/LAVIS)", "aic": "a JSON array of {url, image_id, "
       "caption} records (AI Challenger)", "flickr": "lines IMAGE.jpg#N<TAB>caption (a Flickr token file)",
       "coco_cn": "lines COCO_..._ID#N<TAB>caption (COCO-CN)", "table": "a table with an image and a caption column",
       "webdataset": ".tar shards", "messages": "chat records (messages, conversations, query/response, alpaca)",
       "llama_factory": "a LLaMA-Factory dataset_info.json", "hf": "a datasets folder or parquet files",
       "m3it": "a copy of AI-ModelScope/M3IT (data/captioning/)", "coco_csv": "modelscope/coco_2014_caption CSV files",
       "shapes": "the built-in demo set"}


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
    if fmt == "shapes" and spec.dataset != DEMO_DATASET_ID:
        raise UserError(f"data.format='shapes' contradicts data.dataset={spec.dataset!r}: the shapes format is the "
                        f"built-in synthetic set and would train on it instead of your data",
                        hint="set data.format=auto (or the format of your data) to read data.dataset; "
                             "data.dataset=shapes is the demo set")
    if fmt == "shapes" or (auto and spec.dataset == DEMO_DATASET_ID):
        return Located("shapes", None, auto, WHY["shapes"])
    path = resolve_path(spec.dataset, base_dir)
    if path is None:
        known = [d for d in DATASETS if d.id == spec.dataset and d.source == "modelscope"]
        if known and not auto and all(d.format != fmt for d in known):
            raise _contradiction(spec, f"the ModelScope dataset {spec.dataset} is read as {known[0].format}",
                                 known[0].format)
        if fmt in ("m3it", "coco_csv"):
            return Located(fmt, path, False, "set in data.format")
        if auto and known:
            match = next((d for d in known if d.subset == spec.subset), known[0])
            return Located(match.format, None, True, f"{spec.dataset} is in the catalog as {match.format}")
        raise _not_found(spec.dataset, base_dir)
    if not auto:
        _check_forced(spec, path)
        return Located(fmt, pick_file(fmt, path, spec.subset), False, "set in data.format")
    fmt, path = detect(path, spec.subset, columns=spec.columns is not None)
    file = pick_file(fmt, path, spec.subset)
    if spec.columns is not None and fmt in ("imagefolder", "blip", "aic"):
        return Located("table", file, True, f"{file.name}: a table read with data.columns")
    return Located(fmt, file, True, f"{file.name}: {WHY.get(fmt, fmt)}")


def _check_forced(spec, path: Path) -> None:
    """A forced data.format must fit data.dataset: when detection finds another format and the
    forced one finds nothing to read there, the recipe contradicts itself."""
    try:
        found, _ = detect(path, spec.subset, columns=spec.columns is not None)
    except UserError:
        return  # we cannot tell: trust the recipe
    if found == spec.format or found in READS_ALSO.get(spec.format, ()):
        return
    if path.is_dir() and spec.format not in ("m3it", "coco_csv", "webdataset", "llama_factory"):  # these read
        try:                                                                   # the folder as a whole
            pick_file(spec.format, path, spec.subset)
            return  # the forced format has its own file there
        except UserError:
            pass
    raise _contradiction(spec, f"{path} holds {found} data", found)


def _contradiction(spec, what: str, found: str) -> UserError:
    return UserError(f"data.format={spec.format!r} contradicts data.dataset={spec.dataset!r}: {what}",
                     hint=f"set data.format=auto (or data.format={found}), or point data.dataset at "
                          f"{spec.format} data")


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
def sniff(path: Path, columns: bool = False) -> str | None:
    """The format of one file from its name and first KBs (never the whole file), or None.
    `columns`: data.columns is set, so any table-like file is a table."""
    from wizard.data.describe import first_json_value

    suffix, low = path.suffix.lower(), path.name.lower()
    if path.name in NOT_CAPTION_FILES or low.startswith(NOT_COCO_CAPTIONS):
        return None
    if suffix == ".parquet":
        return "hf"
    if suffix == ".tar":
        return "webdataset"
    if suffix in (".csv", ".tsv", ".txt", ".token"):
        return _sniff_text(path) or ("table" if columns else None)
    if suffix not in (".json", ".jsonl"):
        return None
    head = _head(path, 1 << 16).lstrip()
    if head.startswith("["):
        rec = first_json_value(head)
        if rec is None:  # the first record does not end in 64 KB: chat records with embedded images
            return "messages"
        return _record_format(rec, array=True) or ("table" if columns else None)
    for line in head.splitlines()[:20]:  # JSON Lines (also when named .json), or a small one-line file
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            return _record_format(rec, array=False) or ("table" if columns else None)
    if head.startswith("{"):  # one big document (Karpathy files are one 100+ MB line): the first keys decide
        m = _KARPATHY.search(head)
        if m and any(k in head[m.end():m.end() + 4096] for k in ('"sentences"', '"sentids"', '"filepath"', '"split"')):
            return "karpathy"
        if _COCO_KEYS.search(head):
            return "coco"
    return None


def _record_format(rec, array: bool) -> str | None:
    """The format of a file whose first record (array element or JSON line) is `rec`."""
    from wizard.data.records import IMAGE_COLUMNS

    if not isinstance(rec, dict):
        return None
    keys = set(rec)
    first_image = rec.get("images")[0] if isinstance(rec.get("images"), list) and rec["images"] else None
    if isinstance(first_image, dict) and ({"sentences", "sentids", "split"} & set(first_image)):
        return "karpathy"
    if "annotations" in keys and "images" in keys:
        return "coco"
    if keys & {"messages", "conversations", "conversation", "query", "response"} or \
            ("output" in keys and keys & {"instruction", "input"}):
        return "messages"
    if "file_name" in keys:
        return "imagefolder"
    if {"url", "image_id", "caption"} <= keys:
        return "aic"
    if array and "image" in keys and "caption" in keys:
        return "blip"
    if keys & set(IMAGE_COLUMNS) and _caption_key(keys):
        return "table"
    return None


def _caption_key(keys) -> str | None:
    from wizard.data.adapters import pick_caption_key
    from wizard.data.records import EXTRA_CAPTION_COLUMNS

    lower = {k.lower() for k in keys}
    return pick_caption_key(lower, "en") or pick_caption_key(lower, "zh") or \
        next((c for c in EXTRA_CAPTION_COLUMNS if c in lower), None)


def _sniff_text(path: Path) -> str | None:
    import csv

    from wizard.data.records import IMAGE_COLUMNS, delimiter_of

    lines = [ln for ln in _head(path, 8192).splitlines() if ln.strip()]
    if not lines:
        return None
    first = lines[0]
    m = _TOKEN_LINE.match(first)
    if m and "\t" in first:
        return "coco_cn" if _COCO_ID.match(m.group(1)) else "flickr"
    if sniff_coco_csv(path):
        return None  # modelscope/coco_2014_caption: read as a folder (coco_csv)
    columns = {c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter_of(first)))}
    if "file_name" in columns and path.suffix.lower() == ".csv":
        return "imagefolder"
    if {"query", "response"} <= columns:
        return "messages"
    if columns & set(IMAGE_COLUMNS) and _caption_key(columns):
        return "table"
    return None


def sniff_coco_csv(path: Path) -> bool:
    """modelscope/coco_2014_caption's CSV: columns uniq_id, image_id, caption, image."""
    if path.suffix.lower() != ".csv":
        return False
    header = _head(path, 4096).split("\n")[0]
    return all(c in header for c in ("uniq_id", "image_id", "caption", "image"))


def _head(path: Path, n: int) -> str:
    from wizard.data.textfile import head

    return head(path, n)  # UTF-16 and GBK files are detected like UTF-8 ones


def detect(path: Path, subset: str | None, columns: bool = False) -> tuple[str, Path]:
    """(format, path) for data.format=auto; UserError saying what was found when it cannot tell."""
    from wizard.data.describe import describe_unknown
    from wizard.data.llama_factory import info_file
    from wizard.data.tables import is_saved_dataset

    if path.is_file():
        if info_file(path):
            return "llama_factory", path
        fmt = sniff(path, columns)
        if fmt is None:
            found, hint = describe_unknown(path)
            raise UserError(f"cannot tell the format of {path}: found {found}", hint=hint)
        return fmt, path
    if is_saved_dataset(path):
        return "hf", path
    if info_file(path):
        return "llama_factory", path
    if _metadata_file(path, subset):
        return "imagefolder", path
    if any(_parquet_files(path)):
        return "hf", path
    if (path / "data" / "captioning").is_dir():  # a local copy of AI-ModelScope/M3IT
        return "m3it", path
    if any(f.name.lower().endswith(".csv.zip") or sniff_coco_csv(f) for f in path.iterdir()):
        return "coco_csv", path  # a local copy of modelscope/coco_2014_caption
    if any(f.suffix.lower() == ".tar" for f in path.iterdir()):
        return "webdataset", path
    candidates = _caption_files(path)
    found = {f: sniff(f, columns) for f in candidates}
    kinds = sorted({k for k in found.values() if k})
    if len(kinds) == 1:
        return kinds[0], path
    if kinds:
        listing = ", ".join(f"{f.name} ({k})" for f, k in found.items() if k)
        raise UserError(f"{path} holds caption files of several formats: {listing}",
                        hint="point data.dataset at one file, or set data.format")
    n_images = sum(1 for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if candidates:
        what, hint = describe_unknown(candidates[0])
        raise UserError(f"cannot tell the format of folder {path}: {candidates[0].name} holds {what}"
                        + (f" ({len(candidates) - 1} more files like it)" if len(candidates) > 1 else ""),
                        hint=hint)
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
    """Files that may hold captions: in the folder, in annotations/, and in a *_text/ or captions/
    folder inside it (Flickr8k_text/)."""
    dirs = [folder] + sorted(d for d in folder.iterdir() if d.is_dir() and (
        d.name.lower() in ("annotations", "annotation", "captions") or d.name.lower().endswith("_text")))
    return [f for d in dirs for f in sorted(d.iterdir())
            if f.is_file() and f.suffix.lower() in TABLE_SUFFIXES and not f.name.startswith(".")]


# ----------------------------------------------------------------------------- the one file to read
def pick_file(fmt: str, path: Path, subset: str | None) -> Path:
    """For a folder: the metadata / caption file inside it (hf, m3it, coco_csv, webdataset and
    llama_factory read the folder)."""
    if fmt in ("hf", "m3it", "coco_csv", "webdataset", "llama_factory") or path.is_file():
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
    files = [f for f in _caption_files(path) if sniff(f, fmt == "table") == fmt]
    if not files:
        raise UserError(f"no {fmt} caption file in {path}", hint=FORMATS_HINT)
    for drop in ("lemma", "bosonseg", "tokenized"):  # Flickr8k.lemma.token.txt, segmented copies: not captions
        files = [f for f in files if drop not in f.name.lower()] or files
    for prefer in ("human-written", "captions"):  # COCO-CN's own sentences; COCO's captions_*.json
        files = [f for f in files if prefer in f.name.lower()] or files
    if subset and any(subset in f.name for f in files):
        files = [f for f in files if subset in f.name]
    if len(files) > 1 and any("train" in f.name for f in files):
        files = [f for f in files if "train" in f.name]
    if len(files) > 1:
        raise UserError(f"{path} holds several {fmt} files: {', '.join(f.name for f in files)}",
                        hint="point data.dataset at one of them, or set data.subset to a word in its name")
    return files[0]
