"""Writing recipes: YAML with a replay line and short "why" comments, saved without overwriting by accident.

    recipe_to_yaml(recipe, "recipes/mine.yaml")     # the text, starting with the command that replays it
    save_recipe(recipe, "recipes/mine.yaml")        # atomic; refuses to replace a file unless overwrite=True

wizard.recipe (the schema) re-exports both; this module knows YAML, not the schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from wizard.errors import UserError


# Short "why" comments written next to settings in saved recipes.
COMMENTS = {
    "data.max_pixels": "caps image tokens (pixels / 784 per image): the usual cause of VLM OOM",
    "data.eval_fraction": "held out for eval loss and `caption-wizard eval`, same split on every replay",
    "data.filter.clip_min": "the seed article keeps pairs >= 0.2; null: no CLIP filter",
    "tuning.strategy": "qlora | lora | full",
    "tuning.lora.alpha": "usually 2 x rank",
    "tuning.lora.target_modules": "null: the model family's default",
    "tuning.freeze_vision": "keep the vision tower as it is (faster, less memory)",
    "tuning.cache_vision": "its features computed once, reused each epoch (memory/disk/off)",
    "train.precision": "auto: bf16 where supported, fp16 on older GPUs, fp32 on CPU",
    "train.max_steps": "set: overrides epochs",
    "launch.devices": "auto | cpu | [0, 1] (several GPUs: one process each, through torchrun)",
    "launch.processes": "per machine; null: one per GPU (on the CPU: N processes with gloo)",
    "launch.strategy": "ddp | fsdp | zero2 | zero3 (how several GPUs share the model)",
}


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, allow_unicode=True, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def _emit(d: dict, prefix: str, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.append(f"{pad}{key}:")
            _emit(value, path + ".", indent + 1, out)
            continue
        line = f"{pad}{key}: {_scalar(value)}"
        if path in COMMENTS:
            line = f"{line:<40} # {COMMENTS[path]}"
        out.append(line)


def recipe_to_yaml(recipe, path: str | Path | None = None) -> str:
    shown = str(path) if path else f"recipes/{recipe.name}.yaml"
    out = [f"# caption-wizard recipe — replay with: caption-wizard run {shown}",
           f"# override any setting on the command line, e.g.: caption-wizard run {shown} train.epochs=1"]
    _emit(recipe.to_dict(), "", 0, out)
    return "\n".join(out) + "\n"


def save_recipe(recipe, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write atomically; refuse to replace an existing file unless `overwrite`."""
    from wizard.fsutil import atomic_write_text, create_exclusive_text, unwritable_error

    raw, path = str(path), Path(path)
    if path.is_dir() or raw.endswith(("/", "\\")):  # `new --out DIR/`: the recipe goes inside it
        path = path / f"{recipe.name}.yaml"
    text = recipe_to_yaml(recipe, path)
    try:
        if overwrite:
            return atomic_write_text(path, text)
        return create_exclusive_text(path, text)
    except FileExistsError:
        if not path.parent.is_dir():
            raise UserError(f"cannot write {path}: {path.parent} is a file, not a folder",
                            hint="choose another path with --out") from None
        raise UserError(f"{path} already exists; not overwriting it",
                        hint="choose another name with --out, or pass --force to replace it") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; --out takes a file name",
                        hint=f"e.g. --out {path / (recipe.name + '.yaml')}") from None
    except OSError as e:
        raise unwritable_error(path, e, hint="choose a writable folder with --out") from None
