"""Tiny offline models of each supported family: random weights from the family's real config and
processor classes, a tokenizer trained here with `tokenizers` that carries the family's real
special tokens, and the family's chat template (wizard/demo/templates.py says where each came from).

    from wizard.demo.families import build, TINY
    build("gemma3", "/tmp/tiny-gemma3")          # config.json + weights + processor, ~0.3 M parameters
    build("florence2", folder, seed=1)

What the tests (tests/test_families*.py), `bench/` and a curious user need to run every code path
of a family offline: the same classes load, quantize, LoRA-wrap, train, generate and merge as with
the real checkpoint; only the widths, the vocabulary and the weights are small. Widths are chosen to
exercise the code (grouped-query attention, a projector that changes width, several image tokens),
not to learn: none of these models is trained. Heavy imports happen inside the functions.
"""

from __future__ import annotations

from pathlib import Path

from wizard.demo import templates

IMAGE = 28  # side of the vision towers' input images: 2 x 2 patches of 14 px (Pixtral/Qwen3: 16 px)
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)


# ----------------------------------------------------------------------------- tokenizer
def tokenizer(specials: list[str], *, eos: str, pad: str | None = None, bos: str | None = None,
              unk: str | None = None, add_bos: bool = False, add_eos: bool = False, extra: dict | None = None,
              vocab: int = 320, padding_side: str | None = "right"):
    """Byte-level BPE over the demo captions and prompts, with `specials` as special tokens (ids from
    0 in that order). add_bos/add_eos: the tokenizer wraps every text in them, as Llama-, Gemma- and
    BART-style tokenizers do. `extra`: named special tokens (image_token, boi_token, ...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from wizard.demo.model import PROMPTS, _tokenizer_corpus

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=len(specials) + vocab, min_frequency=2, special_tokens=specials,
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [*_tokenizer_corpus()[::7], *PROMPTS.values(), "USER ASSISTANT User Assistant user model assistant"]
    tok.train_from_iterator(corpus, trainer=trainer)
    if add_bos or add_eos:
        single = " ".join(([bos] if add_bos else []) + ["$A"] + ([eos] if add_eos else []))
        pair = " ".join(([bos] if add_bos else []) + ["$A", "$B"] + ([eos] if add_eos else []))
        ids = [(t, tok.token_to_id(t)) for t in dict.fromkeys(([bos] if add_bos else []) + ([eos] if add_eos else []))]
        tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=ids)
    side = {"padding_side": padding_side} if padding_side else {}  # None: the processor's own default decides
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad, bos_token=bos, unk_token=unk,
                                   model_max_length=4096, extra_special_tokens=extra or {}, **side)


def _ids(tok, config: dict, **names: str) -> dict:
    """config + {field: id of token} for each field=token, and the text side's bos/eos/pad ids."""
    return {**config, **{field: tok.convert_tokens_to_ids(t) for field, t in names.items()}}


def _text(tok, **extra) -> dict:
    return dict(TEXT, vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                bos_token_id=tok.bos_token_id, tie_word_embeddings=False, **extra)


QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
QWEN_EXTRA = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
              "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"}
LLAMA2_SPECIALS = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]


# ----------------------------------------------------------------------------- one builder per family
def _qwen2_5_vl():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    tok = tokenizer(QWEN_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>", extra=QWEN_EXTRA)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2,
                                              temporal_patch_size=2),
        tokenizer=tok, video_processor=Qwen2VLVideoProcessor(), chat_template=templates.QWEN2_VL)
    # head_dim 16: mrope sections sum to 8; the vision MLP is gated (gate/up/down_proj, like the LM's)
    text = _text(tok, rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0})
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                                              out_hidden_size=64, patch_size=14, spatial_merge_size=2,
                                              temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1]),
        **_ids(tok, {}, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
               vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>"))
    return config, processor


def _qwen3_vl():
    from transformers import Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLProcessor, Qwen3VLVideoProcessor

    tok = tokenizer(QWEN_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>", extra=QWEN_EXTRA)
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=64 * 64, max_pixels=64 * 64, patch_size=16, merge_size=2,
                                              temporal_patch_size=2),
        tokenizer=tok, video_processor=Qwen3VLVideoProcessor(), chat_template=templates.QWEN3_VL)
    text = _text(tok, head_dim=16, rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                                                    "mrope_interleaved": True, "rope_theta": 10000.0})
    config = Qwen3VLConfig(
        text_config=text, vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                                              out_hidden_size=64, patch_size=16, spatial_merge_size=2,
                                              temporal_patch_size=2, num_position_embeddings=16,
                                              deepstack_visual_indexes=[0]),
        **_ids(tok, {}, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
               vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>"))
    return config, processor


def _llava():
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaProcessor

    tok = tokenizer(LLAMA2_SPECIALS, eos="</s>", pad="<pad>", bos="<s>", unk="<unk>", add_bos=True,
                    extra={"image_token": "<image>"})
    crop = {"height": IMAGE, "width": IMAGE}
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": IMAGE}, crop_size=crop),
        tokenizer=tok, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=templates.LLAVA_15)
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", image_size=IMAGE, patch_size=14, projection_dim=32,
                           **VISION),
        text_config=dict(model_type="llama", **_text(tok)), vision_feature_select_strategy="default",
        vision_feature_layer=-1, image_seq_length=4, **_ids(tok, {}, image_token_index="<image>"))
    return config, processor


