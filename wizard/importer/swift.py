"""ms-swift: `swift sft` command lines and scripts, and the args.json of an output folder.

Old flag names are read too: --sft_type (1.x/2.x) and --tuner_type (4.x) for --train_type,
--model_id_or_path, --model_type (2.x names), --quantization_bit, --batch_size, --lora_target_modules...
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from wizard.errors import UserError
from wizard.importer.mapping import (Imported, Mapper, as_list, caption_room, devices_from, empty_recipe,
                                     local_path, map_lora, map_train, model_spec, to_bool, to_dtype, to_float,
                                     to_int, why_unmapped)

# ms-swift 3.x defaults (`swift sft`, with HF TrainingArguments) for the keys a recipe needs: a source
# that leaves a key out trained with these.
SWIFT_DEFAULTS = {"lora_rank": 8, "lora_alpha": 32, "lora_dropout": 0.05, "num_train_epochs": 3,
                  "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1, "learning_rate": 1e-4,
                  "lr_scheduler_type": "cosine", "warmup_ratio": 0.0, "save_steps": 500, "seed": 42,
                  "weight_decay": 0.1, "target_modules": ["all-linear"], "freeze_vit": True,
                  "logging_steps": 5, "gradient_checkpointing": True}
# Old names (ms-swift 1.x/2.x, and ms-swift 4's tuner_type) -> the current ones.
SWIFT_ALIASES = {"sft_type": "train_type", "tuner_type": "train_type", "model_id_or_path": "model",
                 "batch_size": "per_device_train_batch_size", "lora_target_modules": "target_modules",
                 "quantization_bit": "quant_bits", "dtype": "torch_dtype",
                 "dataset_test_ratio": "split_dataset_ratio", "custom_train_dataset_path": "dataset",
                 "lora_dropout_p": "lora_dropout", "freeze_vision": "freeze_vit"}
# ms-swift 2.x --model_type values for the models caption-wizard knows (when no --model is given).
SWIFT_OLD_MODEL_TYPES = {"qwen2-vl-2b-instruct": "Qwen/Qwen2-VL-2B-Instruct",
                         "qwen2-vl-7b-instruct": "Qwen/Qwen2-VL-7B-Instruct",
                         "qwen2_5-vl-3b-instruct": "Qwen/Qwen2.5-VL-3B-Instruct",
                         "qwen2_5-vl-7b-instruct": "Qwen/Qwen2.5-VL-7B-Instruct"}


def swift_command_in(text: str, where: str) -> tuple[dict[str, str], list[str]]:
    """(environment assignments, argv after `swift sft`) of the first `swift sft` in a script."""
    text = re.sub(r"\\\r?\n", " ", text)  # line continuations
    env: dict[str, str] = {}  # exported, or set in front of the command: what swift sees
    shell: dict[str, str] = {}  # every assignment: for $VAR in the command
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            raise UserError(f"{where}: cannot parse the line {line.strip()[:80]!r}: {e}") from None
        exported = words[:1] == ["export"]
        words = words[1:] if exported else words
        lead = dict(w.split("=", 1) for w in _leading_assignments(words))
        shell.update({k: _expand(v, shell) for k, v in lead.items()})
        rest = words[len(lead):]
        if exported or not rest:
            if exported:
                env.update({k: shell[k] for k in lead})
            continue
        argv = None
        for i in range(len(rest) - 1):
            if (rest[i] == "swift" or rest[i].endswith("/swift")) and rest[i + 1] == "sft":
                argv = rest[i + 2:]
        if rest[0] in ("swift-sft", "swift_sft"):
            argv = rest[1:]
        if argv is None and rest[0].startswith("--") and "swift" not in text:  # flags alone
            argv = rest
        if argv is not None:
            env.update({k: shell[k] for k in lead})
            return env, [_expand(w, shell) for w in argv]
    raise UserError(f"{where}: no `swift sft` command found",
                    hint="import reads ms-swift training commands (swift sft ...); for `swift rlhf` or "
                         "`megatron sft` set up the recipe with `caption-wizard new`")


def _leading_assignments(words: list[str]):
    for w in words:
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w):
            yield w
        else:
            return


def _expand(word: str, env: dict[str, str]) -> str:
    """$VAR / ${VAR} from assignments earlier in the script; unknown ones are left as written."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), m.group(0)), word)


def parse_flags(argv: list[str], where: str) -> dict[str, Any]:
    """`--key value [value...]` and `--key=value` -> {key: str or [str, ...]}; `--flag` alone -> "true"."""
    out: dict[str, Any] = {}
    key = None
    for word in argv:
        if word.startswith("--"):
            key, eq, value = word[2:].partition("=")
            key = key.replace("-", "_")
            out[key] = [value] if eq else []
        elif key is None:
            raise UserError(f"{where}: {word!r} comes before any --flag")
        else:
            out[key].append(word)
    return {k: (v[0] if len(v) == 1 else "true" if not v else v) for k, v in out.items()}


# ----------------------------------------------------------------------------- ms-swift
def from_swift_command(env_argv: tuple[dict[str, str], list[str]], base_dir: Path) -> Imported:
    env, argv = env_argv
    flags = parse_flags(argv, "swift sft")
    from_env = {key: var for var, key in (("MAX_PIXELS", "max_pixels"), ("MIN_PIXELS", "min_pixels"))
                if var in env and key not in flags}
    for key, var in from_env.items():
        flags[key] = env.pop(var)
    imp = from_swift_args(flags, "swift sft command", base_dir=base_dir, prefix="--")
    imp.mapped = [(from_env.get(k[2:], k), what) for k, what in imp.mapped]
    for var, value in env.items():
        if var == "CUDA_VISIBLE_DEVICES":
            devices = devices_from(value)
            imp.recipe["launch"]["devices"] = devices
            imp.mapped.append((var, f"launch.devices = {devices}"))
        else:
            imp.unmapped.append((var, value, why_unmapped(var)))
    return imp


