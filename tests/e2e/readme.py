"""The code blocks of README.md, read at test time so that tests running them cannot
drift from what a reader copies."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_HEADING = re.compile(r"^(#+) (.+)$")
_FENCE = re.compile(r"^```(\w*)\s*$")


def code_blocks(title: str, language: str) -> list[str]:
    """The fenced blocks marked `language` under the heading `title` (up to the next
    heading of its level or above), in order; fails when there is none."""
    level: int | None = None
    blocks: list[str] = []
    fence: tuple[str, list[str]] | None = None
    for line in README.read_text(encoding="utf-8").splitlines():
        if fence is not None:  # inside a block, a `#` line is code, not a heading
            if line.strip() == "```":
                if level is not None and fence[0] == language:
                    blocks.append("\n".join(fence[1]) + "\n")
                fence = None
            else:
                fence[1].append(line)
            continue
        opening = _FENCE.match(line)
        if opening is not None:
            fence = (opening.group(1), [])
            continue
        heading = _HEADING.match(line)
        if heading is None:
            continue
        depth = len(heading.group(1))
        if level is not None and depth <= level:
            break
        if level is None and heading.group(2).strip() == title:
            level = depth
    if not blocks:
        raise AssertionError(f"README.md has no {language} block under {title!r}")
    return blocks
