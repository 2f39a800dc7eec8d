"""The recipe: a typed, versioned, replayable description of one fine-tune.

    recipe = load_recipe("recipes/demo-shapes.yaml")
    recipe = apply_overrides(recipe, ["train.learning_rate=2e-4"])
    save_recipe(recipe, "recipes/mine.yaml")          # refuses to overwrite unless asked
    recipe_hash(recipe)                               # '3f2a9c0d1e4b': ignores formatting/key order

Everything a user can get wrong raises UserError naming the file, the dotted
key, the value and what is allowed. Unknown keys are errors (with a "did you
mean"), so a typo never silently trains with a default.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wizard.errors import UserError
from wizard.units import fmt_bytes
from wizard.recipe_yaml import _scalar, recipe_to_yaml, save_recipe  # noqa: F401  (re-exported)

SCHEMA_VERSION = 1

# Finite, sane bounds (a typo like epochs=1e12 or a pasted essay as the prompt fails here, not hours later).
MAX_PROMPT_CHARS = 4000  # an instruction, not a document: every example repeats it
MAX_PIXELS = 16_777_216  # 16 MP per image: ~21,000 image tokens on Qwen2-VL
MAX_RECIPE_BYTES = 1 << 20  # recipes are a few hundred bytes; a huge file is a wrong path


class Strategy(str, Enum):
    qlora = "qlora"  # 4-bit frozen base + LoRA: least memory
    lora = "lora"  # 16-bit frozen base + LoRA
    full = "full"  # every language-model weight trains: most memory


class Precision(str, Enum):
    auto = "auto"  # bf16 where the GPU supports it, fp16 on older GPUs, fp32 on CPU
    bf16 = "bf16"
    fp16 = "fp16"
    fp32 = "fp32"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value, info):
        """`batch_size: true` is a typo, not 1: YAML's true/false are not numbers here."""
        if isinstance(value, bool) and _is_number(cls.model_fields[info.field_name].annotation):
            raise ValueError("must be a number, not true/false")
        return value


def _is_number(annotation) -> bool:
    from typing import get_args

    if annotation in (int, float):
        return True
    args = get_args(annotation)
    return bool(args) and any(a in (int, float) for a in args) and bool not in args


class ModelSpec(_Section):
    id: str = Field(min_length=1)
    source: Literal["modelscope", "local", "demo"] = "modelscope"
    revision: str = "master"


class DataColumns(_Section):
    """Which columns hold the image and the caption, for a CSV/JSONL/JSON file with other names
    (like ms-swift --columns and LLaMA-Factory's columns). Unset: found by their usual names."""
    image: str | None = Field(None, min_length=1)  # a path (relative to the file or data.image_dir), URL or base64
    caption: str | None = Field(None, min_length=1)  # a caption, or a list of captions


class FilterSpec(_Section):
    """data.filter: data-quality filtering before the split (wizard/data/filter.py)."""

    clip_min: float | None = Field(None, ge=-1.0, le=1.0)  # drop captions whose CLIP similarity is below
    clip_model: str | None = None  # None: an English CLIP, or Chinese-CLIP for language zh
    min_side: int | None = Field(None, gt=0)  # drop images whose shorter side is below (pixels)
    dedupe: bool = False  # merge near-duplicate images (perceptual hash)


class DataSpec(_Section):
    dataset: str = Field(min_length=1)
    subset: str | None = None
    format: Literal["auto", "imagefolder", "coco", "messages", "hf", "shapes", "m3it", "coco_csv",
                    "karpathy", "blip", "flickr", "coco_cn", "aic", "table", "webdataset",
                    "llama_factory"] = "auto"
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)  # None: the task's default prompt
    language: Literal["en", "zh"] = "en"
    eval_fraction: float = Field(0.02, ge=0.0, lt=1.0)
    max_pixels: int = Field(401408, gt=0, le=MAX_PIXELS)  # caps image tokens: the usual cause of VLM OOM
    min_pixels: int = Field(3136, gt=0, le=MAX_PIXELS)
    max_samples: int | None = Field(None, gt=0, le=10**9)
    columns: DataColumns | None = None  # table formats: {image: img, caption: text}
    image_dir: str | None = None  # where the images are, when not next to the caption file (COCO-CN: the COCO folder)
    filter: FilterSpec = Field(default_factory=FilterSpec)

    @model_validator(mode="after")
    def _pixels_order(self):
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) must not exceed max_pixels ({self.max_pixels})")
        return self


