"""Third-party log lines a user can do nothing about, silenced where they are emitted.

bitsandbytes (0.49+) tries, when imported on a CPU with AVX512-BF16, to fetch an optional CPU
4-bit matmul kernel from the Hugging Face hub (`kernels-community/quantization-bitsandbytes`
through the `kernels` package) and, without it, logs "Failed to load CPU gemm_4bit_forward ...
pip install kernels" from the logger `bitsandbytes.backends.cpu.ops`. peft and transformers
import bitsandbytes whenever it is installed, so every eval/caption/export and train.log showed
it, though only QLoRA on a CPU (the demo's 4-bit path) runs a 4-bit kernel at all, and even then
bitsandbytes falls back to its own dequantize-and-matmul: the hub kernel is a speed-up, offline
impossible anyway, and never needed. A filter on that one logger drops exactly that record.
`import wizard` installs it (before anything can import bitsandbytes).

DeepSpeed (installed with the dev extra, or `caption-wizard[deepspeed]`), which transformers
imports whenever it is there, logs "Setting accelerator to CPU. If you have GPU or other
accelerator, we were unable to detect it." on every CPU run: on the CPU that is the plan, not a
problem. Its "DeepSpeed" logger gets the same filter. kernels 0.19 (which transformers 5.25 requires)
says "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes' because
Hugging Face Hub is in offline mode" for the same optional kernel: filtered too.
"""

from __future__ import annotations

import logging

NOISE = {  # logger name -> the start of each message it drops
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward",),
    "DeepSpeed": ("Setting accelerator to CPU",),
    # kernels 0.19 (a transformers dependency), asked by bitsandbytes for that same hub kernel offline
    "kernels._internals.hf_hub": ("Skipping publisher trust check",),
}


class _DropNoise(logging.Filter):
    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def install() -> None:
    for name, starts in NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise(starts))
