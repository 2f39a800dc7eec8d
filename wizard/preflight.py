"""Checks that need the machine or the model's config, run before a run folder exists.

    preflight(recipe, model_path, recipe_path)   # `run` (after the model is local) and `run --dry-run`

- launch.devices names GPUs this machine has (else exit 2: it would train on the CPU unnoticed);
- the memory estimate fits some machine that exists (epochs and batch sizes are bounded in the
  schema; this catches the combinations no device could hold);
- tuning.lora.target_modules name modules of this model: read from its config.json, the model built
  on the meta device (accelerate's init_empty_weights: no weights read, no memory used), and
  matched with peft's own matcher, exactly as training will.
"""

from __future__ import annotations

from pathlib import Path

from wizard.errors import UserError


def preflight(recipe, model_path: str | Path | None = None, recipe_path: str | Path | None = None,
              *, warn=None) -> None:
    """Raise UserError on the first problem. `warn(message)`: device problems are only reported
    (`--dry-run` of a recipe written for another machine still shows what it would do)."""
    try:
        check_devices(recipe, recipe_path)
    except UserError as e:
        if warn is None:
            raise
        warn(f"warning: {e.message}; `run` refuses this here ({e.hint})")
    from wizard.estimate import estimate_memory, refuse_impossible

    refuse_impossible(estimate_memory(recipe, suggest=False))
    if model_path is not None:
        check_target_modules(recipe, model_path, recipe_path)


def _where(recipe_path, dotted: str, value) -> str:
    """' (RECIPE line N)' when the recipe file sets the key to `value`, else ' (command line)'."""
    if recipe_path is None:
        return ""
    try:
        import yaml

        from wizard.recipe import _key_lines

        text = Path(recipe_path).read_text(encoding="utf-8")
        in_file = yaml.safe_load(text)
        for part in dotted.split("."):
            in_file = in_file.get(part) if isinstance(in_file, dict) else None
        line = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader)).get(dotted) if in_file == value else None
    except Exception:  # noqa: BLE001 - only a pointer for the message
        line = None
    return f" ({recipe_path} line {line})" if line else " (command line)"


def check_devices(recipe, recipe_path=None) -> None:
    devices = recipe.launch.devices
    if not isinstance(devices, list):
        return
    from wizard.machine import detect_gpus

    gpus = detect_gpus()
    missing = [d for d in devices if d < 0 or d >= len(gpus)]
    if not missing:
        return
    have = (f"it has {len(gpus)} GPU(s): " + ", ".join(f"{g.index} ({g.name})" for g in gpus)) if gpus else \
        "it has no GPU"
    fix = f"launch.devices=[{', '.join(str(g.index) for g in gpus)}]" if gpus else "launch.devices=cpu"
    raise UserError(f"launch.devices = {devices}{_where(recipe_path, 'launch.devices', devices)}: this machine has no GPU "
                    f"{', '.join(map(str, missing))}; {have}",
                    hint=f"use launch.devices=auto (every GPU, else the CPU) or {fix}")


def module_names(model_path: str | Path) -> list[str]:
    """Every module name of the model in `model_path`, from its config alone (meta device)."""
    import warnings

    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(str(model_path))
    with init_empty_weights(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForImageTextToText.from_config(config)
    return [name for name, _ in model.named_modules() if name]


def check_target_modules(recipe, model_path, recipe_path=None) -> None:
    """Each of tuning.lora.target_modules must select at least one module of the language model."""
    from wizard.recipe import Strategy

    targets = recipe.tuning.lora.target_modules
    if not targets or recipe.tuning.strategy == Strategy.full:
        return  # the family's default (tested), or no LoRA at all
    import logging

    # peft imports bitsandbytes, whose CPU backend logs a warning about an optional kernel package
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    from wizard.catalog import model_info
    from wizard.model import lora_target_regex

    info = model_info(recipe.model.id)
    vision_leaf = sorted({n for n in info.skip_quant if n != "lm_head"})
    names = module_names(model_path)
    unknown = []
    for target in targets:
        config = LoraConfig(target_modules=lora_target_regex([target], vision_leaf))
        if not any(check_target_module_exists(config, name) for name in names):
            unknown.append(target)
    if unknown:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in names if not n.rsplit(".", 1)[-1].isdigit()})
        import difflib

        close = [m for u in unknown for m in difflib.get_close_matches(u, leaves, n=1)]
        raise UserError(f"tuning.lora.target_modules = {targets}{_where(recipe_path, 'tuning.lora.target_modules', targets)}: "
                        f"{recipe.model.id} has no module named {', '.join(unknown)} in its language model"
                        + (f"; did you mean {', '.join(close)}?" if close else ""),
                        hint=f"leave it null for the default ({', '.join(info.lora_targets)}); "
                             f"module names of this model include: {', '.join(leaves[:30])}")


def local_model_path(recipe) -> Path | None:
    """The model's folder when it is on this machine already (local, demo, cached); None otherwise."""
    source, model_id = recipe.model.source, recipe.model.id
    if source == "demo":
        from wizard.demo.model import demo_base_path

        return Path(demo_base_path())
    folder = Path(model_id).expanduser()
    if (folder / "config.json").is_file():
        return folder
    return None  # a ModelScope id: checked when `run` has it locally, before the run folder exists
