"""Caption data as other tools and public sets ship it: each format detected, read with the right
counts (and its own split), and trained on for one step; contradicting or chat-shaped data refused."""

from __future__ import annotations

import http.server
import json
import threading
from functools import partial

import pytest

from tests.conftest import ROOT
from tests.fixtures_data import caption, write_png
from tests.fixtures_formats import SAMPLES, mllm_demo_multi_turn, other_columns
from wizard.data import load_caption_set, load_image
from wizard.data.detect import WHY, locate, sniff
from wizard.errors import UserError
from wizard.recipe import DataSpec, load_recipe


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # unpacked shards, fetched images
    monkeypatch.delenv("CAPTION_WIZARD_CACHE", raising=False)  # it would win over XDG_CACHE_HOME


def spec(dataset, **kw) -> DataSpec:
    kw.setdefault("eval_fraction", 0.2)
    return DataSpec(dataset=str(dataset), **kw)


def load(dataset, **kw):
    return load_caption_set(spec(dataset, **kw), seed=3)


# ----------------------------------------------------------------------------- every format
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_format_is_detected_and_read_with_the_right_counts(tmp_path, name):
    sample = SAMPLES[name](tmp_path)
    cs = load(sample.path, **sample.spec)
    r = cs.report
    assert (r.format, r.detected) == (sample.format, True)
    assert (r.images, r.captions) == (sample.images, sample.captions), r.lines()
    assert r.bad_by_reason == sample.bad
    if sample.eval is not None:  # the file's own split, not data.eval_fraction
        assert len(cs.eval) == sample.eval and any("split from" in i for i in r.info)
    for ex in cs.examples:
        assert load_image(ex).size == (6, 6) and ex.captions
    assert WHY[sample.format] in locate(spec(sample.path, **sample.spec)).why  # what the data check shows
    forced = load(sample.path, format=sample.format, **sample.spec)  # the name works in data.format too
    assert forced.fingerprint == cs.fingerprint and not forced.report.detected


def test_karpathy_split_comes_from_the_file(tmp_path):
    sample = SAMPLES["karpathy"](tmp_path)
    cs = load(sample.path, eval_fraction=0.5, max_samples=None)
    assert sorted(e.id for e in cs.eval) == [f"val2014/COCO_val2014_{i:012d}.jpg" for i in (8, 9, 10)]  # test
    assert all(len(e.captions) == 5 for e in cs.eval)  # every sentence is a reference
    val = load(sample.path, subset="val")  # data.subset=val scores Karpathy val instead
    assert sorted(e.id for e in val.eval) == [f"val2014/COCO_val2014_{i:012d}.jpg" for i in (6, 7)]
    assert len(val.train) == 6


