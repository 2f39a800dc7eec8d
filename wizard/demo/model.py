"""The demo's tiny Qwen2-VL (about 1 M parameters) and its processor, built offline and deterministically.

    from wizard.demo.model import build_processor, build_model, demo_base_path
    processor = build_processor()          # byte-level BPE over the demo captions (English + Chinese)
    model = build_model(seed=0)            # random weights, same on every machine for a seed
    # the trained English base: AutoModelForImageTextToText.from_pretrained(demo_base_path())

Same architecture and processor classes as the real Qwen2-VL checkpoints (only smaller), so every
code path that loads, quantizes, LoRA-wraps, trains and generates with Qwen2-VL runs on it.
Heavy imports (torch, transformers, tokenizers) happen inside the functions.
"""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL_ID = "demo/tiny-qwen2-vl-shapes"

# 112x112 demo images -> 8x8 patches of 14 px -> 16 image tokens after the 2x2 merge.
# max_pixels caps larger user images at the same 16 tokens (the base never saw more).
DEMO_MIN_PIXELS = 56 * 56
DEMO_MAX_PIXELS = 112 * 112

SYSTEM_PROMPT = "You are a helpful assistant."
PROMPTS = {"en": "Describe this image.", "zh": "用中文描述这张图片。"}

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
]

# The chat template of Qwen/Qwen2-VL-2B-Instruct, verbatim, so prompts look like the real model's.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Model sizes: the text side is the one shared/notes/offline-vlm.md checked. The vision tower is 96
# wide (the notes had 64; 64 was not tried here) with a narrow MLP. What made shapes, not only
# colours, learnable on a CPU was less jitter in wizard.demo.shapes and ~2400 steps of batch 16.
TEXT = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=256, max_position_embeddings=1024)
MROPE_SECTION = [4, 6, 6]  # sums to head_dim / 2 = 128 / 4 / 2
VISION = dict(depth=2, embed_dim=96, num_heads=4, mlp_ratio=2)


def demo_base_path() -> Path:
    """The shipped English base (trained by `python -m tools.build_demo_base`)."""
    return Path(__file__).resolve().parent.parent / "assets" / "demo-base"


def _tokenizer_corpus() -> list[str]:
    """Every caption of every (shape, colour, background), both languages, plus the prompt text."""
    from wizard.demo.shapes import COLORS, SHAPES, ShapeSample

    lines = [SYSTEM_PROMPT, *PROMPTS.values(), "system", "user", "assistant", "Picture 1: ", "Video 1: "]
    for shape in SHAPES:
        for color in COLORS:
            for bg in COLORS:
                if bg != color:
                    s = ShapeSample(image=None, shape=shape, color=color, background=bg)
                    for lang in ("en", "zh"):
                        lines.extend(s.captions(lang))
    return lines


def build_tokenizer():
    """Byte-level BPE trained on the demo captions, with Qwen's special tokens (ids 0-6).

    Chinese characters are split one per token before BPE (so 蓝色 is two tokens, never a whole
    caption); English words become single tokens. Byte-level: any text still encodes.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{Han}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024, min_frequency=1, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=1024,
        padding_side="right",
        extra_special_tokens={
            "image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
        },
    )


def build_processor(min_pixels: int = DEMO_MIN_PIXELS, max_pixels: int = DEMO_MAX_PIXELS):
    """A `Qwen2VLProcessor` for the demo model (same classes as the real checkpoints)."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(
        min_pixels=min_pixels, max_pixels=max_pixels, patch_size=14, merge_size=2, temporal_patch_size=2,
    )
    return Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=build_tokenizer(),
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer=None, **vision_overrides):
    from transformers import Qwen2VLConfig

    tokenizer = tokenizer or build_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    eos, pad = ids("<|im_end|>"), ids("<|endoftext|>")
    text = dict(TEXT, vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=eos, pad_token_id=pad,
                rope_scaling={"type": "mrope", "mrope_section": MROPE_SECTION}, rope_theta=10000.0,
                tie_word_embeddings=False)
    vision = dict(VISION, **vision_overrides, hidden_size=TEXT["hidden_size"], in_channels=3, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2)
    return Qwen2VLConfig(
        text_config=text, vision_config=vision,
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        # Untied: the lm_head rows of the Chinese tokens stay their own (untrained) parameters.
        tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=eos, pad_token_id=pad,
    )


def build_model(seed: int = 0, tokenizer=None, **vision_overrides):
    """A randomly initialised demo model (fp32); identical weights for the same seed."""
    import torch
    from transformers import GenerationConfig, Qwen2VLForConditionalGeneration

    config = build_config(tokenizer, **vision_overrides)
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=None, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
        do_sample=False, max_new_tokens=24,
    )
    return model
