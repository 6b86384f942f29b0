"""A griffe extension for the API reference: doctest examples in docstrings become code blocks.

fanfold's docstrings hold runnable examples (``>>> ff.run_sync(...)``, checked by pytest's
doctests). Markdown knows nothing of them: it would run them into the paragraph above and read
``x[0][0]`` as a link. This wraps each run of ``>>>`` lines, with their ``...`` continuations
and the output below them, in a ``pycon`` fence.

>>> fence_doctests("Example:\\n\\n>>> 1 + 1\\n2\\n\\nDone.")
'Example:\\n\\n```pycon\\n>>> 1 + 1\\n2\\n```\\n\\nDone.'
"""

from __future__ import annotations

from typing import Any

import griffe


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


class DoctestBlocks(griffe.Extension):
    """Fence the doctests of every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
