"""What the wizard proposes on this machine: the base recipe, and the defaults that depend on the GPUs.

    machine = detect_machine()                                   # wizard/machine.py
    recipe = default_recipe(machine)                             # what `caption-wizard new --defaults` writes
    recipe = proposed_recipe({"model": "Qwen/Qwen2-VL-7B-Instruct", "strategy": "lora"}, machine)

Choices are named like the wizard's questions (wizard/ask/questions): model (OTHER_MODEL: then model_other),
task, dataset (OWN_DATA: then dataset_path), language, strategy, epochs, batch_size: the questions asked
before the batch size, the only answers a machine-aware default reads.

Defaults come from a base recipe: the demo recipe for the demo model (package data,
wizard/assets/recipes/demo-shapes.yaml; recipes/demo-shapes.yaml is a link to it), so the demo answers
reproduce that file exactly; otherwise the Recipe schema's defaults with the model's recommended max_pixels.
Then the machine: no GPU -> the demo model and data; with GPUs -> the largest catalog model whose default
recipe fits even at the estimate's upper bound (+30%), LoRA when it fits at the usual batch size else QLoRA,
then the largest batch size that fits.

Planning, torch-free: the wizard's questions take their defaults from here, and `caption-wizard data FOLDER`
reads a folder with this machine's default recipe. Imports catalog, machine, estimate and recipe; nothing
here asks or prints.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from wizard.catalog import DATASETS, DEMO_DATASET_ID, DEMO_MODEL_ID, MODELS, is_demo_data, model_info
from wizard.machine import Machine

Choices = dict[str, Any]
OTHER_MODEL = "other"  # model: a ModelScope id or a local folder, given as model_other
OWN_DATA = "own"  # dataset: a folder or file, given as dataset_path
DEMO_RECIPE = resources.files("wizard") / "assets" / "recipes" / "demo-shapes.yaml"
CHOICES = ("model", "model_other", "task", "dataset", "dataset_path", "language", "strategy", "epochs",
           "batch_size")  # what proposed_recipe takes, in the order the wizard asks them
HEADROOM = 1 / 1.3  # a default must fit even at the estimate's upper bound (+30%): the summary says "fits"


# ----------------------------------------------------------------------------- what was chosen
def model_ref(choices: Choices) -> tuple[str, str]:
    """(model id or absolute folder, source) from the choices."""
    choice = choices.get("model", DEMO_MODEL_ID)
    if choice == OTHER_MODEL:
        ref = choices.get("model_other") or ""
        return ref, "local" if os.path.isabs(ref) else "modelscope"
    return choice, MODELS[choice].source if choice in MODELS else "modelscope"


def is_demo(choices: Choices) -> bool:
    return model_ref(choices)[1] == "demo"


def dataset_key(d) -> str:
    """A catalog dataset as the wizard's dataset choice names it: id, or id:subset."""
    return d.id if d.subset is None else f"{d.id}:{d.subset}"


DATASET_BY_KEY = {dataset_key(d): d for d in DATASETS}


def first_real_dataset() -> str:
    return next(dataset_key(d) for d in DATASETS if d.source != "builtin")


# ----------------------------------------------------------------------------- the base recipe
@functools.lru_cache(maxsize=1)
def demo_recipe() -> dict:
    """The demo recipe (package data) as a dict."""
    from wizard.errors import UserError
    from wizard.recipe import load_recipe

    with resources.as_file(DEMO_RECIPE) as path:
        if not path.is_file():
            raise UserError(f"the demo recipe is missing from the installed package: {path}",
                            hint="reinstall caption-wizard (./install.sh in a clone, or pip install)")
        return load_recipe(path).to_dict()


def base_recipe(choices: Choices) -> dict:
    """The recipe (as a dict) that defaults are read from, given the model/data/strategy choices."""
    from wizard.recipe import Recipe

    model_id, source = model_ref(choices)
    info = model_info(model_id or "unknown")
    if source == "demo":
        d = copy.deepcopy(demo_recipe())
    else:
        d = Recipe(name="x", model={"id": "x"}, data={"dataset": "x"}).to_dict()
        d["data"]["max_pixels"] = info.max_pixels
    d["model"].update(id=model_id, source=source)
    key = choices.get("dataset", DEMO_DATASET_ID if source == "demo" else first_real_dataset())
    if key == OWN_DATA:
        d["data"].update(dataset=choices.get("dataset_path") or "", subset=None, format="auto",
                         language=choices.get("language", "en"))
    elif not (source == "demo" and key == d["data"]["dataset"]):
        ds = DATASET_BY_KEY[key]
        d["data"].update(dataset=ds.id, subset=ds.subset, format=ds.format, language=ds.language)
    if "language" in choices:
        d["data"]["language"] = choices["language"]
    strategy = choices.get("strategy")
    if strategy and strategy != d["tuning"]["strategy"]:
        if strategy == "full":  # every weight moves: a tenth of the adapter learning rate
            d["train"]["learning_rate"] = d["train"]["learning_rate"] / 10
        d["tuning"]["strategy"] = strategy
    return d


# ----------------------------------------------------------------------------- machine-aware defaults
def fits(choices: Choices, machine: Machine) -> bool:
    """Whether the recipe these choices propose fits this machine with the headroom."""
    from wizard.estimate import estimate_memory

    recipe = proposed_recipe(choices, machine)
    est = estimate_memory(recipe, list(machine.gpus), ram_bytes=machine.ram_bytes, suggest=False)
    return est.capacity_bytes is None or est.per_device_bytes <= HEADROOM * est.capacity_bytes


