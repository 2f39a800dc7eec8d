"""The questionnaire as data, and the pure function that turns answers into a Recipe.

    machine = detect_machine()                             # wizard/machine.py
    recipe = answers_to_recipe({}, machine)                # every answer at its default
    recipe = answers_to_recipe({"model": "Qwen/Qwen2-VL-2B-Instruct", "strategy": "lora",
                                "batch_size": 4}, machine) # the rest at their defaults

Nothing here prompts, prints or writes: wizard/ask/prompting.py asks QUESTIONS
one by one (through `Walk`, which also knows how to go back), and the tests feed
plain dicts. Answers hold typed values (2.0, 16, "qlora", [0, 1]); text
questions turn what was typed into that value with `parse`.

Defaults come from a base recipe: recipes/demo-shapes.yaml for the demo model
(so the demo answers reproduce that file exactly), otherwise the Recipe schema's
defaults with the model's recommended max_pixels, and the machine: no GPU ->
the demo model and data; with GPUs -> the largest catalog model whose default
recipe fits even at the estimate's upper bound (+30%), LoRA when it fits at the usual batch size else
QLoRA, then the largest batch size that fits.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from wizard.catalog import (DATASETS, DEMO_DATASET_ID, is_demo_data, DEMO_MODEL_ID, MODELS, STRATEGIES, TASKS,
                            model_info, task_prompt)
from wizard.machine import Machine
from wizard.ask import models as models_q

Answers = dict[str, Any]
OTHER_MODEL = "other"
OWN_DATA = "own"
DEMO_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo-shapes.yaml"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _fmt(value: Any) -> str:
    """A value as it is shown in a text question: 2.0 -> '2', 0.0001 -> '0.0001', None -> ''."""
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Choice:
    title: str
    value: Any
    description: str | None = None  # shown under the list while highlighted
    group: str | None = None  # a heading over the first choice of each group (the model families)


@dataclass(frozen=True)
class Question:
    name: str
    kind: str  # select | text | confirm | checkbox
    message: str
    key: str | None = None  # dotted recipe path set by the answer; None: steers other questions
    choices: Callable[[Answers, Machine], list[Choice]] | None = None
    default: Callable[[Answers, Machine], Any] | None = None  # None: the base recipe's value at `key`
    when: Callable[[Answers, Machine], bool] | None = None  # None: always relevant
    advanced: bool = False  # asked only after "Advanced settings? yes"; otherwise the default is used
    parse: Callable[[str], Any] | None = None  # text -> value; ValueError(message) when invalid
    show: Callable[[Any], str] = _fmt  # value -> the text a text question starts with
    to_recipe: Callable[[Any, Answers], Any] | None = None  # answer -> recipe value (default: as is)
    notice: Callable[[Answers, Machine], str | None] | None = None  # said after the answer

    def relevant(self, answers: Answers, machine: Machine) -> bool:
        return self.when is None or bool(self.when(answers, machine))


# ----------------------------------------------------------------------------- parsing typed text
def _number(text: str, kind: type, what: str, low: float | None = 0, high: float | None = None,
            low_ok: bool = False) -> Any:
    try:
        value = kind(text.strip())
    except ValueError:
        raise ValueError(f"{what}: type a{'n integer' if kind is int else ' number'}, "
                         f"e.g. {kind(1)}") from None
    if low is not None and (value < low or (value == low and not low_ok)):
        raise ValueError(f"{what} must be {'at least' if low_ok else 'greater than'} {low}")
    if high is not None and value >= high:
        raise ValueError(f"{what} must be below {high}")
    return value


def _parse_name(text: str) -> str:
    text = text.strip()
    if not NAME_RE.match(text) or len(text) > 80:
        raise ValueError("letters, digits, '.', '_' and '-' only, starting with a letter or digit")
    return text


def _parse_model_ref(text: str) -> str:
    """A local folder (made absolute) or a ModelScope id owner/name."""
    text = text.strip()
    if not text:
        raise ValueError("type a ModelScope id such as Qwen/Qwen2-VL-2B-Instruct, or a folder")
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if text.startswith(("/", ".", "~")):
        raise ValueError(f"no folder at {text}")
    if not re.match(r"^[\w.-]+/[\w.-]+$", text):
        raise ValueError(f"{text} is neither a folder here nor a ModelScope id (owner/name)")
    return text


def _parse_data_path(text: str) -> str:
    path = Path(text.strip()).expanduser()
    if not text.strip():
        raise ValueError("type the path of a folder of images or a captions file")
    if not path.exists():
        raise ValueError(f"nothing at {text.strip()}")
    return str(path.resolve())


def _parse_optional_int(text: str) -> int | None:
    return None if not text.strip() else _number(text, int, "the number of examples")


# ----------------------------------------------------------------------------- what was chosen
def model_ref(answers: Answers) -> tuple[str, str]:
    """(model id or absolute folder, source) from the answers."""
    choice = answers.get("model", DEMO_MODEL_ID)
    if choice == models_q.MORE_FAMILIES:
        choice = answers.get("model_pick") or models_q.first_of(answers.get("model_family"))
    if choice == OTHER_MODEL:
        ref = answers.get("model_other") or ""
        return ref, "local" if os.path.isabs(ref) else "modelscope"
    return choice, MODELS[choice].source if choice in MODELS else "modelscope"


def _is_demo(answers: Answers) -> bool:
    return model_ref(answers)[1] == "demo"


def _dataset_key(d) -> str:
    return d.id if d.subset is None else f"{d.id}:{d.subset}"


DATASET_BY_KEY = {_dataset_key(d): d for d in DATASETS}


@functools.lru_cache(maxsize=1)
def _demo_recipe() -> dict:
    from wizard.errors import UserError
    from wizard.recipe import load_recipe

    if not DEMO_RECIPE.is_file():
        raise UserError(f"the demo recipe is missing: {DEMO_RECIPE}",
                        hint="reinstall from a clone of caption-wizard with ./install.sh")
    return load_recipe(DEMO_RECIPE).to_dict()


def base_recipe(answers: Answers) -> dict:
    """The recipe (as a dict) that defaults are read from, given the model/data/strategy answers."""
    from wizard.recipe import Recipe

    model_id, source = model_ref(answers)
    info = model_info(model_id or "unknown")
    if source == "demo":
        d = copy.deepcopy(_demo_recipe())
    else:
        d = Recipe(name="x", model={"id": "x"}, data={"dataset": "x"}).to_dict()
        d["data"]["max_pixels"] = info.max_pixels
    d["model"].update(id=model_id, source=source)
    key = answers.get("dataset", DEMO_DATASET_ID if source == "demo" else _first_real_dataset())
    if key == OWN_DATA:
        d["data"].update(dataset=answers.get("dataset_path") or "", subset=None, format="auto",
                         language=answers.get("language", "en"))
    elif not (source == "demo" and key == d["data"]["dataset"]):
        ds = DATASET_BY_KEY[key]
        d["data"].update(dataset=ds.id, subset=ds.subset, format=ds.format, language=ds.language)
    if "language" in answers:
        d["data"]["language"] = answers["language"]
    strategy = answers.get("strategy")
    if strategy and strategy != d["tuning"]["strategy"]:
        if strategy == "full":  # every weight moves: a tenth of the adapter learning rate
            d["train"]["learning_rate"] = d["train"]["learning_rate"] / 10
        d["tuning"]["strategy"] = strategy
    return d


def _first_real_dataset() -> str:
    return next(_dataset_key(d) for d in DATASETS if d.source != "builtin")


def _get(d: dict, key: str) -> Any:
    for part in key.split("."):
        d = d[part]
    return d


def _set(d: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        d = d[part]
    d[last] = value


# ----------------------------------------------------------------------------- machine-aware defaults
HEADROOM = 1 / 1.3  # a default must fit even at the estimate's upper bound (+30%): the summary says "fits"


def _fits(answers: Answers, machine: Machine) -> bool:
    from wizard.estimate import estimate_memory

    recipe = answers_to_recipe(answers, machine)
    est = estimate_memory(recipe, list(machine.gpus), ram_bytes=machine.ram_bytes, suggest=False)
    return est.capacity_bytes is None or est.per_device_bytes <= HEADROOM * est.capacity_bytes


def _default_model(answers: Answers, machine: Machine) -> str:
    if not machine.gpus:
        return DEMO_MODEL_ID
    real = [m for m in MODELS.values() if m.needs_gpu and m.default_ok]  # the tested Qwen-VL line
    # largest first; among equals the later (newer) catalog entry
    order = sorted(real, key=lambda m: (-m.params_b, -list(MODELS).index(m.id)))
    for m in order:
        if _fits({"model": m.id}, machine):
            return m.id
    return min(real, key=lambda m: m.params_b).id


def _default_dataset(answers: Answers, machine: Machine) -> str:
    return DEMO_DATASET_ID if _is_demo(answers) else _first_real_dataset()


def _default_strategy(answers: Answers, machine: Machine) -> str:
    base = base_recipe({k: v for k, v in answers.items() if k != "strategy"})["tuning"]["strategy"]
    if _is_demo(answers) or not machine.gpus:
        return base
    batch = base_recipe(answers)["train"]["batch_size"]  # LoRA only if it fits without shrinking the batch
    return "lora" if _fits({**answers, "strategy": "lora", "batch_size": batch}, machine) else "qlora"


def _default_batch(answers: Answers, machine: Machine) -> int:
    base = base_recipe(answers)["train"]["batch_size"]
    if _is_demo(answers) or not machine.gpus:
        return base
    b = base
    while b >= 1:
        if _fits({**answers, "batch_size": b}, machine):
            return b
        b //= 2
    return base  # nothing fits: a smaller batch will not fix it (the summary suggests what will)


def _default_accum(answers: Answers, machine: Machine) -> int:
    train = base_recipe(answers)["train"]
    return max(1, train["batch_size"] * train["grad_accum"] // answers.get("batch_size", train["batch_size"]))


def _default_alpha(answers: Answers, machine: Machine) -> int:
    lora = base_recipe(answers)["tuning"]["lora"]
    return max(1, round(lora["alpha"] * answers.get("lora_rank", lora["rank"]) / lora["rank"]))


def _catalog_targets(answers: Answers) -> list[str]:
    return list(model_info(model_ref(answers)[0] or "unknown").lora_targets)


def _default_targets(answers: Answers, machine: Machine) -> list[str]:
    return base_recipe(answers)["tuning"]["lora"]["target_modules"] or _catalog_targets(answers)


def _language(answers: Answers) -> str:
    return base_recipe(answers)["data"]["language"]


def _default_prompt(answers: Answers, machine: Machine) -> str:
    family = model_info(model_ref(answers)[0] or "unknown").row  # Florence-2: <CAPTION>, PaliGemma: caption en
    own = (family.default_prompt or {}).get(_language(answers))
    return base_recipe(answers)["data"]["prompt"] or own or task_prompt(answers.get("task", "caption"), _language(answers))


def _slug(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text.lower()).strip("-._")
    return text or "run"


def _data_slug(answers: Answers, data: dict) -> str:
    """coco-en, coco-cn, shapes, or the folder/file name of your own data."""
    if answers.get("dataset") == OWN_DATA:
        what = Path(data["dataset"]).stem
    elif data["subset"] or is_demo_data(data):
        what = data["subset"] or data["dataset"]
    else:  # modelscope/coco_2014_caption -> coco-en
        what = f"{re.split(r'[_-]', data['dataset'].split('/')[-1])[0]}-{data['language']}"
    return _slug(what).replace("_", "-")


def _default_name(answers: Answers, machine: Machine) -> str:
    model_id, source = model_ref(answers)
    base = base_recipe(answers)
    strategy = answers.get("strategy", base["tuning"]["strategy"])
    data = _data_slug(answers, base["data"])
    if source == "demo":
        demo = _demo_recipe()
        if base["data"]["dataset"] != demo["data"]["dataset"]:
            name = f"demo-{data}"
        elif base["data"]["language"] != demo["data"]["language"]:
            name = f"{demo['name']}-{base['data']['language']}"
        else:
            name = demo["name"]
        return name if strategy == demo["tuning"]["strategy"] else f"{name}-{strategy}"
    model = re.sub(r"-instruct$", "", _slug(Path(model_id).name))
    return f"{model}-{data}-{strategy}"[:80].rstrip("-._")


def _default_devices(answers: Answers, machine: Machine) -> Any:
    base = base_recipe(answers)["launch"]["devices"]
    values = [c.value for c in _device_choices(answers, machine)]
    return base if base in values else values[0]


# ----------------------------------------------------------------------------- choices
def _model_choices(answers: Answers, machine: Machine) -> list[Choice]:
    out = models_q.first_level(Choice, machine)  # grouped: wizard/ask/models.py
    out.append(Choice("Other: a ModelScope id or a local folder", OTHER_MODEL,
                      "e.g. Qwen/Qwen2-VL-2B-Instruct, or a folder with config.json and weights", group="Other"))
    return out


def _dataset_choices(answers: Answers, machine: Machine) -> list[Choice]:
    out = [Choice(d.title, _dataset_key(d), d.note or None) for d in DATASETS]
    out.append(Choice("My own data: a folder or file", OWN_DATA,
                      "a folder of images with captions, a COCO json, a messages jsonl, a csv ..."))
    return out


def _language_choices(answers: Answers, machine: Machine) -> list[Choice]:
    task = answers.get("task", "caption")
    return [Choice(f"English · prompt: {task_prompt(task, 'en')}", "en"),
            Choice(f"Chinese · prompt: {task_prompt(task, 'zh')}", "zh")]


def _strategy_choices(answers: Answers, machine: Machine) -> list[Choice]:
    from wizard.estimate import estimate_memory, gb

    out = []
    for name, s in STRATEGIES.items():
        recipe = answers_to_recipe({**answers, "strategy": name}, machine)
        est = estimate_memory(recipe, list(machine.gpus), ram_bytes=machine.ram_bytes, suggest=False)
        where = "RAM" if est.devices == ["cpu"] else ("per GPU" if machine.gpus else "GPU")
        n = est.per_device_bytes
        # precise enough that strategies which differ show different figures
        size = f"~{n / 1024**2:,.0f} MB {where}" if n < 2 * 1024**3 else (
            f"~{n / 1024**3:.2f} GB {where}" if n < 10 * 1024**3 else f"~{gb(n)} {where}")
        if recipe.train.batch_size != base_recipe(answers)["train"]["batch_size"]:
            size += f" at batch {recipe.train.batch_size}"
        if est.fits is False:
            size += f", more than the {gb(est.capacity_bytes)} here"
        title = s.title
        if recipe.train.precision.value == "fp32" or (recipe.train.precision.value == "auto" and not machine.gpus):
            title = title.replace("16-bit base", "fp32 base")  # what really runs (the demo: fp32 on a CPU)
        out.append(Choice(f"{title} · {size}", name, f"needs: {s.needs}; costs: {s.cost}"))
    return out


def _rank_choices(answers: Answers, machine: Machine) -> list[Choice]:
    base = base_recipe(answers)["tuning"]["lora"]["rank"]
    ranks = sorted({4, 8, 16, 32, 64, 128, base})
    notes = {8: "small adapter", 16: "a good start", 64: "more capacity, more memory"}
    return [Choice(f"{r}" + (f" · {notes[r]}" if r in notes else ""), r) for r in ranks]


def _pixel_choices(answers: Answers, machine: Machine) -> list[Choice]:
    base = base_recipe(answers)
    info = model_info(model_ref(answers)[0] or "unknown")
    tokens = base["data"]["max_pixels"] // info.pixels_per_token
    options = sorted({max(1, tokens // 4), max(1, tokens // 2), tokens, tokens * 2})
    out = []
    for t in options:
        pixels = t * info.pixels_per_token
        if pixels < base["data"]["min_pixels"]:
            continue
        side = int(pixels**0.5)
        tag = " · recommended" if t == tokens else (" · less memory" if t < tokens else " · finer detail")
        out.append(Choice(f"{pixels} pixels (about {side}x{side}) = {t} image tokens{tag}", pixels))
    return out


def _precision_choices(answers: Answers, machine: Machine) -> list[Choice]:
    return [Choice("auto · bf16 where supported, fp16 on older GPUs, fp32 on CPU", "auto"),
            Choice("bf16", "bf16"), Choice("fp16 · older GPUs (V100, T4)", "fp16"),
            Choice("fp32 · exact, twice the memory", "fp32")]


def _format_choices(answers: Answers, machine: Machine) -> list[Choice]:
    from wizard.data.detect import FORMATS, WHY  # every format the readers know, as detection describes it

    return [Choice("auto · detect from the files", "auto")] + [
        Choice(f"{fmt} · {WHY[fmt]}", fmt) for fmt in FORMATS if fmt != "shapes"]


def _device_choices(answers: Answers, machine: Machine) -> list[Choice]:
    gpus = machine.gpus
    out = []
    if len(gpus) == 1:
        out.append(Choice(gpus[0].describe(), "auto"))
    elif gpus:
        out.append(Choice(f"All {len(gpus)} GPUs ({', '.join(str(g.index) for g in gpus)}) · one process per GPU "
                          "(torchrun); next: how they share the model", [g.index for g in gpus]))
        out += [Choice(f"{g.describe()} only", [g.index]) for g in gpus]
    out.append(Choice("CPU only · slow, fine for the demo", "cpu"))
    return out


def _sharing_choices(answers: Answers, machine: Machine) -> list[Choice]:
    """A copy per GPU / FSDP shards / ZeRO-3, each with the memory estimate per GPU."""
    from wizard.estimate import gb
    from wizard.train.launch import per_gpu_bytes

    recipe = answers_to_recipe({k: v for k, v in answers.items() if k != "gpu_sharing"}, machine)
    used = [g for g in machine.gpus if g.index in answers["devices"]]
    ways = (("ddp", "A copy per GPU (DDP)", "fastest while the model fits one GPU"),
            ("fsdp", "FSDP shards", "weights, gradients and optimizer states split over the GPUs (torch FSDP)"),
            ("zero3", "DeepSpeed ZeRO-3 shards",
             "like FSDP, through DeepSpeed: pip install 'caption-wizard[deepspeed]'"))
    return [Choice(f"{title} · about {gb(per_gpu_bytes(recipe, value, used))} per GPU", value, note)
            for value, title, note in ways]


# ----------------------------------------------------------------------------- notices
def _model_notice(answers: Answers, machine: Machine) -> str | None:
    if answers.get("model") == models_q.MORE_FAMILIES and "model_pick" not in answers:
        return None  # the family questions come first
    model_id, source = model_ref(answers)
    if source != "demo" and not machine.gpus:
        name = MODELS[model_id].title if model_id in MODELS else model_id
        return (f"Training {name} needs a CUDA GPU and this machine has none. You can still save the "
                "recipe and replay it on a GPU machine with `caption-wizard run`.")
    return None


def _lora(a: Answers, m: Machine) -> bool:
    return a.get("strategy") in ("lora", "qlora")


def _own(a: Answers, m: Machine) -> bool:
    return a.get("dataset") == OWN_DATA


# ----------------------------------------------------------------------------- the questions, in order
QUESTIONS: list[Question] = [
    Question("model", "select", "Which model do you want to fine-tune?",
             choices=_model_choices, default=_default_model, notice=_model_notice),
    Question("model_family", "select", "Which model family?", when=lambda a, m: a.get("model") == models_q.MORE_FAMILIES,
             choices=lambda a, m: models_q.family_choices(Choice)),
    Question("model_pick", "select", "Which model?", when=lambda a, m: a.get("model") == models_q.MORE_FAMILIES,
             choices=lambda a, m: models_q.pick_choices(Choice, a.get("model_family"), m),
             default=lambda a, m: models_q.first_of(a.get("model_family")), notice=_model_notice),
    Question("model_other", "text", "ModelScope id or local folder:",
             when=lambda a, m: a.get("model") == OTHER_MODEL, parse=_parse_model_ref,
             default=lambda a, m: ""),
    Question("task", "select", "Task?", key="task", when=lambda a, m: len(TASKS) > 1,
             choices=lambda a, m: [Choice(t["title"], k) for k, t in TASKS.items()]),
    Question("dataset", "select", "Which data?", choices=_dataset_choices, default=_default_dataset),
    Question("dataset_path", "text", "Folder or file with your images and captions:", when=_own,
             parse=_parse_data_path, default=lambda a, m: ""),
    Question("language", "select", "Caption language? (the prompt follows it)", key="data.language",
             when=lambda a, m: _own(a, m) or a.get("dataset") == DEMO_DATASET_ID, choices=_language_choices),
    Question("strategy", "select", "How to tune it?", key="tuning.strategy", choices=_strategy_choices,
             default=_default_strategy),
    Question("epochs", "text", "Epochs (passes over the training data):", key="train.epochs",
             parse=lambda t: _number(t, float, "epochs"), show=_fmt),
    Question("batch_size", "text", "Batch size (images per step, per device):", key="train.batch_size",
             parse=lambda t: _number(t, int, "batch size"), default=_default_batch),
    Question("learning_rate", "text", "Learning rate:", key="train.learning_rate",
             parse=lambda t: _number(t, float, "learning rate", 0, 1), show=_fmt),
    Question("lora_rank", "select", "LoRA rank (adapter size):", key="tuning.lora.rank", when=_lora,
             choices=_rank_choices),
    Question("max_pixels", "select", "Largest image size (caps image tokens, the usual cause of OOM):",
             key="data.max_pixels", choices=_pixel_choices),
    Question("advanced", "confirm", "Advanced settings? (precision, checkpoints, prompt, LoRA, schedule, "
             "generation...)",
             default=lambda a, m: False),
    Question("lora_alpha", "text", "LoRA alpha (usually 2 x rank):", key="tuning.lora.alpha", when=_lora,
             advanced=True, parse=lambda t: _number(t, int, "alpha"), default=_default_alpha),
    Question("lora_targets", "checkbox", "LoRA target modules (space toggles):", key="tuning.lora.target_modules",
             when=_lora, advanced=True, default=_default_targets,
             choices=lambda a, m: [Choice(t, t) for t in dict.fromkeys(_catalog_targets(a) + _default_targets(a, m))],
             to_recipe=lambda v, a: None if sorted(v) == sorted(_catalog_targets(a)) else list(v)),
    Question("data_format", "select", "Data format:", key="data.format", when=_own, advanced=True,
             choices=_format_choices),
    Question("precision", "select", "Precision:", key="train.precision", advanced=True, choices=_precision_choices),
    Question("save_steps", "text", "Save a checkpoint every N steps:", key="train.save_steps", advanced=True,
             parse=lambda t: _number(t, int, "save interval")),
    Question("grad_accum", "text", "Gradient accumulation steps (effective batch = batch size x this):",
             key="train.grad_accum", advanced=True, parse=lambda t: _number(t, int, "grad_accum"),
             default=_default_accum),
    Question("gradient_checkpointing", "select", "Gradient checkpointing:", key="train.gradient_checkpointing",
             advanced=True, choices=lambda a, m: [
                 Choice("auto · off when the model fits without it (faster), else on", "auto"),
                 Choice("on · less memory, each layer computed twice (~30% slower)", True),
                 Choice("off · fastest, most memory", False)]),
    Question("max_target_length", "text", "Longest caption in tokens (longer ones are cut):",
             key="train.max_target_length", advanced=True, parse=lambda t: _number(t, int, "length")),
    Question("prompt", "text", "Instruction given with each image:", key="data.prompt", advanced=True,
             default=_default_prompt, parse=lambda t: t.strip() or _raise("type an instruction"),
             to_recipe=lambda v, a: None if v == task_prompt(a.get("task", "caption"), _language(a)) else v),
    Question("eval_fraction", "text", "Fraction of images held out for evaluation:", key="data.eval_fraction",
             advanced=True, parse=lambda t: _number(t, float, "eval fraction", 0, 1, low_ok=True), show=_fmt),
    Question("max_samples", "text", "Use at most N examples (empty: all):", key="data.max_samples",
             advanced=True, parse=_parse_optional_int),
    Question("seed", "text", "Random seed:", key="train.seed", advanced=True,
             parse=lambda t: _number(t, int, "seed", None)),
    Question("lora_dropout", "text", "LoRA dropout (0 to 0.5; 0.05 is usual):", key="tuning.lora.dropout",
             when=_lora, advanced=True, parse=lambda t: _number(t, float, "dropout", 0, 1, low_ok=True), show=_fmt),
    Question("scheduler", "select", "Learning-rate schedule:", key="train.scheduler", advanced=True,
             choices=lambda a, m: [Choice("cosine · decays smoothly to 0", "cosine"),
                                   Choice("linear · decays in a straight line to 0", "linear"),
                                   Choice("constant", "constant"),
                                   Choice("constant after warmup", "constant_with_warmup")]),
    Question("warmup_ratio", "text", "Warmup (fraction of the steps the learning rate ramps up):",
             key="train.warmup_ratio", advanced=True,
             parse=lambda t: _number(t, float, "warmup", 0, 1, low_ok=True), show=_fmt),
    Question("weight_decay", "text", "Weight decay (0: none; 0.01 is usual for full fine-tunes):",
             key="train.weight_decay", advanced=True,
             parse=lambda t: _number(t, float, "weight decay", 0, None, low_ok=True), show=_fmt),
    Question("num_beams", "text", "Beams when captioning (1: greedy, fastest):", key="generation.num_beams",
             advanced=True, parse=lambda t: _number(t, int, "beams")),
    Question("max_new_tokens", "text", "Longest generated caption in tokens:", key="generation.max_new_tokens",
             advanced=True, parse=lambda t: _number(t, int, "max new tokens")),
    Question("devices", "select", "Train on:", key="launch.devices", when=lambda a, m: bool(m.gpus),
             choices=_device_choices, default=_default_devices),
    Question("gpu_sharing", "select", "How should the GPUs share the model?", key="launch.strategy",
             when=lambda a, m: isinstance(a.get("devices"), list) and len(a["devices"]) > 1,
             choices=lambda a, m: _sharing_choices(a, m), default=lambda a, m: "ddp"),
    Question("nodes", "text", "Machines taking part (each runs the same recipe):", key="launch.nodes",
             advanced=True, when=lambda a, m: bool(m.gpus), parse=lambda t: _number(t, int, "machines", 1)),
    Question("name", "text", "Recipe name:", key="name", parse=_parse_name, default=_default_name),
]
BY_NAME = {q.name: q for q in QUESTIONS}
MUST_ANSWER = {"model_other", "dataset_path"}  # no usable default: asked when they become relevant


def _raise(message: str):
    raise ValueError(message)


# ----------------------------------------------------------------------------- answers -> recipe
def is_asked(q: Question, answers: Answers, machine: Machine) -> bool:
    """Whether `q` is put to the user, given the answers before it."""
    return q.relevant(answers, machine) and (not q.advanced or bool(answers.get("advanced")))


def default_for(q: Question, answers: Answers, machine: Machine) -> Any:
    """The default answer of `q` given the (completed) answers before it."""
    if q.default is not None:
        value = q.default(answers, machine)
    elif q.key is not None:
        value = _get(base_recipe(answers), q.key)
    else:
        value = None
    return value


def complete(answers: Answers, machine: Machine, *, upto: str | None = None) -> Answers:
    """The answers that count, in question order: given ones where asked, defaults elsewhere.

    Answers to questions no longer relevant (LoRA rank after switching to full) are dropped;
    advanced answers count only while "Advanced settings?" is yes. `upto`: stop before that question.
    """
    out: Answers = {}
    for q in QUESTIONS:
        if q.name == upto:
            break
        if not q.relevant(out, machine):
            continue
        if q.name in answers and is_asked(q, out, machine):
            out[q.name] = answers[q.name]
        else:
            out[q.name] = default_for(q, out, machine)
    return out


def answers_to_recipe(answers: Answers, machine: Machine):
    """Answers (any subset; the rest take their defaults) -> a validated Recipe. Pure."""
    from wizard.recipe import recipe_from_dict

    full = complete(answers, machine)
    d = base_recipe(full)
    for q in QUESTIONS:
        if q.key is not None and q.name in full:
            value = full[q.name]
            _set(d, q.key, q.to_recipe(value, full) if q.to_recipe else value)
    return recipe_from_dict(d, "the wizard's answers")


def default_recipe(machine: Machine):
    """This machine's default recipe: what `caption-wizard new --defaults` writes."""
    return answers_to_recipe({}, machine)


