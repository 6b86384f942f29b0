"""The generated reference covers the code: every public name, command, option, pipeline field,
error and event; and the hand-written words beside them (fixes, meanings) cover every name."""

from __future__ import annotations

import doctest
import importlib.util
import re
import sys
from types import ModuleType

import pytest
from tests.docs.pages import ROOT

import fanfold
from fanfold import events


def _hook(name: str) -> ModuleType:
    """A module of docs/_hooks (MkDocs loads them by path; so does this)."""
    path = ROOT / "docs" / "_hooks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"docs_hooks_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


reference = _hook("reference")
docstrings = _hook("docstrings")
API_PAGE = (ROOT / "docs" / "reference" / "api.md").read_text(encoding="utf-8")


def test_every_public_name_is_in_the_api_reference() -> None:
    documented = set(re.findall(r"^::: fanfold\.(\w+)$", API_PAGE, flags=re.M))
    assert set(fanfold.__all__) - documented == set()
    assert documented - set(fanfold.__all__) - {"testing"} == set()  # nothing stale either


def test_every_reference_page_asks_for_its_generated_section() -> None:
    for page, name in [("cli", "cli"), ("pipeline-schema", "pipeline-schema"), ("errors", "errors"),
                       ("events", "events")]:  # fmt: skip
        text = (ROOT / "docs" / "reference" / f"{page}.md").read_text(encoding="utf-8")
        assert f"<!-- generated: {name} -->" in text
    rendered = reference.on_page_markdown("before\n<!-- generated: events -->\nafter")
    assert "generated:" not in rendered
    assert "`events.TaskRetrying`" in rendered


def test_the_cli_reference_has_every_command_and_option() -> None:
    import typer.main

    from fanfold._cli._app import app

    text = reference.cli_markdown()
    root = typer.main.get_command(app)
    seen = 0

    def walk(command: object, path: list[str]) -> None:
        nonlocal seen
        for name, sub in getattr(command, "commands", {}).items():
            assert f"`{' '.join([*path, name])}`" in text
            for param in sub.params:
                for opt in param.opts:
                    if opt.startswith("-") and opt != "--help":
                        assert opt in text, f"{opt} of {' '.join([*path, name])} is not in the reference"
                        seen += 1
            walk(sub, [*path, name])

    walk(root, ["fanfold"])
    assert seen >= 40
    assert "fanfold runs resume" in text
    assert "--take-over" in text
    assert "130 interrupted by Ctrl-C" in text  # the exit codes, from the app's epilog


def test_the_pipeline_schema_reference_has_every_field_with_its_meaning() -> None:
    text = reference.pipeline_schema_markdown()
    for model in reference.pipeline_models():
        assert set(model.model_fields) == set(reference.PIPELINE_FIELDS[model.__name__]), model.__name__
        for field in model.model_fields:
            assert f"| `{field}` |" in text
    assert "| `n` | integer | `5` |" in text  # a vote's default, from the schema
    assert "one of: `plan`, `delegate`" in text


def test_every_public_error_has_its_fix() -> None:
    errors = reference.public_errors()
    names = {cls.__name__ for cls in errors}
    assert {"FanfoldError", "UsageError", "RunFailed", "BudgetExhausted", "WorkerLost", "Retry"} <= names
    assert names == set(reference.ERROR_FIXES)
    text = reference.errors_markdown()
    for cls in errors:
        assert f"### `{cls.__name__}`" in text
    assert text.index("### `FanfoldError`") < text.index("### `RunError`") < text.index("### `RunFailed`")
    assert "`VoteFailed` < `FanoutFailed` < `RunError` < `FanfoldError`" in text


def test_every_event_is_described() -> None:
    assert set(events.__all__) == set(reference.EVENT_WHEN)
    text = reference.events_markdown()
    for name in events.__all__:
        assert f"`events.{name}`" in text
    order = [text.index(f"`events.{name}`") for name in ("RunStarted", "TaskQueued", "TaskSucceeded", "RunFinished")]
    assert order == sorted(order)  # in the order a run emits them


@pytest.mark.parametrize(
    ("docstring", "fenced"),
    [
        ("Text.\n\n>>> 1 + 1\n2\n\nMore.", "Text.\n\n```pycon\n>>> 1 + 1\n2\n```\n\nMore."),
        ("    >>> x = [1]\n    >>> x[0][0]", "    ```pycon\n    >>> x = [1]\n    >>> x[0][0]\n    ```"),
        ("No example here.", "No example here."),
    ],
)
def test_doctests_in_docstrings_become_code_blocks(docstring: str, fenced: str) -> None:
    assert docstrings.fence_doctests(docstring) == fenced


def test_sphinx_roles_become_inline_code() -> None:
    text = "Returns a :class:`Result`; see :func:`~fanfold.run` and :py:meth:`Run.cancel`."
    assert docstrings.to_markdown(text) == "Returns a `Result`; see `run` and `Run.cancel`."


def test_the_hooks_docstring_examples_hold() -> None:
    for module in (reference, docstrings):
        assert doctest.testmod(module).failed == 0