def default_model(choices: Choices, machine: Machine) -> str:
    if not machine.gpus:
        return DEMO_MODEL_ID
    real = [m for m in MODELS.values() if m.needs_gpu]
    # largest first; among equals the later (newer) catalog entry
    order = sorted(real, key=lambda m: (-m.params_b, -list(MODELS).index(m.id)))
    for m in order:
        if fits({"model": m.id}, machine):
            return m.id
    return min(real, key=lambda m: m.params_b).id


def default_dataset(choices: Choices, machine: Machine) -> str:
    return DEMO_DATASET_ID if is_demo(choices) else first_real_dataset()


def default_strategy(choices: Choices, machine: Machine) -> str:
    base = base_recipe({k: v for k, v in choices.items() if k != "strategy"})["tuning"]["strategy"]
    if is_demo(choices) or not machine.gpus:
        return base
    batch = base_recipe(choices)["train"]["batch_size"]  # LoRA only if it fits without shrinking the batch
    return "lora" if fits({**choices, "strategy": "lora", "batch_size": batch}, machine) else "qlora"


def default_batch(choices: Choices, machine: Machine) -> int:
    base = base_recipe(choices)["train"]["batch_size"]
    if is_demo(choices) or not machine.gpus:
        return base
    b = base
    while b >= 1:
        if fits({**choices, "batch_size": b}, machine):
            return b
        b //= 2
    return base  # nothing fits: a smaller batch will not fix it (the summary suggests what will)


def default_accum(choices: Choices, machine: Machine) -> int:
    """Keeps the base recipe's effective batch (batch size x accumulation) when the batch size shrinks."""
    train = base_recipe(choices)["train"]
    return max(1, train["batch_size"] * train["grad_accum"] // choices.get("batch_size", train["batch_size"]))


def device_options(machine: Machine) -> list:
    """What launch.devices can be here, in the wizard's order: the GPU(s), each of several alone, the CPU."""
    gpus = machine.gpus
    out: list = []
    if len(gpus) == 1:
        out.append("auto")
    elif gpus:
        out.append([g.index for g in gpus])
        out += [[g.index] for g in gpus]
    out.append("cpu")
    return out


def default_devices(choices: Choices, machine: Machine) -> Any:
    base = base_recipe(choices)["launch"]["devices"]
    values = device_options(machine)
    return base if base in values else values[0]


def _slug(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text.lower()).strip("-._")
    return text or "run"


def _data_slug(choices: Choices, data: dict) -> str:
    """coco-en, coco-cn, shapes, or the folder/file name of your own data."""
    if choices.get("dataset") == OWN_DATA:
        what = Path(data["dataset"]).stem
    elif data["subset"] or is_demo_data(data):
        what = data["subset"] or data["dataset"]
    else:  # modelscope/coco_2014_caption -> coco-en
        what = f"{re.split(r'[_-]', data['dataset'].split('/')[-1])[0]}-{data['language']}"
    return _slug(what).replace("_", "-")


def default_name(choices: Choices, machine: Machine) -> str:
    model_id, source = model_ref(choices)
    base = base_recipe(choices)
    strategy = choices.get("strategy", base["tuning"]["strategy"])
    data = _data_slug(choices, base["data"])
    if source == "demo":
        demo = demo_recipe()
        if base["data"]["dataset"] != demo["data"]["dataset"]:
            name = f"demo-{data}"
        elif base["data"]["language"] != demo["data"]["language"]:
            name = f"{demo['name']}-{base['data']['language']}"
        else:
            name = demo["name"]
        return name if strategy == demo["tuning"]["strategy"] else f"{name}-{strategy}"
    model = re.sub(r"-instruct$", "", _slug(Path(model_id).name))
    return f"{model}-{data}-{strategy}"[:80].rstrip("-._")


# ----------------------------------------------------------------------------- the proposed recipe
DEFAULTS: dict[str, Callable[[Choices, Machine], Any]] = {
    "model": default_model, "dataset": default_dataset, "strategy": default_strategy, "batch_size": default_batch}


def proposed_recipe(choices: Choices, machine: Machine, *, source: str = "the wizard's answers"):
    """The recipe these choices (any subset of CHOICES, as the wizard leaves them: only the relevant ones)
    propose on this machine, every other setting at its default: what the wizard makes of the same answers
    (tests/test_defaults.py holds the two equal). Each default sees the choices before it."""
    from wizard.recipe import recipe_from_dict

    unknown = sorted(set(choices) - set(CHOICES))
    if unknown:
        raise ValueError(f"not a choice the defaults read: {', '.join(unknown)} (choices: {', '.join(CHOICES)})")
    c: Choices = {}
    for name in CHOICES:
        if name in choices:
            c[name] = choices[name]
        elif name in DEFAULTS:
            c[name] = DEFAULTS[name](c, machine)
    d = base_recipe(c)
    if "task" in c:
        d["task"] = c["task"]
    if "epochs" in c:
        d["train"]["epochs"] = c["epochs"]
    d["train"]["batch_size"] = c["batch_size"]
    d["train"]["grad_accum"] = default_accum(c, machine)
    if machine.gpus:
        devices = d["launch"]["devices"] = default_devices(c, machine)
        if isinstance(devices, list) and len(devices) > 1:
            d["launch"]["strategy"] = "ddp"  # a copy per GPU until the user picks a sharding
    d["name"] = default_name(c, machine)
    return recipe_from_dict(d, source)


def default_recipe(machine: Machine):
    """This machine's default recipe: what `caption-wizard new --defaults` writes, and what
    `caption-wizard data FOLDER` reads the folder with."""
    return proposed_recipe({}, machine, source="this machine's default recipe")
