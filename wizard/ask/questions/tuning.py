"""The tuning questions: the strategy (QLoRA, LoRA, full; each priced by the memory estimate) and the LoRA
adapter's rank; advanced: its alpha, target modules and dropout."""

from __future__ import annotations

from wizard.ask.questions.base import Answers, Choice, Question, fmt, number
from wizard.catalog import STRATEGIES, model_info
from wizard.defaults import base_recipe, default_strategy, model_ref, proposed_recipe
from wizard.machine import Machine


def _lora(a: Answers, m: Machine) -> bool:
    return a.get("strategy") in ("lora", "qlora")


def _strategy_choices(answers: Answers, machine: Machine) -> list[Choice]:
    """Each strategy with the memory of the recipe it proposes: the figure its default was chosen by."""
    from wizard.estimate import estimate_memory
    from wizard.units import fmt_bytes

    out = []
    for name, s in STRATEGIES.items():
        recipe = proposed_recipe({**answers, "strategy": name}, machine)
        est = estimate_memory(recipe, list(machine.gpus), ram_bytes=machine.ram_bytes, suggest=False)
        where = "RAM" if est.devices == ["cpu"] else ("per GPU" if machine.gpus else "GPU")
        n = est.per_device_bytes
        # precise enough that strategies which differ show different figures
        size = f"~{fmt_bytes(n, digits=2)} {where}"
        if recipe.train.batch_size != base_recipe(answers)["train"]["batch_size"]:
            size += f" at batch {recipe.train.batch_size}"
        if est.fits is False:
            size += f", more than the {fmt_bytes(est.capacity_bytes)} here"
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


def _default_alpha(answers: Answers, machine: Machine) -> int:
    lora = base_recipe(answers)["tuning"]["lora"]
    return max(1, round(lora["alpha"] * answers.get("lora_rank", lora["rank"]) / lora["rank"]))


def _catalog_targets(answers: Answers) -> list[str]:
    return list(model_info(model_ref(answers)[0] or "unknown").lora_targets)


def _default_targets(answers: Answers, machine: Machine) -> list[str]:
    return base_recipe(answers)["tuning"]["lora"]["target_modules"] or _catalog_targets(answers)


QUESTIONS = [
    Question("strategy", "select", "How to tune it?", key="tuning.strategy", choices=_strategy_choices,
             default=default_strategy),
    Question("lora_rank", "select", "LoRA rank (adapter size):", key="tuning.lora.rank", when=_lora,
             choices=_rank_choices),
    Question("lora_alpha", "text", "LoRA alpha (usually 2 x rank):", key="tuning.lora.alpha", when=_lora,
             advanced=True, parse=lambda t: number(t, int, "alpha"), default=_default_alpha),
    Question("lora_targets", "checkbox", "LoRA target modules (space toggles):", key="tuning.lora.target_modules",
             when=_lora, advanced=True, default=_default_targets,
             choices=lambda a, m: [Choice(t, t) for t in dict.fromkeys(_catalog_targets(a) + _default_targets(a, m))],
             to_recipe=lambda v, a: None if sorted(v) == sorted(_catalog_targets(a)) else list(v)),
    Question("lora_dropout", "text", "LoRA dropout (0 to 0.5; 0.05 is usual):", key="tuning.lora.dropout",
             when=_lora, advanced=True, parse=lambda t: number(t, float, "dropout", 0, 1, low_ok=True), show=fmt),
]
