"""A griffe extension for the API reference: fanfold's docstrings, written for ``help()`` and
doctests, read as Markdown.

- Doctest examples (``>>> ff.run_sync(...)``, run by pytest) become ``pycon`` code blocks: bare,
  Markdown would run them into the paragraph above and read ``x[0][0]`` as a link.
- Sphinx roles (``:class:`Result```, ``:func:`~fanfold.run```) become inline code: the name, or
  with ``~`` its last part.

>>> to_markdown("See :class:`Result`.\\n\\n>>> 1 + 1\\n2\\n\\nDone.")
'See `Result`.\\n\\n```pycon\\n>>> 1 + 1\\n2\\n```\\n\\nDone.'
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")


def to_markdown(text: str) -> str:
    """A docstring with its roles as inline code and its doctests fenced."""
    return fence_doctests(ROLE.sub(_role, text))


def _role(match: re.Match[str]) -> str:
    short, name = match.group(1), match.group(2)
    return f"`{name.rsplit('.', 1)[-1] if short else name}`"


def fence_doctests(text: str) -> str:
    """Wrap each doctest (a ``>>>`` line to the next blank line) in a ``pycon`` fence."""
    out: list[str] = []
    inside = False
    indent = ""
    for line in text.splitlines():
        stripped = line.lstrip()
        if not inside and stripped.startswith(">>>"):
            inside, indent = True, line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
        elif inside and not stripped:
            inside = False
            out.append(f"{indent}```")
        out.append(line)
    if inside:
        out.append(f"{indent}```")
    return "\n".join(out)


class SphinxToMarkdown(griffe.Extension):
    """Rewrite every docstring griffe loads (see the module docstring)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