def _llava_next():
    from transformers import LlavaNextConfig, LlavaNextImageProcessor, LlavaNextProcessor

    tok = tokenizer(LLAMA2_SPECIALS, eos="</s>", pad="<pad>", bos="<s>", unk="<unk>", add_bos=True,
                    extra={"image_token": "<image>"})
    pinpoints = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE], [2 * IMAGE, IMAGE]]
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE},
                                                image_grid_pinpoints=pinpoints),
        tokenizer=tok, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=templates.LLAVA_NEXT_MISTRAL)
    config = LlavaNextConfig(
        vision_config=dict(model_type="clip_vision_model", image_size=IMAGE, patch_size=14, projection_dim=32,
                           **VISION),
        text_config=dict(model_type="mistral", **_text(tok)), image_grid_pinpoints=pinpoints,
        vision_feature_layer=-1, **_ids(tok, {}, image_token_index="<image>"))
    return config, processor


def _llava_onevision():
    from transformers import LlavaOnevisionConfig, LlavaOnevisionImageProcessor, LlavaOnevisionProcessor
    from transformers import LlavaOnevisionVideoProcessor

    tok = tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"], eos="<|im_end|>",
                    pad="<|endoftext|>", extra={"image_token": "<image>", "video_token": "<video>"})
    pinpoints = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE], [2 * IMAGE, IMAGE]]
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": IMAGE, "width": IMAGE},
                                                     image_grid_pinpoints=pinpoints),
        tokenizer=tok, video_processor=LlavaOnevisionVideoProcessor(size={"height": IMAGE, "width": IMAGE}),
        num_image_tokens=(IMAGE // 14) ** 2, vision_feature_select_strategy="full",
        chat_template=templates.LLAVA_ONEVISION)
    config = LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", image_size=IMAGE, patch_size=14, vision_use_head=False,
                           **VISION),
        text_config=dict(model_type="qwen2", **_text(tok)), image_grid_pinpoints=pinpoints,
        **_ids(tok, {}, image_token_index="<image>", video_token_index="<video>"))
    return config, processor


def _internvl():
    from transformers import GotOcr2ImageProcessor, InternVLConfig, InternVLProcessor, InternVLVideoProcessor

    names = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
             "video_token": "<video>"}
    tok = tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", *names.values()], eos="<|im_end|>",
                    pad="<|endoftext|>", extra=names, padding_side=None)  # as InternVL3-hf's: none saved
    size = {"height": IMAGE, "width": IMAGE}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=True, max_patches=2),
        tokenizer=tok, video_processor=InternVLVideoProcessor(size=size),
        image_seq_length=1, chat_template=templates.INTERNVL)  # (28 / 14 x 0.5)^2 tokens per tile
    config = InternVLConfig(
        vision_config=dict(image_size=[IMAGE, IMAGE], patch_size=[14, 14], **VISION),
        text_config=dict(model_type="qwen2", **_text(tok)), image_seq_length=1, downsample_ratio=0.5,
        **_ids(tok, {}, image_token_id="<IMG_CONTEXT>"))
    return config, processor


