"""`caption-wizard import SOURCE --out recipes/NAME.yaml`: a recipe from another tool's training setup.

    caption-wizard import examples/train/multimodal/caption.sh --out recipes/coco.yaml   # ms-swift script
    caption-wizard import "swift sft --model Qwen/Qwen2-VL-2B-Instruct ..." --out recipes/mine.yaml
    caption-wizard import output/v0-20250101/args.json --out recipes/mine.yaml           # ms-swift output
    caption-wizard import qwen2vl_lora_sft.yaml --dataset-info data/dataset_info.json --out recipes/lf.yaml

SOURCE is read into a flat {key: value} dict (`swift sft` flags, args.json keys, LLaMA-Factory YAML
keys), then each known key is translated into a recipe setting. Keys the source did not set take
that tool's own default (what it trained with), not caption-wizard's. Every source key that has no
recipe equivalent is reported with the reason, one line each. The recipe is validated by
wizard.recipe before it is written, and never replaces a file unless --force.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard.errors import UserError

# Defaults of the source tools, for the keys a recipe needs (ms-swift 3.x `swift sft` / LLaMA-Factory
# with HF TrainingArguments). A source that leaves a key out trained with these.
SWIFT_DEFAULTS = {"lora_rank": 8, "lora_alpha": 32, "lora_dropout": 0.05, "num_train_epochs": 3,
                  "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1, "learning_rate": 1e-4,
                  "lr_scheduler_type": "cosine", "warmup_ratio": 0.0, "save_steps": 500, "seed": 42,
                  "weight_decay": 0.1, "target_modules": ["all-linear"], "freeze_vit": True,
                  "logging_steps": 5, "gradient_checkpointing": True}
LLAMAFACTORY_DEFAULTS = {"lora_rank": 8, "lora_dropout": 0.0, "num_train_epochs": 3,
                         "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
                         "learning_rate": 5e-5, "lr_scheduler_type": "linear", "warmup_ratio": 0.0,
                         "save_steps": 500, "seed": 42, "weight_decay": 0.0, "lora_target": "all",
                         "freeze_vision_tower": True, "logging_steps": 500, "image_max_pixels": 768 * 768,
                         "image_min_pixels": 32 * 32}

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


# ----------------------------------------------------------------------------- reading sources
def read_source(source: str, dataset_info: str | None = None) -> Imported:
    """Read SOURCE (a file or a `swift sft ...` command line) and translate it."""
    path = Path(source).expanduser()
    if path.is_file():
        text = _read_text(path)
        if path.suffix == ".json":
            data = _json(text, path)
            return from_swift_args(data, "ms-swift args.json", base_dir=path.parent)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise UserError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
            if not isinstance(data, dict):
                raise UserError(f"{path}: a LLaMA-Factory training YAML is a mapping of settings")
            if "schema_version" in data and "tuning" in data:
                raise UserError(f"{path} is already a caption-wizard recipe",
                                hint=f"replay it with: caption-wizard run {path}")
            return from_llamafactory(data, path, dataset_info)
        return from_swift_command(swift_command_in(text, str(path)), base_dir=path.parent)
    if "swift" in source.split()[:3] or source.lstrip().startswith("--"):
        return from_swift_command(swift_command_in(source, "the command line"), base_dir=Path.cwd())
    raise UserError(f"{source}: no such file, and not a `swift sft ...` command line",
                    hint="SOURCE is a shell script or command holding `swift sft`, an ms-swift args.json, "
                         "or a LLaMA-Factory training YAML")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None


def _json(text: str, path: Path) -> dict:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise UserError(f"{path}: invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: an ms-swift args.json is a JSON object of settings")
    return data


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
            devices = _devices(value)
            imp.recipe["launch"]["devices"] = devices
            imp.mapped.append((var, f"launch.devices = {devices}"))
        else:
            imp.unmapped.append((var, value, _why(var)))
    return imp


def from_swift_args(data: dict[str, Any], kind: str, *, base_dir: Path, prefix: str = "") -> Imported:
    """ms-swift arguments (command flags or args.json keys, old names included) -> recipe dict."""
    args: dict[str, Any] = {}
    for key, value in data.items():
        args[SWIFT_ALIASES.get(key, key)] = value
    imp = Imported(kind, _empty_recipe())
    m = _Mapper(imp, args, SWIFT_DEFAULTS, prefix)

    model = args.get("model")
    if not model and args.get("model_type") in SWIFT_OLD_MODEL_TYPES:
        model = SWIFT_OLD_MODEL_TYPES[args["model_type"]]
        m.use("model_type")
    if not model:
        raise UserError(f"{kind}: no model (--model, --model_id_or_path) in the source",
                        hint="add --model Qwen/Qwen2-VL-2B-Instruct (or the model folder) and import again")
    m.set("model", "model", _model_spec(str(model), base_dir))
    if "model_revision" in args:
        m.set("model_revision", "model.revision", str)

    datasets = _as_list(args.get("dataset"))
    if not datasets:
        raise UserError(f"{kind}: no --dataset in the source", hint="add --dataset and import again")
    m.use("dataset")
    _swift_dataset(imp, datasets, base_dir, f"{prefix}dataset")
    m.set("split_dataset_ratio", "data.eval_fraction", _float)

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
    _lora(m, "lora_rank", "lora_alpha", "lora_dropout", "target_modules")
    if strategy == "qlora":
        m.set("bnb_4bit_quant_type", "tuning.quant.type", str)
        m.set("bnb_4bit_use_double_quant", "tuning.quant.double_quant", _bool)
    m.set("freeze_vit", "tuning.freeze_vision", _bool)
    _train(m, epochs="num_train_epochs", batch="per_device_train_batch_size", length="max_length")
    m.set("torch_dtype", "train.precision", _dtype)
    m.set("max_pixels", "data.max_pixels", _int)
    m.set("min_pixels", "data.min_pixels", _int)
    # inference settings ms-swift keeps for eval/predict: the recipe's caption generation defaults
    m.set("num_beams", "generation.num_beams", _int)
    m.set("max_new_tokens", "generation.max_new_tokens", _int)
    m.set("repetition_penalty", "generation.repetition_penalty", _float)
    if "temperature" in args and args["temperature"] not in (None, "", "None", "null"):
        temperature = _float(args["temperature"])
        m.use("temperature")
        if temperature > 0:
            imp.recipe["generation"].update(temperature=temperature, do_sample=True)
        m.imp.mapped.append((f"{prefix}temperature", f"generation.do_sample = {temperature > 0}"
                             + (f", generation.temperature = {temperature}" if temperature > 0 else "")))
    m.rest()
    _caption_room(imp)
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
    local = _local_path(name, base_dir)
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


# ----------------------------------------------------------------------------- LLaMA-Factory
def from_llamafactory(data: dict[str, Any], path: Path, dataset_info: str | None) -> Imported:
    imp = Imported("LLaMA-Factory YAML", _empty_recipe())
    m = _Mapper(imp, dict(data), LLAMAFACTORY_DEFAULTS, "")
    if not data.get("model_name_or_path"):
        raise UserError(f"{path}: no model_name_or_path", hint="is this a LLaMA-Factory training YAML?")
    m.set("model_name_or_path", "model", _model_spec(str(data["model_name_or_path"]), path.parent))
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
    m.set("val_size", "data.eval_fraction", _float)
    m.set("max_samples", "data.max_samples", _int)

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
    rank = _int(data.get("lora_rank", LLAMAFACTORY_DEFAULTS["lora_rank"]))
    if "lora_alpha" not in data:  # LLaMA-Factory: lora_alpha defaults to 2 x rank
        m.defaults = {**m.defaults, "lora_alpha": 2 * rank}
    _lora(m, "lora_rank", "lora_alpha", "lora_dropout", "lora_target")
    if strategy == "qlora":
        m.set("quantization_type", "tuning.quant.type", str)
        m.set("double_quantization", "tuning.quant.double_quant", _bool)
    m.set("freeze_vision_tower", "tuning.freeze_vision", _bool)
    _train(m, epochs="num_train_epochs", batch="per_device_train_batch_size", length="cutoff_len")
    for key, precision in (("pure_bf16", "bf16"), ("bf16", "bf16"), ("fp16", "fp16")):
        if _bool(data.get(key, False)):
            m.set(key, "train.precision", lambda _v, p=precision: p)
            break
    for key in ("bf16", "fp16", "pure_bf16"):
        if key in data and not _bool(data[key]):
            m.use(key)  # false: nothing to map
    if "disable_gradient_checkpointing" in data:
        m.set("disable_gradient_checkpointing", "train.gradient_checkpointing", lambda v: not _bool(v))
    m.set("image_max_pixels", "data.max_pixels", _int)
    m.set("image_min_pixels", "data.min_pixels", _int)
    m.rest()
    _caption_room(imp)
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
    info = _json(_read_text(info_path), info_path)
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


# ----------------------------------------------------------------------------- shared mapping
class _Mapper:
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
                why = _why(key, value) if key not in self.used or _why(key, value) == "not set in the source" \
                    else f"{value!r} needs no setting in a recipe"
                self.imp.unmapped.append((f"{self.prefix}{key}", value, why))


def _lora(m: _Mapper, rank: str, alpha: str, dropout: str, targets: str) -> None:
    if m.imp.recipe["tuning"]["strategy"] == "full":
        for key in (rank, alpha, dropout, targets):
            if key in m.args:
                m.imp.unmapped.append((f"{m.prefix}{key}", m.args[key], "a full fine-tune has no LoRA"))
                m.use(key)
        return
    m.set(rank, "tuning.lora.rank", _int)
    m.set(alpha, "tuning.lora.alpha", lambda v: int(round(float(v))))
    m.set(dropout, "tuning.lora.dropout", _float)
    m.set(targets, "tuning.lora.target_modules", _targets)


def _train(m: _Mapper, *, epochs: str, batch: str, length: str) -> None:
    m.set(epochs, "train.epochs", _float)
    m.set("max_steps", "train.max_steps", lambda v: int(v) if int(v) > 0 else None)
    m.set(batch, "train.batch_size", _int)
    m.set("gradient_accumulation_steps", "train.grad_accum", _int)
    m.set("learning_rate", "train.learning_rate", _float)
    m.set("lr_scheduler_type", "train.scheduler", _scheduler(m))
    m.set("warmup_ratio", "train.warmup_ratio", _float)
    if "warmup_steps" in m.args:
        _warmup_steps(m)
    m.set("weight_decay", "train.weight_decay", _float)
    m.set("gradient_checkpointing", "train.gradient_checkpointing", _bool)
    if m.args.get(length) not in (None, "", "None", "null"):
        m.set(length, "train.max_target_length", _int)
    m.set("save_steps", "train.save_steps", _int)
    m.set("save_total_limit", "train.save_total_limit", _int)
    m.set("logging_steps", "train.logging_steps", _int)
    m.set("eval_steps", "train.eval_steps", _int)
    m.set("seed", "train.seed", _int)


def _caption_room(imp: Imported) -> None:
    """The source caps prompt + image + answer tokens; a recipe caps the caption alone (image tokens are
    capped by data.max_pixels): the room the source left for the caption is its cap minus the largest
    image's tokens and the prompt's."""
    from wizard.catalog import model_info
    from wizard.recipe import DataSpec

    total = imp.recipe["train"].get("max_target_length")
    if total is None:
        return
    pixels = imp.recipe["data"].get("max_pixels", DataSpec.model_fields["max_pixels"].default)
    image_tokens = pixels // model_info(imp.recipe["model"]["id"]).pixels_per_token
    room = max(32, total - image_tokens - PROMPT_TOKENS)
    imp.recipe["train"]["max_target_length"] = room
    imp.mapped.append(("(caption room)", f"train.max_target_length = {room}: {total} minus {image_tokens} image tokens "
                           f"(data.max_pixels {pixels}) and ~{PROMPT_TOKENS} prompt tokens"))


def _warmup_steps(m: _Mapper) -> None:
    m.use("warmup_steps")
    steps = _int(m.args["warmup_steps"])
    max_steps = m.imp.recipe["train"].get("max_steps")
    if steps and max_steps:
        ratio = round(steps / max_steps, 4)
        m.imp.recipe["train"]["warmup_ratio"] = ratio
        m.imp.mapped.append((f"{m.prefix}warmup_steps", f"train.warmup_ratio = {ratio} ({steps} of {max_steps} steps)"))
    elif steps:
        m.imp.unmapped.append((f"{m.prefix}warmup_steps", steps, "a recipe sets warmup as train.warmup_ratio; "
                               "without max_steps the step count is unknown, so warmup_ratio stays as mapped"))


def _scheduler(m: _Mapper):
    def convert(value):
        name = str(value)
        if name in SCHEDULERS:
            return SCHEDULERS[name]
        m.imp.unmapped.append((f"{m.prefix}lr_scheduler_type", name, "caption-wizard schedules are cosine, "
                               "linear, constant, constant_with_warmup; imported as cosine"))
        return "cosine"
    return convert


def _why(key: str, value: Any = "x") -> str:
    if value in (None, "", [], {}, "None", "null"):
        return "not set in the source"
    for pattern, why in WHY:
        if re.match(pattern, key):
            return why
    return "no caption-wizard recipe setting for it"


def _empty_recipe() -> dict[str, Any]:
    return {"schema_version": 1, "name": "imported", "model": {}, "data": {},
            "tuning": {"lora": {}, "quant": {}}, "train": {}, "generation": {}, "launch": {}}


def _model_spec(model: str, base_dir: Path) -> dict[str, str]:
    local = _local_path(model, base_dir)
    if local is not None:
        return {"id": local, "source": "local"}
    return {"id": model, "source": "modelscope"}


def _local_path(name: str, base_dir: Path) -> str | None:
    """An existing local path (as written, or next to the source file), absolute; None for a hub id."""
    p = Path(name).expanduser()
    for candidate in (p, base_dir / p):
        if candidate.exists():
            return str(candidate.resolve())
    if name.startswith(("/", "./", "../", "~")) or p.suffix in (".json", ".jsonl", ".csv", ".parquet") \
            or name.count("/") != 1:
        return name  # a path that is not on this machine (yet): kept as written
    return None


def _as_list(value) -> list:
    if value in (None, "", []):
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _int(v) -> int:
    f = float(v)
    if f != int(f):
        raise ValueError(v)
    return int(f)


def _float(v) -> float:
    return float(v)


def _bool(v) -> bool:
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(v)


def _dtype(v) -> str:
    return DTYPES[str(v).lower()]


def _targets(v):
    values = [t for item in _as_list(v) for t in str(item).replace(",", " ").split()]
    if not values or any(t in ALL_LINEAR for t in values):
        return None  # every linear layer of the language model: the model family's default
    return values


def _devices(value: str):
    ids = [d.strip() for d in value.split(",") if d.strip()]
    if not ids or ids == ["-1"]:
        return "cpu"
    try:
        return [int(d) for d in ids]
    except ValueError:
        raise UserError(f"CUDA_VISIBLE_DEVICES={value}: caption-wizard takes GPU numbers, e.g. 0,1") from None


# ----------------------------------------------------------------------------- command
def build_recipe(imp: Imported, name: str, source: str):
    """The validated Recipe (UserError naming the source key when a value is out of range)."""
    from wizard.recipe import recipe_from_dict

    imp.recipe["name"] = name
    return recipe_from_dict(imp.recipe, f"recipe imported from {source}")


def cmd_import(args) -> int:
    from wizard.console import console
    from wizard.recipe import save_recipe

    out = Path(args.out)
    if out.suffix not in (".yaml", ".yml"):
        raise UserError(f"--out {out}: a recipe is a .yaml file", hint="e.g. --out recipes/mine.yaml")
    if out.exists() and not args.force:
        raise UserError(f"{out} already exists; not overwriting it",
                        hint="choose another name with --out, or pass --force to replace it")
    name = re.sub(r"[^A-Za-z0-9._-]", "-", out.stem).lstrip("-._") or "imported"
    imp = read_source(args.source, getattr(args, "dataset_info", None))
    recipe = build_recipe(imp, name, args.source)
    console.print(f"read a {imp.source}: {len(imp.mapped)} setting(s) mapped, "
                  f"{len(imp.unmapped)} source key(s) not mapped", highlight=False)
    for key, what in imp.mapped:
        console.print(f"  mapped      {key} -> {what}", highlight=False, soft_wrap=True, markup=False)
    for key, value, why in sorted(imp.unmapped, key=lambda u: u[0]):
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
        console.print(f"  not mapped  {key} {shown[:60]}: {why}", highlight=False, soft_wrap=True, markup=False)
    save_recipe(recipe, out, overwrite=args.force)
    console.print(f"wrote {out}; check it with: caption-wizard run {out} --dry-run", highlight=False,
                  soft_wrap=True)
    return 0
