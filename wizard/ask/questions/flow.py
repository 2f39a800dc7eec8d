"""The questions in the order they are asked, and the pure function from answers to a Recipe.

    recipe = answers_to_recipe({}, machine)                                  # every answer at its default
    recipe = answers_to_recipe({"model": "Qwen/Qwen2-VL-2B-Instruct", "strategy": "lora"}, machine)

An answer counts while its question is relevant (LoRA rank only for LoRA/QLoRA) and, for an advanced
question, while "Advanced settings?" is yes; every other question takes its default, which sees only the
answers before it. Defaults come from wizard/defaults.py (the base recipe and the machine-aware choices).
"""

from __future__ import annotations

from typing import Any

from wizard.ask.questions.base import Answers, Question, parse_name
from wizard.ask.questions.data import QUESTIONS as DATA
from wizard.ask.questions.launch import launch_questions
from wizard.ask.questions.model import QUESTIONS as MODEL
from wizard.ask.questions.training import QUESTIONS as TRAINING
from wizard.ask.questions.tuning import QUESTIONS as TUNING
from wizard.defaults import base_recipe, default_name
from wizard.machine import Machine


def _get(d: dict, key: str) -> Any:
    for part in key.split("."):
        d = d[part]
    return d


def _set(d: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        d = d[part]
    d[last] = value


def is_asked(q: Question, answers: Answers, machine: Machine) -> bool:
    """Whether `q` is put to the user, given the answers before it."""
    return q.relevant(answers, machine) and (not q.advanced or bool(answers.get("advanced")))


def default_for(q: Question, answers: Answers, machine: Machine) -> Any:
    """The default answer of `q` given the (completed) answers before it."""
    if q.default is not None:
        return q.default(answers, machine)
    if q.key is not None:
        return _get(base_recipe(answers), q.key)
    return None


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


def notices(q: Question, answers: Answers, machine: Machine) -> str | None:
    return q.notice(complete(answers, machine), machine) if q.notice else None


# ----------------------------------------------------------------------------- the questions, in order
ADVANCED = Question("advanced", "confirm", "Advanced settings? (precision, checkpoints, prompt, LoRA, schedule, "
                    "generation...)", default=lambda a, m: False)
NAME = Question("name", "text", "Recipe name:", key="name", parse=parse_name, default=default_name)

_DEFINED = {q.name: q for q in [*MODEL, *DATA, *TUNING, *TRAINING, *launch_questions(answers_to_recipe),
                                ADVANCED, NAME]}
ORDER = [
    # the common questions
    "model", "model_other", "task", "dataset", "dataset_path", "language", "strategy", "epochs", "batch_size",
    "learning_rate", "lora_rank", "max_pixels",
    "advanced",  # yes: the advanced questions below are asked; no: they keep their defaults
    "lora_alpha", "lora_targets", "data_format", "precision", "save_steps", "grad_accum", "gradient_checkpointing",
    "max_target_length", "prompt", "eval_fraction", "max_samples", "seed", "lora_dropout", "scheduler",
    "warmup_ratio", "weight_decay", "num_beams", "max_new_tokens",
    # where it runs (advanced: nodes), then its name, which sums up what was chosen
    "devices", "gpu_sharing", "nodes", "name",
]
assert sorted(ORDER) == sorted(_DEFINED), "every question is defined once and asked once"
QUESTIONS: list[Question] = [_DEFINED[name] for name in ORDER]
BY_NAME = {q.name: q for q in QUESTIONS}
MUST_ANSWER = {"model_other", "dataset_path"}  # no usable default: asked when they become relevant
