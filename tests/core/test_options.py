"""One typed option set for every entry point: a misspelt option fails type checking, and fails
at run time with an error that names it and the fix."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api

import fanfold as ff
from fanfold._options import RunOptions, Settings

ENTRY_POINTS: list[Callable[..., Any]] = [ff.run, ff.start, ff.as_completed, ff.run_sync, ff.as_completed_sync]

# mypy follows fanfold's core and nothing else (third-party packages and the wings are skipped:
# the entry points' options live in the core), so one check takes seconds, not a minute.
MYPY_CONFIG = """\
[mypy]
strict = True
follow_imports = skip
ignore_missing_imports = True

[mypy-fanfold,fanfold.*]
follow_imports = silent

[mypy-fanfold._llm.*,fanfold._teams.*,fanfold._cli.*,fanfold._store.*,fanfold._sim.*]
follow_imports = skip
"""

MISSPELT = """\
import fanfold as ff

spec = ff.map(str.upper)


async def main() -> None:
    await ff.run(spec, [1], limts=ff.Limits())
    async with ff.start(spec, [1], deadlin=5) as handle:
        await handle.result()
    async for _ in ff.as_completed(spec, [1], kep=True):
        pass


ff.run_sync(spec, [1], limts=ff.Limits())
for _ in ff.as_completed_sync(spec, [1], buffer=8, retyr=None):
    pass
ff.run_sync(spec, [1], deadline="soon")
"""

CORRECT = """\
import fanfold as ff

spec = ff.map(str.upper)


async def main() -> None:
    result = await ff.run(spec, ["a"], limits=ff.Limits(concurrency=2), deadline=5, keep=True)
    print(result.output)
    async with ff.start(spec, ["a"], retry=ff.RetryPolicy(retry_on=(ValueError,)), run_id="x") as handle:
        await handle.result()
    async for outcome in ff.as_completed(spec, ["a"], timeouts=ff.Timeouts(attempt=1.0)):
        print(outcome.status)


ff.run_sync(spec, ["a"], store="memory", metadata={"who": "me"}, budget=ff.Budget(requests=3))
for _ in ff.as_completed_sync(spec, ["a"], buffer=8, on_event=print, progress=False):
    pass
"""


def mypy_errors(tmp_path: Path, name: str, source: str) -> list[str]:
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    (tmp_path / name).write_text(source)
    out, err, _ = mypy_api.run(
        [
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            str(tmp_path / name),
        ]
    )
    assert not err, err
    return [line for line in out.splitlines() if ": error:" in line]


def test_a_misspelt_option_fails_type_checking_at_every_entry_point(tmp_path: Path) -> None:
    errors = mypy_errors(tmp_path, "misspelt.py", MISSPELT)
    expected = [
        (7, '"limts" for "run"'),
        (8, '"deadlin" for "start"'),
        (10, '"kep" for "as_completed"'),
        (14, '"limts" for "run_sync"'),
        (15, '"retyr" for "as_completed_sync"'),
    ]
    for line, words in expected:
        assert any(f"misspelt.py:{line}: error: Unexpected keyword argument {words}" in e for e in errors), (
            line,
            errors,
        )
    assert any("misspelt.py:17:" in e and '"deadline"' in e for e in errors), errors  # a value of the wrong type
    assert len(errors) == 6, errors


def test_correct_options_pass_type_checking(tmp_path: Path) -> None:
    assert mypy_errors(tmp_path, "correct.py", CORRECT) == []


def misspelt_call(entry: str) -> None:
    """Call the entry point named ``entry`` with ``limts=`` for ``limits=``."""
    spec = ff.map(str.upper)

    async def call_async() -> None:
        if entry == "run":
            await ff.run(spec, ["a"], limts=ff.Limits())  # type: ignore[call-arg]
        elif entry == "start":
            async with ff.start(spec, ["a"], limts=ff.Limits()):  # type: ignore[call-arg]
                pass
        else:
            async for _ in ff.as_completed(spec, ["a"], limts=ff.Limits()):  # type: ignore[call-arg]
                pass

    if entry == "run_sync":
        ff.run_sync(spec, ["a"], limts=ff.Limits())  # type: ignore[call-arg]
    elif entry == "as_completed_sync":
        list(ff.as_completed_sync(spec, ["a"], limts=ff.Limits()))  # type: ignore[call-arg]
    else:
        asyncio.run(call_async())


@pytest.mark.parametrize("entry", ["run", "start", "as_completed", "run_sync", "as_completed_sync"])
def test_a_misspelt_option_raises_naming_it_and_the_fix(entry: str) -> None:
    with pytest.raises(ff.UsageError, match=r"limts=.*no option 'limts'; did you mean limits=\?") as caught:
        misspelt_call(entry)
    assert isinstance(caught.value, TypeError)  # as Python's own "unexpected keyword argument" is


def test_an_option_with_no_close_match_lists_them_all() -> None:
    with pytest.raises(ff.UsageError, match="the options are limits, retry, timeouts, deadline"):
        ff.run_sync(ff.map(str.upper), ["a"], zzz=1)  # type: ignore[call-arg]


def test_values_are_still_checked() -> None:
    with pytest.raises(ff.UsageError, match=r"deadline='soon': pass the seconds"):
        ff.run_sync(ff.map(str.upper), ["a"], deadline="soon")  # type: ignore[arg-type]


def test_the_settings_are_the_typed_options_with_defaults() -> None:
    assert [f.name for f in dataclasses.fields(Settings)] == list(RunOptions.__annotations__)
    assert all(f.default is not dataclasses.MISSING for f in dataclasses.fields(Settings))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_shows_each_option_in_its_signature(entry: Callable[..., Any]) -> None:
    parameters = inspect.signature(entry).parameters
    for name in RunOptions.__annotations__:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, (entry, name)
    assert parameters["keep"].default is True
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def test_runs_docstring_lists_each_option() -> None:
    doc = textwrap.dedent(ff.run.__doc__ or "")
    for name in RunOptions.__annotations__:
        assert f"``{name}``" in doc, name
