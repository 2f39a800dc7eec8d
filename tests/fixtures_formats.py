"""Small samples of caption data exactly as other tools and public sets ship it (tests/test_data_formats.py).

Each builder writes files with the real layout and names (written from the formats' public
documentation; nothing downloaded) and returns a Sample: what data.dataset points at, the format
auto-detection must find, and how many images / captions / held-out images the loader must read.
Images are tiny PNGs (named .jpg where the real sets use JPEG: PIL reads them by content).
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.fixtures_data import caption, png_bytes, write_png


@dataclass
class Sample:
    path: Path  # data.dataset
    format: str  # what auto-detection must say
    images: int  # usable images read
    captions: int  # captions of those images
    eval: int | None = None  # held-out images given by the file's own split (None: seeded split)
    spec: dict = field(default_factory=dict)  # other data.* keys the sample needs
    bad: dict = field(default_factory=dict)  # bad rows by reason


def _dump(path: Path, obj, *, lines: bool = False, indent=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if lines:
        text = "\n".join(json.dumps(o, ensure_ascii=False) for o in obj) + "\n"
    else:
        text = json.dumps(obj, ensure_ascii=False, indent=indent)
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- papers' files
def karpathy(root: Path) -> Sample:
    """coco/dataset_coco.json as one line (like the real 100+ MB file), images in coco/train2014 and
    coco/val2014 (filepath + filename). Splits: 4 train, 2 restval, 2 val, 3 test; 5 sentences each."""
    top = root / "coco"
    images = []
    splits = ["train"] * 4 + ["restval"] * 2 + ["val"] * 2 + ["test"] * 3
    for i, split in enumerate(splits):
        folder = "train2014" if split == "train" else "val2014"
        name = f"COCO_{folder}_{i:012d}.jpg"
        write_png(top / folder / name, i)
        sentences = [{"tokens": caption(i, k).split(), "raw": caption(i, k), "imgid": i, "sentid": 5 * i + k}
                     for k in range(5)]
        images.append({"filepath": folder, "sentids": [5 * i + k for k in range(5)], "filename": name,
                       "imgid": i, "split": split, "sentences": sentences, "cocoid": 100 + i})
    _dump(top / "dataset_coco.json", {"images": images, "dataset": "coco"})
    return Sample(top / "dataset_coco.json", "karpathy", images=9, captions=45, eval=3)


def blip(root: Path) -> Sample:
    """LAVIS layout: coco/annotations/coco_karpathy_{train,val,test}.json, images under coco/images/.
    Train: one caption per record (6 images x 2 records); test: a list of captions per image."""
    top = root / "coco"
    train, test = [], []
    for i in range(6):
        write_png(top / "images" / "train2014" / f"COCO_train2014_{i:012d}.jpg", i)
        for k in range(2):
            train.append({"caption": caption(i, k) + " ", "image": f"train2014/COCO_train2014_{i:012d}.jpg",
                          "image_id": f"coco_{i}"})
    for i in range(6, 9):
        write_png(top / "images" / "val2014" / f"COCO_val2014_{i:012d}.jpg", i)
        test.append({"image": f"val2014/COCO_val2014_{i:012d}.jpg", "caption": [caption(i, k) for k in range(3)]})
    _dump(top / "annotations" / "coco_karpathy_train.json", train)
    _dump(top / "annotations" / "coco_karpathy_val.json", test[:1])
    _dump(top / "annotations" / "coco_karpathy_test.json", test)
    return Sample(top / "annotations", "blip", images=9, captions=12 + 9, eval=3)


def flickr8k(root: Path) -> Sample:
    """Flickr8k as distributed: Flickr8k_text/ (token, lemma token, split lists) next to
    Flicker8k_Dataset/ (sic). 6 images x 5 captions; 4 train, 1 dev (not used), 1 test."""
    top = root / "flickr8k"
    names = [f"{1000268201 + i}_693b08cb0e.jpg" for i in range(6)]
    lines, lemma = [], []
    for i, name in enumerate(names):
        write_png(top / "Flicker8k_Dataset" / name, i)
        lines += [f"{name}#{k}\t{caption(2 * i, k)} ." for k in range(5)]
        lemma += [f"{name}#{k}\tlemma {k}" for k in range(5)]
    text = top / "Flickr8k_text"
    text.mkdir(parents=True)
    (text / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (text / "Flickr8k.lemma.token.txt").write_text("\n".join(lemma) + "\n", encoding="utf-8")
    (text / "Flickr_8k.trainImages.txt").write_text("\n".join(names[:4]) + "\n", encoding="utf-8")
    (text / "Flickr_8k.devImages.txt").write_text(names[4] + "\n", encoding="utf-8")
    (text / "Flickr_8k.testImages.txt").write_text(names[5] + "\n", encoding="utf-8")
    (text / "ExpertAnnotations.txt").write_text(f"{names[0]}\t{names[1]}#2\t1\t1\t1\n", encoding="utf-8")
    return Sample(top, "flickr", images=5, captions=25, eval=1)


def flickr30k_csv(root: Path) -> Sample:
    """Kaggle Flickr30k: flickr30k_images/results.csv (`|` + space separated) with the images in
    flickr30k_images/flickr30k_images/. One row lacks a separator, as in the real file."""
    top = root / "flickr30k_images"
    rows = ["image_name| comment_number| comment"]
    for i in range(6):
        name = f"{1000092795 + i}.jpg"
        write_png(top / "flickr30k_images" / name, i)
        rows += [f"{name}| {k}| {caption(2 * i, k)} ." for k in range(5)]
    rows[7] = f"{1000092795 + 1}.jpg| 1 A dog runs across the grass ."  # the known broken line
    (top / "results.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Sample(top, "table", images=6, captions=29, bad={"2 cells, header has 3": 1})


def captions_txt(root: Path) -> Sample:
    """Kaggle Flickr8k: captions.txt (image,caption; commas inside captions, quoted or not) + Images/."""
    top = root / "flickr8k-kaggle"
    rows = ["image,caption"]
    for i in range(5):
        name = f"{1000268201 + i}_693b08cb0e.jpg"
        write_png(top / "Images" / name, i)
        rows += [f"{name},{caption(2 * i, k)} ." for k in range(3)]
    rows.append(f'{1000268201}_693b08cb0e.jpg,"A dog, a cat and a bird ."')
    rows.append(f"{1000268201 + 1}_693b08cb0e.jpg,A child in pink , climbing stairs .")
    (top / "captions.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Sample(top, "table", images=5, captions=17)


def aic(root: Path) -> Sample:
    """AI Challenger caption: caption_train_annotations_20170902.json next to
    caption_train_images_20170902/; image_id is the file name, caption a list of 5 Chinese sentences."""
    top = root / "ai_challenger_caption_train_20170902"
    records = []
    for i in range(5):
        name = f"{i:040x}.jpg"
        write_png(top / "caption_train_images_20170902" / name, i)
        records.append({"url": f"http://img5.cache.netease.com/photo/{i}.jpg", "image_id": name,
                        "caption": [f"第{i}张图：一个穿着{k}号衣服的人在路上走" for k in range(5)]})
    _dump(top / "caption_train_annotations_20170902.json", records)
    return Sample(top, "aic", images=5, captions=25, spec={"language": "zh"})


def coco_cn(root: Path) -> Sample:
    """COCO-CN (coco-cn-version1805v1.1): imageid.human-written-caption.txt (COCO_val2014_...#0<TAB>句子)
    beside its word-segmented copy, the tags, a translated file and the split lists; the images live in the user's COCO folder (mscoco/train2014, mscoco/val2014): data.image_dir."""
    coco = root / "datasets" / "mscoco"
    ids = [f"COCO_val2014_{i:012d}" for i in range(4)] + [f"COCO_train2014_{i:012d}" for i in range(4, 6)]
    lines = []
    for i, key in enumerate(ids):
        write_png(coco / key.split("_")[1] / f"{key}.jpg", i)
        lines += [f"{key}#{k}\t第{i}张图：一只猫坐在桌子上{'（二）' if k else ''}" for k in range(2 if i % 2 else 1)]
    top = root / "coco-cn"
    top.mkdir()
    (top / "imageid.human-written-caption.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (top / "imageid.manually-translated-caption.txt").write_text(f"{ids[0]}#0\t翻译的句子\n", encoding="utf-8")
    (top / "imageid.human-written-caption.bosonseg.txt").write_text(f"{ids[0]}#0\t一 只 猫\n", encoding="utf-8")
    (top / "imageid.human-written-tags.txt").write_text(f"{ids[0]} 猫 桌子\n", encoding="utf-8")
    (top / "coco-cn_train.txt").write_text("\n".join(ids[:4]) + "\n", encoding="utf-8")
    (top / "coco-cn_val.txt").write_text(ids[4] + "\n", encoding="utf-8")
    (top / "coco-cn_test.txt").write_text(ids[5] + "\n", encoding="utf-8")
    return Sample(top, "coco_cn", images=5, captions=8, eval=1, spec={"image_dir": str(coco), "language": "zh"})


def coco_annotations(root: Path) -> Sample:
    """The released COCO annotations/ folder: captions_* and instances_* side by side, train2017/ next to it."""
    top = root / "coco2017"
    images, caps, inst = [], [], []
    for i in range(4):
        name = f"{i:012d}.jpg"
        write_png(top / "train2017" / name, i)
        images.append({"id": i, "file_name": name, "width": 6, "height": 6})
        caps += [{"image_id": i, "id": 10 * i + k, "caption": caption(i, k)} for k in range(5)]
        inst.append({"image_id": i, "id": i, "bbox": [0, 0, 2, 2], "category_id": 1, "segmentation": [], "area": 4})
    _dump(top / "annotations" / "captions_train2017.json", {"images": images, "annotations": caps})
    _dump(top / "annotations" / "captions_val2017.json", {"images": images[:1], "annotations": caps[:1]})
    _dump(top / "annotations" / "instances_train2017.json", {"images": images, "annotations": inst, "categories": []})
    _dump(top / "annotations" / "person_keypoints_train2017.json", {"images": images, "annotations": inst})
    return Sample(top / "annotations", "coco", images=4, captions=20)


# ----------------------------------------------------------------------------- shards and chat records
def webdataset(root: Path) -> Sample:
    """shards/train-00000{0,1}.tar: KEY.jpg + KEY.txt in one, KEY.png + KEY.json (caption field) in the other."""
    folder = root / "shards"
    folder.mkdir()
    for shard in range(2):
        with tarfile.open(folder / f"train-{shard:06d}.tar", "w") as tar:
            for i in range(3):
                key = f"{shard:03d}{i:05d}"
                image = ("jpg", png_bytes(10 * shard + i))
                text = ("txt", caption(i).encode()) if shard == 0 else \
                    ("json", json.dumps({"caption": caption(i, 1), "width": 6}).encode())
                for ext, data in (image if shard == 0 else ("png", image[1]), text):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return Sample(folder, "webdataset", images=6, captions=6)


def _chat_images(folder: Path, n: int) -> list[str]:
    for i in range(n):
        write_png(folder / "images" / f"{i}.jpg", i)
    return [f"images/{i}.jpg" for i in range(n)]


def alpaca(root: Path) -> Sample:
    """ms-swift / LLaMA-Factory alpaca records with images (JSONL)."""
    folder = root / "alpaca"
    images = _chat_images(folder, 5)
    recs = [{"system": "You write captions.", "instruction": "<image>Describe the image.", "input": "",
             "output": caption(i), "images": [img]} for i, img in enumerate(images)]
    _dump(folder / "train.jsonl", recs, lines=True)
    return Sample(folder / "train.jsonl", "messages", images=5, captions=5)


def swift_sharegpt(root: Path) -> Sample:
    """ms-swift sharegpt: {"system", "conversation": [{"human", "assistant"}], "images"}."""
    folder = root / "swift-sharegpt"
    images = _chat_images(folder, 5)
    recs = [{"system": "You write captions.", "conversation": [{"human": "<image>Describe the image.",
                                                                "assistant": caption(i)}], "images": [img]}
            for i, img in enumerate(images)]
    _dump(folder / "train.jsonl", recs, lines=True)
    return Sample(folder / "train.jsonl", "messages", images=5, captions=5)


def swift_csv(root: Path) -> Sample:
    """ms-swift CSV: query,response,images (a list written as text, or a plain path)."""
    folder = root / "swift-csv"
    images = _chat_images(folder, 5)
    rows = ["query,response,images"]
    for i, img in enumerate(images):
        cell = f"\"['{img}']\"" if i % 2 else img
        rows.append(f"<image>Describe the image.,\"{caption(i)}\",{cell}")
    (folder / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Sample(folder / "train.csv", "messages", images=5, captions=5)


def llama_factory_v1(root: Path) -> Sample:
    """LLaMA-Factory's newer multimodal JSONL: content parts {"type", "value"}, the image under value."""
    folder = root / "lf-v1"
    images = _chat_images(folder, 5)
    recs = [{"messages": [{"role": "user", "content": [{"type": "image_url", "value": img},
                                                       {"type": "text", "value": "Describe the image."}],
                           "loss_weight": 0.0},
                          {"role": "assistant", "content": [{"type": "text", "value": caption(i)}], "loss_weight": 1.0}]}
            for i, img in enumerate(images)]
    _dump(folder / "v1_sft_demo.jsonl", recs, lines=True)
    return Sample(folder / "v1_sft_demo.jsonl", "messages", images=5, captions=5)


def llama_factory_folder(root: Path) -> Sample:
    """A LLaMA-Factory data/ folder: dataset_info.json with a sharegpt entry (own columns and tags),
    an alpaca entry with images, a hub entry; data.subset names the dataset."""
    data = root / "LLaMA-Factory" / "data"
    for i in range(6):
        write_png(data / "caps_data" / f"{i}.jpg", i)
    sharegpt = [{"conv": [{"speaker": "person", "text": "<image>What is in the picture?"},
                          {"speaker": "bot", "text": caption(i)}], "pics": [f"caps_data/{i}.jpg"]} for i in range(6)]
    alpaca = [{"instruction": "<image>Describe.", "input": "", "output": caption(i, 1),
               "images": [f"caps_data/{i}.jpg"]} for i in range(3)]
    _dump(data / "my_captions.json", sharegpt, indent=2)
    _dump(data / "alpaca_caps.json", alpaca, indent=2)
    _dump(data / "dataset_info.json", {
        "identity": {"file_name": "identity.json"},
        "my_captions": {"file_name": "my_captions.json", "formatting": "sharegpt",
                        "columns": {"messages": "conv", "images": "pics"},
                        "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "person",
                                 "assistant_tag": "bot"}},
        "alpaca_caps": {"file_name": "alpaca_caps.json", "columns": {"prompt": "instruction", "query": "input",
                                                                     "response": "output", "images": "images"}},
        "coco_hub": {"hf_hub_url": "someone/coco", "formatting": "sharegpt"}}, indent=2)
    return Sample(data, "llama_factory", images=6, captions=6, spec={"subset": "my_captions"})


def mllm_demo_multi_turn(root: Path, n_single: int = 3, n_multi: int = 3) -> Path:
    """LLaMA-Factory's mllm_demo.json shape: multi-turn records (a follow-up question answered last),
    a two-image record, and single-turn caption records."""
    folder = root / "llama"
    images = _chat_images(folder, n_single + n_multi + 2)
    recs = []
    for i in range(n_multi):
        recs.append({"messages": [{"content": "<image>Who are they?", "role": "user"},
                                  {"content": "They're Kane and Gretzka from Bayern Munich.", "role": "assistant"},
                                  {"content": "What are they doing?", "role": "user"},
                                  {"content": "They are celebrating on the soccer field.", "role": "assistant"}],
                     "images": [images[i]]})
    recs.append({"messages": [{"content": "<image><image>What is the difference?", "role": "user"},
                              {"content": "The first is red.", "role": "assistant"}], "images": images[-2:]})
    for i in range(n_multi, n_multi + n_single):
        recs.append({"messages": [{"content": "<image>Describe the image.", "role": "user"},
                                  {"content": caption(i), "role": "assistant"}], "images": [images[i]]})
    _dump(folder / "mllm_demo.json", recs, indent=2)
    return folder / "mllm_demo.json"


def other_columns(root: Path) -> Path:
    """A CSV with its own column names (photo, desc) that no rule knows."""
    folder = root / "mine"
    rows = ["id,photo,desc"]
    for i in range(5):
        write_png(folder / "pics" / f"{i}.jpg", i)
        rows.append(f"{i},pics/{i}.jpg,\"{caption(2 * i)}\"")
    (folder / "pairs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder / "pairs.csv"


SAMPLES = {"karpathy": karpathy, "blip": blip, "flickr8k": flickr8k, "flickr30k_csv": flickr30k_csv,
           "captions_txt": captions_txt, "aic": aic, "coco_cn": coco_cn, "coco_annotations": coco_annotations,
           "webdataset": webdataset, "alpaca": alpaca, "swift_sharegpt": swift_sharegpt, "swift_csv": swift_csv,
           "llama_factory_v1": llama_factory_v1, "llama_factory_folder": llama_factory_folder}
