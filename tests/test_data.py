"""Caption data: every format with bad rows, the 5% limit, detection, split, fingerprint, Chinese."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.fixtures_data import (build_coco, build_coco_csv, build_hf_saved, build_imagefolder, build_m3it,
                                 build_messages, build_parquet, caption, png_bytes, write_png)
from wizard.data import BadImage, Example, load_caption_set, load_image
from wizard.errors import UserError
from wizard.recipe import DataSpec


def spec(dataset, **kw) -> DataSpec:
    kw.setdefault("eval_fraction", 0.1)
    return DataSpec(dataset=str(dataset), **kw)


def load(dataset, seed=7, **kw):
    return load_caption_set(spec(dataset, **kw), seed=seed)


def check_report(cs, built, detected=True):
    """What every format must get right: counts, the named bad rows, the captions."""
    r = cs.report
    assert r.format == built.format and r.detected == detected
    assert r.rows_read == built.rows
    assert r.images == built.images == len(cs.train) + len(cs.eval)
    assert r.bad_rows == len(built.bad)
    assert [(b.where, b.reason[:len(why)]) for b, (_, why) in zip(r.first_bad, built.bad)] == built.bad
    assert len(r.first_bad) == len(built.bad)
    by_id = {e.id: e.captions for e in cs.examples}
    for ex_id, caps in built.captions.items():
        assert by_id[ex_id] == caps, ex_id
    assert r.captions == sum(len(c) for c in by_id.values())
    text = "\n".join(r.lines())
    assert f"skipped {len(built.bad)} bad rows" in text and built.bad[0][0] in text
    for ex in cs.examples[:5]:
        assert load_image(ex).mode == "RGB"


# ----------------------------------------------------------------------------- each format
def test_imagefolder_jsonl(tmp_path):
    built = build_imagefolder(tmp_path)
    cs = load(built.path)
    check_report(cs, built)
    assert cs.report.bad_by_reason == {"image not found": 1, "not a readable image": 1, "empty caption": 1,
                                       "not valid JSON": 1}
    assert cs.report.language_guess == "mixed"


def test_imagefolder_csv_with_bom_and_caption_lists(tmp_path):
    built = build_imagefolder(tmp_path, csv=True)
    cs = load(built.path)
    check_report(cs, built)
    assert "第1张图：蓝色背景上的红色圆形" in {c for e in cs.examples for c in e.captions}


def test_coco_several_captions_per_image_and_sibling_image_folder(tmp_path):
    built = build_coco(tmp_path)
    cs = load(built.path)
    check_report(cs, built)
    assert all(len(e.captions) == 4 for e in cs.examples if e.id != "COCO_train2014_000000000003.png")
    assert len(cs.eval) == 2 and all(len(e.captions) == 4 for e in cs.eval[:1])  # references stay together
    # pointed at the JSON file, with the image folder given as data.subset
    shutil.move(tmp_path / "coco" / "train2014", tmp_path / "pictures")
    cs2 = load(built.path / "annotations" / "captions_train2014.json", subset=str(tmp_path / "pictures"))
    assert cs2.report.images == built.images and cs2.fingerprint == cs.fingerprint


def test_messages_jsonl_all_styles(tmp_path):
    built = build_messages(tmp_path)
    cs = load(built.path)
    check_report(cs, built)
    embedded = [e for e in cs.examples if isinstance(e.image, bytes)]
    assert len(embedded) == 15 and all(len(e.id) == 16 for e in embedded)  # data URIs: digest ids
    assert any("the file's prompt 'Describe the image.'" in n for n in cs.report.notes)


def test_messages_llama_factory_json_array(tmp_path):
    built = build_messages(tmp_path, array=True)
    cs = load(built.path)
    check_report(cs, built)
    assert cs.report.format == "messages"


def test_messages_broken_json_array_names_line(tmp_path):
    path = tmp_path / "mllm.json"
    path.write_text('[{"messages": []},\n {"images": [}]', encoding="utf-8")
    with pytest.raises(UserError, match=r"mllm.json: invalid JSON at line 2"):
        load(path)


def test_hf_save_to_disk_picks_language_column(tmp_path):
    built = build_hf_saved(tmp_path)
    cs = load(built.path, language="zh")
    check_report(cs, built)
    ex = next(e for e in cs.examples if e.id.endswith("-005.png"))
    assert ex.captions == ["第5张图"] and isinstance(ex.image, bytes)
    assert cs.report.language_guess == "zh"
    assert any("'caption_zh'" in n for n in cs.report.info)


def test_hf_parquet_reads_train_split_only(tmp_path):
    built = build_parquet(tmp_path)
    cs = load(built.path)
    check_report(cs, built)
    assert any("train files (1 of 2" in n for n in cs.report.info)
    single = load(built.path / "data" / "train-00000-of-00001.parquet")
    assert single.report.images == built.images


def test_shapes_builtin(tmp_path):
    cs = load("shapes", language="zh", max_samples=40)
    assert cs.report.format == "shapes" and cs.report.images == 40 and len(cs.eval) == 4
    assert cs.report.language_guess == "zh" and cs.report.bad_rows == 0
    assert all(len(e.captions) == 2 and "背景" in e.captions[0] for e in cs.examples)
    assert cs.fingerprint == load("shapes", language="zh", max_samples=40, seed=99).fingerprint
    assert load("shapes", language="en", max_samples=40).examples[0].captions[0].startswith("a ")


def test_m3it_local_folder_and_catalog_id(tmp_path, monkeypatch):
    built = build_m3it(tmp_path)
    cs = load(built.path, subset="coco-cn", language="zh")  # a local copy (layout detected): no download
    check_report(cs, built)
    assert load(built.path, format="m3it", language="zh").fingerprint == cs.fingerprint  # the one subset
    assert cs.report.language_guess == "zh" and all(len(e.id) == 16 for e in cs.examples)
    calls = []
    monkeypatch.setattr("wizard.hub.resolve_dataset", lambda *a, **k: calls.append(a[:2]) or built.path)
    by_id = load("AI-ModelScope/M3IT", subset="coco-cn", language="zh")  # format from the catalog
    assert calls == [("AI-ModelScope/M3IT", "coco-cn")] and by_id.report.format == "m3it"
    assert by_id.fingerprint == cs.fingerprint


def test_coco_csv_groups_captions_and_tolerates_dead_images(tmp_path, monkeypatch):
    built = build_coco_csv(tmp_path)
    monkeypatch.setattr("wizard.hub.resolve_dataset", lambda *a, **k: built.path)
    cs = load("modelscope/coco_2014_caption")
    assert cs.report.format == "coco_csv" and cs.report.images == 10 and cs.report.bad_rows == 2  # 17%: a note
    assert any("2 of 12 images could not be used" in n for n in cs.report.notes)
    assert {tuple(e.captions) for e in cs.examples} >= {(caption(3), caption(3, 1), caption(3, 2))}
    assert {b.reason.split(":")[0] for b in cs.report.first_bad} == {"image not fetched", "not a readable image"}


# ----------------------------------------------------------------------------- the 5% limit
@pytest.mark.parametrize("builder", [build_imagefolder, build_coco, build_messages, build_parquet, build_m3it])
def test_more_than_5_percent_bad_is_an_error_naming_rows_and_file(tmp_path, builder):
    built = builder(tmp_path, 10)
    with pytest.raises(UserError) as e:
        load(built.path)
    msg = str(e.value)
    assert f"{len(built.bad)} of {built.rows} rows of" in msg and "stops above 5%" in msg
    for where, why in built.bad:
        assert f"{where}: {why}" in msg
    assert "hint: fix or remove those rows" in msg


def test_exactly_5_percent_bad_is_accepted(tmp_path):
    built = build_imagefolder(tmp_path, csv=True)  # 4 bad of 80
    assert built.rows == 80 and load(built.path).report.bad_rows == 4


def test_cli_run_exits_2_on_bad_data(tmp_path, cli):
    pytest.importorskip("wizard.runner")
    if not (ROOT / "wizard" / "assets" / "demo-base").is_dir():
        pytest.skip("the demo model is not built yet (the run loads it before the data)")
    built = build_imagefolder(tmp_path, 10)
    recipe = (ROOT / "recipes" / "demo-shapes.yaml").read_text(encoding="utf-8")
    path = tmp_path / "bad.yaml"
    path.write_text(recipe, encoding="utf-8")
    result = cli("run", str(path), f"data.dataset={built.path}", "data.format=auto", "train.max_steps=1",
                 "--plain", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "metadata.jsonl:3: image not found: missing.png" in result.stdout + result.stderr


# ----------------------------------------------------------------------------- detection and paths
def test_auto_detection_of_files_and_override(tmp_path):
    build_imagefolder(tmp_path)
    coco = build_coco(tmp_path)
    msgs = build_messages(tmp_path)
    assert load(tmp_path / "pets" / "metadata.jsonl").report.format == "imagefolder"
    assert load(coco.path / "annotations" / "captions_train2014.json").report.format == "coco"
    assert load(msgs.path / "train.jsonl").report.format == "messages"
    forced = load(msgs.path, format="messages")
    assert forced.report.format == "messages" and not forced.report.detected


def test_relative_path_resolves_against_base_dir(tmp_path, monkeypatch):
    build_imagefolder(tmp_path)
    monkeypatch.chdir(ROOT)
    cs = load_caption_set(spec("pets"), seed=1, base_dir=tmp_path)
    assert cs.report.images == 76


def test_missing_path_names_it_with_a_hint(tmp_path):
    build_imagefolder(tmp_path)
    with pytest.raises(UserError) as e:
        load_caption_set(spec("pest"), seed=1, base_dir=tmp_path)
    assert "data.dataset='pest'" in e.value.message and str(tmp_path / "pest") in e.value.message
    assert "did you mean pets?" in e.value.hint and "metadata.jsonl" in e.value.hint


def test_folder_of_images_without_captions_says_what_is_missing(tmp_path):
    for i in range(3):
        write_png(tmp_path / "raw" / f"{i}.png", i)
    with pytest.raises(UserError, match="3 images but no metadata.jsonl"):
        load(tmp_path / "raw")


def test_missing_caption_column_lists_columns(tmp_path):
    write_png(tmp_path / "d" / "a.png", 1)
    (tmp_path / "d" / "metadata.jsonl").write_text('{"file_name": "a.png", "label": "cat"}\n', encoding="utf-8")
    with pytest.raises(UserError, match="no caption column; found columns: file_name, label"):
        load(tmp_path / "d")


def test_non_utf8_csv_gets_an_iconv_hint(tmp_path):
    write_png(tmp_path / "d" / "a.png", 1)  # (GBK is read: tests/test_encodings.py; Latin-1 is not guessed)
    (tmp_path / "d" / "metadata.csv").write_bytes("file_name,text\na.png,un café noir\n".encode("latin-1"))
    with pytest.raises(UserError) as e:
        load(tmp_path / "d")
    assert "line 2 is not UTF-8" in e.value.message and "iconv" in e.value.hint


# ----------------------------------------------------------------------------- split and fingerprint
def _ids(examples):
    return [e.id for e in examples]


def test_split_is_deterministic_and_independent_of_row_order(tmp_path):
    built = build_imagefolder(tmp_path)
    a, b = load(built.path, seed=3, eval_fraction=0.2), load(built.path, seed=3, eval_fraction=0.2)
    assert _ids(a.eval) == _ids(b.eval) and _ids(a.train) == _ids(b.train) and len(a.eval) == 15
    meta = built.path / "metadata.jsonl"
    lines = meta.read_text(encoding="utf-8").splitlines()
    random.Random(0).shuffle(lines)
    meta.write_text("\n".join(lines) + "\n", encoding="utf-8")
    shuffled = load(built.path, seed=3, eval_fraction=0.2)
    assert _ids(shuffled.eval) == _ids(a.eval) and _ids(shuffled.train) == _ids(a.train)
    # the fingerprint covers each image's captions in file order (img_000.png has two rows)
    same_order = [e.captions for e in shuffled.examples] == [e.captions for e in a.examples]
    assert (shuffled.fingerprint == a.fingerprint) == same_order
    other = load(built.path, seed=4, eval_fraction=0.2)
    assert set(_ids(other.eval)) != set(_ids(a.eval)) and other.fingerprint == shuffled.fingerprint


def test_eval_size_and_max_samples(tmp_path):
    built = build_imagefolder(tmp_path)
    assert len(load(built.path, eval_fraction=0.001).eval) == 1  # at least one held-out image
    assert len(load(built.path, eval_fraction=0.0).eval) == 0
    capped = load(built.path, max_samples=30, eval_fraction=0.1)
    assert capped.report.images == 30 and len(capped.eval) == 3 and capped.report.capped_from == 76
    full = load(built.path, eval_fraction=0.1)
    assert _ids(capped.eval) == _ids(full.eval)[:3]  # the cap follows the same seeded order


def test_fingerprint_same_on_another_machine_changes_with_content(tmp_path):
    built = build_imagefolder(tmp_path / "a")
    fp = load(built.path).fingerprint
    assert len(fp) == 64
    shutil.copytree(built.path, tmp_path / "b" / "elsewhere")
    assert load(tmp_path / "b" / "elsewhere").fingerprint == fp
    write_png(built.path / "img_005.png", 555)  # same name, new pixels
    assert load(built.path).fingerprint != fp


def test_eval_examples_keep_all_captions_as_references(tmp_path):
    built = build_coco(tmp_path)
    cs = load(built.path, eval_fraction=0.5)
    refs = {e.id: e.captions for e in cs.eval}
    assert len(refs) == 10 and all(len(v) == 4 for k, v in refs.items() if not k.endswith("03.png"))


# ----------------------------------------------------------------------------- images and speed
def test_load_image_rgb_and_clear_error(tmp_path):
    rgba = tmp_path / "t.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(rgba)
    assert load_image(Example("t", rgba, ["x"])).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert load_image(Example("p", png_bytes(3), ["x"])).size == (6, 6)
    truncated = tmp_path / "cut.png"
    write_png(tmp_path / "big.png", 1)
    Image.effect_noise((64, 64), 50).save(tmp_path / "big.png")
    truncated.write_bytes((tmp_path / "big.png").read_bytes()[:200])
    with pytest.raises(BadImage, match="image of example 'cut' .*cut.png.* cannot be decoded"):
        load_image(Example("cut", truncated, ["x"]))


def test_thousands_of_rows_load_fast_without_torch(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    data = png_bytes(1)
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as f:
        for i in range(3000):
            (folder / f"{i}.png").write_bytes(data)
            f.write(json.dumps({"file_name": f"{i}.png", "text": caption(i)}, ensure_ascii=False) + "\n")
    code = ("import sys, time; from wizard.data import load_caption_set; from wizard.recipe import DataSpec\n"
            f"t = time.perf_counter(); cs = load_caption_set(DataSpec(dataset={str(folder)!r}), seed=0)\n"
            "print(time.perf_counter() - t, cs.report.images, len(cs.eval))\n"
            "assert not {'torch', 'transformers', 'datasets'} & set(sys.modules), 'heavy import'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    seconds, images, n_eval = out.stdout.split()
    assert (images, n_eval) == ("3000", "60")
    assert float(seconds) < 4.0  # includes checking 3000 images: about 0.3 s on an idle core


def test_chinese_captions_round_trip_in_every_text_format(tmp_path):
    text = "一只戴着红色头盔的男人骑着摩托车。"
    write_png(tmp_path / "zh" / "a.png", 1)
    (tmp_path / "zh" / "metadata.jsonl").write_text(
        json.dumps({"file_name": "a.png", "caption": text}, ensure_ascii=False) + "\n", encoding="utf-8")
    cs = load_caption_set(spec(tmp_path / "zh", language="zh"), seed=0)
    assert cs.examples[0].captions == [text] and cs.report.language_guess == "zh"
    (tmp_path / "zh" / "metadata.jsonl").unlink()
    (tmp_path / "zh" / "metadata.csv").write_text(f"file_name,caption\na.png,{text}\n", encoding="utf-8-sig")
    assert load_caption_set(spec(tmp_path / "zh"), seed=0).examples[0].captions == [text]
    notes = load_caption_set(spec(tmp_path / "zh"), seed=0).report.notes
    assert any("captions look Chinese but data.language is 'en'" in n for n in notes)
