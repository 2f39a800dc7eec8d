"""Readers for the ModelScope caption datasets we map (their layouts: docs/guides/modelscope.md).

    from wizard.hub import resolve_dataset
    folder = resolve_dataset("AI-ModelScope/M3IT", subset="coco-cn")
    records = read_m3it(folder, "coco-cn", "train")              # or "val", "test"
    folder = resolve_dataset("modelscope/coco_2014_caption")
    records = read_coco_2014_caption(folder, "validation", max_samples=500)

Return type, shared with the adapters in wizard/data/__init__.py:
    CaptionRecord(image: bytes, captions: list[str])   a NamedTuple, so `image, captions = record`
      image     the encoded image file (JPEG/PNG bytes): open_image(record.image) -> PIL.Image (RGB)
      captions  every reference caption of that image, non-empty strings; captions[0] is the one
                to train on, all of them are references when scoring
    Readers return `Records`, a plain list of CaptionRecord with two extra attributes:
      skipped   rows (or images) left out: unreadable line, no caption, image that did not decode
                or could not be fetched
      problems  the first few reasons, for a warning line ("3 rows skipped: line 7: bad JSON ...")
Images stay encoded until used: coco-cn's train split holds about 1 GB of JPEG bytes.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from wizard.data.textfile import lines as text_lines
from wizard.errors import UserError

IMAGE_KEYS = ("image_base64_str", "image_base64", "image_str", "image", "images", "img")
CAPTION_KEYS = ("outputs", "caption", "captions", "output", "answer", "text", "sentences")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
               "test": "test"}
DEAD_LINKS_AFTER = 20  # this many failed image fetches in a row, none succeeded: stop, say why


class CaptionRecord(NamedTuple):
    image: bytes
    captions: list[str]


class Records(list):
    """A list of CaptionRecord, plus how many rows were skipped and why (the first few reasons)."""

    def __init__(self, items: Iterable[CaptionRecord] = ()):
        super().__init__(items)
        self.skipped = 0
        self.problems: list[str] = []

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.problems) < 5:
            self.problems.append(reason)


def open_image(data: bytes):
    """PIL image (RGB) from encoded bytes (wizard.images' rules)."""
    from wizard.images import load_rgb

    return load_rgb(data)


# -- M3IT (AI-ModelScope/M3IT, a mirror of MMInstruction/M3IT) ----------------------------------
def m3it_file(folder: str | Path, subset: str, split: str) -> Path:
    """data/captioning/<subset>/<split>.jsonl under the snapshot (or under the subset folder itself)."""
    folder = Path(folder)
    name = SPLIT_NAMES.get(split.lower())
    if name is None:
        raise UserError(f"M3IT split {split!r} is not one of train, val, test")
    for path in (folder / "data" / "captioning" / subset / f"{name}.jsonl", folder / f"{name}.jsonl"):
        if path.is_file():
            return path
    found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jsonl"))[:10]
    raise UserError(f"no {name}.jsonl for M3IT subset {subset!r} in {folder}",
                    hint=("found: " + ", ".join(found)) if found else
                    "download it with: caption-wizard download AI-ModelScope/M3IT --dataset --subset " + subset)


def read_m3it(folder: str | Path, subset: str, split: str = "train", *,
              max_samples: int | None = None) -> Records:
    """Caption records of one M3IT subset split, images decoded from the base64 in each line.

    Raw M3IT files vary by subset: coco-cn lines carry image_base64 + caption (+ image_id); the
    loading script's output shape is instruction, inputs, image_base64_str (a list), outputs.
    Both are read; the keys of the first line decide, and a file with neither is an error.
    """
    path = m3it_file(folder, subset, split)
    records = Records()
    by_image: dict[str, int] = {}  # rows of the same image merge their captions
    image_key = caption_key = None
    for lineno, line in text_lines(path):  # a line that is not UTF-8: a UserError naming it
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            if image_key is None:
                raise UserError(f"{path} line {lineno} is not JSON ({e}): not an M3IT jsonl file") from None
            records.skip(f"line {lineno}: bad JSON")
            continue
        if image_key is None:
            image_key, caption_key = _m3it_keys(row, path)
        image = _decode_image(row.get(image_key))
        captions = _captions(row.get(caption_key))
        if image is None or not captions:
            records.skip(f"line {lineno}: " + ("no usable image" if image is None else "no caption"))
            continue
        key = str(row.get("image_id") or hashlib.sha1(image).hexdigest())
        if key in by_image:
            old = records[by_image[key]]
            old.captions.extend(c for c in captions if c not in old.captions)
            continue
        if max_samples is not None and len(records) >= max_samples:
            break
        if not _is_image(image):
            records.skip(f"line {lineno}: image bytes do not decode")
            continue
        by_image[key] = len(records)
        records.append(CaptionRecord(image, captions))
    return records


def _m3it_keys(row, path: Path) -> tuple[str, str]:
    if not isinstance(row, dict):
        raise UserError(f"{path} line 1 is a JSON {type(row).__name__}, expected an object per line")
    image_key = next((k for k in IMAGE_KEYS if k in row), None)
    caption_key = next((k for k in CAPTION_KEYS if k in row), None)
    if image_key is None or caption_key is None:
        raise UserError(f"{path}: the first line has keys {sorted(row)}; expected an image "
                        f"({' / '.join(IMAGE_KEYS[:2])}) and a caption ({' / '.join(CAPTION_KEYS[:2])})")
    return image_key, caption_key


def _decode_image(value) -> bytes | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):  # {"bytes": ...} (datasets) or {"base64": ...}
        value = value.get("bytes") or value.get("base64") or value.get("data")
    if isinstance(value, bytes):
        return value or None
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=False) or None
    except (binascii.Error, ValueError):
        return None


