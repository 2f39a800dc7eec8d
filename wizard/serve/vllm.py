"""The `vllm serve` command equivalent to `caption-wizard serve SOURCE --engine vllm`.

    plan = vllm_plan(source, host="127.0.0.1", port=8000, api_key=None, model_name=None)
    plan.argv        # ["vllm", "serve", "/path/to/model", "--served-model-name", ...]
    plan.shown()     # the same as one shell line (an API key goes in the environment, VLLM_API_KEY)

What is served (vLLM reads Hugging Face model folders and LoRA adapters):
  merged export or any model folder          vllm serve FOLDER
  run / adapter export, LoRA or QLoRA         vllm serve BASE --enable-lora --lora-modules NAME=ADAPTER
  run of a full fine-tune                     vllm serve RUN/adapter   (it holds the whole model)
A LoRA run that also trained whole modules (tuning.lora.modules_to_save, e.g. the demo's lm_head) cannot
be served as an adapter by vLLM: export it merged first. The recipe supplies the image size limits
(--mm-processor-kwargs), the generation defaults (--override-generation-config) and the dtype.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from wizard.errors import UserError

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's --max-lora-rank accepts
PROMPT_TOKENS = 64  # chat template + instruction, roughly
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "auto": "auto"}


@dataclass
class VllmPlan:
    argv: list[str]
    served_name: str  # the name clients put in "model"
    api_key: str | None = None
    notes: list[str] = field(default_factory=list)

    def shown(self) -> str:
        """The command as one shell line. The key itself is never in argv: vLLM reads $VLLM_API_KEY."""
        line = " ".join(shlex.quote(w) for w in self.argv)
        return line + (' --api-key "$VLLM_API_KEY"' if self.api_key else "")


def vllm_plan(source, *, host: str, port: int, api_key: str | None, model_name: str | None,
              progress=None) -> VllmPlan:
    from wizard.inference import (EXPORT_RECIPE, has_adapter_files, has_model_files, pinned_revision, resolve_base,
                                  run_adapter_dir)
    from wizard.rundir import ADAPTER_DIR, RECIPE_FILE, is_run_dir
    from wizard.recipe import load_recipe

    path = Path(str(source)).expanduser()
    recipe, adapter, base, revision = None, None, None, None
    if is_run_dir(path):
        recipe = load_recipe(path / RECIPE_FILE)
        adapter, revision = run_adapter_dir(path), pinned_revision(path)
    elif path.is_dir() and has_adapter_files(path):
        if not (path / EXPORT_RECIPE).is_file():
            raise UserError(f"{path} is an adapter without a recipe.yaml: its base model is unknown",
                            hint="serve the run directory, or an export made by caption-wizard export")
        recipe, adapter = load_recipe(path / EXPORT_RECIPE), path
    elif path.is_dir() and has_model_files(path):
        recipe = load_recipe(path / EXPORT_RECIPE) if (path / EXPORT_RECIPE).is_file() else None
        base = path
    else:
        raise UserError(f"{source}: not a run directory, an export or a model folder",
                        hint="vLLM serves folders: export the run first (caption-wizard export RUN --merge)")
    name = model_name or (path.name if path.name not in (ADAPTER_DIR, "") else path.parent.name)
    notes: list[str] = []
    if adapter is not None and has_model_files(adapter) and not has_adapter_files(adapter):
        base, adapter = adapter, None  # a full fine-tune: adapter/ is the whole model
    if adapter is not None and recipe.tuning.lora.modules_to_save:
        raise UserError(f"{source}: this LoRA also trained whole modules "
                        f"({', '.join(recipe.tuning.lora.modules_to_save)}), which vLLM cannot load as an adapter",
                        hint=f"export it merged and serve that: caption-wizard export {source} --merge")
    if adapter is not None:
        base = resolve_base(recipe.model, revision, progress)
    argv = ["vllm", "serve", str(base)]
    if adapter is not None:
        rank = next((r for r in LORA_RANKS if r >= recipe.tuning.lora.rank), recipe.tuning.lora.rank)
        argv += ["--enable-lora", "--lora-modules", f"{name}={adapter}", "--max-lora-rank", str(rank),
                 "--served-model-name", f"{name}-base"]
        if recipe.tuning.strategy.value == "qlora":  # the adapter learned on a 4-bit base: serve it on one
            argv += ["--quantization", "bitsandbytes"]
    else:
        argv += ["--served-model-name", name]
    argv += ["--host", host, "--port", str(port)]
    argv += ["--limit-mm-per-prompt", json.dumps({"image": 1})]
    if recipe is not None:
        from wizard.catalog import model_info

        data, gen = recipe.data, recipe.generation
        argv += ["--dtype", DTYPES[recipe.train.precision.value]]
        argv += ["--mm-processor-kwargs", json.dumps({"min_pixels": data.min_pixels, "max_pixels": data.max_pixels})]
        image_tokens = data.max_pixels // model_info(recipe.model.id).pixels_per_token
        length = image_tokens + PROMPT_TOKENS + gen.max_new_tokens
        argv += ["--max-model-len", str(-(-length // 256) * 256)]
        override = {"max_new_tokens": gen.max_new_tokens, "repetition_penalty": gen.repetition_penalty,
                    "temperature": gen.temperature if gen.do_sample else 0.0}
        argv += ["--generation-config", "vllm", "--override-generation-config", json.dumps(override)]
        from wizard.chat import resolve_prompt

        notes.append(f"clients send the run's instruction with each image: {resolve_prompt(recipe)!r}")
        if gen.num_beams > 1:
            notes.append(f"vLLM's chat API samples or decodes greedily: the recipe's num_beams={gen.num_beams} "
                         "is not applied")
    return VllmPlan(argv, name, api_key, notes)


def vllm_installed() -> bool:
    import importlib.util
    import shutil

    return importlib.util.find_spec("vllm") is not None and shutil.which("vllm") is not None
