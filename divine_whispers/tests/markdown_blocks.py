"""The shell blocks of a documentation page, for tests that run them as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def section(text: str, heading: str) -> str:
    """The lines under `heading` up to the next heading of the same or a higher level
    (a `#` line inside a code block is a shell comment, not a heading)."""
    level = len(heading.split(" ")[0])
    lines, inside, fenced = [], False, False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and (m := re.match(r"(#+) ", line)):
            if inside and len(m.group(1)) <= level:
                break
            inside = inside or line.rstrip("\n") == heading
        if inside:
            lines.append(line)
    assert lines, f"no section {heading!r}"
    return "".join(lines)


def shell_blocks(path: str, *headings: str) -> list[str]:
    """Every ```sh block under each of `headings` of the page at `path`, in order."""
    text = (ROOT / path).read_text()
    return [block for heading in headings for block in BLOCK.findall(section(text, heading))]
