"""The task and data questions: the task, which data (a catalog set or your own), its language and
image size; advanced: its format, the instruction, the held-out fraction, a cap on examples."""

from __future__ import annotations

from wizard.ask.questions.base import (Answers, Choice, Question, fmt, number, parse_data_path,
                                       parse_optional_int, refuse)
from wizard.catalog import DATASETS, DEMO_DATASET_ID, TASKS, model_info, task_prompt
from wizard.defaults import OWN_DATA, base_recipe, dataset_key, default_dataset, model_ref
from wizard.machine import Machine


def _own(a: Answers, m: Machine) -> bool:
    return a.get("dataset") == OWN_DATA


def _language(answers: Answers) -> str:
    return base_recipe(answers)["data"]["language"]


def _default_prompt(answers: Answers, machine: Machine) -> str:
    return base_recipe(answers)["data"]["prompt"] or task_prompt(answers.get("task", "caption"), _language(answers))


def _dataset_choices(answers: Answers, machine: Machine) -> list[Choice]:
    out = [Choice(d.title, dataset_key(d), d.note or None) for d in DATASETS]
    out.append(Choice("My own data: a folder or file", OWN_DATA,
                      "a folder of images with captions, a COCO json, a messages jsonl, a csv ..."))
    return out


def _language_choices(answers: Answers, machine: Machine) -> list[Choice]:
    task = answers.get("task", "caption")
    return [Choice(f"English · prompt: {task_prompt(task, 'en')}", "en"),
            Choice(f"Chinese · prompt: {task_prompt(task, 'zh')}", "zh")]


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


def _format_choices(answers: Answers, machine: Machine) -> list[Choice]:
    from wizard.data.detect import FORMATS, WHY  # every format the readers know, as detection describes it

    return [Choice("auto · detect from the files", "auto")] + [
        Choice(f"{name} · {WHY[name]}", name) for name in FORMATS if name != "shapes"]


QUESTIONS = [
    Question("task", "select", "Task?", key="task", when=lambda a, m: len(TASKS) > 1,
             choices=lambda a, m: [Choice(t["title"], k) for k, t in TASKS.items()]),
    Question("dataset", "select", "Which data?", choices=_dataset_choices, default=default_dataset),
    Question("dataset_path", "text", "Folder or file with your images and captions:", when=_own,
             parse=parse_data_path, default=lambda a, m: ""),
    Question("language", "select", "Caption language? (the prompt follows it)", key="data.language",
             when=lambda a, m: _own(a, m) or a.get("dataset") == DEMO_DATASET_ID, choices=_language_choices),
    Question("max_pixels", "select", "Largest image size (caps image tokens, the usual cause of OOM):",
             key="data.max_pixels", choices=_pixel_choices),
    Question("data_format", "select", "Data format:", key="data.format", when=_own, advanced=True,
             choices=_format_choices),
    Question("prompt", "text", "Instruction given with each image:", key="data.prompt", advanced=True,
             default=_default_prompt, parse=lambda t: t.strip() or refuse("type an instruction"),
             to_recipe=lambda v, a: None if v == task_prompt(a.get("task", "caption"), _language(a)) else v),
    Question("eval_fraction", "text", "Fraction of images held out for evaluation:", key="data.eval_fraction",
             advanced=True, parse=lambda t: number(t, float, "eval fraction", 0, 1, low_ok=True), show=fmt),
    Question("max_samples", "text", "Use at most N examples (empty: all):", key="data.max_samples",
             advanced=True, parse=parse_optional_int),
]
