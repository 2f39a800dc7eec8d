"""LLaMA-Factory: a training YAML, with its dataset_info.json for the dataset entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wizard.errors import UserError
from wizard.importer.mapping import (Imported, Mapper, caption_room, empty_recipe, map_lora, map_train,
                                     model_spec, read_json, read_text, to_bool, to_float, to_int)

# LLaMA-Factory's defaults (with HF TrainingArguments) for the keys a recipe needs: a YAML that leaves
# a key out trained with these.
LLAMAFACTORY_DEFAULTS = {"lora_rank": 8, "lora_dropout": 0.0, "num_train_epochs": 3,
                         "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
                         "learning_rate": 5e-5, "lr_scheduler_type": "linear", "warmup_ratio": 0.0,
                         "save_steps": 500, "seed": 42, "weight_decay": 0.0, "lora_target": "all",
                         "freeze_vision_tower": True, "logging_steps": 500, "image_max_pixels": 768 * 768,
                         "image_min_pixels": 32 * 32}


# ----------------------------------------------------------------------------- LLaMA-Factory
def from_llamafactory(data: dict[str, Any], path: Path, dataset_info: str | None) -> Imported:
    imp = Imported("LLaMA-Factory YAML", empty_recipe())
    m = Mapper(imp, dict(data), LLAMAFACTORY_DEFAULTS, "")
    if not data.get("model_name_or_path"):
        raise UserError(f"{path}: no model_name_or_path", hint="is this a LLaMA-Factory training YAML?")
    m.set("model_name_or_path", "model", model_spec(str(data["model_name_or_path"]), path.parent))
    if "model_revision" in data:
        m.set("model_revision", "model.revision", str)
    if data.get("stage", "sft") != "sft":
        raise UserError(f"{path}: stage {data['stage']!r} — caption-wizard imports supervised fine-tuning "
                        "(stage: sft) only")
    names = [n.strip() for n in str(data.get("dataset") or "").split(",") if n.strip()]
    if not names:
        raise UserError(f"{path}: no dataset", hint="add `dataset: NAME` (an entry of dataset_info.json)")
    m.use("dataset")
    m.use("dataset_dir")
    _llamafactory_dataset(imp, names, path, data.get("dataset_dir", "data"), dataset_info)
    m.set("val_size", "data.eval_fraction", to_float)
    m.set("max_samples", "data.max_samples", to_int)

    finetuning = str(data.get("finetuning_type", "lora")).lower()
    m.use("finetuning_type")
    bits = data.get("quantization_bit")
    m.use("quantization_bit")
    quantized = bits is not None and int(bits) == 4
    if bits is not None and not quantized:
        imp.unmapped.append(("quantization_bit", bits, "caption-wizard quantizes in 4 bits only (QLoRA); "
                             "imported with a 16-bit base"))
    strategy = "full" if finetuning == "full" else "qlora" if quantized else "lora"
    if quantized:
        imp.mapped.append(("quantization_bit", f"tuning.strategy = {strategy} (4-bit base)"))
    if finetuning not in ("lora", "full"):
        imp.unmapped.append(("finetuning_type", finetuning,
                             f"caption-wizard trains LoRA, QLoRA or full; imported as {strategy}"))
    imp.recipe["tuning"]["strategy"] = strategy
    imp.mapped.append(("finetuning_type", f"tuning.strategy = {strategy}"))
    rank = to_int(data.get("lora_rank", LLAMAFACTORY_DEFAULTS["lora_rank"]))
    if "lora_alpha" not in data:  # LLaMA-Factory: lora_alpha defaults to 2 x rank
        m.defaults = {**m.defaults, "lora_alpha": 2 * rank}
    map_lora(m, "lora_rank", "lora_alpha", "lora_dropout", "lora_target")
    if strategy == "qlora":
        m.set("quantization_type", "tuning.quant.type", str)
        m.set("double_quantization", "tuning.quant.double_quant", to_bool)
    m.set("freeze_vision_tower", "tuning.freeze_vision", to_bool)
    map_train(m, epochs="num_train_epochs", batch="per_device_train_batch_size", length="cutoff_len")
    for key, precision in (("pure_bf16", "bf16"), ("bf16", "bf16"), ("fp16", "fp16")):
        if to_bool(data.get(key, False)):
            m.set(key, "train.precision", lambda _v, p=precision: p)
            break
    for key in ("bf16", "fp16", "pure_bf16"):
        if key in data and not to_bool(data[key]):
            m.use(key)  # false: nothing to map
    if "disable_gradient_checkpointing" in data:
        m.set("disable_gradient_checkpointing", "train.gradient_checkpointing", lambda v: not to_bool(v))
    m.set("image_max_pixels", "data.max_pixels", to_int)
    m.set("image_min_pixels", "data.min_pixels", to_int)
    m.rest()
    caption_room(imp)
    return imp


def _llamafactory_dataset(imp: Imported, names: list[str], path: Path, dataset_dir: str,
                          dataset_info: str | None) -> None:
    for other in names[1:]:
        imp.unmapped.append(("dataset", other, "a recipe trains on one dataset; imported the first "
                             "(merge the files into one to train on all)"))
    name = names[0]
    info_path = _find_dataset_info(path, dataset_dir, dataset_info)
    if info_path is None:
        raise UserError(f"{path}: dataset {name!r} is an entry of LLaMA-Factory's dataset_info.json, "
                        f"which is not in {dataset_dir}/ (next to the YAML or the current folder)",
                        hint="point at it with --dataset-info PATH/dataset_info.json")
    info = read_json(read_text(info_path), info_path)
    entry = info.get(name)
    if not isinstance(entry, dict):
        raise UserError(f"{info_path}: no entry {name!r}",
                        hint="entries there: " + ", ".join(sorted(info)[:20]))
    formatting = entry.get("formatting", "alpaca")
    columns = entry.get("columns") or {}
    if formatting != "sharegpt" or "images" not in columns:
        raise UserError(f"{info_path}: {name!r} is {formatting} data"
                        + ("" if "images" in columns else " without an images column")
                        + ": caption-wizard imports multimodal sharegpt entries (messages + images)",
                        hint="see LLaMA-Factory's mllm_demo entry for the layout")
    for col, default in (("messages", "messages"), ("images", "images")):
        if columns.get(col, default) != default:
            imp.unmapped.append((f"{info_path.name}:{name}.columns.{col}", columns[col],
                                 f"caption-wizard reads the column {default!r}; rename it in the data file"))
    if entry.get("file_name"):
        file = (info_path.parent / entry["file_name"]).resolve()
        imp.recipe["data"].update(dataset=str(file), format="messages")
    elif entry.get("ms_hub_url") or entry.get("hf_hub_url"):
        imp.recipe["data"]["dataset"] = entry.get("ms_hub_url") or entry["hf_hub_url"]
        if entry.get("subset"):
            imp.recipe["data"]["subset"] = entry["subset"]
    else:
        raise UserError(f"{info_path}: entry {name!r} has no file_name, ms_hub_url or hf_hub_url")
    imp.mapped.append(("dataset", f"data.dataset = {imp.recipe['data']['dataset']} "
                                  f"({info_path.name} entry {name!r})"))


def _find_dataset_info(path: Path, dataset_dir: str, given: str | None) -> Path | None:
    if given:
        p = Path(given).expanduser()
        p = p / "dataset_info.json" if p.is_dir() else p
        if not p.is_file():
            raise UserError(f"--dataset-info {given}: no such file")
        return p
    folders = [Path(dataset_dir)] if Path(dataset_dir).is_absolute() else \
        [base / dataset_dir for base in (Path.cwd(), path.parent, *path.parent.parents[:2])]
    return next((f / "dataset_info.json" for f in folders if (f / "dataset_info.json").is_file()), None)
