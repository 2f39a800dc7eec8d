"""Readers for the caption files users already have: imagefolder metadata, COCO JSON, messages.

Each reader turns one file into `Row`s in file order, naming where each came from
("metadata.jsonl:7"). A row that cannot be used carries `problem` instead of raising, so the loader
can count it, name the first few and go on. Problems with the whole file raise UserError.
Images are not opened here: the loader checks them all at once (wizard/data/load.py).
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from wizard.data import textfile
from wizard.data.examples import ImageSource, RowProblem, image_from_string
from wizard.data.textfile import UTF8_HINT  # noqa: F401 - the readers' hint, imported from here
from wizard.errors import UserError

# Caption columns, most preferred first; "<name>_<language>" (caption_zh) beats all of them.
CAPTION_COLUMNS = ("captions", "caption", "text", "sentences")


@dataclass
class Row:
    where: str  # "metadata.jsonl:7"
    image: ImageSource | None = None
    captions: list[str] = field(default_factory=list)
    problem: str | None = None  # set: the row is skipped for this reason
    id: str | None = None  # a stable id given by the source (synthetic / hub sets); None: derived
    name: str | None = None  # a file name for embedded images, shown in the id
    prompt: str | None = None  # the file's own instruction for this row, if any


@dataclass
class ReadResult:
    rows: list[Row]
    file: Path  # named in messages about bad rows
    root: Path | None  # image ids are paths relative to this folder
    info: list[str] = field(default_factory=list)  # what was read how (columns, folders)
    # The file's own split (Karpathy, BLIP, Flickr8k, COCO-CN): the images held out for eval; the
    # other rows train. None: the loader holds out data.eval_fraction by a seeded hash.
    held_out: set | None = None


# ----------------------------------------------------------------------------- shared helpers
def caption_keys(language: str) -> list[str]:
    return [f"{c}_{language}" for c in CAPTION_COLUMNS] + list(CAPTION_COLUMNS)


def pick_caption_key(keys, language: str) -> str | None:
    for k in _CAPTION_KEYS.get(language) or caption_keys(language):
        if k in keys:
            return k
    return None


_CAPTION_KEYS = {lang: caption_keys(lang) for lang in ("en", "zh")}
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def caption_values(value: Any, *, parse_json_list: bool = False) -> list[str]:
    """A caption cell as a list of stripped, non-empty captions (a string, a list, COCO-Karpathy
    style [{"raw": ...}], or in CSV a JSON list written as text)."""
    if value is None:
        return []
    if isinstance(value, str):
        s = value.strip()
        if _SURROGATE.search(s):  # a lone surrogate (a JSON "\\ud800" escape) is no text: U+FFFD, as a decoder would
            s = s.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        if parse_json_list and s.startswith("[") and s.endswith("]"):
            try:
                return caption_values(json.loads(s))
            except json.JSONDecodeError:
                pass
        return [s] if s else []
    if isinstance(value, dict):
        for k in ("raw", "text", "caption", "sentence"):
            if k in value:
                return caption_values(value[k])
        return []
    if isinstance(value, (list, tuple)):
        return [c for v in value for c in caption_values(v)]
    return caption_values(str(value))


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a text file in UTF-8, UTF-16 or GB18030 (wizard.data.textfile);
    what cannot be decoded is a UserError naming its line."""
    return textfile.lines(path)


def read_json_document(path: Path) -> Any:
    try:
        return json.loads(textfile.read_text(path))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON {textfile.json_error(e)}",
                        hint="a JSON Lines file (one record per line) should end in .jsonl") from None
    except RecursionError:
        raise UserError(f"{path}: invalid JSON: nested too deeply") from None


