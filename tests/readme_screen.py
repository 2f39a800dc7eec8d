"""The README's first screen, captured from the real `caption-wizard new` so it cannot drift.

    .venv/bin/python -m tests.readme_screen            # print the capture
    .venv/bin/python -m tests.readme_screen --write    # replace the block in README.md

It runs the installed console script in a pseudo-terminal (100x40, no GPU: the offline demo's
defaults), presses Enter at every question, saves, declines to train, and returns what the
terminal showed: the answered questions (the screen just before the summary clears it), the
summary screen, and the lines after "Save". tests/test_wizard_pty.py compares it with README.md,
with the machine's RAM figures masked (they differ between machines).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START, END = "<!-- screen: tests/readme_screen.py -->", "<!-- /screen -->"
ROWS, COLS = 40, 100
CLEAR = "\x1b[2J"
QUESTIONS = ["Which model do you want to fine-tune?", "Which data?", "Caption language?", "How to tune it?",
             "Epochs", "Batch size", "Learning rate", "LoRA rank", "Largest image size", "Advanced settings?",
             "Recipe name"]


def capture() -> str:
    import pexpect
    import pyte

    from tests.conftest import CLI, cli_env

    env = cli_env(TERM="xterm-256color", CAPTION_WIZARD_FAKE_GPUS="", PROMPT_TOOLKIT_NO_CPR="1",
                  LINES=str(ROWS), COLUMNS=str(COLS))
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.Stream(screen)
    frames: list[str] = []

    def shown() -> str:
        return "\n".join(line.rstrip() for line in screen.display).strip("\n")

    class Feed:  # every chunk the child prints; the screen is kept just before each clear
        def write(self, data: str) -> None:
            while CLEAR in data:
                before, _, data = data.partition(CLEAR)
                stream.feed(before)
                frames.append(shown())
                stream.feed(CLEAR)
            stream.feed(data)

        def flush(self) -> None:
            pass

    with tempfile.TemporaryDirectory() as tmp:
        child = pexpect.spawn(CLI, ["new"], cwd=tmp, env=env, dimensions=(ROWS, COLS), encoding="utf-8",
                              timeout=60)
        child.logfile_read = Feed()
        for question in QUESTIONS:  # Enter: every suggested answer
            child.expect_exact(question)
            child.send("\r")
        child.expect_exact("← Back: the last question")
        summary = shown()
        child.send("\r")
        child.expect_exact("Start training now?")
        child.send("n")
        child.expect(pexpect.EOF)
        child.close()
        after = shown()
    questions = frames[0] if frames else ""
    tail = after[after.index("? Save this recipe?"):] if "? Save this recipe?" in after else after
    summary = summary[: summary.index("? Save this recipe?")].rstrip()
    return "\n".join([questions, summary, tail]).rstrip() + "\n"


def normalize(text: str) -> str:
    """Mask what differs between machines (RAM and CPU count) and trailing spaces."""
    text = re.sub(r"\d+ CPU cores, \d+(\.\d+)? GiB RAM", "N CPU cores, X GiB RAM", text)
    text = re.sub(r"of \d+(\.\d+)? GiB", "of X GiB", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def readme_block() -> str:
    text = README.read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0]
    return block.strip().removeprefix("```").removesuffix("```").strip("\n")


def write(screen: str) -> None:
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{START}\n```\n{screen.rstrip()}\n```\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    shot = capture()
    if "--write" in sys.argv:
        write(shot)
        print(f"wrote the screen into {README}")
    else:
        print(shot)
