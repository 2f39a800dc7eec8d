"""(d) Tables: a `datasets` folder written by save_to_disk, or parquet file(s).

The image column is a datasets Image feature ({"bytes", "path"}), raw bytes, or a path (relative
to the dataset's folder); the caption column is named like in imagefolder metadata. Only the two
columns are read, in batches, with pyarrow; `datasets` is imported only for save_to_disk folders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from wizard.data.adapters import CAPTION_COLUMNS, MULTI_IMAGE, ReadResult, Row, caption_values, pick_caption_key
from wizard.data.examples import RowProblem, image_from_string
from wizard.errors import UserError

IMAGE_COLUMNS = ("image", "img", "images", "picture", "image_path", "file_name", "path", "filepath")


def is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (
        (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file())


def parquet_files(path: Path, subset: str | None) -> tuple[list[Path], list[str]]:
    """The parquet files to read and notes. A folder: data.subset picks the files whose path names
    it (a split, e.g. "validation"); otherwise the train files when the folder has several splits."""
    if path.is_file():
        return [path], []
    files = sorted(p for p in path.rglob("*.parquet") if len(p.relative_to(path).parts) <= 3)
    if not files:
        raise UserError(f"no .parquet files in {path}")
    rel = {f: f.relative_to(path).as_posix() for f in files}
    if subset:
        chosen = [f for f in files if subset in rel[f]]
        if not chosen:
            raise UserError(f"data.subset={subset!r} matches none of the parquet files in {path}: "
                            + ", ".join(rel.values()), hint="set data.subset to a split named in those files")
        return chosen, []
    train = [f for f in files if "train" in rel[f]]
    if train and len(train) < len(files):
        return train, [f"reading the train files ({len(train)} of {len(files)} parquet files); "
                       f"set data.subset to read another split"]
    return files, []


def read_hf(path: Path, subset: str | None, language: str, columns=None) -> ReadResult:
    """`columns`: data.columns (image / caption column names), else found by their usual names."""
    if path.is_dir() and is_saved_dataset(path):
        label, table, notes = _saved_dataset(path, subset)
        batches = [(label, table.schema, table.to_batches(max_chunksize=512), path)]
        file = path
    else:
        import pyarrow.parquet as pq

        files, notes = parquet_files(path, subset)
        batches = []
        for f in files:
            try:
                pf = pq.ParquetFile(f)
            except Exception as e:
                raise UserError(f"{f} is not a readable parquet file ({e})") from None
            batches.append((f.name, pf.schema_arrow, _lazy_batches(pf), f.parent))
        file = files[0] if len(files) == 1 else path
    rows: list[Row] = []
    used = set()
    for label, schema, stream, base in batches:
        image_col, caption_col = _columns(schema, label, language, columns)
        used.add((image_col, caption_col))
        i = 0
        for batch in stream:
            images = batch.column(image_col).to_pylist()
            captions = batch.column(caption_col).to_pylist()
            for image, caption in zip(images, captions):
                row = Row(f"{label} row {i}", captions=caption_values(caption))
                i += 1
                rows.append(row)
                try:
                    row.image, row.name = _image_value(image, base)
                except RowProblem as e:
                    row.problem = str(e)
    for image_col, caption_col in sorted(used):
        notes.append(f"images from column {image_col!r}, captions from column {caption_col!r}")
    # ids and messages show image paths as written in the table: relative to the table's folder
    root = path if path.is_dir() and is_saved_dataset(path) else Path(os.path.commonpath([b[3] for b in batches]))
    return ReadResult(rows, file, root, info=notes)


def _lazy_batches(pf) -> Iterator:
    yield from pf.iter_batches(batch_size=512)


def _saved_dataset(path: Path, subset: str | None):
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise UserError(f"{path} looks like a datasets folder but cannot be loaded ({e})") from None
    label, notes = path.name, []
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        split = subset or ("train" if "train" in splits else splits[0] if len(splits) == 1 else None)
        if split not in ds:
            raise UserError(f"{path} has splits {', '.join(splits)}"
                            + (f"; data.subset={subset!r} is not one of them" if subset else ""),
                            hint="set data.subset to the split to train on, e.g. data.subset=train")
        if not subset and len(splits) > 1:
            notes.append(f"reading split {split!r} of {', '.join(splits)}; set data.subset to read another")
        ds, label = ds[split], f"split {split!r}"
    if getattr(ds, "_indices", None) is not None:
        ds = ds.flatten_indices()
    return label, ds.data.table, notes


def _columns(schema, label: str, language: str, given=None) -> tuple[str, str]:
    import pyarrow as pa

    names = list(schema.names)
    for key in ("image", "caption"):
        want = getattr(given, key, None) if given is not None else None
        if want and want not in names:
            raise UserError(f"{label}: no column {want!r} (data.columns.{key}); columns: {', '.join(names)}",
                            hint="set data.columns to the table's own column names")

    def is_image_struct(t) -> bool:
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            t = t.value_type
        return pa.types.is_struct(t) and any(t.field(i).name == "bytes" for i in range(t.num_fields))

    image_col = next((n for n in names if is_image_struct(schema.field(n).type)), None)
    image_col = image_col or next((n for n in IMAGE_COLUMNS if n in names), None)
    caption_col = pick_caption_key(names, language)
    if given is not None:
        image_col, caption_col = given.image or image_col, given.caption or caption_col
    if image_col is None or caption_col is None:
        missing = "an image column" if image_col is None else "a caption column"
        raise UserError(f"{label}: no {missing}; columns: {', '.join(names)}",
                        hint=f"image columns: a datasets Image feature or one of {', '.join(IMAGE_COLUMNS)}; "
                             f"caption columns: {', '.join(CAPTION_COLUMNS)}")
    return image_col, caption_col


def _image_value(value: Any, base: Path) -> tuple[Any, str | None]:
    """(image source, file name or None) from one image cell."""
    if value is None:
        raise RowProblem("no image (empty cell)")
    if isinstance(value, list):
        if len(value) != 1:
            raise RowProblem("no image" if not value else f"{MULTI_IMAGE} ({len(value)} images; a caption example has one)")
        return _image_value(value[0], base)
    if isinstance(value, dict):
        name = os.path.basename(value["path"]) if value.get("path") else None
        if value.get("bytes"):
            return bytes(value["bytes"]), name
        if value.get("path"):
            return image_from_string(value["path"], base), None
        raise RowProblem("no image (neither bytes nor path)")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), None
    return image_from_string(str(value), base), None
