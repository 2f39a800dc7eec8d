"""Load a captioning model from wherever it lives, and caption batches of images with it.

    from wizard.inference import load_captioner
    cap = load_captioner("runs/demo-shapes-20250101-120000")   # run: base + adapter/
    cap = load_captioner("runs/demo-shapes-.../export-merged")  # merged export (or any HF model folder)
    cap = load_captioner("demo/tiny-qwen2-vl-shapes")          # demo base, or a ModelScope id
    cap.caption([pil_image, ...])                               # the source's own prompt + generation
    cap.caption(images, generation, prompt, adapter=False)     # run: the base model, same processor

A run's captioner builds the prompt with wizard.chat.prompt_text from the run's recipe, so it asks
exactly what training taught. QLoRA runs load the base in 4 bits on a GPU, as training did; on a
CPU the base loads in full precision (what `export --merge` merges into, so captions match).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard.errors import UserError
from wizard.rundir import ADAPTER_DIR, RECIPE_FILE, is_run_dir, read_lock

PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json")
EXPORT_RECIPE = RECIPE_FILE  # exports carry their run's recipe, same name: prompt and generation settings


def passive_cpu_threads() -> None:
    """Let idle OpenMP threads sleep instead of spin, before torch starts them (as the runner does).

    Spinning threads make CPU generation 10-100x slower as soon as anything else runs on the machine
    (measured here: 51 demo captions in 0.5 s alone, 96 s beside a busy process). No effect once torch
    has started its thread pool, and a user's own OMP_WAIT_POLICY wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def default_generation():
    from wizard.recipe import GenerationSpec

    return GenerationSpec()


@dataclass
class Captioner:
    """A model + processor that caption PIL images; `prompt`/`generation` are the source's defaults."""

    model: Any
    processor: Any
    prompt: str
    generation: Any = field(default_factory=default_generation)  # wizard.recipe.GenerationSpec
    description: str = ""
    recipe: Any = None  # the run's (or export's) Recipe, when there is one
    has_adapter: bool = False  # a PEFT adapter that `adapter=False` can switch off
    base_source: str | None = None  # where the base model comes from (for eval's base column)
    use_adapter: bool = True  # the default for caption(adapter=...)

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def family(self):
        """The model's row of wizard/families.py (by its config's model_type)."""
        from wizard.families import FAMILIES, for_processor

        config = getattr(self.model, "config", None)
        return FAMILIES.get(getattr(config, "model_type", None)) or for_processor(self.processor)

    def caption(self, images: list, generation=None, prompt: str | None = None, *,
                batch_size: int = 8, adapter: bool | None = None) -> list[str]:
        """One caption per image. Batched with left padding; greedy when num_beams=1 and not sampling."""
        import contextlib

        import torch

        from wizard.chat import prompt_text, stop_token_ids, text_kwargs
        from wizard.images import to_rgb

        generation = generation or self.generation
        family = self.family
        text = prompt_text(self.processor, prompt or self.prompt, family)
        tok = self.processor.tokenizer
        off = contextlib.nullcontext()
        if not (self.use_adapter if adapter is None else adapter):
            if not self.has_adapter:
                raise ValueError("this captioner has no adapter to switch off")
            off = self.model.disable_adapter()
        was_training = self.model.training
        self.model.eval()
        # left padding: generation continues each row right after its prompt. Passed on every call:
        # some processors (InternVL's) pick their own side otherwise.
        call = dict(text_kwargs(self.processor, text), return_tensors="pt", padding=True, padding_side="left")
        stops = stop_token_ids(self.processor, family)
        out: list[str] = []
        try:
            with off, torch.inference_mode():
                for start in range(0, len(images), batch_size):
                    batch = [[to_rgb(im)] for im in images[start:start + batch_size]]
                    inputs = self.processor(text=[text] * len(batch), images=batch, **call).to(self.device)
                    inputs = _to_model_dtype(inputs, self.model)
                    ids = self.model.generate(**inputs, **generate_kwargs(generation, tok, stops))
                    new = ids if family.encoder_decoder else ids[:, inputs["input_ids"].shape[1]:]
                    out.extend(s.strip() for s in tok.batch_decode(new, skip_special_tokens=True))
        finally:
            self.model.train(was_training)
        return out


