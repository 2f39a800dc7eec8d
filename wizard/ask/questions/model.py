"""The model questions: which model to fine-tune (a catalog entry, or another id or folder)."""

from __future__ import annotations

from wizard.ask.questions.base import Answers, Choice, Question, parse_model_ref
from wizard.catalog import MODELS
from wizard.defaults import OTHER_MODEL, default_model, model_ref
from wizard.machine import Machine


def _model_choices(answers: Answers, machine: Machine) -> list[Choice]:
    out = []
    for m in MODELS.values():
        title = m.title if not m.needs_gpu else f"{m.title} · {m.params_b:.1f}B params"
        if m.needs_gpu and not machine.gpus:
            title += " · needs a CUDA GPU"
        out.append(Choice(title, m.id, m.note or m.id))
    out.append(Choice("Other: a ModelScope id or a local folder", OTHER_MODEL,
                      "e.g. Qwen/Qwen2-VL-2B-Instruct, or a folder with config.json and weights"))
    return out


def _model_notice(answers: Answers, machine: Machine) -> str | None:
    model_id, source = model_ref(answers)
    if source != "demo" and not machine.gpus:
        name = MODELS[model_id].title if model_id in MODELS else model_id
        return (f"Training {name} needs a CUDA GPU and this machine has none. You can still save the "
                "recipe and replay it on a GPU machine with `caption-wizard run`.")
    return None


QUESTIONS = [
    Question("model", "select", "Which model do you want to fine-tune?",
             choices=_model_choices, default=default_model, notice=_model_notice),
    Question("model_other", "text", "ModelScope id or local folder:",
             when=lambda a, m: a.get("model") == OTHER_MODEL, parse=parse_model_ref,
             default=lambda a, m: ""),
]
