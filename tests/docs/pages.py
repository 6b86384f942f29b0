"""The code blocks of the documentation pages, and how each page says what it needs.

The convention the pages are written to (docs/development.md states it for authors):

- every ```python and ```bash block runs, in page order; the blocks of one page share one
  namespace (Python) and one fresh temporary folder as the working directory;
- a block right after a line ``<!-- skip: REASON -->`` does not run (only for blocks that need
  a real provider key);
- a page whose first lines hold ``<!-- needs: redis -->``, ``<!-- needs: postgres -->`` or
  ``<!-- needs: ray -->`` is skipped, with the reason, when that server cannot be reached;
- ```text, ```console, ```yaml and any other language are not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ("python", "bash")
SKIP = re.compile(r"^<!--\s*skip:\s*(.+?)\s*-->$")
NEEDS = re.compile(r"<!--\s*needs:\s*([a-z, ]+?)\s*-->")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
NEEDS_LINES = 5  # a page's needs are declared in its first lines


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, its code, the line its code starts on, and why it
    is not run (None: it runs)."""

    language: str
    code: str
    line: int
    skip: str | None = None

    @property
    def runs(self) -> bool:
        return self.language in RUN and self.skip is None


@dataclass(frozen=True)
class Page:
    path: Path
    blocks: list[Block]
    needs: list[str]

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


def pages() -> list[Path]:
    """README.md and every Markdown page of the site (not the hooks' folder)."""
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md") if "_hooks" not in p.parts)
    return [ROOT / "README.md", *docs]


def parse(path: Path) -> Page:
    """Split a page into its fenced blocks; a fence closes on the same character, at least as long."""
    lines = path.read_text(encoding="utf-8").splitlines()
    head = "\n".join(lines[:NEEDS_LINES])
    needs = [need.strip() for match in NEEDS.finditer(head) for need in match.group(1).split(",")]
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, info = match.group("fence"), match.group("info").strip()
        language = info.split()[0].lower() if info else ""
        previous = _previous_line(lines, i)
        skip = SKIP.match(previous)
        end = i + 1
        while end < len(lines) and not re.match(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", lines[end]):
            end += 1
        if end == len(lines):
            raise ValueError(f"{path}:{i + 1}: a code fence that is never closed")
        code = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(Block(language, code, i + 2, skip.group(1) if skip else None))
        i = end + 1
    return Page(path, blocks, needs)


def _previous_line(lines: list[str], index: int) -> str:
    """The line right above a fence (blank lines between do not count)."""
    for line in reversed(lines[:index]):
        if line.strip():
            return line.strip()
    return ""
