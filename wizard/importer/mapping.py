"""What importers share: the Imported result, the key-by-key Mapper, value converters, and why a
source key has no recipe equivalent. Used by wizard/importer/swift.py and llamafactory.py."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard.errors import UserError

SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant",
              "constant_with_warmup": "constant_with_warmup"}
DTYPES = {"bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "fp16": "fp16", "half": "fp16",
          "float32": "fp32", "fp32": "fp32", "float": "fp32"}
PROMPT_TOKENS = 64  # chat template + instruction, roughly
ALL_LINEAR = {"all-linear", "all", "ALL", "DEFAULT", "AUTO", "default"}

# Said next to a mapping whose meaning differs a little between the tools.
NOTES = {"train.max_target_length": " (the source's cap on prompt + image + answer tokens)",
         "tuning.lora.target_modules": " (every linear layer of the language model: the family's default)"}

# Why a source key has no recipe equivalent (first matching pattern wins).
WHY = [
    (r"^(output_dir|logging_dir|add_output_dir_suffix|overwrite_output_dir|run_name|save_only_model|"
     r"plot_loss|report_to|ckpt_dir|resume_from_checkpoint|resume_only_model|ignore_data_skip)$",
     "caption-wizard writes each run to runs/NAME-TIME/ and resumes with `caption-wizard resume`"),
    (r"^(dataloader_num_workers|preprocessing_num_workers|dataset_num_proc|overwrite_cache|"
     r"load_from_cache_file|streaming|lazy_tokenize|packing|padding_free|ddp_timeout|ddp_backend)$",
     "data loading and processes are set up by caption-wizard itself"),
    (r"^(per_device_eval_batch_size|eval_batch_size|val_dataset|custom_val_dataset_path|eval_strategy|"
     r"evaluation_strategy|do_eval|predict_with_generate|metric_for_best_model|load_best_model_at_end)$",
     "caption-wizard evaluates on data.eval_fraction of the training set (and with `caption-wizard eval`)"),
    (r"^(template|template_type|model_type|trust_remote_code|attn_impl|flash_attn|use_fast_tokenizer)$",
     "caption-wizard builds the chat template and loader from the model itself"),
    (r"^(bf16|fp16|pure_bf16|fp32)$", "train.precision comes from torch_dtype"),
    (r"^(data_seed|dataset_shuffle|train_dataloader_shuffle)$", "the held-out split and order follow train.seed"),
    (r"^(system|default_system)$", "caption-wizard's prompt is the user turn (data.prompt); no system message"),
    (r"^(stage|do_train|rlhf_type)$", "caption-wizard does supervised fine-tuning only"),
    (r"^(deepspeed|fsdp|zero_stage|nproc_per_node|NPROC_PER_NODE|MASTER_PORT|MASTER_ADDR|NNODES|NODE_RANK)$",
     "caption-wizard runs one process per listed device (launch.devices)"),
    (r"^(bnb_4bit_compute_dtype|bnb_4bit_comp_dtype|bnb_4bit_quant_storage|quant_method|quantization_method)$",
     "caption-wizard's QLoRA is bitsandbytes 4-bit with the compute dtype of train.precision"),
    (r"^(freeze_llm|freeze_aligner|freeze_multi_modal_projector|train_mm_proj_only|freeze_parameters.*|"
     r"trainable_parameters.*)$", "caption-wizard tunes the language model; only tuning.freeze_vision is settable"),
    (r"^(video_max_pixels|video_min_pixels|VIDEO_MAX_PIXELS|FPS|FPS_MAX_FRAMES|audio_sampling_rate)$",
     "caption-wizard captions images, not video or audio"),
    (r"^(model_author|model_name|hub_model_id|push_to_hub|hub_token|use_hf|hub_private_repo)$",
     "caption-wizard does not publish models; export with `caption-wizard export`"),
    (r"^(use_dora|use_rslora|lora_bias|lorap_lr_ratio|init_weights|pissa_init|loraplus_lr_ratio|"
     r"create_new_adapter|additional_target)$", "caption-wizard trains plain LoRA"),
]


@dataclass
class Imported:
    """A recipe dict plus what happened to each source key."""

    source: str  # kind of source: "swift command", "ms-swift args.json", "LLaMA-Factory YAML"
    recipe: dict[str, Any]
    mapped: list[tuple[str, str]] = field(default_factory=list)  # (source key, "recipe.key = value")
    unmapped: list[tuple[str, Any, str]] = field(default_factory=list)  # (key, value, why)


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None


def read_json(text: str, path: Path) -> dict:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise UserError(f"{path}: invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: an ms-swift args.json is a JSON object of settings")
    return data


# ----------------------------------------------------------------------------- shared mapping
class Mapper:
    """Moves source keys into the recipe dict and remembers which keys it used."""

    def __init__(self, imp: Imported, args: dict[str, Any], defaults: dict[str, Any], prefix: str):
        self.imp, self.args, self.defaults, self.prefix = imp, args, defaults, prefix
        self.used: set[str] = set()

    def use(self, key: str) -> None:
        self.used.add(key)

    def get(self, key: str):
        """(value, from_source): the source's value, else the tool's default; (None, False) if neither."""
        value = self.args.get(key)
        if value not in (None, "", "None", "null"):
            return value, True
        return self.defaults.get(key), False

    def set(self, key: str, dotted: str, convert=None) -> None:
        """recipe[dotted] = convert(source value or the tool's default); no-op when neither exists."""
        self.use(key)
        value, given = (convert, True) if not callable(convert) else self.get(key)
        if value is None:
            return
        if callable(convert):
            try:
                value = convert(value)
            except (TypeError, ValueError):
                raise UserError(f"{self.prefix}{key} {value!r}: not a valid value for {dotted}") from None
        node = self.imp.recipe
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
        shown = (f"model.id = {value['id']} (source: {value['source']})" if isinstance(value, dict)
                 else f"{dotted} = {'null' if value is None else repr(value)}{NOTES.get(dotted, '')}")
        self.imp.mapped.append((f"{self.prefix}{key}" if given else f"({key}: default)",
                                shown if given else f"{shown} (the source tool's default)"))

    def rest(self) -> None:
        """Report every source key that no mapping recorded (used or not), so none goes unmentioned."""
        said = {k.removeprefix(self.prefix) for k, _ in self.imp.mapped}
        said |= {k.removeprefix(self.prefix) for k, _, _ in self.imp.unmapped}
        for key, value in self.args.items():
            if key not in said:
                why = why_unmapped(key, value) if key not in self.used or why_unmapped(key, value) == "not set in the source" \
                    else f"{value!r} needs no setting in a recipe"
                self.imp.unmapped.append((f"{self.prefix}{key}", value, why))


def map_lora(m: Mapper, rank: str, alpha: str, dropout: str, targets: str) -> None:
    if m.imp.recipe["tuning"]["strategy"] == "full":
        for key in (rank, alpha, dropout, targets):
            if key in m.args:
                m.imp.unmapped.append((f"{m.prefix}{key}", m.args[key], "a full fine-tune has no LoRA"))
                m.use(key)
        return
    m.set(rank, "tuning.lora.rank", to_int)
    m.set(alpha, "tuning.lora.alpha", lambda v: int(round(float(v))))
    m.set(dropout, "tuning.lora.dropout", to_float)
    m.set(targets, "tuning.lora.target_modules", to_targets)


def map_train(m: Mapper, *, epochs: str, batch: str, length: str) -> None:
    m.set(epochs, "train.epochs", to_float)
    m.set("max_steps", "train.max_steps", lambda v: int(v) if int(v) > 0 else None)
    m.set(batch, "train.batch_size", to_int)
    m.set("gradient_accumulation_steps", "train.grad_accum", to_int)
    m.set("learning_rate", "train.learning_rate", to_float)
    m.set("lr_scheduler_type", "train.scheduler", _scheduler(m))
    m.set("warmup_ratio", "train.warmup_ratio", to_float)
    if "warmup_steps" in m.args:
        _warmup_steps(m)
    m.set("weight_decay", "train.weight_decay", to_float)
    m.set("gradient_checkpointing", "train.gradient_checkpointing", to_bool)
    if m.args.get(length) not in (None, "", "None", "null"):
        m.set(length, "train.max_target_length", to_int)
    m.set("save_steps", "train.save_steps", to_int)
    m.set("save_total_limit", "train.save_total_limit", to_int)
    m.set("logging_steps", "train.logging_steps", to_int)
    m.set("eval_steps", "train.eval_steps", to_int)
    m.set("seed", "train.seed", to_int)


def caption_room(imp: Imported) -> None:
    """The source caps prompt + image + answer tokens; a recipe caps the caption alone (image tokens are
    capped by data.max_pixels): the room the source left for the caption is its cap minus the largest
    image's tokens and the prompt's."""
    from wizard.catalog import model_info
    from wizard.recipe import DataSpec

    total = imp.recipe["train"].get("max_target_length")
    if total is None:
        return
    pixels = imp.recipe["data"].get("max_pixels", DataSpec.model_fields["max_pixels"].default)
    image_tokens = model_info(imp.recipe["model"]["id"]).image_tokens(pixels)
    room = max(32, total - image_tokens - PROMPT_TOKENS)
    imp.recipe["train"]["max_target_length"] = room
    imp.mapped.append(("(caption room)", f"train.max_target_length = {room}: {total} minus {image_tokens} image tokens "
                           f"(data.max_pixels {pixels}) and ~{PROMPT_TOKENS} prompt tokens"))


def _warmup_steps(m: Mapper) -> None:
    m.use("warmup_steps")
    steps = to_int(m.args["warmup_steps"])
    max_steps = m.imp.recipe["train"].get("max_steps")
    if steps and max_steps:
        ratio = round(steps / max_steps, 4)
        m.imp.recipe["train"]["warmup_ratio"] = ratio
        m.imp.mapped.append((f"{m.prefix}warmup_steps", f"train.warmup_ratio = {ratio} ({steps} of {max_steps} steps)"))
    elif steps:
        m.imp.unmapped.append((f"{m.prefix}warmup_steps", steps, "a recipe sets warmup as train.warmup_ratio; "
                               "without max_steps the step count is unknown, so warmup_ratio stays as mapped"))


def _scheduler(m: Mapper):
    def convert(value):
        name = str(value)
        if name in SCHEDULERS:
            return SCHEDULERS[name]
        m.imp.unmapped.append((f"{m.prefix}lr_scheduler_type", name, "caption-wizard schedules are cosine, "
                               "linear, constant, constant_with_warmup; imported as cosine"))
        return "cosine"
    return convert


def why_unmapped(key: str, value: Any = "x") -> str:
    if value in (None, "", [], {}, "None", "null"):
        return "not set in the source"
    for pattern, why in WHY:
        if re.match(pattern, key):
            return why
    return "no caption-wizard recipe setting for it"


def empty_recipe() -> dict[str, Any]:
    return {"schema_version": 1, "name": "imported", "model": {}, "data": {},
            "tuning": {"lora": {}, "quant": {}}, "train": {}, "generation": {}, "launch": {}}


def model_spec(model: str, base_dir: Path) -> dict[str, str]:
    local = local_path(model, base_dir)
    if local is not None:
        return {"id": local, "source": "local"}
    return {"id": model, "source": "modelscope"}


def local_path(name: str, base_dir: Path) -> str | None:
    """An existing local path (as written, or next to the source file), absolute; None for a hub id."""
    p = Path(name).expanduser()
    for candidate in (p, base_dir / p):
        if candidate.exists():
            return str(candidate.resolve())
    if name.startswith(("/", "./", "../", "~")) or p.suffix in (".json", ".jsonl", ".csv", ".parquet") \
            or name.count("/") != 1:
        return name  # a path that is not on this machine (yet): kept as written
    return None


def as_list(value) -> list:
    if value in (None, "", []):
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def to_int(v) -> int:
    f = float(v)
    if f != int(f):
        raise ValueError(v)
    return int(f)


def to_float(v) -> float:
    return float(v)


def to_bool(v) -> bool:
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(v)


def to_dtype(v) -> str:
    return DTYPES[str(v).lower()]


def to_targets(v):
    values = [t for item in as_list(v) for t in str(item).replace(",", " ").split()]
    if not values or any(t in ALL_LINEAR for t in values):
        return None  # every linear layer of the language model: the model family's default
    return values


def devices_from(value: str):
    ids = [d.strip() for d in value.split(",") if d.strip()]
    if not ids or ids == ["-1"]:
        return "cpu"
    try:
        return [int(d) for d in ids]
    except ValueError:
        raise UserError(f"CUDA_VISIBLE_DEVICES={value}: caption-wizard takes GPU numbers, e.g. 0,1") from None
