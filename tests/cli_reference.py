"""docs/reference/cli.md, generated from the real parser so it cannot drift.

    .venv/bin/python -m tests.cli_reference            # print the page
    .venv/bin/python -m tests.cli_reference --write    # replace docs/reference/cli.md

Each command's section is exactly what `caption-wizard COMMAND --help` prints at 100 columns.
tests/test_docs.py checks that the page in docs/ is what this makes.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reference" / "cli.md"
COLUMNS = "100"

HEAD = """# Command line reference

Every `caption-wizard` command with its flags and their defaults, as `caption-wizard COMMAND --help`
prints them (generated: `python -m tests.cli_reference --write`; a test fails when it drifts). What
each command is for, in one line each: the [README's command table](../../README.md#commands).

- `KEY=VALUE` overrides (`run`, `data`) are dotted recipe keys ([recipe reference](recipe.md)); they
  may also come after flags: `caption-wizard run RECIPE --plain train.epochs=1`.
- `--plain` (and any output that is not a terminal) prints one line per logged step instead of the
  live dashboard.
- A mistyped command gets a suggestion: `caption-wizard rnu` says "did you mean run?".
- Exit status: **0** done, **1** the run failed, **2** bad input (a recipe, an argument, a data
  file: the message names it and says what to do), **130** interrupted, with the state saved.
"""


@contextmanager
def _columns(value: str):
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = value  # argparse sizes its help to the terminal: fix it
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def render() -> str:
    from wizard.cli import build_parser

    with _columns(COLUMNS):
        parser = build_parser()
        parts = [HEAD, "## caption-wizard\n", "```\n" + parser.format_help().rstrip() + "\n```\n"]
        for name, command in subcommands(parser).items():
            parts += [f"## caption-wizard {name}\n", "```\n" + command.format_help().rstrip() + "\n```\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    page = render()
    if "--write" in sys.argv:
        PAGE.write_text(page, encoding="utf-8")
        print(f"wrote {PAGE}")
    else:
        print(page, end="")
