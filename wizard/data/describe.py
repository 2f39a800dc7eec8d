"""What a file we cannot read holds, and the closest format that would read it.

    found, hint = describe_unknown(Path("data/pairs.csv"))
    # found: "columns photo, desc (first row: photo='a.jpg', desc='a red circle')"
    # hint:  "closest supported format: table; read it with data.columns: {image: photo, caption: desc}"

Only the first KBs of the file are read.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_IMAGE_WORDS = ("img", "image", "pic", "photo", "file", "path", "url", "jpg")
_CAPTION_WORDS = ("cap", "text", "desc", "sent", "comment", "label", "title", "answer", "output", "response")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def head(path: Path, n: int = 1 << 16) -> str:
    from wizard.data.textfile import head as text_head

    return text_head(path, n)


def first_json_value(text: str) -> Any:
    """The first complete JSON value in `text`: the first element of an array, or a JSON Lines
    record, or None when it does not end within `text`."""
    s = text.lstrip()
    start = 1 if s.startswith("[") else 0
    try:
        value, _ = json.JSONDecoder().raw_decode(s[start:].lstrip())
        return value
    except json.JSONDecodeError:
        return None


def describe_unknown(path: Path) -> tuple[str, str]:
    text = head(path)
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        rec = first_json_value(text)
        if isinstance(rec, dict) and (stripped.startswith("[") or "\n" in stripped[:len(json.dumps(rec)) + 200]):
            keys = list(rec)
            shown = ", ".join(f"{k}={_short(v)}" for k, v in list(rec.items())[:6])
            kind = "a JSON array of records" if stripped.startswith("[") else "JSON Lines records"
            return f"{kind} with keys {', '.join(keys)} (first: {shown})", column_guess(path, keys, rec)
        if isinstance(rec, dict) or stripped.startswith("{"):
            keys = re.findall(r'^\s{0,4}"([^"]+)"\s*:', stripped, re.M)[:12] or \
                (list(rec) if isinstance(rec, dict) else re.findall(r'"([^"]+)"\s*:', stripped[:2000])[:12])
            nested = next((k for k, v in rec.items() if isinstance(v, list) and v and isinstance(v[0], dict)),
                          None) if isinstance(rec, dict) else None
            if "images" in keys:
                hint = ("closest supported formats: coco (lists 'images' [{id, file_name}] and 'annotations' "
                        "[{image_id, caption}]) or karpathy (images [{filename, split, sentences: [{raw}]}])")
            elif nested:
                first = rec[nested][0]
                hint = (f"its records are under {nested!r}: write them out as a JSON array (or JSON Lines) of "
                        f"records; then {column_guess(path, list(first), first)}")
            else:
                hint = _GENERAL
            return f"a JSON object with keys {', '.join(dict.fromkeys(keys))}", hint
    lines = [ln for ln in text.splitlines() if ln.strip()][:2]
    if not lines:
        return "an empty file", _GENERAL
    first = lines[0]
    if any(d in first for d in (",", "|", "\t")):
        delim = "\t" if "\t" in first else "|" if "|" in first else ","
        columns = [c.strip() for c in next(csv.reader([first], delimiter=delim, skipinitialspace=True))]
        values = [c.strip() for c in next(csv.reader([lines[1]], delimiter=delim, skipinitialspace=True))] \
            if len(lines) > 1 else []
        record = dict(zip(columns, values))
        shown = ", ".join(f"{k}={_short(v)}" for k, v in list(record.items())[:6])
        return (f"columns {', '.join(columns)} (first line {first[:120]!r}" + (f"; first row: {shown})" if shown else ")"),
                column_guess(path, columns, record))
    return (f"first line {first[:120]!r}",
            "closest supported formats: flickr (lines IMAGE.jpg#0<TAB>caption) or table (a header line "
            "such as image,caption, then one image and caption per line)")


_GENERAL = ("caption-wizard reads: imagefolder, coco, karpathy, blip, flickr, coco_cn, aic, messages, "
            "llama_factory, hf, webdataset, table (any CSV/JSONL with data.columns: {image: ..., caption: ...})")


def column_guess(path: Path, columns: list[str], record: dict | None = None) -> str:
    """The data.columns mapping that would read a table with these columns (a guess from names and values)."""
    record = record or {}
    image = next((c for c in columns if _looks_like_image(record.get(c))), None) or \
        next((c for c in columns if any(w in c.lower() for w in _IMAGE_WORDS)), None)
    texts = [c for c in columns if c != image and isinstance(record.get(c), (str, list)) and _looks_like_text(record[c])]
    caption = max(texts, key=lambda c: len(str(record[c])), default=None) or \
        next((c for c in columns if c != image and any(w in c.lower() for w in _CAPTION_WORDS)), None)
    if image and caption:
        return (f"closest supported format: table; read it with data.columns: {{image: {image}, caption: {caption}}} "
                f"(in a recipe, or on the command line: data.columns.image={image} data.columns.caption={caption})")
    return ("closest supported format: table; name the columns that hold the image path and the caption with "
            "data.columns: {image: COLUMN, caption: COLUMN}" + (f" (columns: {', '.join(columns)})" if columns else ""))


def _looks_like_image(value: Any) -> bool:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return isinstance(value, str) and (value.lower().endswith(IMAGE_SUFFIXES) or value.startswith(("http://", "https://")))


def _looks_like_text(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, str) for v in value) and _looks_like_text(value[0])
    return isinstance(value, str) and not _looks_like_image(value) and (" " in value.strip() or bool(_CJK.search(value)))


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
