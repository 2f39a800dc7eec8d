"""Caption tables with any column names: CSV (`,` `|` or TAB separated), JSON Lines, a JSON array.

    read_table(path, spec, base_dirs)               # data.format=table, blip or aic
    find_image_root(file, names, spec.image_dir, base_dirs)

One reader for: the common captions.txt (Kaggle Flickr8k: `image,caption`), Flickr30k
results.csv (`image_name| comment_number| comment`), BLIP/LAVIS annotation lists
(`[{"image", "caption", "image_id"}]`, val/test with a list of captions), AI Challenger caption
JSON (`[{"url", "image_id", "caption": [...]}]`), and any other table once data.columns names its
image and caption columns. Rows naming the same image add their captions to it. Image paths are
relative to the folder find_image_root picks (data.image_dir when set).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator

from wizard.data.adapters import (CAPTION_COLUMNS, MULTI_IMAGE, UTF8_HINT, ReadResult, Row, caption_values,
                                  jsonl_records, pick_caption_key, read_json_document, text_lines)
from wizard.data.examples import RowProblem, image_from_string
from wizard.errors import UserError

# Column names tried in this order when data.columns does not name them.
IMAGE_COLUMNS = ("image", "images", "img", "image_path", "image_name", "image_file", "file_name", "filename",
                 "filepath", "file", "path", "picture", "photo", "url", "image_url", "image_id")
EXTRA_CAPTION_COLUMNS = ("comment", "description", "sentence")  # Flickr30k results.csv says `comment`
PRESETS = {"aic": ("image_id", "caption"), "blip": ("image", "caption")}  # (image, caption) columns
SAMPLE = 20  # image names tried when looking for the image folder


# ----------------------------------------------------------------------------- the image folder
def resolve_dir(value: str, file: Path, base_dirs: list[Path], key: str = "data.image_dir") -> Path:
    p = Path(value).expanduser()
    tried = [p] if p.is_absolute() else [file.parent / p, *(d / p for d in base_dirs)]
    for cand in tried:
        if cand.is_dir():
            return cand
    raise UserError(f"{key}={value!r}: no such folder (looked for {', '.join(map(str, dict.fromkeys(tried)))})",
                    hint=f"set {key} to the folder that holds the images")


def find_image_root(file: Path, names: list[str], image_dir: str | None, base_dirs: list[Path],
                    required: bool = True) -> Path | None:
    """The folder the image names of `file` are relative to: data.image_dir when set; else the
    file's folder, its parent, or a folder inside either (captions.txt + Images/, Flickr8k_text/ +
    Flicker8k_Dataset/, annotations/ + images/val2014/...) — the one where most names exist."""
    if image_dir:
        return resolve_dir(image_dir, file, base_dirs)
    names = [n for n in names if isinstance(n, str) and n.strip() and not _is_embedded(n)
             and not Path(n).is_absolute()][:SAMPLE]
    if not names:
        return file.parent
    bases = list(dict.fromkeys([file.parent, file.parent.parent]))
    candidates = list(bases)
    for b in bases:
        try:
            candidates += sorted(d for d in b.iterdir() if d.is_dir() and not d.name.startswith("."))
        except OSError:
            continue
    best, best_hits = None, 0
    for cand in dict.fromkeys(candidates):
        hits = sum((cand / n).is_file() for n in names)
        if hits > best_hits:
            best, best_hits = cand, hits
        if hits == len(names):
            break
    if best is not None or not required:
        return best
    raise UserError(f"cannot find the images of {file}: looked for {names[0]!r} in {file.parent}, "
                    f"{file.parent.parent} and the folders inside them",
                    hint="set data.image_dir to the folder that holds the images")


def _is_embedded(text: str) -> bool:
    s = text.strip()
    return s.startswith(("http://", "https://", "data:", "file://")) or (len(s) >= 64 and "." not in s[-8:])


# ----------------------------------------------------------------------------- reading
def read_table(path: Path, spec, base_dirs: list[Path], fmt: str = "table") -> ReadResult:
    header, records, is_csv = table_records(path)
    image_col, caption_col = pick_columns(header, spec, fmt, path)
    rows, values = [], []
    for where, rec in records:
        row = Row(where)
        rows.append(row)
        values.append(None)
        if isinstance(rec, RowProblem):
            row.problem = str(rec)
            continue
        if not isinstance(rec, dict):
            row.problem = f"expected an object, got {type(rec).__name__}"
            continue
        row.captions = caption_values(rec.get(caption_col), parse_json_list=is_csv)
        values[-1] = rec.get(image_col)
    sample = [v for v in values[:200] if isinstance(v, str)]
    root = find_image_root(path, sample, spec.image_dir, base_dirs)
    for row, value in zip(rows, values):
        if row.problem is None:
            try:
                row.image = image_value(value, root)
            except RowProblem as e:
                row.problem = str(e)
    info = [f"images from column {image_col!r} (paths relative to {root}), captions from column {caption_col!r}"]
    return ReadResult(rows, path, root, info=info)


def image_value(value: Any, root: Path):
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowProblem("no image")
    if isinstance(value, list):
        if len(value) != 1:
            raise RowProblem("no image" if not value else f"{MULTI_IMAGE} ({len(value)} images; a caption example has one)")
        return image_value(value[0], root)
    if isinstance(value, dict):
        value = value.get("path", value.get("url"))
        return image_value(value, root)
    return image_from_string(str(value), root)


def table_records(path: Path) -> tuple[list[str], Iterator[tuple[str, Any]], bool]:
    """(columns, (where, record) pairs, is a delimited text file)."""
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        if suffix == ".json" and _first_char(path) == "[":
            doc = read_json_document(path)
            records = [(f"{path.name}[{i}]", rec) for i, rec in enumerate(doc)]
        else:
            records = list(jsonl_records(path))
        columns: dict[str, None] = {}
        for _, rec in records[:50]:
            if isinstance(rec, dict):
                columns.update(dict.fromkeys(rec))
        return list(columns), iter(records), False
    return _delimited(path)


def _first_char(path: Path) -> str:
    from wizard.data.textfile import head

    return head(path, 4096).lstrip()[:1]


def delimiter_of(header: str) -> str:
    return "\t" if "\t" in header else "|" if "|" in header else ","


def _delimited(path: Path) -> tuple[list[str], Iterator[tuple[str, Any]], bool]:
    lines = text_lines(path)
    first = next(lines, None)
    if first is None:
        raise UserError(f"{path} is empty")
    delim = delimiter_of(first[1])
    header = [c.strip() for c in next(csv.reader([first[1]], delimiter=delim, skipinitialspace=True))]

    def records() -> Iterator[tuple[str, Any]]:
        try:
            for lineno, line in lines:
                if not line.strip():
                    continue
                where = f"{path.name}:{lineno}"
                cells = [c.strip() for c in next(csv.reader([line], delimiter=delim, skipinitialspace=True))]
                if len(cells) > len(header):  # an unquoted delimiter inside the last column (a caption)
                    cells = cells[:len(header) - 1] + [delim.join(cells[len(header) - 1:])]
                if len(cells) < len(header):
                    yield where, RowProblem(f"{len(cells)} cells, header has {len(header)}")
                    continue
                yield where, dict(zip(header, cells))
        except csv.Error as e:
            raise UserError(f"{path}: not a readable table ({e})", hint=UTF8_HINT) from None

    return header, records(), True


def pick_columns(columns: list[str], spec, fmt: str, path: Path) -> tuple[str, str]:
    """(image column, caption column): data.columns, the format's preset, or the usual names."""
    given = getattr(spec, "columns", None)
    want_image = (given.image if given else None) or PRESETS.get(fmt, (None, None))[0]
    want_caption = (given.caption if given else None) or PRESETS.get(fmt, (None, None))[1]
    lower = {c.lower(): c for c in columns}
    for key, want in (("image", want_image), ("caption", want_caption)):
        if want and want not in columns and want.lower() not in lower and columns:
            raise UserError(f"{path}: no column {want!r} (data.columns.{key}); columns: {', '.join(columns)}",
                            hint="set data.columns to the file's own column names")
    image = want_image or next((lower[c] for c in IMAGE_COLUMNS if c in lower), None)
    caption = want_caption or pick_caption_key(columns, spec.language) or \
        next((lower[c] for c in (*CAPTION_COLUMNS, *EXTRA_CAPTION_COLUMNS) if c in lower), None)
    image, caption = lower.get(image.lower(), image) if image else None, \
        lower.get(caption.lower(), caption) if caption else None
    if image is None or caption is None:
        from wizard.data.describe import column_guess

        missing = "an image column" if image is None else "a caption column"
        raise UserError(f"{path}: no {missing}; columns: {', '.join(columns) or '(none)'}",
                        hint=column_guess(path, columns))
    return image, caption