def test_karpathy_detection_reads_only_the_head_of_a_huge_one_line_file(tmp_path):
    sample = SAMPLES["karpathy"](tmp_path)
    doc = json.loads(sample.path.read_text(encoding="utf-8"))
    doc["images"] = doc["images"] * 400  # about 1 MB on one line
    big = tmp_path / "dataset_flickr30k.json"
    text = json.dumps(doc)
    big.write_text(text[: len(text) // 2], encoding="utf-8")  # cut in half: parsing it all would fail
    assert len(text) > 1_000_000 and "\n" not in text
    assert sniff(big) == "karpathy"


def test_webdataset_shards_are_unpacked_once(tmp_path):
    sample = SAMPLES["webdataset"](tmp_path)
    first = load(sample.path)
    unpacked = sorted((tmp_path / "xdg-cache" / "caption-wizard" / "webdataset").rglob("*.*"))
    assert len([p for p in unpacked if p.suffix in (".jpg", ".png")]) == 6
    assert {e.id for e in first.examples} == {f"{s:03d}{i:05d}" for s in range(2) for i in range(3)}
    index = [p for p in unpacked if p.name == "index.json"]
    assert len(index) == 2
    mtimes = [p.stat().st_mtime_ns for p in index]
    assert load(sample.path).fingerprint == first.fingerprint
    assert [p.stat().st_mtime_ns for p in index] == mtimes  # a second run reads the index, unpacks nothing


def test_coco_cn_needs_the_coco_folder_and_says_which_key(tmp_path):
    sample = SAMPLES["coco_cn"](tmp_path)
    with pytest.raises(UserError) as e:
        load(sample.path, language="zh")  # images are not next to the sentence files
    assert "COCO_val2014_000000000000" in e.value.message and "data.image_dir" in e.value.hint
    cs = load(sample.path, **sample.spec)
    assert cs.report.info[0] == f"images in {tmp_path / 'datasets' / 'mscoco'}"
    assert [e.id for e in cs.eval] == ["train2014/COCO_train2014_000000000005.jpg"]  # coco-cn_test.txt


def test_llama_factory_folder_needs_the_dataset_name(tmp_path):
    sample = SAMPLES["llama_factory_folder"](tmp_path)
    with pytest.raises(UserError) as e:
        load(sample.path)
    assert "data.subset" in e.value.message and "alpaca_caps" in e.value.hint
    alpaca = load(sample.path, subset="alpaca_caps")
    assert {c for e in alpaca.examples for c in e.captions} == {caption(i, 1) for i in range(3)}
    with pytest.raises(UserError, match="not a local file"):
        load(sample.path, subset="coco_hub")


# ----------------------------------------------------------------------------- silent wrong data
def test_format_shapes_with_a_dataset_path_is_an_error(tmp_path):
    sample = SAMPLES["captions_txt"](tmp_path)
    with pytest.raises(UserError) as e:
        load(sample.path, format="shapes")  # recipes/demo-shapes.yaml data.dataset=my/folder
    assert "data.format='shapes'" in e.value.message and "data.dataset=" in e.value.message
    assert "data.format=auto" in e.value.hint


def test_forced_format_that_does_not_fit_the_data_is_an_error(tmp_path):
    sample = SAMPLES["webdataset"](tmp_path)
    with pytest.raises(UserError) as e:
        load(sample.path, format="coco")
    assert "data.format='coco' contradicts data.dataset=" in e.value.message and "webdataset" in e.value.message
    with pytest.raises(UserError, match="contradicts"):
        load("AI-ModelScope/M3IT", format="coco_csv", subset="coco-cn")
    captions = SAMPLES["captions_txt"](tmp_path)
    with pytest.raises(UserError, match="data.format='m3it' contradicts .* holds table data"):
        load(captions.path, format="m3it", subset="coco-cn")  # a wizard recipe with data.dataset overridden


def test_shipped_recipes_say_auto_and_the_demo_still_reads_shapes():
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        assert load_recipe(path).data.format == "auto", path
    demo = load_recipe(ROOT / "recipes" / "demo-shapes.yaml").data
    cs = load_caption_set(demo.model_copy(update={"max_samples": 20}), seed=1)
    assert cs.report.format == "shapes" and cs.report.images == 20


def test_multi_turn_and_multi_image_records_are_skipped_with_their_own_reason(tmp_path):
    path = mllm_demo_multi_turn(tmp_path, n_single=60, n_multi=2)
    cs = load(path)
    assert cs.report.bad_by_reason == {"multi-turn record": 2, "multi-image record": 1}
    assert "They are celebrating on the soccer field." not in {c for e in cs.examples for c in e.captions}
    assert cs.report.images == 60


def test_mostly_multi_turn_records_stop_with_an_explanation(tmp_path):
    path = mllm_demo_multi_turn(tmp_path)  # LLaMA-Factory's mllm_demo.json shape
    with pytest.raises(UserError) as e:
        load(path)
    msg = e.value.message
    assert "mllm_demo.json[0]: multi-turn record" in msg and "mllm_demo.json[3]: multi-image record" in msg
    assert "not a caption example" in msg and "stops above 5%" in msg


# ----------------------------------------------------------------------------- unknown columns
def test_unknown_columns_name_what_was_found_and_the_mapping(tmp_path):
    path = other_columns(tmp_path)
    with pytest.raises(UserError) as e:
        load(path)
    assert "columns id, photo, desc" in e.value.message and "'pics/0.jpg'" in e.value.message
    assert "data.columns: {image: photo, caption: desc}" in e.value.hint
    cs = load(path, columns={"image": "photo", "caption": "desc"})
    assert (cs.report.format, cs.report.images) == ("table", 5)
    assert any("column 'photo'" in i for i in cs.report.info)
    with pytest.raises(UserError, match=r"no column 'picture' \(data.columns.image\); columns: id, photo, desc"):
        load(path, columns={"image": "picture", "caption": "desc"})


def test_unknown_jsonl_keys_are_listed(tmp_path):
    write_png(tmp_path / "a.jpg", 1)
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"picture_file": "a.jpg", "words": "a red circle on blue"}) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as e:
        load(path)
    assert "keys picture_file, words" in e.value.message
    assert "{image: picture_file, caption: words}" in e.value.hint


