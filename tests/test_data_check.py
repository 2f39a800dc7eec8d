"""The data check before a run (`caption-wizard data`, `run --dry-run`, the front end of `run`) and the
cached verified index (wizard.data.prepare): bad data never leaves a run folder, a second preparation
re-checks no image, a truncated JPEG is one more bad row."""

from __future__ import annotations

import io
import json
import os

import pytest
from PIL import Image

from tests.conftest import ROOT, cli_env, run_cli
from tests.fixtures_data import build_imagefolder, caption
from wizard.data import load_caption_set
from wizard.data import prepare as prepare_mod
from wizard.data.check import check_recipe, image_tokens, report_lines
from wizard.data.prepare import prepare_data, read_prepared
from wizard.errors import UserError
from wizard.recipe import DataSpec, apply_overrides, load_recipe

DEMO = ROOT / "recipes" / "demo-shapes.yaml"


def jpeg_bytes(i: int, size: int = 64) -> bytes:
    img = Image.effect_noise((size, size), 40 + i).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def jpeg_folder(root, n: int, truncated: tuple[int, ...] = ()):
    folder = root / "photos"
    folder.mkdir(parents=True)
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            data = jpeg_bytes(i)
            (folder / f"{i:03d}.jpg").write_bytes(data[: len(data) * 2 // 3] if i in truncated else data)
            f.write(json.dumps({"file_name": f"{i:03d}.jpg", "text": caption(2 * i)}) + "\n")
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("CAPTION_WIZARD_CACHE", str(folder))
    return folder


def env(tmp_path):
    return cli_env(CAPTION_WIZARD_CACHE=str(tmp_path / "cache"))


# ----------------------------------------------------------------------------- the command
def test_data_command_reports_good_data_and_refuses_bad_data(tmp_path):
    good = build_imagefolder(tmp_path / "good")  # 4 bad rows of 80: accepted, listed
    result = run_cli("data", str(good.path), cwd=tmp_path, env=env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "format: imagefolder (detected: metadata.jsonl: a metadata file with a file_name column" in out
    assert "76 images, 77 captions from 81 rows" in out
    assert "bad rows skipped: 4" in out and "metadata.jsonl:3: image not found: missing.png" in out
    assert "caption length, tokens of demo-base's tokenizer" in out  # this machine's default model is local
    assert "image tokens at data.max_pixels" in out and "examples:" in out
    assert "language: captions look mixed; data.language=en" in out

    bad = build_imagefolder(tmp_path / "bad", n_good=10)  # 4 bad rows of 14
    result = run_cli("data", str(bad.path), cwd=tmp_path, env=env(tmp_path))
    assert result.returncode == 2
    assert "metadata.jsonl:3: image not found: missing.png" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_data_report_counts_long_captions_duplicates_and_says_when_words_are_counted(tmp_path, cache):
    folder = jpeg_folder(tmp_path, 6)
    (folder / "005.jpg").write_bytes((folder / "000.jpg").read_bytes())  # the same picture twice
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    lines[1] = json.dumps({"file_name": "001.jpg", "text": "word " * 40})
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "qwen2-vl-2b-coco-en.yaml"),
                             [f"data.dataset={folder}", "data.format=auto", "train.max_target_length=16"])
    text = "\n".join(report_lines(check_recipe(recipe), recipe))
    assert "in words (the model's tokenizer is not on this machine yet: an approximation" in text
    assert "1 captions are longer than train.max_target_length=16" in text
    assert "duplicate images: 1 extra copies of 1 images (the same content under another name), e.g. 000.jpg = 005.jpg" in text
    assert "image sizes: smallest 64x64" in text


def test_image_tokens_match_the_processors_smart_resize():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    for h, w, lo, hi in [(448, 448, 3136, 12544), (480, 640, 3136, 401408), (30, 2000, 3136, 401408),
                         (4000, 3000, 3136, 1003520), (20, 20, 3136, 401408), (1080, 1920, 200704, 802816)]:
        rh, rw = smart_resize(h, w, factor=28, min_pixels=lo, max_pixels=hi)
        assert image_tokens(h, w, factor=28, min_pixels=lo, max_pixels=hi) == rh * rw // 784, (h, w)


def test_caption_lengths_are_counted_as_training_counts_them(tmp_path, cache):
    from transformers import AutoProcessor

    from wizard.data.check import local_model_dir
    from wizard.train.collate import tokenize_targets

    recipe = load_recipe(DEMO)
    check = check_recipe(recipe)
    processor = AutoProcessor.from_pretrained(str(local_model_dir(recipe.model)))
    captions = [c for ex in check.captions.examples for c in ex.captions]
    targets, cut = tokenize_targets(processor, captions, 10_000)
    assert check.lengths == [len(t) for t in targets] and len(set(check.lengths)) > 1
    assert check.over_limit == tokenize_targets(processor, captions, recipe.train.max_target_length)[1]


# ----------------------------------------------------------------------------- before a run exists
def test_dry_run_of_a_missing_dataset_exits_2_and_creates_no_run_folder(tmp_path):
    runs = tmp_path / "runs"
    result = run_cli("run", str(DEMO), f"data.dataset={tmp_path / 'nope'}", "data.format=auto", "--dry-run",
                     "--runs-dir", str(runs), cwd=tmp_path, env=env(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "dataset not found" in result.stderr and "Traceback" not in result.stderr
    assert not runs.exists()


def test_a_dry_run_does_not_download_a_hub_dataset(tmp_path):
    from wizard.data.check import remote_data_note

    hub = load_recipe(ROOT / "recipes" / "qwen2-vl-2b-coco-en.yaml")  # modelscope/coco_2014_caption
    assert "downloaded and checked when the run starts" in remote_data_note(hub)
    assert remote_data_note(load_recipe(DEMO)) is None
    with pytest.raises(UserError, match="dataset not found"):
        remote_data_note(apply_overrides(load_recipe(DEMO), [f"data.dataset={tmp_path / 'nope'}", "data.format=auto"]))


def test_dry_run_prints_the_data_check(tmp_path):
    result = run_cli("run", str(DEMO), "--dry-run", cwd=tmp_path, env=env(tmp_path))
    assert result.returncode == 0, result.stderr
    shown = result.stdout + result.stderr  # piped: the YAML on stdout, the rest on stderr
    assert "512 images, 1,024 captions from 512 rows" in shown
    assert "split: 461 train / 51 eval images" in shown


# a `run` on bad data: tests/test_train.py::test_bad_data_exits_2_names_the_rows_and_leaves_no_run_folder


def test_resume_refuses_changed_data_in_the_front_end(tmp_path, cache):
    from wizard.runner import prepare_run_data

    folder = jpeg_folder(tmp_path, 4)
    recipe = apply_overrides(load_recipe(DEMO), [f"data.dataset={folder}", "data.format=auto"])
    first = prepare_run_data(recipe, None)
    assert prepare_run_data(recipe, None, fingerprint=first.captions.fingerprint).index == first.index
    (folder / "002.jpg").write_bytes(jpeg_bytes(99))
    with pytest.raises(UserError, match="changed since this run started"):
        prepare_run_data(recipe, None, fingerprint=first.captions.fingerprint)


# ----------------------------------------------------------------------------- the verified index
def test_second_preparation_reuses_the_index_and_checks_no_image(tmp_path, cache, monkeypatch):
    folder = jpeg_folder(tmp_path, 40)
    decoded = []
    real = prepare_mod.inspect_image_bytes
    monkeypatch.setattr(prepare_mod, "inspect_image_bytes", lambda data: decoded.append(1) or real(data))
    spec = DataSpec(dataset=str(folder), eval_fraction=0.1)

    reads = []
    real_load = prepare_mod.load_caption_set
    monkeypatch.setattr(prepare_mod, "load_caption_set", lambda *a, **k: reads.append(1) or real_load(*a, **k))

    first = prepare_data(spec, seed=3)
    assert (len(decoded), first.checked, first.reused, len(reads)) == (40, 40, 0, 1)
    second = prepare_data(spec, seed=3)
    assert (len(decoded), second.checked, second.reused) == (40, 0, 40)  # not one image opened again
    assert len(reads) == 1  # nor the metadata file: sizes and times of the files were enough
    assert "index reused (40 images, none re-checked)" in second.summary()
    assert second.captions.fingerprint == first.captions.fingerprint
    assert second.index == first.index and second.index.parent == cache / "data"

    # the training process reads the index: the same split and fingerprint, no image opened
    again = read_prepared(second.index, spec, seed=3)
    assert [e.id for e in again.train] == [e.id for e in first.captions.train]
    assert again.fingerprint == first.captions.fingerprint == load_caption_set(spec, seed=3).fingerprint
    assert read_prepared(second.index, DataSpec(dataset=str(folder), language="zh"), seed=3) is None

    # a touched file is re-hashed, not decoded; changed content is decoded, and changes the fingerprint
    os.utime(folder / "001.jpg", ns=(1, 1))
    third = prepare_data(spec, seed=3)
    assert (third.checked, third.reused, len(decoded)) == (0, 40, 40)
    (folder / "002.jpg").write_bytes(jpeg_bytes(77))
    fourth = prepare_data(spec, seed=3)
    assert (fourth.checked, len(decoded)) == (1, 41)
    assert fourth.captions.fingerprint != first.captions.fingerprint


def test_an_image_that_appears_later_is_noticed(tmp_path, cache):
    folder = jpeg_folder(tmp_path, 40)
    missing = (folder / "007.jpg").read_bytes()
    (folder / "007.jpg").unlink()
    spec = DataSpec(dataset=str(folder))
    assert prepare_data(spec, seed=0).captions.report.bad_rows == 1
    assert prepare_data(spec, seed=0).captions.report.bad_rows == 1  # from the index
    (folder / "007.jpg").write_bytes(missing)
    again = prepare_data(spec, seed=0)
    assert (again.captions.report.bad_rows, again.captions.report.images, again.checked) == (0, 40, 1)


def test_truncated_jpeg_that_passes_verify_is_skipped_and_counted(tmp_path, cache):
    folder = jpeg_folder(tmp_path, 21, truncated=(5,))
    with Image.open(folder / "005.jpg") as im:
        im.verify()  # the header is fine: verify() alone lets it through
    for cs in (load_caption_set(DataSpec(dataset=str(folder)), seed=0),
               prepare_data(DataSpec(dataset=str(folder)), seed=0).captions):
        assert cs.report.images == 20 and cs.report.bad_rows == 1
        assert cs.report.bad_by_reason == {"not a readable image": 1}
        assert str(cs.report.first_bad[0]).startswith("metadata.jsonl:6: not a readable image: 005.jpg (image file is truncated")


def test_dashboard_header_shows_the_data_summary():
    from rich.console import Console

    from wizard.dashboard.render import render
    from wizard.dashboard.state import DashboardState

    st = DashboardState()
    st.apply({"t": 1.0, "type": "start", "run": "r", "model": "m", "num_train": 9, "num_eval": 1, "total_steps": 3,
              "data": "format imagefolder, 2 bad rows skipped"})
    con = Console(width=160, record=True, color_system=None)
    con.print(render(st, width=160, height=30, now=2.0))
    assert "format imagefolder, 2 bad rows skipped" in con.export_text()


def test_the_wizard_shows_the_summary_and_three_examples_of_the_users_data(tmp_path, cache):
    from rich.console import Console

    from wizard.ask.prompting import check_own_data

    good = build_imagefolder(tmp_path / "good")
    con = Console(width=200, record=True, color_system=None)
    assert check_own_data(str(good.path), say=con.print)
    text = con.export_text()
    assert "data: imagefolder (detected) · 76 images, 77 captions" in text
    assert "skipped metadata.jsonl:3: image not found: missing.png" in text
    assert len([line for line in text.splitlines() if line.startswith("  img_")]) == 3  # three examples
    assert not check_own_data(str(tmp_path / "nothing-here"), say=con.print)
    assert "this data cannot be used yet: dataset not found" in con.export_text()