def _to_model_dtype(inputs, model):
    """Pixel values in the dtype of the model's floating weights (a bf16 model gets bf16 pixels)."""
    import torch

    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    for key, value in inputs.items():
        if torch.is_tensor(value) and value.is_floating_point() and value.dtype != dtype:
            inputs[key] = value.to(dtype)
    return inputs


def generate_kwargs(generation, tokenizer, stop_ids: list[int] | None = None) -> dict:
    """model.generate() arguments for a GenerationSpec (temperature only when sampling). `stop_ids`:
    every token that ends the caption (wizard.chat.stop_token_ids); default: the tokenizer's end."""
    if stop_ids is None:
        from wizard.chat import stop_token_ids

        stop_ids = stop_token_ids(tokenizer)
    kw = dict(max_new_tokens=generation.max_new_tokens, num_beams=generation.num_beams,
              do_sample=generation.do_sample, repetition_penalty=generation.repetition_penalty,
              pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
              eos_token_id=stop_ids[0] if len(stop_ids) == 1 else stop_ids)
    if generation.do_sample:
        kw["temperature"] = generation.temperature
    else:  # the model's generation_config may carry sampling defaults: greedy/beam means none of them
        kw.update(temperature=None, top_p=None, top_k=None)
    return kw


# ----------------------------------------------------------------------------- where models come from
def has_adapter_files(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def has_model_files(path: Path) -> bool:
    return (path / "config.json").is_file()


def run_status(run_dir: Path) -> str:
    """running | stopped | failed | completed | stopped (interrupted): as `caption-wizard runs` shows it."""
    from wizard.rundir import load_run

    return load_run(run_dir).status_text


def run_adapter_dir(run_dir: Path) -> Path:
    """The run's final adapter/ folder, or a UserError saying why there is none."""
    adapter = run_dir / ADAPTER_DIR
    if has_adapter_files(adapter) or has_model_files(adapter):
        return adapter
    status = run_status(run_dir)
    hint = (f"it is still training; watch it with: caption-wizard watch {run_dir}" if status == "running"
            else f"continue it with: caption-wizard resume {run_dir}")
    raise UserError(f"run {run_dir.name} has no adapter yet (status: {status}); finish or resume it", hint=hint)


def pinned_revision(run_dir: Path) -> str | None:
    """The model revision lock.json pinned when the run started (so the base is the same weights)."""
    model = read_lock(run_dir).get("model")
    rev = model.get("revision") if isinstance(model, dict) else None
    return rev if isinstance(rev, str) and rev else None


def resolve_base(model_spec, revision: str | None = None, progress=None) -> Path:
    from wizard.hub import resolve_model
    from wizard.progress import downloads_of

    return Path(resolve_model(model_spec, revision=revision, progress=downloads_of(progress)).path)


def pick_device(recipe=None) -> str:
    from wizard.model import pick_device as plan_device

    return plan_device(recipe, for_training=False)


def load_model(path: Path, device: str, dtype):
    """An unquantized model folder in eval mode on `device` (wizard.model.load_base with a fixed dtype)."""
    import torch

    from wizard.model import ModelPlan, load_base

    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    return load_base(ModelPlan(Path(path), "infer", "lora", device, precision, precision, quantize=False))


def load_processor(*folders: Path, data_spec=None, trust_remote_code: bool = False):
    """AutoProcessor from the first folder that has processor files; image size limits from the recipe.
    The family comes from the first folder with a config.json (an adapter folder has none: the base)."""
    from wizard.model import load_processor as plan_processor

    config_dir = next((f for f in folders if has_model_files(Path(f))), None)
    for folder in folders:
        if any((folder / f).is_file() for f in PROCESSOR_FILES):
            return plan_processor(folder, data_spec, config_dir=config_dir,  # the image-token budget training used
                                  trust_remote_code=trust_remote_code)
    raise UserError(f"no processor files (tokenizer, preprocessor_config.json) in {folders[0]}")


def load_adapted(recipe, base_path: Path, adapter_dir: Path, *, device: str, quantize: bool | None = None):
    """Base + the run's adapter as training saw it (a PeftModel), or the full model of a full fine-tune."""
    from wizard.model import load_base, plan_model

    plan = plan_model(recipe, base_path, purpose="infer", device=device, quantize=quantize)
    if has_model_files(adapter_dir) and not has_adapter_files(adapter_dir):  # strategy full
        return load_base(plan, adapter_dir), False
    from peft import PeftModel

    base = load_base(plan)
    with warnings.catch_warnings():  # peft asks transformers a deprecated question: not the user's concern
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
    model.eval()
    return model, True


def load_captioner(source, *, progress=None, quantize: bool | None = None) -> Captioner:
    """A run dir, an export (merged or adapter), a local HF model folder, the demo id or a ModelScope id.

    quantize: for QLoRA runs, load the base in 4 bits (default: yes on a GPU, no on a CPU).
    """
    from wizard.recipe import ModelSpec, load_recipe

    passive_cpu_threads()
    path = Path(str(source)).expanduser()
    if is_run_dir(path):
        recipe = load_recipe(path / RECIPE_FILE)
        adapter = run_adapter_dir(path)
        return _adapted_captioner(recipe, adapter, pinned_revision(path), f"run {path.name}", progress, quantize)
    if path.is_dir():
        recipe = load_recipe(path / EXPORT_RECIPE) if (path / EXPORT_RECIPE).is_file() else None
        if has_adapter_files(path):  # an adapter export: base from its recipe (or adapter_config.json)
            if recipe is None:
                raise UserError(f"{path} is an adapter without a recipe.yaml: caption-wizard cannot tell "
                                "which base model and prompt it was trained with",
                                hint="caption the run directory instead, or export it with caption-wizard export")
            return _adapted_captioner(recipe, path, None, f"adapter {path}", progress, quantize)
        if has_model_files(path):
            return _plain_captioner(path, recipe, f"model {path}")
        raise UserError(f"{path} is not a run directory, an exported model or a Hugging Face model folder",
                        hint="a run directory holds recipe.yaml and state.json; a model folder holds config.json")
    text = str(source)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise UserError(f"{text}: no such run directory or model folder, and not a model id like Owner/Name",
                        hint="list runs with: caption-wizard runs")
    from wizard.catalog import DEMO_MODEL_ID

    spec = ModelSpec(id=text, source="demo" if text == DEMO_MODEL_ID else "modelscope")
    return _plain_captioner(resolve_base(spec, progress=progress), None, f"model {text}")


def _plain_captioner(path: Path, recipe, description: str) -> Captioner:
    from wizard.catalog import task_prompt
    from wizard.chat import resolve_prompt
    from wizard.model import load_base, plan_model

    plan = plan_model(recipe, path, purpose="infer", quantize=False)
    model = load_base(plan)
    processor = load_processor(path, data_spec=recipe.data if recipe else None, trust_remote_code=plan.trust_remote_code)
    if recipe is not None:
        return Captioner(model, processor, resolve_prompt(recipe, plan.family), recipe.generation, description, recipe)
    prompt = (plan.family.default_prompt or {}).get("en") or task_prompt("caption", "en")
    return Captioner(model, processor, prompt, default_generation(), description)


def _adapted_captioner(recipe, adapter: Path, revision, description, progress, quantize) -> Captioner:
    from wizard.chat import resolve_prompt

    base_path = resolve_base(recipe.model, revision, progress)
    model, has_adapter = load_adapted(recipe, base_path, adapter, device=pick_device(recipe), quantize=quantize)
    trust = bool(recipe.model.trust_remote_code)
    processor = load_processor(adapter, base_path, data_spec=recipe.data, trust_remote_code=trust)
    return Captioner(model, processor, resolve_prompt(recipe), recipe.generation, description, recipe,
                     has_adapter=has_adapter, base_source=str(base_path))


def base_captioner(captioner: Captioner) -> Captioner:
    """The base model of a run's captioner, with the same processor, prompt and generation settings.

    A LoRA run shares its weights (the adapter is switched off while captioning); a full fine-tune
    loads the base separately.
    """
    if captioner.has_adapter:
        return dataclasses.replace(captioner, use_adapter=False, description=f"base of {captioner.description}")
    if captioner.base_source is None:
        raise ValueError("no base model known for this captioner")
    from wizard.model import load_base, plan_model

    recipe = captioner.recipe
    model = load_base(plan_model(recipe, captioner.base_source, purpose="infer", quantize=False))
    return Captioner(model, captioner.processor, captioner.prompt, captioner.generation,
                     f"base of {captioner.description}", recipe)