def _idefics(kind: str):
    import transformers as T

    rows = [f"<row_{r}_col_{c}>" for r in range(1, 3) for c in range(1, 3)]
    if kind == "idefics3":
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<end_of_utterance>",
                    "<image>", "<fake_token_around_image>", "<global-img>", *rows]
        tok = tokenizer(specials, eos="<|end_of_text|>", pad="<|finetune_right_pad_id|>", bos="<|begin_of_text|>",
                        add_bos=True, extra={"image_token": "<image>"})
        image_processor = T.Idefics3ImageProcessor(size={"longest_edge": 2 * IMAGE}, max_image_size={"longest_edge": IMAGE})
        processor = T.Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=1,
                                        chat_template=templates.IDEFICS3)
        config_cls, text_type = T.Idefics3Config, "llama"
    else:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>", "<image>",
                    "<fake_token_around_image>", "<global-img>", "<video>", *rows]
        tok = tokenizer(specials, eos="<end_of_utterance>", pad="<|im_end|>", bos="<|im_start|>",
                        extra={"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                               "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>",
                               "video_token": "<video>"})
        image_processor = T.SmolVLMImageProcessor(size={"longest_edge": 2 * IMAGE}, max_image_size={"longest_edge": IMAGE})
        processor = T.SmolVLMProcessor(image_processor=image_processor, tokenizer=tok,
                                       video_processor=T.SmolVLMVideoProcessor(), image_seq_len=1,
                                       chat_template=templates.SMOLVLM)
        config_cls, text_type = T.SmolVLMConfig, "llama"
    config = config_cls(
        vision_config=dict(image_size=IMAGE, patch_size=14, **VISION), scale_factor=2,
        text_config=dict(model_type=text_type, **_text(tok)), **_ids(tok, {}, image_token_id="<image>"))
    return config, processor


def _gemma3():
    from transformers import Gemma3Config, Gemma3ImageProcessor, Gemma3Processor

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                "<end_of_image>", "<image_soft_token>"]
    tok = tokenizer(specials, eos="<eos>", pad="<pad>", bos="<bos>", unk="<unk>", add_bos=True,
                    extra={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                           "image_token": "<image_soft_token>"})
    processor = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": IMAGE * 2, "width": IMAGE * 2}),
                                tokenizer=tok, image_seq_length=4, chat_template=templates.GEMMA3)
    text = _text(tok, head_dim=16, query_pre_attn_scalar=16, sliding_window=64,
                 layer_types=["sliding_attention", "full_attention"])
    config = Gemma3Config(
        text_config=text, vision_config=dict(model_type="siglip_vision_model", image_size=IMAGE * 2, patch_size=14,
                                             vision_use_head=False, **VISION),
        mm_tokens_per_image=4, **_ids(tok, {}, boi_token_index="<start_of_image>", eoi_token_index="<end_of_image>",
                                      image_token_index="<image_soft_token>"))
    return config, processor


def _paligemma():
    from transformers import PaliGemmaConfig, PaliGemmaProcessor, SiglipImageProcessor

    tok = tokenizer(["<pad>", "<eos>", "<bos>", "<unk>", "<image>"], eos="<eos>", pad="<pad>", bos="<bos>",
                    unk="<unk>", add_bos=True, extra={"image_token": "<image>"})
    image_processor = SiglipImageProcessor(size={"height": IMAGE, "width": IMAGE})
    image_processor.image_seq_length = (IMAGE // 14) ** 2
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)  # adds 1152 <loc>/<seg> tokens
    tok = processor.tokenizer
    text = dict(model_type="gemma2", **_text(tok, head_dim=16, query_pre_attn_scalar=16, sliding_window=64))
    config = PaliGemmaConfig(
        vision_config=dict(model_type="siglip_vision_model", image_size=IMAGE, patch_size=14, vision_use_head=False,
                           projection_dim=TEXT["hidden_size"], **VISION),
        text_config=text, projection_dim=TEXT["hidden_size"], hidden_size=TEXT["hidden_size"],
        vocab_size=len(tok), **_ids(tok, {}, image_token_index="<image>"))
    return config, processor


def _florence2():
    from transformers import CLIPImageProcessor, Florence2Config, Florence2Processor

    tok = tokenizer(["<s>", "<pad>", "</s>", "<unk>", "<image>"], eos="</s>", pad="<pad>", bos="<s>", unk="<unk>",
                    add_bos=True, add_eos=True, extra={"image_token": "<image>"})
    side = 16  # the DaViT tower strides 4 x 2: 16 px -> 2 x 2 features
    image_processor = CLIPImageProcessor(size={"height": side, "width": side}, crop_size={"height": side, "width": side},
                                         do_center_crop=False)
    image_processor.image_seq_length = 5  # 2 x 2 features + 1 pooled
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tok)
    text = dict(model_type="bart", vocab_size=len(tok), d_model=64, encoder_layers=1, decoder_layers=1,
                encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                max_position_embeddings=256, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id,
                forced_eos_token_id=tok.eos_token_id)
    vision = dict(depths=[1, 1], patch_size=[7, 3], patch_stride=[4, 2], patch_padding=[3, 1],
                  patch_prenorm=[False, True], embed_dim=[16, 32], num_heads=[2, 2], num_groups=[2, 2],
                  window_size=2, projection_dim=64, max_position_embeddings=8)
    config = Florence2Config(text_config=text, vision_config=vision, **_ids(tok, {}, image_token_id="<image>"))
    return config, processor