class LoraSpec(_Section):
    rank: int = Field(16, gt=0, le=1024)
    alpha: int = Field(32, gt=0, le=16384)  # usually 2 x rank
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | None = Field(None, min_length=1, max_length=64)  # None: the family's default
    modules_to_save: list[str] = Field(default_factory=list)  # trained fully and saved with the adapter


class QuantSpec(_Section):
    bits: Literal[4] = 4
    type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True


class CacheVision(str, Enum):
    auto = "auto"  # memory when the tower is frozen, images are seen >= 2 times and fit the budget; else off
    off = "off"  # compute the vision features at every step
    memory = "memory"  # compute once, keep in RAM
    disk = "disk"  # compute once, keep in the caption-wizard cache (shared by runs on the same model + data)


class TuningSpec(_Section):
    strategy: Strategy = Strategy.qlora
    lora: LoraSpec = Field(default_factory=LoraSpec)
    quant: QuantSpec = Field(default_factory=QuantSpec)
    freeze_vision: bool = True
    # a frozen tower gives an image the same features every epoch: compute once (wizard/train/vision_cache.py)
    cache_vision: CacheVision = CacheVision.auto

    @field_validator("cache_vision", mode="before")
    @classmethod
    def _yaml_off(cls, v):  # YAML reads a bare off / on as a boolean
        return {False: "off", True: "memory"}.get(v, v) if isinstance(v, bool) else v


