"""A Qwen2-VL with the real widths and random weights, for measuring memory and speed offline.

    from wizard.demo.realshape import build_realshape, realshape_examples
    build_realshape("/tmp/rs")                          # Qwen2-VL-2B widths, 2 + 2 layers: ~0.4 B params
    build_realshape("/tmp/rs7", **QWEN2VL_7B, layers=28, vision_depth=32)   # full-depth 7B shape
    examples = realshape_examples(16)                    # 448x448 shapes, ~27-token captions

Same classes and files as the real checkpoints: the weights are saved in bf16 (as Qwen ships
them), the tokenizer has Qwen's special tokens at Qwen's ids (<|endoftext|> 151643 ... <|video_pad|>
151656) and the chat template is Qwen2-VL's. Only the depth (and the weights) differ, so the
vocabulary-sized tensors (embeddings, lm_head, logits) are exactly as large as the real model's.
Used by bench/realshape.py, bench/gpu_check.py and the estimate tests (with smaller widths).
"""

from __future__ import annotations

import json
from pathlib import Path

from wizard.demo.model import CHAT_TEMPLATE

QWEN_SPECIAL_IDS = {
    "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
    "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|image_pad|>": 151655, "<|video_pad|>": 151656,
}
# config.json of Qwen/Qwen2-VL-2B-Instruct and -7B-Instruct (text side, vision tower)
QWEN2VL_2B = dict(hidden=1536, intermediate=8960, vocab=151936, heads=12, kv_heads=2, tied=True,
                  vision_width=1280, vision_heads=16)
QWEN2VL_7B = dict(hidden=3584, intermediate=18944, vocab=152064, heads=28, kv_heads=4, tied=False,
                  vision_width=1280, vision_heads=16)
IMAGE_SIDE = 448  # 448 x 448 px = 32 x 32 patches of 14 px = 256 tokens after the 2 x 2 merge


def build_tokenizer(vocab: int = 151936):
    """Byte-level BPE over English shape captions (a small vocabulary: ~27 tokens per caption, as
    COCO captions are for Qwen), with Qwen's special tokens at Qwen's ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from wizard.demo.model import SYSTEM_PROMPT, _tokenizer_corpus

    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=1024, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    trained.train_from_iterator([SYSTEM_PROMPT, *_tokenizer_corpus()], trainer=trainer)
    model = json.loads(trained.to_str())["model"]
    spec = dict(model["vocab"], **QWEN_SPECIAL_IDS)
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=spec, merges=merges))
    tok.pre_tokenizer = trained.pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(QWEN_SPECIAL_IDS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, bos_token=None,
        model_max_length=32768, padding_side="right",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"},
    )
    assert all(fast.convert_tokens_to_ids(t) == i for t, i in QWEN_SPECIAL_IDS.items())
    assert max(QWEN_SPECIAL_IDS.values()) < vocab
    return fast


def build_processor(vocab: int = 151936):
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    pixels = IMAGE_SIDE * IMAGE_SIDE
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=3136, max_pixels=pixels, patch_size=14, merge_size=2,
                                              temporal_patch_size=2),
        tokenizer=build_tokenizer(vocab), video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE,
    )


def build_config(*, hidden=1536, intermediate=8960, vocab=151936, heads=12, kv_heads=2, tied=True,
                 vision_width=1280, vision_heads=16, layers=2, vision_depth=2):
    from transformers import Qwen2VLConfig

    ids = QWEN_SPECIAL_IDS
    eos, pad = ids["<|im_end|>"], ids["<|endoftext|>"]
    head_dim = hidden // heads
    eighth = head_dim // 16  # sections sum to head_dim / 2: Qwen2-VL's [16, 24, 24] for head_dim 128
    text = dict(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                rope_scaling={"type": "mrope", "mrope_section": [2 * eighth, 3 * eighth, 3 * eighth]},
                bos_token_id=None, eos_token_id=eos, pad_token_id=pad, tie_word_embeddings=tied)
    vision = dict(depth=vision_depth, embed_dim=vision_width, num_heads=vision_heads, mlp_ratio=4,
                  hidden_size=hidden, in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                         video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=tied,
                         bos_token_id=None, eos_token_id=eos, pad_token_id=pad)


def build_realshape(folder, *, seed: int = 0, dtype: str = "bf16", **dims) -> Path:
    """Save a random-weight Qwen2-VL of these widths (default: Qwen2-VL-2B's, 2 + 2 layers) and its processor."""
    import torch
    from transformers import GenerationConfig, Qwen2VLForConditionalGeneration

    folder = Path(folder)
    config = build_config(**dims)
    torch.manual_seed(seed)
    with torch.device("cpu"):
        model = Qwen2VLForConditionalGeneration(config).to({"bf16": torch.bfloat16, "fp32": torch.float32}[dtype])
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=config.eos_token_id,
                                               pad_token_id=config.pad_token_id, do_sample=False, max_new_tokens=32)
    model.save_pretrained(folder)
    del model
    build_processor(config.text_config.vocab_size).save_pretrained(folder)
    return folder


def realshape_examples(n: int, seed: int = 0):
    """n Examples of 448x448 shapes, each with one ~27-token English caption."""
    from wizard.data import Example
    from wizard.demo.shapes import make_shapes

    out = []
    for i, s in enumerate(make_shapes(n, seed=seed, size=IMAGE_SIDE)):
        first, second = s.captions("en")[:2]
        out.append(Example(f"rs{i}", s.image, [f"{first}, that is {second}"]))
    return out
