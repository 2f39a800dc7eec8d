"""The README and its docs stay true: the recipe reference (docs/reference/recipe.md) lists every
recipe key, CI runs the README's commands, and the README names every command."""

from __future__ import annotations

import re

from pydantic import BaseModel

from tests.conftest import ROOT
from wizard.recipe import Recipe

README = (ROOT / "README.md").read_text(encoding="utf-8")
RECIPE_REFERENCE = (ROOT / "docs" / "reference" / "recipe.md").read_text(encoding="utf-8")


def _keys(cls: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in cls.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_recipe_reference_lists_every_key_and_nothing_else():
    section = RECIPE_REFERENCE.split("## Every key", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_.]+)` \|", section, flags=re.M)
    assert sorted(documented) == sorted(_keys(Recipe))


def test_ci_runs_the_readme_install_and_test_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(\./install\.sh|\.venv/bin/pytest.*)$", quick, flags=re.M)
    assert "./install.sh" in commands and any(c.startswith(".venv/bin/pytest") for c in commands)
    for command in commands:
        assert command in ci.splitlines(), command


def test_every_cli_command_is_documented():
    from wizard.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in sub.choices:
        assert f"caption-wizard {name}" in README, name