def test_data_columns_also_name_parquet_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for i in range(3):
        write_png(tmp_path / "pq" / f"{i}.jpg", i)
    pq.write_table(pa.table({"pic": [f"{i}.jpg" for i in range(3)], "words": [caption(2 * i) for i in range(3)],
                             "caption": ["wrong"] * 3}), tmp_path / "pq" / "train.parquet")
    cs = load(tmp_path / "pq", columns={"image": "pic", "caption": "words"})
    assert cs.report.format == "hf" and {e.captions[0] for e in cs.examples} == {caption(2 * i) for i in range(3)}


def test_data_columns_is_typed_in_the_recipe():
    with pytest.raises(Exception, match="capton"):
        DataSpec(dataset="x", columns={"image": "a", "capton": "b"})


# ----------------------------------------------------------------------------- image URLs
@pytest.fixture
def image_server(tmp_path):
    root = tmp_path / "www"
    for i in range(4):
        write_png(root / f"{i}.png", i)
    handler = partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.keywords
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests += 1
        super().do_GET()


def test_image_urls_are_downloaded_once_and_failures_counted(tmp_path, image_server, monkeypatch):
    base, _ = image_server
    monkeypatch.setenv("CAPTION_WIZARD_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "urls"
    folder.mkdir()
    recs = [{"messages": [{"role": "user", "content": "<image>Describe."},
                          {"role": "assistant", "content": caption(i)}], "images": [f"{base}/{i}.png"]}
            for i in range(4)]
    recs.append({"messages": [{"role": "user", "content": "<image>Describe."},
                              {"role": "assistant", "content": "gone"}], "images": [f"{base}/missing.png"]})
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    _QuietHandler.requests = 0
    cs = load(folder / "train.jsonl")
    assert cs.report.images == 4 and cs.report.bad_by_reason == {"image not fetched": 1}  # 20%: a note, no stop
    assert "HTTP 404" in str(cs.report.first_bad[0]) and _QuietHandler.requests == 5
    assert {e.id for e in cs.examples} == {f"{base}/{i}.png" for i in range(4)}
    again = load(folder / "train.jsonl")
    assert _QuietHandler.requests == 6 and again.fingerprint == cs.fingerprint  # only the failed one again
    assert len(list((tmp_path / "cache" / "images").rglob("*"))) >= 4


# ----------------------------------------------------------------------------- one training step each
@pytest.fixture(scope="module")
def tiny():
    from wizard.demo.model import build_model, build_processor

    return build_model(0), build_processor()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_format_trains_for_a_step(tmp_path, name, tiny):
    import torch

    from wizard.train.collate import CaptionCollator, build_dataset

    model, processor = tiny
    sample = SAMPLES[name](tmp_path)
    cs = load(sample.path, **sample.spec)
    data = build_dataset(cs.train[:2], processor, "Describe this image.", max_target_length=16)
    batch = CaptionCollator(processor, data)([data[0], data[1]])
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params[:4]]
    opt = torch.optim.SGD(params, lr=1e-3)
    loss = model(**batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    assert torch.isfinite(loss) and any(not torch.equal(a, p) for a, p in zip(before, params[:4]))
    assert batch["pixel_values"].shape[0] > 0 and (batch["labels"] != -100).any()
