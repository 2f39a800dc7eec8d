"""The training questions: epochs, batch size (the largest that fits), learning rate; advanced: precision,
checkpoints, accumulation, gradient checkpointing, lengths, seed, the schedule, and captioning settings."""

from __future__ import annotations

from wizard.ask.questions.base import Answers, Choice, Question, fmt, number
from wizard.defaults import default_accum, default_batch
from wizard.machine import Machine


def _precision_choices(answers: Answers, machine: Machine) -> list[Choice]:
    return [Choice("auto · bf16 where supported, fp16 on older GPUs, fp32 on CPU", "auto"),
            Choice("bf16", "bf16"), Choice("fp16 · older GPUs (V100, T4)", "fp16"),
            Choice("fp32 · exact, twice the memory", "fp32")]


QUESTIONS = [
    Question("epochs", "text", "Epochs (passes over the training data):", key="train.epochs",
             parse=lambda t: number(t, float, "epochs"), show=fmt),
    Question("batch_size", "text", "Batch size (images per step, per device):", key="train.batch_size",
             parse=lambda t: number(t, int, "batch size"), default=default_batch),
    Question("learning_rate", "text", "Learning rate:", key="train.learning_rate",
             parse=lambda t: number(t, float, "learning rate", 0, 1), show=fmt),
    Question("precision", "select", "Precision:", key="train.precision", advanced=True, choices=_precision_choices),
    Question("save_steps", "text", "Save a checkpoint every N steps:", key="train.save_steps", advanced=True,
             parse=lambda t: number(t, int, "save interval")),
    Question("grad_accum", "text", "Gradient accumulation steps (effective batch = batch size x this):",
             key="train.grad_accum", advanced=True, parse=lambda t: number(t, int, "grad_accum"),
             default=default_accum),
    Question("gradient_checkpointing", "select", "Gradient checkpointing:", key="train.gradient_checkpointing",
             advanced=True, choices=lambda a, m: [
                 Choice("auto · off when the model fits without it (faster), else on", "auto"),
                 Choice("on · less memory, each layer computed twice (~30% slower)", True),
                 Choice("off · fastest, most memory", False)]),
    Question("max_target_length", "text", "Longest caption in tokens (longer ones are cut):",
             key="train.max_target_length", advanced=True, parse=lambda t: number(t, int, "length")),
    Question("seed", "text", "Random seed:", key="train.seed", advanced=True,
             parse=lambda t: number(t, int, "seed", None)),
    Question("scheduler", "select", "Learning-rate schedule:", key="train.scheduler", advanced=True,
             choices=lambda a, m: [Choice("cosine · decays smoothly to 0", "cosine"),
                                   Choice("linear · decays in a straight line to 0", "linear"),
                                   Choice("constant", "constant"),
                                   Choice("constant after warmup", "constant_with_warmup")]),
    Question("warmup_ratio", "text", "Warmup (fraction of the steps the learning rate ramps up):",
             key="train.warmup_ratio", advanced=True,
             parse=lambda t: number(t, float, "warmup", 0, 1, low_ok=True), show=fmt),
    Question("weight_decay", "text", "Weight decay (0: none; 0.01 is usual for full fine-tunes):",
             key="train.weight_decay", advanced=True,
             parse=lambda t: number(t, float, "weight decay", 0, None, low_ok=True), show=fmt),
    Question("num_beams", "text", "Beams when captioning (1: greedy, fastest):", key="generation.num_beams",
             advanced=True, parse=lambda t: number(t, int, "beams")),
    Question("max_new_tokens", "text", "Longest generated caption in tokens:", key="generation.max_new_tokens",
             advanced=True, parse=lambda t: number(t, int, "max new tokens")),
]
