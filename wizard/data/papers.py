"""The caption files of papers and public sets, read with their own train/test split.

    read_karpathy(path, spec, base_dirs)   # dataset_coco.json, dataset_flickr8k.json, dataset_flickr30k.json
    read_tokens(path, spec, base_dirs)     # Flickr8k.token.txt, results_20130124.token; COCO-CN sentence files
    read_blip(path, spec, base_dirs)       # coco_karpathy_train.json (+ coco_karpathy_test.json held out)

Karpathy split files: {"images": [{"filepath", "filename", "split", "sentences": [{"raw"}]}]}.
`train` and `restval` train; `test` is held out (data.subset=val holds out `val` instead), so
`caption-wizard eval` scores the same images as papers' Karpathy-test numbers; the other one of
val/test is not used at all. The split comes from the file, not from data.eval_fraction.

Token files: `IMAGE.jpg#N<TAB>caption` (Flickr) or `COCO_val2014_000000000042#N<TAB>句子` (COCO-CN,
images from the COCO folder in data.image_dir: its train2014/ and val2014/, or all in one folder).
Split lists next to them are honoured: Flickr_8k.trainImages.txt / Flickr_8k.testImages.txt,
coco-cn_train.txt / coco-cn_test.txt (dev/val lists are not used).
"""

from __future__ import annotations

import re
from pathlib import Path

from wizard.data.adapters import ReadResult, Row, caption_values, read_json_document, text_lines
from wizard.data.records import find_image_root, read_table
from wizard.errors import UserError

KARPATHY_TRAIN = ("train", "restval")
_COCO_ID = re.compile(r"^COCO_(train|val)(\d{4})_\d+$")


# ----------------------------------------------------------------------------- Karpathy
def read_karpathy(path: Path, spec, base_dirs: list[Path]) -> ReadResult:
    doc = read_json_document(path)
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise UserError(f"{path} is not a Karpathy split file: it needs a list 'images' of "
                        '{"filename", "split", "sentences"}')
    held_split = _held_split(spec.subset)
    names = [_karpathy_name(img) for img in images[:200] if isinstance(img, dict)]
    root = find_image_root(path, [n for n in names if n], spec.image_dir, base_dirs)
    rows, held, counts = [], set(), {}
    for i, img in enumerate(images):
        split = str(img.get("split", "train")) if isinstance(img, dict) else "train"
        counts[split] = counts.get(split, 0) + 1
        if split not in KARPATHY_TRAIN and split != held_split:
            continue  # the other evaluation split: neither trained on nor scored
        row = Row(f"{path.name} images[{i}]")
        rows.append(row)
        name = _karpathy_name(img) if isinstance(img, dict) else None
        if not name:
            row.problem = "no filename"
            continue
        row.image = root / name
        row.captions = caption_values(img.get("sentences"))
        if split == held_split:
            held.add(row.image)
    shown = ", ".join(f"{k}: {v:,}" for k, v in counts.items())
    info = [f"images in {root}",
            f"split from the file ({shown}): train + restval train, {held_split} is held out, "
            f"{'val' if held_split == 'test' else 'test'} is not used (data.eval_fraction does not apply)"]
    return ReadResult(rows, path, root, info=info, held_out=held)


def _karpathy_name(img: dict) -> str | None:
    name = img.get("filename")
    if not isinstance(name, str) or not name:
        return None
    return f"{img['filepath']}/{name}" if img.get("filepath") else name


def _held_split(subset: str | None) -> str:
    if subset in (None, "test"):
        return "test"
    if subset in ("val", "validation", "dev"):
        return "val"
    raise UserError(f"data.subset={subset!r}: a Karpathy split file holds out 'test' (default) or 'val'",
                    hint="leave data.subset empty to evaluate on the Karpathy test split, as papers do")