class TrainSpec(_Section):
    epochs: float = Field(3.0, gt=0, le=1000, allow_inf_nan=False)
    max_steps: int | None = Field(None, gt=0, le=10**8)  # set: overrides epochs
    batch_size: int = Field(8, gt=0, le=4096)
    grad_accum: int = Field(1, gt=0, le=4096)
    learning_rate: float = Field(1.0e-4, gt=0, lt=1.0)
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=10.0, allow_inf_nan=False)
    precision: Precision = Precision.auto
    # auto: off when the estimate without it fits the device with room to spare (wizard/estimate.py)
    gradient_checkpointing: Union[bool, Literal["auto"]] = "auto"
    max_target_length: int = Field(128, gt=0, le=32768)
    save_steps: int = Field(200, gt=0, le=10**8)
    save_total_limit: int | None = Field(2, gt=0, le=10**6)
    logging_steps: int = Field(5, gt=0, le=10**8)
    eval_steps: int | None = Field(None, gt=0, le=10**8)  # None: evaluate at the end only
    eval_metrics: bool = False  # also caption a small eval sample and score it during training
    seed: int = Field(42, ge=0, le=2**32 - 1)  # numpy's seed range

    @field_validator("gradient_checkpointing", mode="before")
    @classmethod
    def _auto_or_bool(cls, v):
        if isinstance(v, bool):
            return v
        words = {"auto": "auto", "true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}
        if isinstance(v, str) and v.strip().lower() in words:
            return words[v.strip().lower()]
        raise ValueError("must be auto, true or false")

    @field_validator("learning_rate")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class GenerationSpec(_Section):
    num_beams: int = Field(3, gt=0, le=64)
    temperature: float = Field(0.7, gt=0, le=100, allow_inf_nan=False)
    repetition_penalty: float = Field(1.2, gt=0, le=100, allow_inf_nan=False)
    max_new_tokens: int = Field(128, gt=0, le=32768)
    do_sample: bool = False  # temperature only matters when sampling


class LaunchStrategy(str, Enum):
    ddp = "ddp"  # a full copy of the model per process; gradients averaged (DistributedDataParallel)
    fsdp = "fsdp"  # weights, gradients and optimizer states sharded across processes (torch FSDP)
    zero2 = "zero2"  # DeepSpeed ZeRO-2: gradients and optimizer states sharded
    zero3 = "zero3"  # DeepSpeed ZeRO-3: the weights too


class LaunchSpec(_Section):
    devices: Union[Literal["auto", "cpu"], list[int]] = "auto"  # [0, 1]: indices among the visible GPUs
    processes: int | None = Field(None, gt=0, le=1024)  # per machine; None: one per GPU (on the CPU: 1)
    nodes: int = Field(1, gt=0, le=4096)  # machines; each runs `caption-wizard run RECIPE launch.node_rank=K`
    node_rank: int = Field(0, ge=0)  # this machine's number, 0..nodes-1 (0 prints the others' command)
    master_addr: str = Field("127.0.0.1", min_length=1)  # node 0's address, reachable from every node
    master_port: int = Field(29500, gt=0, lt=65536)
    strategy: LaunchStrategy = LaunchStrategy.ddp

    @field_validator("devices")
    @classmethod
    def _device_list(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty list: give GPU indices like [0, 1], or auto, or cpu")
            if any(i < 0 for i in v) or len(set(v)) != len(v):
                raise ValueError("GPU indices must be distinct numbers from 0 (indices among the visible GPUs)")
        return v

    @model_validator(mode="after")
    def _nodes(self):
        if self.node_rank >= self.nodes:
            raise ValueError(f"launch.node_rank={self.node_rank} but launch.nodes={self.nodes}: node ranks "
                             f"are 0..{self.nodes - 1}")
        if isinstance(self.devices, list) and self.processes is not None and self.processes != len(self.devices):
            raise ValueError(f"launch.processes={self.processes} but launch.devices lists {len(self.devices)} "
                             "GPUs: one process per GPU (leave processes out)")
        return self


class Recipe(_Section):
    schema_version: int = SCHEMA_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=80)
    task: Literal["caption"] = "caption"
    model: ModelSpec
    data: DataSpec
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    launch: LaunchSpec = Field(default_factory=LaunchSpec)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ----------------------------------------------------------------------------- migration
# schema_version -> function(dict) -> dict producing the next version. Add an entry
# here when the schema changes, and a fixture under tests/recipes/v<N>/.
MIGRATIONS: dict[int, Any] = {}


def _migrate(data: dict, source: str) -> dict:
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError(f"{source}: schema_version must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{source}: schema_version {version} is newer than this caption-wizard understands "
            f"(it reads up to {SCHEMA_VERSION}).",
            hint="upgrade caption-wizard: pip install -U caption-wizard (or git pull && ./install.sh)",
        )
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise UserError(f"{source}: schema_version {version} is not a caption-wizard recipe version "
                            f"(known: 1..{SCHEMA_VERSION})")
        data = MIGRATIONS[version](dict(data))
        version = data["schema_version"] = version + 1
    return data


# ----------------------------------------------------------------------------- errors
def _fields_at(model_cls: type[BaseModel], loc: tuple) -> list[str]:
    """Valid key names at the location `loc` inside the Recipe schema."""
    cls: Any = model_cls
    for part in loc:
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return []
        cls = field.annotation
        cls = next((a for a in get_args(cls) if hasattr(a, "model_fields")), cls)  # `X | None` -> X
    return list(getattr(cls, "model_fields", {}).keys())


def _default_at(loc: tuple) -> Any:
    cls: Any = Recipe
    for part in loc[:-1]:
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return None
        cls = field.annotation
    field = getattr(cls, "model_fields", {}).get(loc[-1]) if loc else None
    if field is None or field.is_required():
        return None
    default = field.default.value if isinstance(field.default, Enum) else field.default
    return default if isinstance(default, (bool, int, float, str)) else None  # scalars only


def _format_errors(err: ValidationError, source: str, data: dict | None = None,
                   key_lines: dict[str, int] | None = None) -> UserError:
    lines, hint = [], None
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(str(p) for p in loc) or "(top level)"
        at = ""
        for n in range(len(loc), 0, -1):  # the line of the key (or of its nearest parent) in the file
            line = (key_lines or {}).get(".".join(str(p) for p in loc[:n]))
            if line:
                at = f" (line {line})"
                break
        if e["type"] == "extra_forbidden":
            parent, key = loc[:-1], str(loc[-1])
            valid = _fields_at(Recipe, parent)
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            prefix = ".".join(str(p) for p in parent)
            msg = f"{path}: unknown key in {source}"
            if close:
                msg += f"; did you mean {prefix + '.' if prefix else ''}{close[0]}?"
            else:
                hint = f"valid keys{' under ' + prefix if prefix else ''}: {', '.join(valid)}"
            lines.append(msg + at)
        elif e["type"] == "missing":
            lines.append(f"{path}: required in {source} but missing")
        else:
            value = e.get("input")
            shown = repr(value) if not isinstance(value, dict) else "{...}"
            shown = shown if len(shown) <= 80 else f"{shown[:60]}... ({len(str(value))} characters)"
            lines.append(f"{path} = {shown} in {source}: {e['msg'].removeprefix('Value error, ')}{at}")
            default = _default_at(loc)
            if hint is None and default is not None and not isinstance(default, (list, dict)):
                hint = f"e.g. {path}={_scalar(default)} (the default)"
    return UserError("\n  ".join(lines), hint=hint)


def recipe_from_dict(data: Any, source: str = "recipe", key_lines: dict[str, int] | None = None) -> Recipe:
    if not isinstance(data, dict):
        raise UserError(f"{source}: a recipe is a YAML mapping (key: value lines), got {type(data).__name__}",
                        hint="start from one of the files in recipes/, e.g. recipes/demo-shapes.yaml")
    data = _migrate(data, source)
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise _format_errors(e, source, data, key_lines) from None


# ----------------------------------------------------------------------------- YAML
class _DuplicateKey(Exception):
    def __init__(self, key, first: int, again: int):
        self.key, self.first, self.again = key, first, again


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            try:
                key = self.construct_object(key_node, deep=True)
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first != key_node.start_mark.line + 1:
                raise _DuplicateKey(key, first, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep)


def _key_lines(node, prefix: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    """dotted key -> line number (1-based) of that key in the YAML text."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                dotted = f"{prefix}{key_node.value}"
                out.setdefault(dotted, key_node.start_mark.line + 1)
                _key_lines(value_node, dotted + ".", out)
    return out

def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        hint = None
        if path.parent.is_dir():
            near = difflib.get_close_matches(path.name, [p.name for p in path.parent.glob("*.y*ml")], n=1)
            hint = f"did you mean {path.parent / near[0]}?" if near else None
        raise UserError(f"recipe file not found: {path}",
                        hint=hint or "list the shipped recipes with: ls recipes/")
    size = path.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise UserError(f"{path} is {fmt_bytes(size)}: too big for a recipe (a recipe is a small YAML file; "
                        f"the limit is {fmt_bytes(MAX_RECIPE_BYTES)})",
                        hint="check the path: this is probably a data file, not a recipe")
    key_lines: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_StrictLoader)
        key_lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except _DuplicateKey as e:
        raise UserError(f"{path} line {e.again}: key {e.key!r} is given twice (also on line {e.first}); "
                        "YAML would silently keep only the last one",
                        hint=f"delete one of the two {e.key}: lines ({e.first} or {e.again})") from None
    except yaml.composer.ComposerError as e:  # several documents in one file, or an undefined alias
        raise UserError(f"{path}: invalid YAML: {e.problem}", hint="a recipe is one YAML document") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}:{where}: invalid YAML: {problem}",
                        hint="check the indentation and the colon after each key") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (recipes are UTF-8 YAML)") from None
    return recipe_from_dict(data, str(path), key_lines)


# ----------------------------------------------------------------------------- overrides
def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def apply_overrides(recipe: Recipe, overrides: list[str], source: str = "command line") -> Recipe:
    """Apply `dotted.key=value` overrides; values are parsed as YAML, then typed by the schema."""
    if not overrides:
        return recipe
    data = recipe.to_dict()
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"override {item!r} is not KEY=VALUE",
                            hint="e.g. train.learning_rate=2e-4 or tuning.lora.target_modules=[q_proj,v_proj]")
        parts = key.split(".")
        node: Any = data
        for i, part in enumerate(parts):
            valid = _fields_at(Recipe, tuple(parts[:i]))
            if part not in valid:
                prefix = ".".join(parts[:i])
                close = difflib.get_close_matches(part, valid, n=1, cutoff=0.6)
                guess = f"; did you mean {prefix + '.' if prefix else ''}{close[0]}?" if close else ""
                raise UserError(f"{key}: unknown key in {source}{guess}",
                                hint=None if close else f"valid keys{' under ' + prefix if prefix else ''}: "
                                + ", ".join(valid))
            if i == len(parts) - 1:
                node[part] = _parse_value(raw)
            else:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
    return recipe_from_dict(data, source)


# ----------------------------------------------------------------------------- hash
def recipe_hash(recipe: Recipe) -> str:
    """12 hex digits of sha256 over the canonical JSON: formatting and key order do not matter."""
    canonical = json.dumps(recipe.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