def _captions(value) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    out = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("raw") or item.get("caption") or item.get("text") or ""
        text = str(item).strip()
        if text and text not in out:
            out.append(text)
    return out


def _is_image(data: bytes) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size[0] > 0 and im.size[1] > 0
    except (UnidentifiedImageError, OSError, ValueError):
        return False


# -- modelscope/coco_2014_caption ----------------------------------------------------------------
def coco_csv_file(folder: str | Path, split: str) -> Path:
    """The CSV (or zipped CSV) of a split: train2014.csv.zip / val2014.csv.zip (older: train.csv.zip)."""
    folder = Path(folder)
    want = "train" if split.lower() == "train" else "val"
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith((".csv.zip", ".csv")))
    for path in found:
        if path.name.lower().startswith(want):
            return path
    raise UserError(f"no {want}*.csv(.zip) for modelscope/coco_2014_caption in {folder}",
                    hint=("found: " + ", ".join(p.name for p in found)) if found else
                    "download it with: caption-wizard download modelscope/coco_2014_caption --dataset")


def read_coco_2014_caption(folder: str | Path, split: str = "train", *, max_samples: int | None = None,
                           timeout: float = 10.0, workers: int = 8,
                           fetch: Callable[[str, float], bytes] | None = None) -> Records:
    """Caption records of modelscope/coco_2014_caption; images are fetched from their URLs.

    CSV columns: uniq_id, image_id, caption, image (an absolute URL; some dumps add an unnamed
    index column first). A validation caption may join several captions with '&&'. Rows of one
    image_id merge. Images that cannot be fetched within `timeout` are skipped and counted; when
    the first DEAD_LINKS_AFTER all fail, the links are dead (modelscope issue #1252) and we stop.
    """
    path = coco_csv_file(folder, split)
    groups = _coco_groups(path, max_samples)
    fetch = fetch or _fetch_url
    records = Records()
    items = list(groups.items())
    ok = failed = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(items), 64):
            chunk = items[start:start + 64]
            results = pool.map(lambda it: _try_fetch(fetch, it[1]["image"], timeout, path.parent), chunk)
            for (_, group), (data, error) in zip(chunk, results):
                if data is not None and _is_image(data):
                    ok += 1
                    records.append(CaptionRecord(data, group["captions"]))
                    continue
                failed += 1
                records.skip(f"{group['image']}: {error or 'not an image'}")
            if ok == 0 and failed >= min(DEAD_LINKS_AFTER, len(items)):
                raise UserError(
                    f"none of the first {failed} images of {path.name} could be fetched "
                    f"(e.g. {records.problems[0] if records.problems else '?'})",
                    hint="the image links of modelscope/coco_2014_caption are known to be dead "
                         "(modelscope issue #1252); for COCO images with Chinese captions use "
                         "AI-ModelScope/M3IT with data.subset=coco-cn, or a local COCO folder (data.format=coco)")
    return records


def _coco_groups(path: Path, max_samples: int | None) -> dict[str, dict]:
    groups: dict[str, dict] = {}
    with _open_csv(path) as text:
        reader = csv.DictReader(text)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "caption" not in columns or "image" not in columns:
            raise UserError(f"{path} has columns {columns}; expected uniq_id, image_id, caption, image")
        for row in reader:
            row = {(k or "").strip(): (v or "") for k, v in row.items()}
            image = row["image"].strip()
            captions = [c.strip() for c in row["caption"].split("&&") if c.strip()]
            if not image or not captions:
                continue
            key = row.get("image_id") or image
            if key not in groups:
                if max_samples is not None and len(groups) >= max_samples:
                    break
                groups[key] = {"image": image, "captions": []}
            known = groups[key]["captions"]
            known.extend(c for c in captions if c not in known)
    return groups


class _open_csv:
    """Text of a .csv, or of the first .csv inside a .csv.zip (utf-8, BOM tolerated)."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = None

    def __enter__(self):
        if self.path.name.lower().endswith(".zip"):
            try:
                self.zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as e:
                raise UserError(f"{self.path} is not a readable zip file ({e}): delete it and download again") from None
            names = [n for n in self.zip.namelist() if n.lower().endswith(".csv") and not n.startswith("__MACOSX")]
            if not names:
                raise UserError(f"{self.path} holds no .csv file (it has {self.zip.namelist()[:5]})")
            raw = self.zip.open(names[0])
        else:
            raw = open(self.path, "rb")
        self.text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        return self.text

    def __exit__(self, *exc):
        self.text.close()
        if self.zip is not None:
            self.zip.close()


def _try_fetch(fetch, ref: str, timeout: float, base: Path) -> tuple[bytes | None, str | None]:
    try:
        if ref.startswith(("http://", "https://")):
            return fetch(ref, timeout), None
        local = Path(ref) if Path(ref).is_absolute() else base / ref  # some dumps hold paths
        return local.read_bytes(), None
    except Exception as e:  # any failure of one image: skip it, count it
        return None, " ".join(str(e).split())[:200] or type(e).__name__


def _fetch_url(url: str, timeout: float) -> bytes:
    import urllib.request

    req = urllib.request.Request(url, headers={"User-Agent": "caption-wizard"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data = resp.read()
    if not data:
        raise ValueError("empty reply")
    return data
