"""A LLaMA-Factory data/ folder, read through its dataset_info.json.

    read_llama_factory(folder, spec)     # data.dataset: the data/ folder (or dataset_info.json);
                                         # data.subset: the dataset's name in dataset_info.json

Each entry of dataset_info.json names a file (file_name, relative to the folder), a formatting
(alpaca, the default, or sharegpt), `columns` (which keys hold the prompt, query, response,
history, messages, images) and, for sharegpt, `tags` (role_tag, content_tag, user_tag,
assistant_tag...). They are honoured as LLaMA-Factory does, defaults included; image paths are
relative to the folder (LLaMA-Factory's media_dir default). Entries on a hub (hf_hub_url,
ms_hub_url) are not local data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wizard.data.adapters import ReadResult, jsonl_records, message_rows, read_json_document
from wizard.data.textfile import head as text_head
from wizard.data.examples import RowProblem
from wizard.errors import UserError

INFO = "dataset_info.json"
ALPACA = {"prompt": "instruction", "query": "input", "response": "output", "history": None, "system": None,
          "images": None}
SHAREGPT = {"messages": "conversations", "system": None, "images": None}
TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
        "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}


def info_file(path: Path) -> Path | None:
    """dataset_info.json of a LLaMA-Factory folder (the path itself, in it, or in its data/)."""
    for cand in (path, path / INFO, path / "data" / INFO):
        if cand.name == INFO and cand.is_file() and is_llama_factory_info(cand):
            return cand
    return None


def is_llama_factory_info(path: Path) -> bool:
    """A dict of dataset names -> {file_name | hf_hub_url | ms_hub_url | script_url, ...}
    (a datasets save_to_disk dataset_info.json has 'features', 'citation'... instead)."""
    try:
        head = text_head(path, 1 << 16)
    except OSError:
        return False
    return head.lstrip().startswith("{") and any(k in head for k in ('"file_name"', '"hf_hub_url"', '"ms_hub_url"')) \
        and '"features"' not in head


def read_llama_factory(path: Path, spec) -> ReadResult:
    info_path = info_file(path)
    if info_path is None:
        raise UserError(f"no LLaMA-Factory dataset_info.json in {path}")
    folder = info_path.parent
    info = read_json_document(info_path)
    if not isinstance(info, dict) or not info:
        raise UserError(f"{info_path}: expected an object of dataset names")
    local = {k: v for k, v in info.items() if isinstance(v, dict) and v.get("file_name")}
    name = spec.subset
    if name is None:
        with_images = [k for k, v in local.items() if (v.get("columns") or {}).get("images")]
        if len(with_images) != 1:
            raise UserError(f"{info_path} lists {len(info)} datasets; data.subset names the one to read",
                            hint="e.g. data.subset=" + (with_images or list(local) or list(info))[0]
                                 + "; with images: " + (", ".join(with_images) or "none"))
        name = with_images[0]
    if name not in info:
        raise UserError(f"data.subset={name!r} is not in {info_path}",
                        hint="datasets there: " + ", ".join(list(info)[:20]))
    entry = info[name]
    if name not in local:
        where = next((k for k in ("hf_hub_url", "ms_hub_url", "script_url") if isinstance(entry, dict) and k in entry),
                     "no file_name")
        raise UserError(f"dataset {name!r} in {info_path} is not a local file ({where})",
                        hint="download it and add its file_name, or pick a local dataset in data.subset")
    file = folder / entry["file_name"]
    if not file.exists():
        raise UserError(f"{info_path}: dataset {name!r} names {entry['file_name']!r}, which is not in {folder}")
    formatting = entry.get("formatting", "alpaca")
    columns = {**(SHAREGPT if formatting == "sharegpt" else ALPACA), **(entry.get("columns") or {})}
    tags = {**TAGS, **(entry.get("tags") or {})}
    records = ((where, _canonical(rec, formatting, columns, tags)) for where, rec in _records(file))
    rows = message_rows(records, folder)
    notes = [f"dataset {name!r} of {info_path.name}: {entry['file_name']} ({formatting}); "
             f"images from {columns.get('images')!r}, relative to {folder}"]
    return ReadResult(rows, file, folder, info=notes)


def _records(file: Path):
    files = sorted(p for p in file.iterdir() if p.suffix in (".json", ".jsonl")) if file.is_dir() else [file]
    for f in files:
        first = text_head(f, 4096).lstrip()[:1]
        if first == "[":
            for i, rec in enumerate(read_json_document(f)):
                yield f"{f.name}[{i}]", rec
        else:
            yield from jsonl_records(f)


def _canonical(rec: Any, formatting: str, columns: dict, tags: dict) -> Any:
    """A record in LLaMA-Factory's own column and role names -> the keys parse_record reads."""
    if isinstance(rec, RowProblem) or not isinstance(rec, dict):
        return rec
    images = rec.get(columns["images"]) if columns.get("images") else None
    if formatting != "sharegpt":
        history = rec.get(columns["history"]) if columns.get("history") else None
        return {"instruction": rec.get(columns["prompt"]), "input": rec.get(columns["query"]) or "",
                "output": rec.get(columns["response"]), "history": history, "images": images}
    messages = rec.get(columns["messages"])
    if not isinstance(messages, list):
        return {"messages": messages, "images": images}
    roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["system_tag"]: "system",
             tags["observation_tag"]: "observation", tags["function_tag"]: "function"}
    out = []
    for m in messages:
        if not isinstance(m, dict):
            out.append(m)
            continue
        role = m.get(tags["role_tag"])
        out.append({"role": roles.get(role, str(role)), "content": m.get(tags["content_tag"])})
    return {"messages": out, "images": images}
