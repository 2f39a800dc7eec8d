"""Helpers for the family tests: tiny offline models of every family, built once per session.

Each is built on first use into the session's temp folder (wizard/demo/families.py: the family's
real config and processor classes, random weights, a tokenizer trained here with the family's
special tokens, its chat template) and reused by every test that asks for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# What follows each caption in the labels, as the real checkpoints end an answer (their chat
# templates and generation configs) - written out here, not read from wizard/families.py, so a
# wrong row fails.
END = {
    "qwen2_vl": "<|im_end|>", "qwen2_5_vl": "<|im_end|>", "qwen3_vl": "<|im_end|>", "glm4v": "<|endoftext|>",
    "llava": "</s>", "llava_next": "</s>", "llava_onevision": "<|im_end|>", "internvl": "<|im_end|>",
    "idefics3": "<end_of_utterance>", "smolvlm": "<end_of_utterance>", "gemma3": "<end_of_turn>",
    "paligemma": "<eos>", "florence2": "</s>", "mllama": "<|eot_id|>", "mistral3": "</s>",
}


class TinyModels:
    def __init__(self, root: Path):
        self.root = root

    def __call__(self, family: str) -> Path:
        folder = self.root / family
        if not (folder / "config.json").is_file():
            from transformers.utils import logging

            from wizard.demo.families import build

            logging.disable_progress_bar()
            build(family, folder)
        return folder


@pytest.fixture(scope="session")
def tiny_family(tmp_path_factory) -> TinyModels:
    return TinyModels(tmp_path_factory.mktemp("tiny-families"))


def recipe(folder, strategy: str = "lora", **sections):
    from wizard.recipe import Recipe

    data = {"name": "tiny", "model": {"id": str(folder)},
            "data": {"dataset": "x", "max_pixels": 56 * 56, "min_pixels": 56 * 56, "eval_fraction": 0.0},
            "tuning": {"strategy": strategy, "lora": {"rank": 4, "alpha": 8, "dropout": 0.0}},
            "train": {"precision": "fp32", "gradient_checkpointing": False, "batch_size": 2, "max_target_length": 32},
            "generation": {"num_beams": 1, "max_new_tokens": 6, "repetition_penalty": 1.0},
            "launch": {"devices": "cpu"}}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return Recipe.model_validate(data)


def examples(n: int = 2, size: int = 56):
    from wizard.data import Example
    from wizard.demo.shapes import make_shapes

    return [Example(f"e{i}", s.image, [s.caption("en")]) for i, s in enumerate(make_shapes(n, seed=3, size=size))]
