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
"""

from __future__ import annotations

import logging

NOISE = ("Failed to load CPU gemm_4bit_forward",)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISE)


def install() -> None:
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _DropNoise) for f in logger.filters):
        logger.addFilter(_DropNoise())
