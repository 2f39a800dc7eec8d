"""`caption-wizard eval` and `export` on real trained demo runs (one shared LoRA run, one QLoRA run).

The demo story: the English demo base, adapted to Chinese by recipes/demo-shapes.yaml, scores a
clearly higher CIDEr on the held-out shapes than the base, and captions them in Chinese.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from wizard.demo.shapes import COLORS, SHAPES

# Calibrated on the demo recipe (LoRA + lm_head/embed_tokens saved, 290 steps): base CIDEr 0.000 (it
# answers in English; the references are Chinese), tuned 6.42 on the 51 held-out shapes. Half of that.
CIDER_MARGIN = 3.0


def _held_out(run, limit):
    from wizard.data import load_caption_set, load_image
    from wizard.recipe import load_recipe

    recipe = load_recipe(run / "recipe.yaml")
    examples = load_caption_set(recipe.data, seed=recipe.train.seed).eval[:limit]
    return examples, [load_image(e) for e in examples]


@pytest.mark.slow
def test_demo_story_eval_then_chinese_captions(cli, demo_run, tmp_path):
    proc = cli("eval", str(demo_run))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((demo_run / "eval.json").read_text(encoding="utf-8"))
    base, tuned = result["base"]["CIDEr"], result["tuned"]["CIDEr"]
    assert tuned - base > CIDER_MARGIN, (base, tuned)
    assert result["n"] == result["tuned"]["n"] > 0 and result["language"] == "zh"
    # the side-by-side table, and the eval events the dashboard shows
    assert "CIDEr" in proc.stdout and "delta" in proc.stdout and "base" in proc.stdout
    events = [json.loads(line) for line in (demo_run / "events.jsonl").read_text().splitlines() if line.strip()]
    evals = {e["which"]: e for e in events if e["type"] == "eval" and "which" in e}
    assert evals["tuned"]["metrics"]["CIDEr"] == pytest.approx(tuned)
    assert evals["base"]["metrics"]["CIDEr"] == pytest.approx(base)

    # `caption` on held-out images (not trained on) prints Chinese captions naming colour and shape
    examples, images = _held_out(demo_run, 8)
    paths = []
    for i, (ex, im) in enumerate(zip(examples, images)):
        paths.append(tmp_path / f"{i}.png")
        im.save(paths[-1])
    proc = cli("caption", str(demo_run), str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    captions = [json.loads(line)["caption"] for line in proc.stdout.splitlines() if line.strip()]
    assert len(captions) == len(examples)
    named = [_colour_shape(ex.captions[0]) in caption for ex, caption in zip(examples, captions)]
    assert sum(named) >= 0.75 * len(captions), list(zip([e.captions[0] for e in examples], captions))


def _colour_shape(reference: str) -> str:
    """The foreground "{colour}{shape}" (e.g. 红色圆形) a Chinese demo reference names."""
    [pair] = {c + s for _, c in COLORS.values() for s in SHAPES.values() if c + s in reference}
    return pair


def _assert_merged_equals_adapter(run, merged, n=6):
    from wizard.inference import load_captioner

    _, images = _held_out(run, n)
    tuned = load_captioner(run)
    assert tuned.generation.num_beams == 1 and not tuned.generation.do_sample  # greedy
    from_run = tuned.caption(images)
    assert from_run != tuned.caption(images, adapter=False)  # the adapter matters: equality is no accident
    from_export = load_captioner(merged).caption(images)
    assert from_export == from_run


@pytest.mark.slow
def test_merged_export_after_lora_equals_base_plus_adapter(cli, demo_run, tmp_path):
    out = tmp_path / "merged"
    proc = cli("export", str(demo_run), "--merge", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "vllm serve" in proc.stdout and "AutoModelForImageTextToText" in proc.stdout
    assert (out / "config.json").is_file() and list(out.glob("*.safetensors"))
    assert not (out / "adapter_config.json").exists()

    from transformers import AutoModelForImageTextToText, AutoProcessor

    AutoModelForImageTextToText.from_pretrained(out)  # plain transformers loads it
    AutoProcessor.from_pretrained(out)
    _assert_merged_equals_adapter(demo_run, out)

    # no overwrite without --force; with it, replaced in place
    again = cli("export", str(demo_run), "--merge", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    adapter_out = tmp_path / "adapter"
    proc = cli("export", str(demo_run), "--out", str(adapter_out))
    assert proc.returncode == 0, proc.stderr
    assert (adapter_out / "adapter_config.json").is_file() and (adapter_out / "recipe.yaml").is_file()
    assert any((adapter_out / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
    assert "--enable-lora" in proc.stdout


@pytest.mark.slow
def test_merged_export_after_qlora_equals_base_plus_adapter(qlora_run, tmp_path):
    from wizard.export import export_run

    out = export_run(qlora_run, merge=True, out=tmp_path / "merged")
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config  # merged into an unquantized base
    _assert_merged_equals_adapter(qlora_run, out)


@pytest.mark.slow
def test_sample_metrics_for_the_training_callback():
    import torch

    from wizard.data import load_caption_set
    from wizard.demo.model import demo_base_path
    from wizard.evaluate import sample_metrics
    from wizard.inference import load_model, load_processor
    from wizard.recipe import apply_overrides, load_recipe

    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "demo-shapes.yaml"), ["data.language=en"])
    examples = load_caption_set(recipe.data, seed=recipe.train.seed).eval
    model = load_model(demo_base_path(), "cpu", torch.float32)
    model.train()
    processor = load_processor(demo_base_path())
    processor.tokenizer.padding_side = "right"  # as a training collator leaves it
    got = sample_metrics(model, processor, examples, recipe, limit=8)
    assert got["n"] == 8 and got["CIDEr"] > 1.0  # the English base captions English shapes well
    assert model.training and processor.tokenizer.padding_side == "right"  # both restored