def from_swift_args(data: dict[str, Any], kind: str, *, base_dir: Path, prefix: str = "") -> Imported:
    """ms-swift arguments (command flags or args.json keys, old names included) -> recipe dict."""
    args: dict[str, Any] = {}
    for key, value in data.items():
        args[SWIFT_ALIASES.get(key, key)] = value
    imp = Imported(kind, empty_recipe())
    m = Mapper(imp, args, SWIFT_DEFAULTS, prefix)

    model = args.get("model")
    if not model and args.get("model_type") in SWIFT_OLD_MODEL_TYPES:
        model = SWIFT_OLD_MODEL_TYPES[args["model_type"]]
        m.use("model_type")
    if not model:
        raise UserError(f"{kind}: no model (--model, --model_id_or_path) in the source",
                        hint="add --model Qwen/Qwen2-VL-2B-Instruct (or the model folder) and import again")
    m.set("model", "model", model_spec(str(model), base_dir))
    if "model_revision" in args:
        m.set("model_revision", "model.revision", str)

    datasets = as_list(args.get("dataset"))
    if not datasets:
        raise UserError(f"{kind}: no --dataset in the source", hint="add --dataset and import again")
    m.use("dataset")
    _swift_dataset(imp, datasets, base_dir, f"{prefix}dataset")
    m.set("split_dataset_ratio", "data.eval_fraction", to_float)

    train_type = str(args.get("train_type", "lora")).lower()
    m.use("train_type")
    bits = args.get("quant_bits")
    m.use("quant_bits")
    quantized = bits not in (None, "", "null", "None") and int(float(bits)) == 4
    if bits not in (None, "", "null", "None") and not quantized:
        imp.unmapped.append((f"{prefix}quant_bits", bits, "caption-wizard quantizes in 4 bits only (QLoRA); "
                             "imported with a 16-bit base"))
    strategy = {"full": "full"}.get(train_type, "qlora" if quantized else "lora")
    if quantized:
        imp.mapped.append((f"{prefix}quant_bits", f"tuning.strategy = {strategy} (4-bit base)"))
    if train_type not in ("lora", "qlora", "full"):
        imp.unmapped.append((f"{prefix}train_type", train_type,
                             f"caption-wizard trains LoRA, QLoRA or full; imported as {strategy}"))
    imp.recipe["tuning"]["strategy"] = strategy
    imp.mapped.append((f"{prefix}train_type", f"tuning.strategy = {strategy}"))
    map_lora(m, "lora_rank", "lora_alpha", "lora_dropout", "target_modules")
    if strategy == "qlora":
        m.set("bnb_4bit_quant_type", "tuning.quant.type", str)
        m.set("bnb_4bit_use_double_quant", "tuning.quant.double_quant", to_bool)
    m.set("freeze_vit", "tuning.freeze_vision", to_bool)
    map_train(m, epochs="num_train_epochs", batch="per_device_train_batch_size", length="max_length")
    m.set("torch_dtype", "train.precision", to_dtype)
    m.set("max_pixels", "data.max_pixels", to_int)
    m.set("min_pixels", "data.min_pixels", to_int)
    # inference settings ms-swift keeps for eval/predict: the recipe's caption generation defaults
    m.set("num_beams", "generation.num_beams", to_int)
    m.set("max_new_tokens", "generation.max_new_tokens", to_int)
    m.set("repetition_penalty", "generation.repetition_penalty", to_float)
    if "temperature" in args and args["temperature"] not in (None, "", "None", "null"):
        temperature = to_float(args["temperature"])
        m.use("temperature")
        if temperature > 0:
            imp.recipe["generation"].update(temperature=temperature, do_sample=True)
        m.imp.mapped.append((f"{prefix}temperature", f"generation.do_sample = {temperature > 0}"
                             + (f", generation.temperature = {temperature}" if temperature > 0 else "")))
    m.rest()
    caption_room(imp)
    return imp


def _swift_dataset(imp: Imported, datasets: list, base_dir: Path, key: str) -> None:
    """'ID[:subset][#N]' or a local path; the first one is used (a recipe has one dataset)."""
    first, *others = [str(d) for d in datasets]
    for other in others:
        imp.unmapped.append((key, other, "a recipe trains on one dataset; imported the first "
                             "(merge the files into one to train on all)"))
    name, _, count = first.partition("#")
    if count.strip().isdigit():
        imp.recipe["data"]["max_samples"] = int(count)
        imp.mapped.append((key, f"data.max_samples = {count} (the #{count} in {first})"))
    local = local_path(name, base_dir)
    if local is not None:
        imp.recipe["data"]["dataset"] = local
    else:
        dataset_id, _, subset = name.partition(":")
        imp.recipe["data"]["dataset"] = dataset_id
        if subset:
            imp.recipe["data"]["subset"] = subset
        _catalog_dataset(imp, dataset_id, subset or None)
    imp.mapped.append((key, f"data.dataset = {imp.recipe['data']['dataset']}"))


def _catalog_dataset(imp: Imported, dataset_id: str, subset: str | None) -> None:
    from wizard.catalog import DATASETS

    for info in DATASETS:
        if info.id == dataset_id and (subset is None or info.subset == subset):
            imp.recipe["data"].update(format=info.format, language=info.language)
            if info.subset and not subset:
                imp.recipe["data"]["subset"] = info.subset
            return
