"""Model loading per strategy: the base model, quantized or not, with LoRA or fully trainable.

    model, processor = load_model(recipe, resolved, for_training=True)

The base model comes from the model plan (wizard/model.py: device, dtypes, 4-bit); this module
only adds what trains on top of it:

  qlora  4-bit NF4 base (double quantization), vision tower and lm_head at the compute dtype,
         LoRA on the language model's linear layers.
  lora   the same without quantization (frozen base in the compute dtype).
  full   every language-model weight trains (fp32 master weights; mixed precision on GPUs).
  freeze_vision=false: the vision tower trains too (LoRA runs save it with the adapter).

LoRA targets are matched inside the language model only: Qwen2.5-VL's vision tower has
gate_proj/up_proj/down_proj of its own, so plain names would put adapters there too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wizard.catalog import model_info
from wizard.model import (  # noqa: F401  (re-exported: the backend and tests import them from here)
    cap_image_size, lora_target_regex, pick_device, plan_model, resolve_precision, torch_dtype, vision_module_names,
)
from wizard.recipe import Recipe, Strategy


def quant_config(recipe: Recipe, precision: str, skip_quant: list[str]):
    """The BitsAndBytesConfig QLoRA loads with (wizard.model.quant_config of this recipe's plan)."""
    from wizard.model import ModelPlan, quant_config as plan_quant

    from wizard.model import _launch_strategy

    q = recipe.tuning.quant
    return plan_quant(ModelPlan(None, "train", "qlora", "cpu", precision, precision, True, q.type, q.double_quant,
                                tuple(skip_quant), sharded=_launch_strategy(recipe) in ("fsdp", "zero3")))


# ----------------------------------------------------------------------------- model
def load_model(recipe: Recipe, resolved: Any, *, for_training: bool, device: str | None = None):
    """The base model from `resolved.path` (a ResolvedModel, or a folder path) per the model plan,
    and for training the adapters / trainable parts on top. Returns (model, processor).

    With for_training=True the model is ready for the Trainer: a PeftModel for qlora/lora, the plain
    model with the right parameters trainable for full.
    """
    from wizard.model import load_base, load_processor

    path = Path(getattr(resolved, "path", resolved))
    plan = plan_model(recipe, path, purpose="train" if for_training else "infer", device=device)
    processor = load_processor(path, recipe.data)
    model = load_base(plan)
    if not for_training:
        return model, processor
    info = model_info(recipe.model.id)
    if recipe.tuning.strategy == Strategy.full:
        make_full_trainable(model, recipe, vision_module_names(model, info.skip_quant), plan.device)
    else:
        model = add_lora(model, recipe, info, plan.device)
    keep_trainable_fp32(model)
    frozen_vision_without_grad(model, info.skip_quant)
    from wizard.train.swiglu import fuse_gated_mlps

    fuse_gated_mlps(model)  # 3 MLP-wide activations kept per token and layer instead of 4
    return model, processor


def keep_trainable_fp32(model) -> None:
    """Trainable weights (modules_to_save copies, an unfrozen vision tower) keep fp32 master weights;
    the Trainer's bf16/fp16 autocast computes with them. 4-bit and frozen weights are left as loaded."""
    import torch

    for p in model.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()


VISION_CHUNK_PATCHES = 1024  # a frozen vision tower sees at most this many patches at once (one 448 px image)


def frozen_vision_without_grad(model, skip_quant) -> None:
    """A vision tower with nothing trainable inside runs under no_grad (no activations kept for
    backward), a few images at a time: its MLP's transient activations are 4 x its width per patch,
    ~280 MB for a batch of four 448 px images on Qwen2-VL-2B, ~70 MB per image. Each image's
    attention is its own already (cu_seqlens), so the features are the same."""
    import torch

    for name in vision_module_names(model, skip_quant):
        module = model.get_submodule(name)
        if any(p.requires_grad for p in module.parameters()) or getattr(module, "_wizard_no_grad", False):
            continue
        module.forward = _in_chunks(torch.no_grad()(module.forward))
        module._wizard_no_grad = True


def _in_chunks(forward):
    def chunked(hidden_states, grid_thw, **kwargs):
        import torch

        sizes = grid_thw.prod(dim=-1).tolist()
        groups, start, total = [], 0, 0
        for i, n in enumerate(sizes):  # consecutive images, up to VISION_CHUNK_PATCHES patches per call
            if i > start and total + n > VISION_CHUNK_PATCHES:
                groups.append((start, i))
                start, total = i, 0
            total += n
        groups.append((start, len(sizes)))
        if len(groups) == 1:
            return forward(hidden_states, grid_thw, **kwargs)
        outs, row = [], 0
        for a, b in groups:
            n = sum(sizes[a:b])
            outs.append(forward(hidden_states[row:row + n], grid_thw[a:b], **kwargs))
            row += n
        first = outs[0]
        if torch.is_tensor(first):
            return torch.cat(outs)
        return type(first)(**{k: torch.cat([o[k] for o in outs]) for k in first.keys()})

    return chunked


def checkpointing_here(recipe: Recipe, device) -> tuple[bool, str]:
    """(on, why) for train.gradient_checkpointing on the device this process trains on: auto compares
    the estimate without checkpointing with that device's memory (wizard.estimate.checkpointing)."""
    from wizard.estimate import checkpointing
    from wizard.machine import GpuInfo

    on_cpu = str(device) == "cpu"
    gpus = []
    if recipe.train.gradient_checkpointing == "auto" and not on_cpu:
        import torch

        props = torch.cuda.get_device_properties(torch.device(device))
        gpus = [GpuInfo(0, props.name, props.total_memory)]
    here = recipe.launch.model_copy(update={"devices": "cpu" if on_cpu else "auto"})
    return checkpointing(recipe.model_copy(update={"launch": here}), gpus)


def _gradient_checkpointing(model, recipe: Recipe, device: str) -> None:
    on, why = checkpointing_here(recipe, device)
    from wizard.train.dist import rank

    if rank() == 0:
        print(why, flush=True)
    if on:
        # non-reentrant: works with frozen inputs (LoRA) without enable_input_require_grads tricks
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def make_full_trainable(model, recipe: Recipe, vision: list[str], device: str = "cpu") -> None:
    """Every language-model weight (embeddings and lm_head included) trains; the vision tower per freeze_vision."""
    for name, param in model.named_parameters():
        in_vision = any(name == v or name.startswith(v + ".") for v in vision)
        param.requires_grad = not (in_vision and recipe.tuning.freeze_vision)
    _gradient_checkpointing(model, recipe, device)


def add_lora(model, recipe: Recipe, info, device: str = "cpu"):
    from peft import LoraConfig, get_peft_model

    lora = recipe.tuning.lora
    vision_leaf = sorted({n for n in info.skip_quant if n != "lm_head"})
    # QLoRA too: no prepare_model_for_kbit_training, whose fp32 upcast of every non-4-bit weight
    # doubles their memory (wizard.model); non-reentrant checkpointing needs no input gradients.
    _gradient_checkpointing(model, recipe, device)
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
    import warnings

    with warnings.catch_warnings():  # peft asks transformers a deprecated question: not the user's concern
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
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
