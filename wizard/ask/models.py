"""The wizard's model questions: the catalog grouped by family, with size, download and GPU need.

    Which model?      the demo, the Qwen-VL line (the defaults a machine gets), "More families ›", Other
    Which family?     LLaVA, InternVL, SmolVLM / Idefics, Google, Microsoft, Meta Llama, Mistral, GLM
    Which <family>?   its catalog models: parameters, download size, the GPU memory QLoRA needs

Two levels so that each list fits a 24-row terminal (the catalog has two dozen models). Pure:
answers and the machine in, choices out (wizard/ask/questions.py asks them).
"""

from __future__ import annotations

import functools

from wizard.catalog import MODELS

MORE_FAMILIES = "more-families"  # the model question's value that leads to the family questions
FIRST_LEVEL = ("Built in", "Qwen-VL")  # groups listed directly in the model question


def _group(m) -> str:
    return "Built in" if m.source == "demo" else m.group


def other_groups() -> list[str]:
    return [g for g in dict.fromkeys(_group(m) for m in MODELS.values()) if g not in FIRST_LEVEL]


def model_title(m, machine) -> str:
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


def first_level(choice_cls, machine) -> list:
    out = [choice_cls(model_title(m, machine), m.id, m.note or m.id, group=_group(m))
           for m in MODELS.values() if _group(m) in FIRST_LEVEL]
    names = ", ".join(other_groups())
    out.append(choice_cls(f"More families › {names}", MORE_FAMILIES,
                          "LLaVA-1.5/NeXT/OneVision, InternVL, SmolVLM, Idefics3, Gemma 3, PaliGemma 2, Florence-2, "
                          "Llama 3.2 Vision, Mistral 3 (Pixtral), GLM-4.1V", group="More"))
    return out


def family_choices(choice_cls) -> list:
    out = []
    for g in other_groups():
        models = [m for m in MODELS.values() if _group(m) == g]
        sizes = sorted(m.params_b for m in models)
        span = f"{sizes[0]:.1f}B" if len(sizes) == 1 else f"{sizes[0]:.1f}-{sizes[-1]:.1f}B"
        out.append(choice_cls(f"{g} · {', '.join(m.title for m in models)} · {span} params", g))
    return out


def pick_choices(choice_cls, group: str, machine) -> list:
    return [choice_cls(model_title(m, machine), m.id, m.note or m.id, group=m.row.title)
            for m in MODELS.values() if _group(m) == group]


def first_of(group: str | None) -> str:
    return next(m.id for m in MODELS.values() if _group(m) == (group or other_groups()[0]))
