"""Model loading per strategy: the base model, quantized or not, with LoRA or fully trainable.

    model, processor = load_model(recipe, resolved, for_training=True)

  qlora  4-bit NF4 base (double quantization), vision tower and lm_head kept in 16/32 bit,
         prepared for k-bit training, LoRA on the language model's linear layers.
  lora   the same without quantization (frozen base in the compute dtype).
  full   every language-model weight trains (fp32 master weights; mixed precision on GPUs).
  freeze_vision=false: the vision tower trains too (LoRA runs save it with the adapter).

LoRA targets are matched inside the language model only: Qwen2.5-VL's vision tower has
gate_proj/up_proj/down_proj of its own, so plain names would put adapters there too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from wizard.catalog import model_info
from wizard.recipe import Precision, Recipe, Strategy


# ----------------------------------------------------------------------------- device and dtype
def pick_device(recipe: Recipe) -> str:
    """"cpu" or "cuda:N". With several GPUs each process takes its LOCAL_RANK."""
    import torch

    if recipe.launch.devices == "cpu" or not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"


def resolve_precision(precision: Precision, device: str) -> str:
    """auto: bf16 where the GPU supports it, fp16 on older GPUs, fp32 on the CPU."""
    import torch

    if precision != Precision.auto:
        return precision.value
    if device == "cpu":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


# ----------------------------------------------------------------------------- processor
def load_processor(path: str | os.PathLike, recipe: Recipe):
    """The model's processor with the image size capped at data.min_pixels..data.max_pixels."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(path))
    cap_image_size(processor, recipe.data.min_pixels, recipe.data.max_pixels)
    return processor


def cap_image_size(processor, min_pixels: int, max_pixels: int) -> None:
    """Qwen-VL image processors resize so that pixels fall in [min, max]; one place sets both spellings."""
    for proc in (getattr(processor, "image_processor", None),):
        if proc is None:
            continue
        proc.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
            if hasattr(proc, name):
                setattr(proc, name, value)


# ----------------------------------------------------------------------------- model
def load_model(recipe: Recipe, resolved: Any, *, for_training: bool, device: str | None = None):
    """Load the base model from `resolved.path` (a ResolvedModel, or a folder path) per the recipe.

    Returns (model, processor). With for_training=True the model is ready for the Trainer: a
    PeftModel for qlora/lora, the plain model with the right parameters trainable for full.
    """
    from transformers import AutoModelForImageTextToText

    path = Path(getattr(resolved, "path", resolved))
    device = device or pick_device(recipe)
    precision = resolve_precision(recipe.train.precision, device)
    strategy = recipe.tuning.strategy
    info = model_info(recipe.model.id)

    processor = load_processor(path, recipe)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(precision)}
    if strategy == Strategy.full and for_training:
        kwargs["dtype"] = torch_dtype("fp32")  # fp32 master weights; the Trainer autocasts to bf16/fp16
    if strategy == Strategy.qlora:
        kwargs["quantization_config"] = quant_config(recipe, precision, info.skip_quant)
        kwargs["device_map"] = {"": device}
    model = AutoModelForImageTextToText.from_pretrained(str(path), **kwargs)
    if strategy != Strategy.qlora:
        model.to(device)
    if not for_training:
        model.eval()
        return model, processor

    model.config.use_cache = False  # the KV cache is for generation; training would only store it
    if strategy == Strategy.full:
        make_full_trainable(model, recipe, vision_module_names(model, info.skip_quant))
    else:
        model = add_lora(model, recipe, info)
    return model, processor


def quant_config(recipe: Recipe, precision: str, skip_quant: list[str]):
    from transformers import BitsAndBytesConfig

    q = recipe.tuning.quant
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.type,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=torch_dtype(precision),
        # FSDP / ZeRO-3 flatten weights into shards of one dtype: store the 4-bit data in the compute dtype
        bnb_4bit_quant_storage=torch_dtype(precision) if recipe.launch.strategy.value in ("fsdp", "zero3") else None,
        # transformers matches these from the start of a module name: "(?:.*\.)?visual" reaches model.visual
        llm_int8_skip_modules=[rf"(?:.*\.)?{re.escape(name)}" for name in skip_quant],
    )


def vision_module_names(model, skip_quant: list[str]) -> list[str]:
    """Full names of the vision tower modules (catalog skip_quant entries other than lm_head)."""
    wanted = {n for n in skip_quant if n != "lm_head"}
    return [name for name, _ in model.named_modules() if name.split(".")[-1] in wanted]


def _gradient_checkpointing(model, recipe: Recipe) -> None:
    if recipe.train.gradient_checkpointing:
        # non-reentrant: works with frozen inputs (LoRA) without enable_input_require_grads tricks
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def make_full_trainable(model, recipe: Recipe, vision: list[str]) -> None:
    """Every language-model weight (embeddings and lm_head included) trains; the vision tower per freeze_vision."""
    for name, param in model.named_parameters():
        in_vision = any(name == v or name.startswith(v + ".") for v in vision)
        param.requires_grad = not (in_vision and recipe.tuning.freeze_vision)
    _gradient_checkpointing(model, recipe)


def lora_target_regex(targets: list[str], vision_leaf_names: list[str]) -> str:
    """A peft target_modules regex: the named linear layers anywhere except under the vision tower."""
    names = "|".join(re.escape(t) for t in targets)
    vision = "|".join(re.escape(v) for v in vision_leaf_names) or "(?!)"
    return rf"^(?!(?:.*\.)?(?:{vision})\.)(?:.*\.)?(?:{names})$"  # "lm_head" has no parent prefix


def add_lora(model, recipe: Recipe, info):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    lora = recipe.tuning.lora
    vision_leaf = sorted({n for n in info.skip_quant if n != "lm_head"})
    if recipe.tuning.strategy == Strategy.qlora:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.train.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    else:
        _gradient_checkpointing(model, recipe)
    modules_to_save = list(lora.modules_to_save)
    if not recipe.tuning.freeze_vision:
        modules_to_save += [n for n in vision_leaf if n not in modules_to_save]  # trains and ships with the adapter
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora_target_regex(lora.target_modules or info.lora_targets, vision_leaf),
        modules_to_save=modules_to_save or None,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    if not any("lora_" in name for name, _ in model.named_parameters()):
        from wizard.errors import UserError

        raise UserError(f"tuning.lora.target_modules = {lora.target_modules or info.lora_targets}: "
                        f"no layer of the language model of {recipe.model.id} has these names",
                        hint="leave it null for the model family's default")
    return model


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total); 4-bit weights count as the parameters they stand for."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
