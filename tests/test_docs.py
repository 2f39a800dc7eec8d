"""The docs hold together: the README stays short, every relative link lands on a file (and on a
heading, by GitHub's anchor rules), and the CLI reference is what `--help` prints today."""

from __future__ import annotations

import argparse
import re
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").rglob("*.md"))
PAGES = [README, *DOCS]

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `#` in a shell block is not a heading, nor a link)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading (github-slugger): markup dropped, lower case, every character that
    is not a letter, digit, `_`, `-` or space removed, spaces to hyphens (no collapsing)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LMN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")  # a repeated heading gets -1, -2, ...
    return out


def links(path: Path) -> list[str]:
    found = []
    for line in _prose(path.read_text(encoding="utf-8")):
        line = re.sub(r"`[^`]*`", "", line)  # `[x](y)` in inline code is not a link
        found += LINK.findall(line)
    return found


def test_slug_follows_githubs_rules():
    assert slug("What happens when…") == "what-happens-when"
    assert slug("Filtering: CLIP score, image size, near-duplicates") == "filtering-clip-score-image-size-near-duplicates"
    assert slug("No questions: `new --defaults`") == "no-questions-new---defaults"
    assert slug("Serving: dynamic batching (`bench/serve_load.py --rounds 2`)") == \
        "serving-dynamic-batching-benchserve_loadpy---rounds-2"
    assert slug("AI-ModelScope/M3IT (mirror) — subsets `coco-cn`") == "ai-modelscopem3it-mirror--subsets-coco-cn"


def test_readme_has_at_most_300_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 300, f"README.md has {lines} lines: move the detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_a_file_and_a_heading(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:...: not ours to check
            continue
        file_part, _, fragment = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{fragment} in {dest.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_the_docs_tree_is_linked_from_the_readme_or_another_page():
    reached = {(page.parent / t.partition("#")[0]).resolve() for page in PAGES for t in links(page)
               if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and t.partition("#")[0]}
    orphans = [p.relative_to(ROOT).as_posix() for p in DOCS if p.resolve() not in reached]
    assert not orphans, f"pages nobody links to: {orphans}"


def test_cli_reference_lists_every_command_and_option():
    from wizard.cli import build_parser

    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    headings = anchors(ROOT / "docs" / "reference" / "cli.md")
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        assert f"caption-wizard-{name}" in headings, name
        section = page.split(f"## caption-wizard {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in command._actions:
            for option in action.option_strings:
                assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", section), (name, option)


def test_cli_reference_is_what_help_prints_today():
    from tests import cli_reference

    assert (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8") == cli_reference.render(), \
        "the command line changed: python -m tests.cli_reference --write"