def jsonl_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) for each non-blank line; a broken line gives (where, RowProblem)."""
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        where = f"{path.name}:{lineno}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as e:
            yield where, RowProblem(f"not valid JSON ({textfile.json_error(e, line=False)})")  # (at column 62: ...)
        except RecursionError:
            yield where, RowProblem("not valid JSON (nested too deeply)")


def _note_columns(used: Counter, what: str) -> list[str]:
    if not used:
        return []
    if len(used) == 1:
        return [f"{what} from column {next(iter(used))!r}"]
    return [f"{what} from columns " + ", ".join(f"{k!r} ({n} rows)" for k, n in used.most_common())]


# ----------------------------------------------------------------------------- (a) imagefolder
def read_imagefolder(meta: Path, language: str) -> ReadResult:
    """Hugging Face imagefolder: `meta` is metadata.jsonl or metadata.csv; file_name is relative to
    its folder; one or several captions per row; rows naming the same file add captions to it."""
    folder = meta.parent
    if meta.suffix.lower() == ".csv":
        records = _csv_records(meta)
    else:
        records = jsonl_records(meta)
    rows, used, seen_columns = [], Counter(), set()
    for where, rec in records:
        row = Row(where)
        rows.append(row)
        if isinstance(rec, RowProblem):
            row.problem = str(rec)
            continue
        if not isinstance(rec, dict):
            row.problem = f"expected a JSON object, got {type(rec).__name__}"
            continue
        seen_columns.update(rec)
        key = pick_caption_key(rec, language)
        file_name = rec.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            row.problem = "no file_name"
            continue
        if key is None:
            row.problem = "no caption column"
            continue
        used[key] += 1
        row.captions = caption_values(rec[key], parse_json_list=meta.suffix.lower() == ".csv")
        try:
            row.image = image_from_string(file_name, folder)
        except RowProblem as e:
            row.problem = str(e)
    if rows and not used and seen_columns:
        raise UserError(f"{meta}: no caption column; found columns: {', '.join(sorted(seen_columns))}",
                        hint=f"name the caption column one of: {', '.join(CAPTION_COLUMNS)}")
    return ReadResult(rows, meta, folder, info=_note_columns(used, "captions"))


def _csv_records(path: Path) -> Iterator[tuple[str, Any]]:
    """imagefolder metadata.csv: _csv_rows, after checking it has the file_name column."""
    return _csv_rows(path, required="file_name", hint="imagefolder metadata needs a file_name column (the image "
                                                       "path, relative to the CSV's folder) and a caption column")


# ----------------------------------------------------------------------------- (b) COCO captions
def read_coco(path: Path, subset: str | None, base_dirs: list[Path]) -> ReadResult:
    """COCO captions JSON: one row per annotation, several per image. The images' file_name is
    relative to the image folder found by coco_image_dir."""
    doc = read_json_document(path)
    check_coco(doc, path)
    files: dict[str, str] = {}  # str(image id) -> file_name: some files write ids as strings
    for img in doc["images"]:
        if isinstance(img, dict) and "id" in img and isinstance(img.get("file_name"), str):
            files[str(img["id"])] = img["file_name"]
    image_dir = coco_image_dir(path, subset, base_dirs, list(files.values())[:20])
    rows = []
    for i, ann in enumerate(doc["annotations"]):
        row = Row(f"{path.name} annotations[{i}]")
        rows.append(row)
        if not isinstance(ann, dict):
            row.problem = "annotation is not an object"
            continue
        file_name = files.get(str(ann.get("image_id")))
        if file_name is None:
            row.problem = f"unknown image_id: {ann.get('image_id')!r} (not in the file's images list)"
            continue
        row.captions = caption_values(ann.get("caption"))
        row.image = image_dir / file_name
    return ReadResult(rows, path, image_dir, info=[f"images in {image_dir}"])


def check_coco(doc: Any, path: Path) -> None:
    if not (isinstance(doc, dict) and isinstance(doc.get("images"), list)
            and isinstance(doc.get("annotations"), list)):
        found = ", ".join(sorted(doc)) if isinstance(doc, dict) else f"a JSON {type(doc).__name__}"
        raise UserError(f"{path} is not a COCO captions file: it needs lists 'images' and 'annotations' "
                        f"(found: {found})",
                        hint="set data.format to the file's real format (imagefolder, messages, hf)")


def coco_image_dir(path: Path, subset: str | None, base_dirs: list[Path], first_files: list[str]) -> Path:
    """Where the images of a COCO JSON are: data.subset (a folder), the JSON's folder, or a folder
    named like the split (captions_train2014.json -> train2014/) next to it or one level up."""
    tried: list[Path] = []
    if subset:
        for base in [path.parent, path.parent.parent, *base_dirs]:
            cand = (base / subset).expanduser()
            if cand.is_dir():
                return cand
            tried.append(cand)
    split = path.stem.removeprefix("captions_").removeprefix("captions")
    names = [n for n in (subset, split, path.stem, "images", "val2014" if "val" in split else None) if n]
    candidates = [path.parent] + [d / n for d in (path.parent, path.parent.parent) for n in names]
    best, best_hits = None, 0
    for cand in dict.fromkeys(candidates):
        if cand.is_dir():
            hits = sum((cand / f).is_file() for f in first_files)
            if hits > best_hits:
                best, best_hits = cand, hits
        tried.append(cand)
    if best is not None:
        return best
    shown = ", ".join(str(t) for t in dict.fromkeys(tried))
    raise UserError(f"cannot find the images of {path}: looked for {first_files[0]!r} in {shown}"
                    if first_files else f"{path} lists no images",
                    hint="set data.subset to the folder that holds the images (e.g. data.subset=train2014)")


# ----------------------------------------------------------------------------- (c) messages
USER_ROLES = {"user", "human"}
ASSISTANT_ROLES = {"assistant", "gpt", "bot", "model"}


MULTI_TURN = "multi-turn record"
MULTI_IMAGE = "multi-image record"
# Reasons that need more than their name, added to the message when they stop a run (>5% of rows).
EXPLAIN = {
    MULTI_TURN: "a multi-turn record is a chat: its later answers reply to follow-up questions, not "
                "to the image, so it is not a caption example (one image, one answer about it)",
    MULTI_IMAGE: "a multi-image record's answer is about several images at once, so it is not a caption "
                 "example of any one of them",
}


def read_messages(path: Path) -> ReadResult:
    """ms-swift JSONL / CSV or a LLaMA-Factory JSON array of {"messages": [...], "images": [...]}.
    Also query/response, alpaca instruction/input/output, sharegpt "conversations" (from/value),
    ms-swift "conversation" (human/assistant) and content parts (OpenAI image_url, type/value)."""
    if path.suffix.lower() == ".csv":
        records = _csv_message_records(path)
    elif path.suffix.lower() == ".json" and _first_char(path) == "[":
        doc = read_json_document(path)
        records = ((f"{path.name}[{i}]", rec) for i, rec in enumerate(doc))
    else:
        records = jsonl_records(path)
    return ReadResult(message_rows(records, path.parent), path, path.parent)


def message_rows(records, base: Path) -> list[Row]:
    """One Row per (where, record); image paths are relative to `base`."""
    rows = []
    for where, rec in records:
        row = Row(where)
        rows.append(row)
        try:
            if isinstance(rec, RowProblem):
                raise rec
            images, caption, prompt = parse_record(rec)
            row.captions = caption_values(caption)
            row.prompt = prompt
            if len(images) != 1:
                raise RowProblem("no image" if not images else
                                 f"{MULTI_IMAGE} ({len(images)} images; a caption example has one)")
            row.image = _image_entry(images[0], base)
        except RowProblem as e:
            row.problem = str(e)
    return rows


def _csv_message_records(path: Path) -> Iterator[tuple[str, Any]]:
    """ms-swift CSV: query,response,images (+ system); `images` is a path or a list written as text."""
    for where, rec in _csv_rows(path):
        if isinstance(rec, dict) and isinstance(rec.get("images"), str):
            rec["images"] = _list_cell(rec["images"])
        yield where, rec


def _list_cell(text: str) -> Any:
    """A CSV cell holding a list: JSON (["a.jpg"]) or Python (['a.jpg']) syntax; else the text itself."""
    s = text.strip()
    if s.startswith("[") and s.endswith("]"):
        import ast

        for parse in (json.loads, ast.literal_eval):
            try:
                return parse(s)
            except (ValueError, SyntaxError):
                continue
    return [s] if s else []


def _csv_rows(path: Path, required: str | None = None, hint: str | None = None) -> Iterator[tuple[str, Any]]:
    """(file:line, record) per CSV row; a row with more cells than the header is a RowProblem.
    `required`: a column the header must have (UserError naming what it has, with `hint`)."""
    try:
        with contextlib.closing(text_lines(path)) as numbered:
            reader = csv.DictReader(line for _, line in numbered)
            if required and reader.fieldnames and required not in reader.fieldnames:
                raise UserError(f"{path}: no {required} column; found: {', '.join(reader.fieldnames)}", hint=hint)
            for rec in reader:
                where = f"{path.name}:{reader.line_num}"
                if None in rec:
                    yield where, RowProblem(f"{len(rec) - 1 + len(rec[None])} cells, header has "
                                            f"{len(reader.fieldnames or [])}")
                else:
                    yield where, rec
    except csv.Error as e:
        raise UserError(f"{path}: not a readable CSV file ({e})") from None


def _first_char(path: Path) -> str:
    return textfile.head(path, 4096).lstrip()[:1]


def parse_record(rec: Any) -> tuple[list, Any, str | None]:
    """(images, caption, user prompt) from one record of any accepted style. A record with more
    than one question or answer is a chat, not a caption example: RowProblem(MULTI_TURN ...)."""
    if not isinstance(rec, dict):
        raise RowProblem(f"expected a JSON object, got {type(rec).__name__}")
    images = rec.get("images", rec.get("image"))
    images = [] if images is None else list(images) if isinstance(images, (list, tuple)) else [images]
    messages = rec.get("messages", rec.get("conversations"))
    if messages is None and isinstance(rec.get("conversation"), list):  # ms-swift sharegpt: human/assistant pairs
        messages = []
        for turn in rec["conversation"]:
            if not isinstance(turn, dict):
                raise RowProblem("a conversation turn is not an object")
            messages += [{"role": "user", "content": turn.get("human")},
                         {"role": "assistant", "content": turn.get("assistant")}]
    if messages is None:
        if rec.get("history"):  # query/response and alpaca records carry earlier turns here
            raise RowProblem(f"{MULTI_TURN} ({len(rec['history']) + 1} answers: has a history)")
        if "output" in rec and ("instruction" in rec or "input" in rec):  # alpaca
            query = "\n".join(str(rec[k]) for k in ("instruction", "input") if rec.get(k))
            return images, rec.get("output"), _strip_tag(_text_of(query, images))
        if "response" not in rec and "query" not in rec:
            raise RowProblem("no messages (nor query/response, instruction/output)")
        return images, rec.get("response"), _strip_tag(_text_of(rec.get("query"), images))
    if not isinstance(messages, list):
        raise RowProblem("messages is not a list")
    caption, prompt, answers, questions = None, None, 0, 0
    for m in messages:
        if not isinstance(m, dict):
            raise RowProblem("a message is not an object")
        role = str(m.get("role", m.get("from", ""))).lower()
        text = _text_of(m.get("content", m.get("value")), images)
        if role in USER_ROLES:
            questions += 1
            prompt = _strip_tag(text) if prompt is None else prompt
        elif role in ASSISTANT_ROLES:
            answers += 1
            caption = text
    if answers > 1 or questions > 1:
        raise RowProblem(f"{MULTI_TURN} ({max(answers, questions)} turns; a caption example has one answer)")
    if caption is None:
        raise RowProblem("no assistant message (the caption)")
    return images, caption, prompt



def _text_of(content: Any, images: list) -> str:
    """The text of a message; OpenAI/Qwen content parts add their images to `images`."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return str(content)
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" or (kind is None and "text" in part):
            texts.append(str(part.get("text", part.get("value", ""))))  # LLaMA-Factory v1 parts: {type, value}
        elif kind in ("image_url", "image") or "image_url" in part or "image" in part:
            ref = part.get("image_url", part.get("image", part.get("value")))
            if isinstance(ref, dict):
                ref = ref.get("url", ref.get("path", ref.get("bytes")))
            if ref is not None:
                images.append(ref)
    return "".join(texts)


def _strip_tag(text: str) -> str | None:
    text = text.replace("<image>", "").strip()
    return text or None


def _image_entry(entry: Any, base: Path) -> ImageSource:
    if isinstance(entry, dict):  # {"path": ..., "bytes": ...} as datasets writes it
        if entry.get("bytes"):
            data = entry["bytes"]
            return data if isinstance(data, bytes) else image_from_string(str(data), base)
        entry = entry.get("path", entry.get("url"))
    if not isinstance(entry, str):
        raise RowProblem(f"image entry is {type(entry).__name__}, expected a path or base64 string")
    return image_from_string(entry, base)