# ----------------------------------------------------------------------------- token files
def read_tokens(path: Path, spec, base_dirs: list[Path], fmt: str = "flickr") -> ReadResult:
    """IMAGE#N<TAB>caption lines; rows of one image merge into one example with all its captions."""
    rows, keys = [], []
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        row = Row(f"{path.name}:{lineno}")
        rows.append(row)
        key, sep, caption = line.rstrip("\r\n").partition("\t")
        if not sep:
            key, sep, caption = line.strip().partition(" ")  # some copies use a space
        name = key.strip().rsplit("#", 1)[0]
        keys.append(name)
        if not sep or not name:
            row.problem = "expected IMAGE#N<TAB>caption"
            continue
        row.captions = caption_values(caption)
    coco_ids = fmt == "coco_cn" or (keys and all(_COCO_ID.match(k) for k in keys[:20]))
    relative = [_coco_file(k, nested=True) for k in keys] if coco_ids else keys
    root = find_image_root(path, relative[:200], spec.image_dir, base_dirs, required=False)
    if coco_ids:  # a COCO folder holds train2014/ and val2014/; some people keep all images in one folder
        flat = [_coco_file(k, nested=False) for k in keys]
        flat_root = root if spec.image_dir else find_image_root(path, flat[:200], None, base_dirs, required=False)
        if flat_root is not None and _hits(flat_root, flat) > (_hits(root, relative) if root else 0):
            root, relative = flat_root, flat
    if root is None:
        raise UserError(f"cannot find the images of {path}: looked for {relative[0]!r} near it",
                        hint="set data.image_dir to " + ("your COCO folder (the one holding train2014/ and "
                                                          "val2014/)" if coco_ids else "the folder of the images"))
    info = [f"images in {root}"]
    for row, rel in zip(rows, relative):
        if row.problem is None:
            row.image = root / rel
    held = None
    lists = _split_lists(path)
    if lists:
        train_names, test_names, list_names = lists
        held, kept, dropped = set(), [], 0
        for row, key in zip(rows, keys):
            if key in test_names and row.image is not None:
                held.add(row.image)
            elif key not in train_names and key not in test_names:
                dropped += 1
                continue
            kept.append(row)
        rows = kept
        info.append(f"split from {', '.join(list_names)}: {len(train_names):,} train images, "
                    f"{len(test_names):,} held out; {dropped:,} rows of other images not used")
    return ReadResult(rows, path, root, info=info, held_out=held)


def _hits(root: Path, names: list[str]) -> int:
    return sum((root / n).is_file() for n in names[:20])


def _coco_file(key: str, nested: bool) -> str:
    m = _COCO_ID.match(key)
    name = key if Path(key).suffix else f"{key}.jpg"
    return f"{m.group(1)}{m.group(2)}/{name}" if nested and m else name


def _split_lists(path: Path) -> tuple[set, set, list[str]] | None:
    """(train names, test names, files) from the split lists next to a token file, if any."""
    folder = path.parent
    found = {}
    for f in folder.iterdir():
        low = f.name.lower()
        if not f.is_file() or f == path or not low.endswith(".txt"):
            continue
        for split in ("train", "test"):
            if re.search(rf"(^|[_.-]){split}(images)?\.txt$", low):
                found[split] = f
    if "train" not in found or "test" not in found:
        return None
    names = {}
    for split, f in found.items():
        names[split] = {line.strip().rsplit("#", 1)[0] for _, line in text_lines(f) if line.strip()}
    return names["train"], names["test"], [found["train"].name, found["test"].name]


# ----------------------------------------------------------------------------- BLIP / LAVIS
def read_blip(path: Path, spec, base_dirs: list[Path]) -> ReadResult:
    """A BLIP/LAVIS list; when it is the train file and the test file sits next to it
    (coco_karpathy_test.json, flickr30k_test.json), that one is read as the held-out split."""
    result = read_table(path, spec, base_dirs, fmt="blip")
    test = path.with_name(path.name.replace("_train", "_test"))
    if "_train" not in path.name or not test.is_file():
        return result
    spec_test = spec.model_copy(update={"image_dir": str(result.root)}) if result.root else spec
    held = read_table(test, spec_test, base_dirs, fmt="blip")
    result.rows += held.rows
    result.held_out = {r.image for r in held.rows if r.image is not None}
    result.info.append(f"split from the files: {path.name} trains, {test.name} is held out "
                       f"(data.eval_fraction does not apply)")
    return result
