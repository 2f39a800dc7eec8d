"""Model-loading decisions that need no model: where LoRA goes, what stays unquantized, precision."""

from __future__ import annotations

import re

from wizard.catalog import QWEN_LM_TARGETS, QWEN_SKIP_QUANT
from wizard.recipe import Precision
from wizard.train.load import lora_target_regex, quant_config, resolve_precision

NAMES = [
    "lm_head",
    "model.language_model.layers.0.self_attn.q_proj",
    "model.language_model.layers.27.mlp.down_proj",
    "model.visual.blocks.0.attn.qkv",
    "model.visual.blocks.0.mlp.gate_proj",  # Qwen2.5-VL's vision MLP has the LM's names
    "model.visual.merger.mlp.0",
    "model.language_model.layers.0.self_attn.q_proj.lora_A",
    "model.vision_tower.transformer.layers.0.attention.q_proj",  # Pixtral's tower has all seven names
]


def matched(targets):
    rx = lora_target_regex(targets, "model.language_model")
    return [n for n in NAMES if re.fullmatch(rx, n)]


def test_lora_targets_are_matched_inside_the_language_model_only():
    assert matched(QWEN_LM_TARGETS) == ["model.language_model.layers.0.self_attn.q_proj",
                                        "model.language_model.layers.27.mlp.down_proj"]
    assert matched(["q_proj", "lm_head"]) == ["lm_head", "model.language_model.layers.0.self_attn.q_proj"]


def test_qlora_keeps_the_vision_tower_and_head_out_of_4bit():
    from wizard.recipe import load_recipe
    from tests.conftest import ROOT

    recipe = load_recipe(ROOT / "recipes" / "demo-shapes.yaml")
    cfg = quant_config(recipe, "fp32", QWEN_SKIP_QUANT)
    assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "nf4" and cfg.bnb_4bit_use_double_quant
    # transformers matches these patterns from the start of a module's full name
    for name in ("model.visual.blocks.0.attn.qkv", "lm_head"):
        assert any(re.match(rf"(?:{p})(?:(?<=\.)|(?=\.|$))", name) for p in cfg.llm_int8_skip_modules), name
    assert not any(re.match(rf"(?:{p})(?:(?<=\.)|(?=\.|$))", "model.language_model.layers.0.mlp.up_proj")
                   for p in cfg.llm_int8_skip_modules)


def test_auto_precision_is_fp32_on_the_cpu():
    assert resolve_precision(Precision.auto, "cpu") == "fp32"
    assert resolve_precision(Precision.bf16, "cpu") == "bf16"
