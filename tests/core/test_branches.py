"""Branches that are independent: state copied per branch, channels scoped, once per success,
and rebuilt on resume."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fanfold as ff
from fanfold._store._sqlite import SQLiteStore

NO_WAIT = {"initial": 0.0, "max_delay": 0.0}


def seed(x: Any, ctx: ff.Context) -> Any:
    ctx.state["trail"] = ["seed"]
    return x


def test_parallel_branches_never_see_each_others_state_nor_leak_into_the_parent() -> None:
    def branch(name: str) -> ff.FunctionAgent:
        @ff.agent(name=name)
        async def append(x: Any, ctx: ff.Context) -> list[str]:
            ctx.state["trail"].append(name)
            await asyncio.sleep(0)  # let the siblings append too
            return list(ctx.state["trail"])

        return append

    def after(views: dict[str, list[str]], ctx: ff.Context) -> dict[str, Any]:
        return {"views": views, "parent": ctx.state["trail"]}

    spec = ff.sequence(seed, ff.parallel(branch("a"), branch("b"), branch("c")), after)
    result = ff.run_sync(spec, None).output
    assert result["views"] == {"a": ["seed", "a"], "b": ["seed", "b"], "c": ["seed", "c"]}
    assert result["parent"] == ["seed"]  # the seed flowed to the next step; the branches' appends did not


def test_state_flows_from_one_sequence_step_to_the_next() -> None:
    def first(x: int, ctx: ff.Context) -> int:
        ctx.state["n"] = x
        return x + 1

    def second(x: int, ctx: ff.Context) -> int:
        return ctx.state["n"] * 100 + x

    assert ff.run_sync(ff.sequence(first, second), 4).output == 405


# A tree of nested parallels: a leaf is None, a node the list of its children.
trees = st.recursive(st.none(), lambda kids: st.lists(kids, min_size=1, max_size=3), max_leaves=12)


def build(tree: Any, counter: itertools.count[int]) -> Any:
    if tree is None:
        number = next(counter)

        @ff.agent(name=f"leaf{number}")
        async def leaf(x: Any, ctx: ff.Context) -> list[str]:
            ctx.state["trail"].append(ctx.path)
            ctx.state.setdefault("nested", {})[ctx.path] = [ctx.path]
            await asyncio.sleep(0)
            return [*ctx.state["trail"], *ctx.state["nested"]]

        return leaf
    return ff.parallel(**{f"n{i}": build(child, counter) for i, child in enumerate(tree)})


def leaves(value: Any) -> list[list[str]]:
    if isinstance(value, dict):
        return [view for child in value.values() for view in leaves(child)]
    return [value]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_random_trees_of_branches_never_see_siblings_mutations(tree: Any) -> None:
    spec = ff.sequence(seed, build(tree, itertools.count()))
    views = leaves(ff.run_sync(spec, None).output)
    for view in views:  # the seed, then the leaf's own path twice (the list and the nested dict)
        assert len(view) == 3
        assert view[0] == "seed"
        assert view[1] == view[2]
    assert len({view[1] for view in views}) == len(views)


total = ff.Channel("total", merge=lambda a, b: a + b, initial=0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9), st.integers(0, 3)), min_size=1, max_size=12))
def test_channel_totals_count_each_successful_attempt_once(items: list[tuple[int, int]]) -> None:
    """Each input publishes its value on every attempt and fails its first ``fails`` attempts;
    with 3 attempts, inputs that fail 3 times never succeed."""
    tries: dict[int, int] = {}

    def flaky(item: tuple[int, int, int], ctx: ff.Context) -> int:
        number, value, fails = item
        ctx.publish(total, value)
        tries[number] = tries.get(number, 0) + 1
        if tries[number] <= fails:
            raise ConnectionError("flaky")
        return value

    numbered = [(number, value, fails) for number, (value, fails) in enumerate(items)]
    retry = ff.RetryPolicy(retry_on=ConnectionError, attempts=3, **NO_WAIT)
    result = ff.run_sync(ff.map(flaky), numbered, retry=retry)
    assert result.channels.get("total", 0) == sum(value for value, fails in items if fails < 3)
    assert result.channels.get("total", 0) == sum(result.outputs)


def test_a_retried_attempts_publishes_are_dropped() -> None:
    attempts: dict[int, int] = {}

    def once_flaky(x: int, ctx: ff.Context) -> int:
        ctx.publish(total, 1)
        attempts[x] = attempts.get(x, 0) + 1
        if attempts[x] == 1:
            raise ConnectionError("first try fails")
        return x

    retry = ff.RetryPolicy(retry_on=ConnectionError, attempts=2, **NO_WAIT)
    assert ff.run_sync(ff.map(once_flaky), range(5), retry=retry).channels == {"total": 5}


def test_a_scoped_channel_is_its_subtrees_own() -> None:
    notes = ff.Channel("notes", merge=lambda a, b: a + b, initial=0)

    def note(n: int) -> ff.FunctionAgent:
        @ff.agent(name=f"note{n}")
        def publish(x: int, ctx: ff.Context) -> int:
            ctx.publish(notes, x * n)
            return x

        return publish

    def summed(_: object, ctx: ff.Context) -> int:
        return ctx.read(notes)

    per_item = ff.scope(ff.sequence(ff.parallel(note(1), note(2), note(3)), summed), channels=[notes])
    result = ff.run_sync(ff.map(per_item), [1, 10, 100])
    assert result.output == [6, 60, 600]  # each input's subtree saw its own publishes only
    assert "notes" not in result.channels


def test_an_undeclared_channel_is_still_the_runs() -> None:
    def count(x: int, ctx: ff.Context) -> int:
        ctx.publish(total, x)
        return x

    assert ff.run_sync(
        ff.map(ff.scope(count, channels=[ff.Channel("other", merge=max, initial=0)])), [1, 2]
    ).channels == {"total": 3}


def test_scope_names_what_is_wrong() -> None:
    with pytest.raises(ff.UsageError, match=r"scope\(channels="):
        ff.scope(str.upper, channels=["total"])  # type: ignore[list-item]


async def crash_after(spec: Any, inputs: Any, store: Any, stop_after: int) -> str:
    async with ff.start(spec, inputs, store=store, limits=ff.Limits(concurrency=3)) as run:
        seen = 0
        async for _ in run.as_completed():
            seen += 1
            if seen >= stop_after:
                run.cancel()
                break
    return run.run_id


def counter(x: int, ctx: ff.Context) -> int:
    ctx.publish(total, 1)
    return x


def test_a_resumed_run_rebuilds_its_channels(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        store = SQLiteStore(tmp_path / "runs.db")
        run_id = await crash_after(ff.map(counter), range(50), store, 30)
        return (await ff.run(ff.map(counter), range(50), store=store, resume=run_id)).channels

    assert asyncio.run(main()) == {"total": 50}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stop_after=st.integers(1, 19), nested=st.booleans())
def test_resume_gives_the_channels_of_an_uninterrupted_run(tmp_path: Path, stop_after: int, nested: bool) -> None:
    spec = ff.map(ff.sequence(counter, counter)) if nested else ff.map(counter)
    inputs = list(range(20))
    whole = ff.run_sync(spec, inputs).channels

    async def main() -> dict[str, Any]:
        store = SQLiteStore(tmp_path / f"{stop_after}-{nested}.db")
        run_id = await crash_after(spec, inputs, store, stop_after)
        return (await ff.run(spec, inputs, store=store, resume=run_id)).channels

    assert asyncio.run(main()) == whole
