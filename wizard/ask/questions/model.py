"""The model questions: which model to fine-tune (a catalog entry, or another id or folder).

    Which model?       the demo, the Qwen-VL line (the defaults a machine gets), "More families ›", Other
    Which family?      LLaVA, InternVL, SmolVLM / Idefics, Google, Microsoft, Meta Llama, Mistral, GLM
    Which model?       that family's catalog models: parameters, download size, the GPU memory QLoRA needs

Two levels so that each list fits a 24-row terminal (the catalog has two dozen models).
"""

from __future__ import annotations

import functools

from wizard.ask.questions.base import Answers, Choice, Question, parse_model_ref
from wizard.catalog import MODELS
from wizard.defaults import (FIRST_LEVEL_GROUPS, MORE_FAMILIES, OTHER_MODEL, default_model, first_of_group,
                             model_group, model_ref, other_groups)
from wizard.machine import Machine


def _title(m, machine: Machine) -> str:
    title = m.title
    if m.source != "demo":
        title += f" · {m.params_b:.1f}B params · {m.download_gb:.1f} GB download"
        title += f" · QLoRA needs ~{qlora_gb(m.id):.0f} GB GPU" if m.needs_gpu else " · CPU or GPU"
    if m.needs_gpu and not machine.gpus:
        title += " · needs a CUDA GPU"
    return title


@functools.lru_cache(maxsize=64)
def qlora_gb(model_id: str) -> float:
    """GPU memory for QLoRA at batch 1 with checkpointing (the least a model trains with), GiB."""
    from wizard.estimate import estimate_memory
    from wizard.recipe import Recipe

    r = Recipe(name="x", model={"id": model_id}, data={"dataset": "x", "max_pixels": MODELS[model_id].max_pixels},
               tuning={"strategy": "qlora"}, train={"batch_size": 1, "gradient_checkpointing": True})
    return estimate_memory(r, [], suggest=False).per_device_bytes / 1024**3


def _model_choices(answers: Answers, machine: Machine) -> list[Choice]:
    out = [Choice(_title(m, machine), m.id, m.note or m.id, group=model_group(m))
           for m in MODELS.values() if model_group(m) in FIRST_LEVEL_GROUPS]
    out.append(Choice(f"More families › {', '.join(other_groups())}", MORE_FAMILIES,
                      "LLaVA-1.5/NeXT/OneVision, InternVL, SmolVLM, Idefics3, Gemma 3, PaliGemma 2, Florence-2, "
                      "Llama 3.2 Vision, Mistral 3 (Pixtral), GLM-4.1V", group="More"))
    out.append(Choice("Other: a ModelScope id or a local folder", OTHER_MODEL,
                      "e.g. Qwen/Qwen2-VL-2B-Instruct, or a folder with config.json and weights", group="Other"))
    return out


def _family_choices(answers: Answers, machine: Machine) -> list[Choice]:
    out = []
    for g in other_groups():
        models = [m for m in MODELS.values() if model_group(m) == g]
        sizes = sorted(m.params_b for m in models)
        span = f"{sizes[0]:.1f}B" if len(sizes) == 1 else f"{sizes[0]:.1f}-{sizes[-1]:.1f}B"
        out.append(Choice(f"{g} · {', '.join(m.title for m in models)} · {span} params", g))
    return out


def _pick_choices(answers: Answers, machine: Machine) -> list[Choice]:
    group = answers.get("model_family")
    return [Choice(_title(m, machine), m.id, m.note or m.id, group=m.row.title)
            for m in MODELS.values() if model_group(m) == group]


def _model_notice(answers: Answers, machine: Machine) -> str | None:
    if answers.get("model") == MORE_FAMILIES and "model_pick" not in answers:
        return None  # the family questions come first
    model_id, source = model_ref(answers)
    if source != "demo" and not machine.gpus:
        name = MODELS[model_id].title if model_id in MODELS else model_id
        return (f"Training {name} needs a CUDA GPU and this machine has none. You can still save the "
                "recipe and replay it on a GPU machine with `caption-wizard run`.")
    return None


def _more(a: Answers, m: Machine) -> bool:
    return a.get("model") == MORE_FAMILIES


QUESTIONS = [
    Question("model", "select", "Which model do you want to fine-tune?",
             choices=_model_choices, default=default_model, notice=_model_notice),
    Question("model_family", "select", "Which model family?", when=_more, choices=_family_choices),
    Question("model_pick", "select", "Which model?", when=_more, choices=_pick_choices,
             default=lambda a, m: first_of_group(a.get("model_family")), notice=_model_notice),
    Question("model_other", "text", "ModelScope id or local folder:",
             when=lambda a, m: a.get("model") == OTHER_MODEL, parse=parse_model_ref,
             default=lambda a, m: ""),
]