def notices(q: Question, answers: Answers, machine: Machine) -> str | None:
    return q.notice(complete(answers, machine), machine) if q.notice else None


# ----------------------------------------------------------------------------- walking, with "back"
class Walk:
    """Which question comes next, and going back: the logic behind the prompts, without I/O.

        walk = Walk(machine)
        while not walk.done:
            q, default = walk.current, walk.default()
            walk.answer(value)   # or walk.back()

    Going back re-asks the previous question with the earlier answer as its default. When an
    answer changes, the later answers that were accepted defaults are forgotten, so they follow
    the new choice (demo -> 7B model: 2 epochs -> 3); answers the user changed are kept, and a
    kept choice that is no longer offered falls back to the new default.
    """

    def __init__(self, machine: Machine, answers: Answers | None = None):
        self.machine = machine
        self.answers: Answers = dict(answers or {})
        self.defaulted: set[str] = set()  # answers that were the default when given
        self.history: list[str] = []  # names of the questions answered, in order
        self.editing = False  # changing one answer from the summary (see `edit`)
        self._before_edit: tuple | None = None  # the answers as they were, until the change is complete
        self.current: Question | None = self._next(0)

    def _index(self, q: Question) -> int:
        return QUESTIONS.index(q)

    def _next(self, start: int) -> Question | None:
        for q in QUESTIONS[start:]:
            if self.editing and not (q.name in MUST_ANSWER and q.name not in self.answers):
                continue  # changing one answer: only a newly needed path or id is asked after it
            before = complete(self.answers, self.machine, upto=q.name)
            if is_asked(q, before, self.machine):
                return q
        if self.editing:  # the change is complete
            self.editing, self._before_edit = False, None
        return None

    # -- "Change an answer…" on the summary
    def fields(self) -> list[tuple[Question, Any]]:
        """Every setting the user can change, with its current value (advanced ones included)."""
        full = complete({**self.answers, "advanced": True}, self.machine)  # relevant questions only
        return [(q, full[q.name]) for q in QUESTIONS if q.name in full and q.name != "advanced"]

    def choices_for(self, q: Question) -> list[Choice]:
        full = complete({**self.answers, "advanced": True}, self.machine, upto=q.name)
        return q.choices(full, self.machine) if q.choices else []

    def edit(self, name: str) -> None:
        """Ask question `name` next; after its answer the walk is done again (back to the summary)."""
        q = BY_NAME[name]
        self._before_edit = (dict(self.answers), set(self.defaulted), list(self.history))
        if q.advanced and not self.answers.get("advanced"):
            # an advanced answer counts only with the advanced settings on; the others keep their values
            full = complete({**self.answers, "advanced": True}, self.machine)
            kept = {k: v for k, v in full.items() if BY_NAME[k].advanced and k not in self.answers}
            self.answers.update(kept)
            self.defaulted |= set(kept)  # still defaults: they follow later changes
            self.answers["advanced"] = True
        self.editing = True
        self.current = q

    def stop_editing(self) -> None:
        """Backed out of a change ("<"): the answers are as they were before it."""
        if self._before_edit is not None:
            self.answers, self.defaulted, self.history = self._before_edit
        self._before_edit = None
        self.editing = False
        self.current = None

    @property
    def done(self) -> bool:
        return self.current is None

    @property
    def can_go_back(self) -> bool:
        return bool(self.history)

    def context(self) -> Answers:
        """Completed answers before the current question (what its choices and default see)."""
        return complete(self.answers, self.machine, upto=self.current.name if self.current else None)

    def default(self) -> Any:
        """The previous answer to the current question if any (and still offered), else its default."""
        q = self.current
        if q.name in self.answers:
            value = self.answers[q.name]
            if q.kind != "select" or value in [c.value for c in self.choices()]:
                return value
        return default_for(q, self.context(), self.machine)

    def choices(self) -> list[Choice]:
        q = self.current
        return q.choices(self.context(), self.machine) if q.choices else []

    def answer(self, value: Any) -> None:
        q = self.current
        if value == default_for(q, self.context(), self.machine):
            self.defaulted.add(q.name)
        else:
            self.defaulted.discard(q.name)
        self._set({q.name: value})
        self.history.append(q.name)
        self.current = self._next(self._index(q) + 1)

    def _set(self, changes: Answers) -> None:
        """Record answers; if one changed, later accepted defaults are forgotten."""
        changed = [self._index(BY_NAME[k]) for k, v in changes.items()
                   if k in self.answers and self.answers[k] != v]
        self.answers.update(changes)
        if changed:
            later = {x.name for x in QUESTIONS[min(changed) + 1:]} - set(changes)
            self.answers = {k: v for k, v in self.answers.items() if not (k in later and k in self.defaulted)}

    def apply(self, overrides: list[str]) -> None:
        """Take `KEY=VALUE` overrides (a memory suggestion) as answers to the questions that set them."""
        import yaml

        by_key = {q.key: q for q in QUESTIONS if q.key}
        changes: Answers = {}
        for item in overrides:
            key, _, raw = item.partition("=")
            changes[by_key[key].name] = yaml.safe_load(raw)
        if any(BY_NAME[n].advanced for n in changes):
            changes["advanced"] = True  # the change is an advanced setting: it counts only with them on
        self.defaulted -= set(changes)
        self._set(changes)

    def back(self) -> bool:
        """Return to the previous question; False when there is none (the caller leaves)."""
        if not self.history:
            return False
        self.current = BY_NAME[self.history.pop()]
        return True

    def recipe(self):
        return answers_to_recipe(self.answers, self.machine)

