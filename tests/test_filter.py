"""data.filter: CLIP score, image size and near-duplicate filtering, with tiny CLIP models built here and
served by the local ModelScope hub (tests/hubserver.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.hubserver import serve_folder_as_model
from wizard.data import load_caption_set
from wizard.errors import UserError
from wizard.recipe import DataSpec, apply_overrides, load_recipe

WORDS = "a red blue green circle square star on background white black".split()


def tiny_chinese_clip(folder: Path) -> Path:
    import torch
    from transformers import (BertTokenizer, ChineseCLIPConfig, ChineseCLIPImageProcessor, ChineseCLIPModel,
                              ChineseCLIPProcessor)

    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "红", "蓝", "色", "圆", "形"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    config = ChineseCLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=64),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    ChineseCLIPModel(config).save_pretrained(folder)
    processor = ChineseCLIPProcessor(
        ChineseCLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        BertTokenizer(str(folder / "vocab.txt")))
    processor.save_pretrained(folder)
    return folder


def tiny_clip(folder: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder.mkdir(parents=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{f"{w}</w>": i + 2 for i, w in enumerate(WORDS)}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=64, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    CLIPProcessor(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tok).save_pretrained(folder)
    return folder


def dataset(folder: Path) -> Path:
    """An image folder: 6 distinct shapes (64 px), one re-encoded duplicate, two 16 px images."""
    from wizard.demo.shapes import make_shapes

    folder.mkdir()
    rows = []
    for i, s in enumerate(make_shapes(6, seed=41)):
        s.image.resize((64, 64)).save(folder / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": f"a {s.color} {s.shape} on {s.background} background"})
    Image.open(folder / "0.png").convert("RGB").save(folder / "dup.jpg", quality=90)
    rows.append({"file_name": "dup.jpg", "text": "a copy of the first"})
    for i in range(2):
        Image.new("RGB", (16, 16), (i * 100, 0, 0)).save(folder / f"small{i}.png")
        rows.append({"file_name": f"small{i}.png", "text": "a tiny red square"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def spec(folder: Path, **filt) -> DataSpec:
    return DataSpec(dataset=str(folder), eval_fraction=0.0, filter=filt)


def test_min_side_and_dedupe(tmp_path):
    data = dataset(tmp_path / "data")
    cs = load_caption_set(spec(data), seed=0)
    assert len(cs.train) == 9
    cs = load_caption_set(spec(data, min_side=32, dedupe=True), seed=0)
    ids = sorted(e.id for e in cs.train)
    assert ids == ["0.png", "1.png", "2.png", "3.png", "4.png", "5.png"]
    first = next(e for e in cs.train if e.id == "0.png")
    assert "a copy of the first" in first.captions  # the duplicate's caption is pooled, not lost
    lines = "\n".join(cs.report.lines())
    assert "min_side 32: dropped 2 image(s)" in lines and "small0.png (16x16)" in lines
    assert "merged 1 near-duplicate image(s)" in lines and "dup.jpg = 0.png" in lines


@pytest.mark.parametrize("build", [tiny_clip, tiny_chinese_clip])
def test_clip_min_from_a_hub_model_scored_once(build, tmp_path, hub_server, hub_env, monkeypatch):
    from wizard.data import filter as data_filter

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    serve_folder_as_model(hub_server, "tiny/clip", build(tmp_path / "clip"))
    data = dataset(tmp_path / "data")
    everything = load_caption_set(spec(data, clip_min=-1.0, clip_model="tiny/clip"), seed=0)
    assert len(everything.train) == 9  # every cosine is >= -1: nothing dropped
    cache = list((tmp_path / "xdg" / "caption-wizard" / "filter").glob("*.json"))
    assert len(cache) == 1
    scores = sorted(json.loads(cache[0].read_text())["scores"].values())
    assert len(scores) == 9 and len(set(scores)) > 1
    threshold = (scores[3] + scores[4]) / 2  # drops the 4 lowest pairs (one caption per image here)

    def no_model(*a, **k):
        raise AssertionError("scores should come from the cache")

    monkeypatch.setattr(data_filter, "load_clip", no_model)
    cs = load_caption_set(spec(data, clip_min=threshold, clip_model="tiny/clip"), seed=0)
    assert len(cs.train) == 5
    lines = "\n".join(cs.report.lines())
    assert f"clip_min {threshold}: dropped 4 caption(s)" in lines and "(4 image(s) had none left)" in lines
    assert lines.count("  e.g. ") == 3  # a few examples, each with its score
    assert "(CLIP " in lines


def test_filter_settings_are_checked():
    recipe = load_recipe(ROOT / "recipes" / "demo-shapes.yaml")
    assert apply_overrides(recipe, ["data.filter.clip_min=0.2"]).data.filter.clip_min == 0.2
    with pytest.raises(UserError, match="data.filter.clip_min"):
        apply_overrides(recipe, ["data.filter.clip_min=2"])
    with pytest.raises(UserError, match="did you mean data.filter.min_side"):
        apply_overrides(recipe, ["data.filter.min_sides=3"])
