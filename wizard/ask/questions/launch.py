"""The launch questions: which devices, how several GPUs share the model (priced per GPU), and (advanced)
how many machines take part."""

from __future__ import annotations

from typing import Any, Callable

from wizard.ask.questions.base import Answers, Choice, Question, number
from wizard.defaults import default_devices, device_options
from wizard.machine import Machine

RecipeOf = Callable[[Answers, Machine], Any]  # answers -> the Recipe they make (flow.answers_to_recipe)


def _device_choices(answers: Answers, machine: Machine) -> list[Choice]:
    by_index = {g.index: g for g in machine.gpus}

    def title(value: Any) -> str:
        if value == "cpu":
            return "CPU only · slow, fine for the demo"
        if value == "auto":  # the one GPU
            return machine.gpus[0].describe()
        if len(value) == 1:
            return f"{by_index[value[0]].describe()} only"
        return (f"All {len(value)} GPUs ({', '.join(str(i) for i in value)}) · one process per GPU "
                "(torchrun); next: how they share the model")

    return [Choice(title(v), v) for v in device_options(machine)]


def _sharing_choices(answers: Answers, machine: Machine, recipe_of: RecipeOf) -> list[Choice]:
    """A copy per GPU / FSDP shards / ZeRO-3, each with the memory estimate per GPU."""
    from wizard.units import fmt_bytes
    from wizard.launch import per_gpu_bytes

    recipe = recipe_of({k: v for k, v in answers.items() if k != "gpu_sharing"}, machine)
    used = [g for g in machine.gpus if g.index in answers["devices"]]
    ways = (("ddp", "A copy per GPU (DDP)", "fastest while the model fits one GPU"),
            ("fsdp", "FSDP shards", "weights, gradients and optimizer states split over the GPUs (torch FSDP)"),
            ("zero3", "DeepSpeed ZeRO-3 shards",
             "like FSDP, through DeepSpeed: pip install 'caption-wizard[deepspeed]'"))
    return [Choice(f"{title} · about {fmt_bytes(per_gpu_bytes(recipe, value, used))} per GPU", value, note)
            for value, title, note in ways]


def launch_questions(recipe_of: RecipeOf) -> list[Question]:
    """This group's questions. The sharing choices price the whole recipe the answers make, so they need
    `recipe_of`, which needs every question: flow.py passes it in (no import back into flow)."""
    return [
        Question("devices", "select", "Train on:", key="launch.devices", when=lambda a, m: bool(m.gpus),
                 choices=_device_choices, default=default_devices),
        Question("gpu_sharing", "select", "How should the GPUs share the model?", key="launch.strategy",
                 when=lambda a, m: isinstance(a.get("devices"), list) and len(a["devices"]) > 1,
                 choices=lambda a, m: _sharing_choices(a, m, recipe_of), default=lambda a, m: "ddp"),
        Question("nodes", "text", "Machines taking part (each runs the same recipe):", key="launch.nodes",
                 advanced=True, when=lambda a, m: bool(m.gpus), parse=lambda t: number(t, int, "machines", 1)),
    ]
