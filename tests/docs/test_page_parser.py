"""How the code-block runner reads a page: which blocks run, which are skipped and why, what a
page needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.docs.pages import parse

PAGE = """\
# A guide
<!-- needs: redis, postgres -->

```python
x = 1
```

<!-- skip: needs a real OpenAI key -->
```bash
fanfold demo --model openai:gpt-5-mini
```

````markdown
```python
not run: inside another fence
```
````

```yaml
model: openai:gpt-5-mini
```

```text
make demo
```

```bash
echo ok
```
"""


def test_blocks_languages_skips_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "page.md"
    path.write_text(PAGE, encoding="utf-8")
    page = parse(path)
    assert page.needs == ["redis", "postgres"]
    assert [(b.language, b.runs) for b in page.blocks] == [
        ("python", True),
        ("bash", False),
        ("markdown", False),
        ("yaml", False),
        ("text", False),
        ("bash", True),
    ]
    assert page.blocks[1].skip == "needs a real OpenAI key"
    assert page.blocks[0].code == "x = 1\n"
    assert page.blocks[0].line == 5  # the code's first line, for tracebacks
    assert "not run" in page.blocks[2].code  # the inner fence is part of the outer block


def test_needs_are_read_from_the_first_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "page.md"
    path.write_text("# Title\n\n\n\n\n\n<!-- needs: ray -->\n", encoding="utf-8")
    assert parse(path).needs == []


def test_an_unclosed_fence_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "page.md"
    path.write_text("# Title\n\n```python\nx = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"page\.md:3: a code fence that is never closed"):
        parse(path)
