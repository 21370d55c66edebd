"""The README's "Your first function" section, and the files its code blocks spell out."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Your first function\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def files_of_the_section() -> dict[str, str]:
    """Every code block that starts with its file's path (``# schema.py``, ``// client.mjs``)."""
    found = {}
    for block in re.findall(r"```(?:python|js)\n(.*?)```", section(), flags=re.DOTALL):
        first, _, rest = block.partition("\n")
        match = re.fullmatch(r"(?:#|//) ([\w/]+\.(?:py|mjs))", first.strip())
        assert match, f"a block of the section names no file: {first!r}"
        found[match.group(1)] = rest
    return found