def _mllama():
    from transformers import MllamaConfig, MllamaImageProcessor, MllamaProcessor

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>", "<|image|>"]
    tok = tokenizer(specials, eos="<|eot_id|>", pad="<|finetune_right_pad_id|>", bos="<|begin_of_text|>",
                    add_bos=True, extra={"image_token": "<|image|>"})
    processor = MllamaProcessor(image_processor=MllamaImageProcessor(size={"height": IMAGE, "width": IMAGE},
                                                                     max_image_tiles=2),
                                tokenizer=tok, chat_template=templates.MLLAMA)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1, attention_heads=2,
                  image_size=IMAGE, patch_size=14, max_num_tiles=2, intermediate_layers_indices=[0],
                  vision_output_dim=64, supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]])
    text = _text(tok, num_hidden_layers=3, cross_attention_layers=[1],
                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    text.pop("max_position_embeddings")
    config = MllamaConfig(vision_config=vision, text_config=text, **_ids(tok, {}, image_token_index="<|image|>"))
    return config, processor


def _mistral3():
    from transformers import Mistral3Config, PixtralImageProcessor, PixtralProcessor

    specials = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]", "[SYSTEM_PROMPT]",
                "[/SYSTEM_PROMPT]", "<pad>"]
    tok = tokenizer(specials, eos="</s>", pad="<pad>", bos="<s>", unk="<unk>", add_bos=True)
    processor = PixtralProcessor(image_processor=PixtralImageProcessor(size={"longest_edge": 2 * IMAGE}, patch_size=14),
                                 tokenizer=tok, patch_size=14, spatial_merge_size=2, chat_template=templates.MISTRAL3)
    config = Mistral3Config(
        vision_config=dict(model_type="pixtral", image_size=2 * IMAGE, patch_size=14, head_dim=16,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, **VISION),
        text_config=dict(model_type="mistral", head_dim=16, **_text(tok)), spatial_merge_size=2,
        **_ids(tok, {}, image_token_index="[IMG]"))
    return config, processor


def _glm4v():
    from transformers import Glm4vConfig, Glm4vImageProcessor, Glm4vProcessor, Glm4vVideoProcessor

    specials = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
                "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>",
                "<|end_of_video|>", "<|image|>", "<|video|>"]
    tok = tokenizer(specials, eos="<|endoftext|>", pad="<|endoftext|>",
                    extra={"image_token": "<|image|>", "video_token": "<|video|>"})
    processor = Glm4vProcessor(
        image_processor=Glm4vImageProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 56 * 56}, patch_size=14,
                                            merge_size=2, temporal_patch_size=2),
        tokenizer=tok, video_processor=Glm4vVideoProcessor(), chat_template=templates.GLM4V)
    text = _text(tok, rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0,
                                       "partial_rotary_factor": 0.5})
    config = Glm4vConfig(
        text_config=text, vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                                              out_hidden_size=64, patch_size=14, spatial_merge_size=2,
                                              temporal_patch_size=2, image_size=56),
        **_ids(tok, {}, image_token_id="<|image|>", video_token_id="<|video|>",
               image_start_token_id="<|begin_of_image|>", image_end_token_id="<|end_of_image|>",
               video_start_token_id="<|begin_of_video|>", video_end_token_id="<|end_of_video|>"))
    return config, processor


BUILDERS = {
    "qwen2_5_vl": _qwen2_5_vl, "qwen3_vl": _qwen3_vl, "llava": _llava, "llava_next": _llava_next,
    "llava_onevision": _llava_onevision, "internvl": _internvl, "idefics3": lambda: _idefics("idefics3"),
    "smolvlm": lambda: _idefics("smolvlm"), "gemma3": _gemma3, "paligemma": _paligemma, "florence2": _florence2,
    "mllama": _mllama, "mistral3": _mistral3, "glm4v": _glm4v,
}
TINY = ["qwen2_vl", *BUILDERS]  # every family with a tiny builder (qwen2_vl: wizard.demo.model)


