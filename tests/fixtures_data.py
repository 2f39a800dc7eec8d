"""Builders of small caption datasets, one per format, each with known bad rows.

Every builder writes into a folder it is given and returns a `Built` describing what a correct
loader must find. Images are tiny PNGs with a distinct colour each (so content digests differ).
Each set has exactly 5% bad rows by default (the most the loader accepts), so one more bad row
turns it into an error: tests use `n_good` to go over the limit.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

CORRUPT = b"\x89PNG\r\n\x1a\n" + b"\x00this is not a picture" * 4  # PNG magic, then garbage


def png_bytes(i: int, size: int = 6) -> bytes:
    color = (i * 37 % 256, (i * 11 + 90) % 256, (255 - i) % 256)
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, i: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(i))
    return path


def data_uri(i: int) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(i)).decode()


def caption(i: int, k: int = 0) -> str:
    """Odd images get Chinese captions, even ones English; k numbers the extra captions."""
    if i % 2:
        return f"第{i}张图：蓝色背景上的红色圆形" + (f"（说法{k}）" if k else "")
    return f"a red circle on a blue background, picture {i}" + (f" (take {k})" if k else "")


@dataclass
class Built:
    path: Path  # what goes in data.dataset
    format: str
    rows: int  # rows the loader reads
    captions: dict[str, list[str]] = field(default_factory=dict)  # example id -> captions, for some ids
    bad: list[tuple[str, str]] = field(default_factory=list)  # (where, reason start), in file order
    images: int = 0


# ----------------------------------------------------------------------------- (a) imagefolder
def build_imagefolder(root: Path, n_good: int = 76, csv: bool = False) -> Built:
    """pets/ with img_NNN.png and metadata.jsonl (or metadata.csv, with a BOM and a `captions`
    column holding JSON lists). img_000.png has two captions (two JSONL rows; one CSV list).
    Bad: a missing image, a corrupt image, an empty caption, and a broken JSON line (JSONL) or a
    row without file_name (CSV)."""
    import csv as csvlib

    folder = root / "pets"
    good = [(f"img_{i:03d}.png", [caption(i)]) for i in range(n_good)]
    good[0] = (good[0][0], [caption(0), caption(0, 1)])
    for i, (name, _) in enumerate(good):
        write_png(folder / name, i)
    write_png(folder / "quiet.png", 999)
    (folder / "broken.png").write_bytes(CORRUPT)
    if csv:
        rows: list[tuple[list[str], str | None]] = [([n, json.dumps(c, ensure_ascii=False)], None) for n, c in good]
        bad = [(["missing.png", "never drawn"], "image not found: missing.png"),
               (["broken.png", "a broken file"], "not a readable image: broken.png ("),
               (["quiet.png", "   "], "empty caption"), (["", "orphan caption"], "no file_name")]
    else:
        rows = [(json.dumps({"file_name": n, "text": c}, ensure_ascii=False), None) for n, caps in good for c in caps]
        bad = [('{"file_name": "missing.png", "text": "never drawn"}', "image not found: missing.png"),
               ('{"file_name": "broken.png", "text": "a broken file"}', "not a readable image: broken.png ("),
               ('{"file_name": "quiet.png", "text": "   "}', "empty caption"),
               ('{"file_name": "img_001.png", "text": "cut off', "not valid JSON")]
    for k, row in enumerate(bad):  # spread over the file
        rows.insert(2 + 7 * k, row)
    meta = folder / ("metadata.csv" if csv else "metadata.jsonl")
    if csv:
        with open(meta, "w", encoding="utf-8-sig", newline="") as f:  # a BOM, as Excel writes it
            writer = csvlib.writer(f)
            writer.writerow(["file_name", "captions"])
            writer.writerows(cells for cells, _ in rows)
    else:
        meta.write_text("\n".join(line for line, _ in rows) + "\n", encoding="utf-8")
    first_line = 2 if csv else 1  # the CSV header is line 1
    built = Built(folder, "imagefolder", rows=len(rows), images=n_good)
    built.bad = [(f"{meta.name}:{n}", why) for n, (_, why) in enumerate(rows, first_line) if why]
    built.captions = dict(good[:4])
    return built


# ----------------------------------------------------------------------------- (b) COCO
def build_coco(root: Path, n_images: int = 19, per_image: int = 4) -> Built:
    """coco/annotations/captions_train2014.json + coco/train2014/*.png (the real COCO layout).
    Each image has `per_image` captions; bad: an image file missing, a corrupt image, an empty
    caption, an annotation whose image_id is not in the images list."""
    top = root / "coco"
    images, anns = [], []
    for i in range(n_images):
        name = f"COCO_train2014_{i:012d}.png"
        write_png(top / "train2014" / name, i)
        images.append({"id": 1000 + i, "file_name": name, "width": 6, "height": 6})
        anns += [{"image_id": 1000 + i, "id": 5000 + len(anns), "caption": caption(i, k)} for k in range(per_image)]
    images += [{"id": 1, "file_name": "COCO_train2014_missing.png"}, {"id": 2, "file_name": "broken.png"}]
    (top / "train2014" / "broken.png").write_bytes(CORRUPT)
    bad = [({"image_id": 1, "id": 1, "caption": "gone"}, "image not found: COCO_train2014_missing.png"),
           ({"image_id": 2, "id": 2, "caption": "broken"}, "not a readable image: broken.png ("),
           ({"image_id": 1003, "id": 3, "caption": ""}, "empty caption"),
           ({"image_id": 424242, "id": 4, "caption": "orphan"}, "unknown image_id: 424242")]
    for k, (ann, _) in enumerate(bad):
        anns.insert(5 + 10 * k, ann)
    path = top / "annotations" / "captions_train2014.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"info": {"year": 2014}, "images": images, "annotations": anns},
                               ensure_ascii=False, indent=1), encoding="utf-8")
    built = Built(top, "coco", rows=len(anns), images=n_images)
    built.bad = [(f"{path.name} annotations[{5 + 10 * k}]", why) for k, (_, why) in enumerate(bad)]
    built.captions = {images[i]["file_name"]: [caption(i, k) for k in range(per_image)] for i in (0, 1, 2)}
    return built


# ----------------------------------------------------------------------------- (c) messages
def _messages_record(i: int, image: str, text: str) -> dict:
    """Five accepted styles, chosen by i."""
    style = i % 5
    if style == 0:  # ms-swift
        return {"messages": [{"role": "user", "content": "<image>Describe the image."},
                             {"role": "assistant", "content": text}], "images": [image]}
    if style == 1:  # system message first, "image" as a string
        return {"messages": [{"role": "system", "content": "You write captions."},
                             {"role": "user", "content": "<image>Describe the image."},
                             {"role": "assistant", "content": text}], "image": image}
    if style == 2:  # query / response
        return {"query": "<image>Describe the image.", "response": text, "images": [image]}
    if style == 3:  # OpenAI content parts, the image inline
        return {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}},
                                                          {"type": "text", "text": "Describe the image."}]},
                             {"role": "assistant", "content": [{"type": "text", "text": text}]}]}
    return {"conversations": [{"from": "human", "value": "<image>Describe the image."},  # sharegpt
                              {"from": "gpt", "value": text}], "images": [image]}


def build_messages(root: Path, n_good: int = 76, array: bool = False) -> Built:
    """swift/train.jsonl (or llama/mllm_demo.json, a JSON array) with images in images/: paths
    relative to the file, an absolute path, base64 data URIs. img 0 has two rows (two captions).
    Bad: missing image, corrupt image, empty caption, a broken JSON line (JSONL only)."""
    folder = root / ("llama" if array else "swift")
    records, ids = [], {}
    for i in range(n_good):
        rel = f"images/{i:03d}.png"
        write_png(folder / rel, i)
        if i % 5 == 3:
            image, ids[i] = data_uri(i), None  # embedded: the id is a content digest
        elif i % 7 == 6:
            image, ids[i] = str(folder / rel), rel  # absolute, inside the folder: still a relative id
        else:
            image, ids[i] = rel, rel
        records.append(_messages_record(i, image, caption(i)))
    records.insert(1, _messages_record(0, "images/000.png", caption(0, 1)))
    (folder / "images" / "broken.png").write_bytes(CORRUPT)
    bad = [(_messages_record(0, "images/nope.png", "lost"), "image not found: images/nope.png"),
           (_messages_record(0, "images/broken.png", "broken"), "not a readable image: images/broken.png ("),
           (_messages_record(1, "images/001.png", ""), "empty caption")]
    if not array:
        bad.append(('{"messages": [{"role": "user", "content": "<image>hi"}', "not valid JSON"))
    positions = [3 + min(9, n_good // 4) * k for k in range(len(bad))]
    for pos, (rec, _) in zip(positions, bad):
        records.insert(pos, rec)
    if array:
        path = folder / "mllm_demo.json"
        path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
        where = [f"{path.name}[{p}]" for p in positions]
    else:
        path = folder / "train.jsonl"
        lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        where = [f"{path.name}:{p + 1}" for p in positions]
    built = Built(folder, "messages", rows=len(records), images=n_good)
    built.bad = [(w, why) for w, (_, why) in zip(where, bad)]
    built.captions = {ids[i]: [caption(i)] for i in (1, 2, 4)}
    built.captions["images/000.png"] = [caption(0), caption(0, 1)]
    return built


# ----------------------------------------------------------------------------- (d) hf
def build_hf_saved(root: Path, n_good: int = 76) -> Built:
    """hfset/: Dataset.save_to_disk with an Image feature and caption_en + caption_zh columns.
    Bad: no image, corrupt bytes, an empty caption, a truncated PNG."""
    import datasets

    images: list = [{"bytes": png_bytes(i), "path": f"{i:03d}.png"} for i in range(n_good)]
    en = [f"picture {i}" for i in range(n_good)]
    zh = [f"第{i}张图" for i in range(n_good)]
    bad = [(None, "x", "坏", "no image"), ({"bytes": CORRUPT, "path": "broken.png"}, "x", "坏",
            "not a readable image: embedded image broken.png ("),
           ({"bytes": png_bytes(900), "path": "900.png"}, "x", " ", "empty caption"),
           ({"bytes": png_bytes(902)[:40], "path": "cut.png"}, "x", "坏", "not a readable image")]
    positions = [4 + min(11, n_good // 5) * k for k in range(len(bad))]
    for pos, (img, e, z, _) in zip(positions, bad):
        images.insert(pos, img)
        en.insert(pos, e)
        zh.insert(pos, z)
    features = datasets.Features({"image": datasets.Image(), "caption_en": datasets.Value("string"),
                                  "caption_zh": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"image": images, "caption_en": en, "caption_zh": zh}, features=features)
    folder = root / "hfset"
    ds.save_to_disk(str(folder))
    built = Built(folder, "hf", rows=len(images), images=n_good)
    built.bad = [(f"{folder.name} row {p}", why) for p, (*_, why) in zip(positions, bad)]
    return built


def build_parquet(root: Path, n_good: int = 76) -> Built:
    """pq/data/train-00000-of-00001.parquet (+ a test split file that must not be read): a
    file_name column of paths relative to the parquet file and a `captions` list column.
    Bad: missing file, corrupt file, empty caption list, null image."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / "pq"
    data = folder / "data"
    names, caps = [], []
    for i in range(n_good):
        write_png(data / "img" / f"{i:03d}.png", i)
        names.append(f"img/{i:03d}.png")
        caps.append([caption(i), caption(i, 1)])
    (data / "img" / "broken.png").write_bytes(CORRUPT)
    write_png(data / "img" / "quiet.png", 901)
    bad = [("img/none.png", ["x"], "image not found: img/none.png"), ("img/broken.png", ["x"], "not a readable image: img/broken.png ("),
           ("img/quiet.png", [], "empty caption"), (None, ["x"], "no image")]
    positions = [6 + min(12, n_good // 5) * k for k in range(len(bad))]
    for pos, (n, c, _) in zip(positions, bad):
        names.insert(pos, n)
        caps.insert(pos, c)
    pq.write_table(pa.table({"file_name": names, "captions": caps}), data / "train-00000-of-00001.parquet")
    pq.write_table(pa.table({"file_name": names[:3], "captions": caps[:3]}), data / "test-00000-of-00001.parquet")
    built = Built(folder, "hf", rows=len(names), images=n_good)
    built.bad = [(f"train-00000-of-00001.parquet row {p}", why) for p, (*_, why) in zip(positions, bad)]
    built.captions = {f"img/{i:03d}.png": [caption(i), caption(i, 1)] for i in (0, 1)}
    return built


# ----------------------------------------------------------------------------- (f) ModelScope layouts
def build_m3it(root: Path, n_good: int = 57) -> Built:
    """m3it/data/captioning/coco-cn/train.jsonl as in AI-ModelScope/M3IT (base64 images, Chinese
    `outputs`). Bad: image bytes that are no picture, an empty caption, a broken JSON line."""
    folder = root / "m3it"
    path = folder / "data" / "captioning" / "coco-cn" / "train.jsonl"
    path.parent.mkdir(parents=True)

    def line(image: bytes, text: str) -> str:
        return json.dumps({"instruction": "用中文描述这张图片。", "inputs": "", "outputs": text,
                           "image_base64_str": [base64.b64encode(image).decode()]}, ensure_ascii=False)

    lines = [line(png_bytes(i), f"第{i}张图：一只猫") for i in range(n_good)]
    bad = [(line(CORRUPT, "坏图"), "not a readable image"), (line(png_bytes(800), ""), "empty caption"),
           ('{"outputs": "cut', "not valid JSON")]
    positions = [5 + min(9, n_good // 4) * k for k in range(len(bad))]
    for pos, (text, _) in zip(positions, bad):
        lines.insert(pos, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    built = Built(folder, "m3it", rows=len(lines), images=n_good)
    built.bad = [(f"train.jsonl:{p + 1}", why) for p, (_, why) in zip(positions, bad)]
    return built


def build_coco_csv(root: Path, n_good: int = 10) -> Built:
    """cococsv/train2014.csv as in modelscope/coco_2014_caption, with local image paths instead of
    URLs (the reader accepts both): uniq_id,image_id,caption,image; several rows per image, '&&'
    joining captions. Bad: a missing image, a file that is no picture."""
    folder = root / "cococsv"
    rows = ["uniq_id,image_id,caption,image"]
    for i in range(n_good):
        write_png(folder / "imgs" / f"{i}.png", i)
        rows.append(f'{2 * i},{i},"{caption(i)}&&{caption(i, 1)}",imgs/{i}.png')
        rows.append(f'{2 * i + 1},{i},"{caption(i, 2)}",imgs/{i}.png')
    (folder / "imgs" / "bad.png").write_bytes(CORRUPT)
    rows += ["900,900,gone,imgs/gone.png", "901,901,broken,imgs/bad.png"]
    (folder / "train2014.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    built = Built(folder, "coco_csv", rows=n_good + 2, images=n_good)
    built.captions = {}
    return built
