"""Property test (hypothesis) of the data readers (issue 24): random captions, random encodings, random
bytes and random image files, in every layout users bring, give `data` exit 0 or 2 and never a
traceback; data it refuses never gets a run folder from `run`; data it accepts decodes in training.

In-process through wizard.cli.main (as tests/test_recipe_properties.py does), derandomized: every run
of the suite tries the same cases, a few seconds in all.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import ROOT
from wizard.cli import main

DEMO = ROOT / "recipes" / "demo-shapes.yaml"


# ----------------------------------------------------------------------------- images
def _encoded(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def _image(kind: str, w: int, h: int, seed: int) -> bytes | None:
    rng = np.random.default_rng(seed)
    if kind == "rgb":
        return _encoded(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), "PNG")
    if kind == "grey16":
        return _encoded(Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16)), "PNG")
    if kind == "palette":
        im = Image.fromarray(rng.integers(0, 4, (h, w), dtype=np.uint8), "L").convert("P")
        buf = io.BytesIO()
        im.save(buf, "PNG", transparency=0)
        return buf.getvalue()
    if kind == "rgba":
        return _encoded(Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA"), "PNG")
    if kind == "cmyk":
        return _encoded(Image.new("CMYK", (w, h), tuple(int(v) for v in rng.integers(0, 256, 4))), "JPEG")
    if kind == "bilevel":
        return _encoded(Image.new("1", (w, h), 1), "GIF")
    if kind == "strip":
        return _encoded(Image.new("RGB", (1200, 3)), "PNG")  # the processor refuses 400:1
    if kind == "truncated":
        data = _encoded(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), "JPEG")
        return data[: max(1, len(data) * 2 // 3)]
    if kind == "garbage":
        return rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    if kind == "empty":
        return b""
    return None  # "missing": named, never written


images = st.tuples(st.sampled_from(["rgb", "rgb", "grey16", "palette", "rgba", "cmyk", "bilevel", "strip",
                                    "truncated", "garbage", "empty", "missing"]),
                   st.integers(1, 24), st.integers(1, 24), st.integers(0, 2**16))
captions = st.one_of(st.text(max_size=30), st.sampled_from(["一只灰猫", "a red circle", "", "  ", "x\ty", "\x00"]))
names = st.sampled_from(["a.png", "b.jpg", "图片.png", "caf\u00e9.png", "sub/c.png", "../escape.png", "d e.png"])


# ----------------------------------------------------------------------------- caption files, by layout
def _imagefolder_jsonl(rows):
    return {"metadata.jsonl": "".join(json.dumps({"file_name": n, "text": c}, ensure_ascii=False) + "\n" for n, c in rows)}


def _imagefolder_csv(rows):
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["file_name", "text"])
    writer.writerows(rows)
    return {"metadata.csv": buf.getvalue()}


def _messages(rows, array: bool):
    recs = [{"messages": [{"role": "user", "content": "<image>Describe."}, {"role": "assistant", "content": c}],
             "images": [n]} for n, c in rows]
    if array:
        return {"train.json": json.dumps(recs, ensure_ascii=False)}
    return {"train.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)}


def _coco(rows):
    files = sorted({n for n, _ in rows})
    doc = {"images": [{"id": i, "file_name": n} for i, n in enumerate(files)],
           "annotations": [{"id": k, "image_id": files.index(n), "caption": c} for k, (n, c) in enumerate(rows)]}
    return {"captions_train.json": json.dumps(doc, ensure_ascii=False)}


def _table(rows):
    return {"captions.txt": "image,caption\n" + "".join(f"{n},{c}\n" for n, c in rows)}


def _karpathy(rows):
    doc = {"images": [{"filename": n, "filepath": "", "split": "train", "imgid": i,
                       "sentences": [{"raw": c, "tokens": c.split()}]} for i, (n, c) in enumerate(rows)],
           "dataset": "coco"}
    return {"dataset_coco.json": json.dumps(doc, ensure_ascii=False)}


LAYOUTS = {"imagefolder_jsonl": _imagefolder_jsonl, "imagefolder_csv": _imagefolder_csv,
           "messages_jsonl": lambda rows: _messages(rows, False), "messages_json": lambda rows: _messages(rows, True),
           "coco": _coco, "table": _table, "karpathy": _karpathy, "webdataset": None}


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace" if encoding not in ("utf-8", "utf-8-sig") else "surrogatepass")


@st.composite
def datasets(draw):
    layout = draw(st.sampled_from(sorted(LAYOUTS)))
    hostile = draw(st.lists(st.tuples(names, captions), max_size=3))
    good = draw(st.integers(0, 40))  # plain rows around them: sometimes few enough bad ones to train on
    rows = [(f"g{i:02d}.png", f"a red circle, picture {i}") for i in range(good)] + hostile
    if not rows:
        rows = [("a.png", "a caption")]
    files = {n: ("rgb", 8, 8, i) for i, (n, _) in enumerate(rows)}
    files.update({n: draw(images) for n, _ in hostile})
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "gbk", "latin-1"]))
    mutation = draw(st.one_of(st.none(), st.tuples(st.sampled_from(["cut", "flip", "insert"]), st.integers(0, 10**6),
                                                   st.binary(min_size=1, max_size=8))))
    return layout, rows, files, encoding, mutation


def _mutate(data: bytes, mutation) -> bytes:
    if mutation is None or not data:
        return data
    how, at, junk = mutation
    at %= len(data)
    if how == "cut":
        return data[:at]
    if how == "flip":
        return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    return data[:at] + junk + data[at:]


def write_dataset(folder: Path, layout, rows, files, encoding, mutation) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    blobs = {n: _image(*spec) for n, spec in files.items()}
    if layout == "webdataset":
        with tarfile.open(folder / "train-000000.tar", "w") as tar:
            for k, (n, c) in enumerate(rows):
                for ext, data in (("png", blobs[n]), ("txt", _mutate(_encode(c, encoding), mutation))):
                    if data is None:
                        continue
                    info = tarfile.TarInfo(f"{k:06d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return folder
    for n, data in blobs.items():
        if data is not None and not n.startswith(".."):
            (folder / n).parent.mkdir(parents=True, exist_ok=True)
            (folder / n).write_bytes(data)
    for name, text in LAYOUTS[layout](rows).items():
        (folder / name).write_bytes(_mutate(_encode(text, encoding), mutation))
    return folder


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("data-fuzz")


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=datasets())
def test_any_data_gives_exit_0_or_2_and_no_run_folder_on_2(workdir, monkeypatch, case):
    monkeypatch.setenv("CAPTION_WIZARD_CACHE", str(workdir / "cache"))
    folder = write_dataset(workdir / "data", *case)
    code = main(["data", str(folder)])  # anything but a UserError raises: the test fails
    assert code in (0, 2)
    event(f"{case[0]}: exit {code}")
    if code == 2:  # refused: `run` refuses too, before any run folder exists
        runs_dir = workdir / "runs"
        assert main(["run", str(DEMO), f"data.dataset={folder}", "--plain", "--runs-dir", str(runs_dir)]) == 2
        assert not runs_dir.exists() or not any(runs_dir.iterdir())
        return
    from wizard.data import load_caption_set, load_image
    from wizard.images import size_problem
    from wizard.recipe import DataSpec

    cs = load_caption_set(DataSpec(dataset=str(folder)), seed=0)  # what `data` accepted, training reads:
    for ex in cs.examples:
        im = load_image(ex)  # every image decodes (BadImage would fail the test here)
        assert im.mode == "RGB" and im.size == cs.sizes[ex.id] and size_problem(im.size) is None
        assert all(c.strip() for c in ex.captions)