def build(family: str, folder, *, seed: int = 0) -> Path:
    """Save a random tiny model of `family` (a model_type) and its processor into `folder`."""
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    folder = Path(folder)
    if family == "qwen2_vl":
        from wizard.demo.model import build_model, build_processor

        processor = build_processor()
        build_model(seed, processor.tokenizer).save_pretrained(folder)
        processor.save_pretrained(folder)
        return folder
    config, processor = BUILDERS[family]()
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    tok = processor.tokenizer
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        decoder_start_token_id=getattr(config.get_text_config(), "decoder_start_token_id", None),
        do_sample=False, max_new_tokens=8)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------- real widths, shrunk depth
def _real_smolvlm(layers: int, vision_layers: int):
    """HuggingFaceTB/SmolVLM-256M-Instruct's widths (config.json, processor_config.json)."""
    import transformers as T

    config, processor = _idefics("smolvlm")
    tok = processor.tokenizer
    image_processor = T.SmolVLMImageProcessor(size={"longest_edge": 512}, max_image_size={"longest_edge": 512})
    processor = T.SmolVLMProcessor(image_processor=image_processor, tokenizer=tok, video_processor=T.SmolVLMVideoProcessor(),
                                   image_seq_len=64, chat_template=templates.SMOLVLM)
    text = dict(model_type="llama", **_text(tok, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers,
                                            num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                                            max_position_embeddings=8192))
    text["vocab_size"] = 49280
    config = T.SmolVLMConfig(vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=vision_layers,
                                                num_attention_heads=12, image_size=512, patch_size=16),
                             text_config=text, scale_factor=4, **_ids(tok, {}, image_token_id="<image>"))
    return config, processor


def _real_florence2(layers: int, vision_layers: int):
    """florence-community/Florence-2-base's widths (DaViT stages 128..1024, BART 768), 384 px images."""
    from transformers import CLIPImageProcessor, Florence2Config, Florence2Processor

    _, small = _florence2()
    tok = small.tokenizer
    side = 384  # the checkpoint's is 768 (577 tokens): a quarter of the tower's work for the measurement
    image_processor = CLIPImageProcessor(size={"height": side, "width": side}, crop_size={"height": side, "width": side},
                                         do_center_crop=False)
    image_processor.image_seq_length = (side // 32) ** 2 + 1
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tok)
    text = dict(model_type="bart", vocab_size=51289, d_model=768, encoder_layers=layers, decoder_layers=layers,
                encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
                max_position_embeddings=1024, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id)
    vision = dict(depths=[vision_layers] * 4, embed_dim=[128, 256, 512, 1024], num_heads=[4, 8, 16, 32],
                  num_groups=[4, 8, 16, 32], window_size=12, projection_dim=768)
    return Florence2Config(text_config=text, vision_config=vision, **_ids(tok, {}, image_token_id="<image>")), processor


def _real_internvl(layers: int, vision_layers: int):
    """OpenGVLab/InternVL3-1B-hf's widths (Qwen2.5 0.5B-style text, InternViT-300M), one 448 px tile."""
    from transformers import GotOcr2ImageProcessor, InternVLConfig, InternVLProcessor, InternVLVideoProcessor

    _, small = _internvl()
    tok = small.tokenizer
    size = {"height": 448, "width": 448}
    processor = InternVLProcessor(image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
                                  tokenizer=tok, video_processor=InternVLVideoProcessor(size=size),
                                  image_seq_length=256, chat_template=templates.INTERNVL)
    text = dict(model_type="qwen2", **_text(tok, hidden_size=896, intermediate_size=4864, num_hidden_layers=layers,
                                            num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768))
    text.update(vocab_size=151674, tie_word_embeddings=True)
    config = InternVLConfig(vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=vision_layers,
                                               num_attention_heads=16, image_size=[448, 448], patch_size=[14, 14]),
                            text_config=text, image_seq_length=256, downsample_ratio=0.5, tie_word_embeddings=True,
                            **_ids(tok, {}, image_token_id="<IMG_CONTEXT>"))
    return config, processor


REAL = {"smolvlm": _real_smolvlm, "florence2": _real_florence2, "internvl": _real_internvl}


def build_real(family: str, folder, *, layers: int = 2, vision_layers: int = 1, seed: int = 0) -> Path:
    """A random model of `family` at a real checkpoint's widths (REAL: SmolVLM-256M, Florence-2 base,
    InternVL3-1B) and vocabulary size with `layers` language and `vision_layers` vision layers, saved
    in bf16 as those checkpoints ship. For measuring memory (tests/test_family_estimate.py, bench/)."""
    import torch
    from transformers import AutoModelForImageTextToText

    folder = Path(folder)
    config, processor = REAL[family](layers, vision_layers)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
