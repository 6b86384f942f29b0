"""Durable runs: outcomes journaled before they are reported, and resumed runs that redo nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import fanfold as ff
from fanfold._journal import decode
from fanfold._records import Change, Entry
from fanfold._store._memory import MemoryStore
from fanfold._store._postgres import PostgresStore
from fanfold._store._sqlite import SQLiteStore


class Grade(BaseModel):
    essay: int
    score: float


class Calls:
    """Counts how often each input was started and finished by an agent."""

    def __init__(self) -> None:
        self.started: Counter[Any] = Counter()
        self.finished: Counter[Any] = Counter()


def grader(calls: Calls, fail: frozenset[int] = frozenset()) -> ff.FunctionAgent:
    @ff.agent
    async def grade(essay: int) -> Grade:
        calls.started[essay] += 1
        await asyncio.sleep(0)
        if essay in fail:
            raise ValueError(f"essay {essay} is unreadable")
        calls.finished[essay] += 1
        return Grade(essay=essay, score=essay / 2)

    return grade


async def run_until(spec: Any, inputs: Any, store: Any, stop_after: int, **options: Any) -> str:
    """Start a journaled run and cancel it (a crash, as far as the journal knows) once
    ``stop_after`` outcomes were reported; return its run id."""
    async with ff.start(spec, inputs, store=store, keep=False, **options) as run:
        seen = 0
        async for _ in run.as_completed():
            seen += 1
            if seen >= stop_after:
                run.cancel()
                break
        run_id = run.run_id
    return run_id


def test_a_resumed_run_redoes_nothing_journaled_and_gives_every_input_one_outcome() -> None:
    async def main() -> None:
        store = MemoryStore()
        calls = Calls()
        spec = ff.map(grader(calls))
        essays = list(range(40))
        run_id = await run_until(spec, essays, store, 15, limits=ff.Limits(concurrency=4))
        done_before = sum(calls.finished.values())
        assert 15 <= done_before < 40
        result = await ff.run(spec, essays, store=store, resume=run_id)
        assert result.run_id == run_id
        assert [o.index for o in result.outcomes] == essays
        assert result.outputs == [Grade(essay=e, score=e / 2) for e in essays]  # Pydantic values come back
        assert all(n == 1 for n in calls.finished.values()), "a journaled task ran again"
        assert sum(calls.finished.values()) == 40
        resumed = [o for o in result.outcomes if o.resumed]
        assert len(resumed) == result.summary.resumed >= 15
        record = await store.get_run(run_id)
        assert record is not None
        assert record.status == "succeeded"
        assert record.resumes == 1
        assert record.summary is not None
        assert record.summary["counts"]["succeeded"] == 40

    asyncio.run(main())


def test_outcomes_are_durable_before_anyone_hears_of_them() -> None:
    class Watched(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.keys: set[str] = set()

        async def write(self, run_id: str, entries: Sequence[Entry], change: Change | None = None) -> None:
            await super().write(run_id, entries, change)
            self.keys.update(e.key for e in entries)

    store = Watched()
    early: list[str] = []

    def check(event: ff.events.Event) -> None:
        if isinstance(event, ff.events.TaskFinished) and event.path and event.path not in store.keys:
            early.append(event.path)

    calls = Calls()
    spec = ff.map(ff.vote(grader(calls), n=3, early_stop=False))
    result = ff.run_sync(spec, list(range(20)), store=store, on_event=check)
    assert result.summary.succeeded == 20
    assert early == []
    assert "map[7]/vote[2]" in store.keys
    assert "map[7]" in store.keys


def test_vote_samples_resume_one_by_one() -> None:
    async def main() -> None:
        store = MemoryStore()
        finished: Counter[int] = Counter()
        gate = asyncio.Event()  # closed in the first run: samples 2..5 are still running when it stops

        @ff.agent
        async def sample(question: int, ctx: ff.Context) -> int:
            if ctx.index >= 2:
                await gate.wait()
            finished[ctx.index] += 1
            return question * 10

        spec = ff.vote(sample, n=6, early_stop=False)
        async with ff.start(spec, 3, store=store) as run:
            done = 0
            async for event in run.events():
                if isinstance(event, ff.events.TaskSucceeded) and event.path.startswith("vote["):
                    done += 1
                    if done == 2:
                        run.cancel()
                        break
            run_id = run.run_id
        assert finished == {0: 1, 1: 1}
        gate.set()
        result = await ff.run(spec, 3, store=store, resume=run_id)
        assert result.output == 30
        assert finished == dict.fromkeys(range(6), 1)  # each sample finished exactly once over both runs

    asyncio.run(main())


def test_failures_are_kept_and_budget_skips_are_tried_again() -> None:
    async def main() -> None:
        store = MemoryStore()
        calls = Calls()
        spec = ff.map(grader(calls, fail=frozenset({2})))
        first = await ff.run(spec, [1, 2, 3], store=store)
        assert first.summary.failed == 1
        again = await ff.run(spec, [1, 2, 3], store=store, resume=first.run_id)
        failed = again.outcomes[1]
        assert failed.status is ff.Status.FAILED
        assert failed.resumed
        assert failed.error == ff.ErrorInfo("ValueError", "essay 2 is unreadable")
        assert calls.started[2] == 1  # a journaled failure is an outcome: not run again

    asyncio.run(main())


def test_an_input_that_changed_runs_again() -> None:
    async def main() -> None:
        store = MemoryStore()
        calls = Calls()
        spec = ff.map(grader(calls))
        first = await ff.run(spec, [10, 11, 12], store=store)
        again = await ff.run(spec, [10, 99, 12], store=store, resume=first.run_id)
        assert [o.resumed for o in again.outcomes] == [True, False, True]
        assert again.outputs[1] == Grade(essay=99, score=49.5)

    asyncio.run(main())


def test_keyed_inputs_resume_wherever_they_now_stand() -> None:
    async def main() -> None:
        store = MemoryStore()
        calls = Calls()
        spec = ff.map(grader(calls), key=lambda essay: f"essay-{essay}")
        first = await ff.run(spec, [1, 2, 3], store=store)
        again = await ff.run(spec, [3, 4, 1, 2], store=store, resume=first.run_id)
        assert [o.resumed for o in again.outcomes] == [True, False, True, True]
        assert [o.key for o in again.outcomes] == ["essay-3", "essay-4", "essay-1", "essay-2"]
        assert sum(calls.finished.values()) == 4

    asyncio.run(main())


def test_resume_needs_a_known_run_of_the_same_shape() -> None:
    async def main() -> None:
        store = MemoryStore()
        calls = Calls()
        with pytest.raises(ff.UsageError, match="has no such run"):
            await ff.run(ff.map(grader(calls)), [1], store=store, resume="nope")
        first = await ff.run(ff.map(grader(calls)), [1], store=store)
        with pytest.raises(ff.UsageError, match=r"the run was map\(grade\), and this spec is vote\(grade\)"):
            await ff.run(ff.vote(grader(calls)), 1, store=store, resume=first.run_id)

    asyncio.run(main())

    async def streamed() -> None:  # a run that cannot begin ends its streams too
        with pytest.raises(ff.UsageError, match="has no such run"):
            async with ff.start(ff.map(str.upper), ["a"], store=MemoryStore(), resume="nope") as run:
                assert [o async for o in run.as_completed()] == []

    asyncio.run(streamed())
    with pytest.raises(ff.UsageError, match="needs the store"):
        ff.run_sync(ff.map(str.upper), ["a"], resume="abc")
    with pytest.raises(ff.UsageError, match="metadata="):
        ff.run_sync(ff.map(str.upper), ["a"], store="memory", metadata={"when": object()})


def test_a_store_that_fails_stops_the_run_with_a_message_naming_it() -> None:
    class Broken(MemoryStore):
        async def write(self, run_id: str, entries: Sequence[Entry], change: Change | None = None) -> None:
            raise OSError("disk full")

    with pytest.raises(ff.JournalFailed) as caught:
        ff.run_sync(ff.map(str.upper, policy=ff.FailFast()), ["a", "b"], store=Broken())
    message = str(caught.value)
    assert "could not write to memory" in message
    assert "disk full" in message
    assert "resume=" in message


def test_a_sqlite_journal_survives_its_process(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    calls = Calls()
    spec = ff.map(grader(calls))
    first = ff.run_sync(spec, list(range(30)), store=path, metadata={"cli": ["fanfold", "run"]})
    again = ff.run_sync(spec, list(range(30)), store=str(path), resume=first.run_id)
    assert again.summary.resumed == 30
    assert sum(calls.finished.values()) == 30

    async def record() -> Any:
        async with SQLiteStore(path) as store:
            return await store.get_run(first.run_id)

    kept = asyncio.run(record())
    assert kept.config["metadata"] == {"cli": ["fanfold", "run"]}
    assert kept.config["spec"] == "map(grade)"
    assert kept.config["inputs"] == {"type": "list", "count": 30}


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 30),
    stop_after=st.integers(1, 30),
    fail=st.frozensets(st.integers(0, 29), max_size=5),
    concurrency=st.integers(1, 8),
)
def test_crash_and_resume_keeps_exactly_one_outcome_per_input(
    n: int, stop_after: int, fail: frozenset[int], concurrency: int
) -> None:
    async def main() -> None:
        store = MemoryStore()
        calls = Calls()
        spec = ff.map(grader(calls, fail))
        limits = ff.Limits(concurrency=concurrency)
        run_id = await run_until(spec, list(range(n)), store, stop_after, limits=limits)
        result = await ff.run(spec, list(range(n)), store=store, resume=run_id, limits=limits)
        assert [o.index for o in result.outcomes] == list(range(n))
        assert {o.index for o in result.outcomes if o.status is ff.Status.FAILED} == fail & set(range(n))
        assert all(calls.finished[i] == 1 for i in range(n) if i not in fail)
        assert all(calls.started[i] <= 2 for i in range(n))  # at most once more, if it was cut in flight

    asyncio.run(main())


def test_a_team_is_recorded_with_its_members() -> None:
    def plan(request: ff.PlanRequest) -> dict[str, Any]:
        return {"subtasks": [{"id": "each", "member": "double", "split": {"by": "each"}}]}

    def double(x: int) -> int:
        return 2 * x

    async def main() -> dict[str, Any]:
        store = MemoryStore()
        result = await ff.run(ff.team(plan, [double]), ff.Brief("double", [1, 2]), store=store)
        record = await store.get_run(result.run_id)
        assert record is not None
        return record.config

    assert asyncio.run(main())["spec"] == "team(plan, double)"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_run_resumes_from_a_database_store_opened_afresh(kind: str, tmp_path: Path) -> None:
    url = os.environ.get("FANFOLD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    target = str(tmp_path / "runs.db") if kind == "sqlite" else url

    async def main() -> None:
        if kind == "postgres":
            try:
                async with PostgresStore(url):
                    pass
            except ff.UsageError as exc:
                pytest.skip(f"{exc}; set FANFOLD_TEST_POSTGRES_URL")
        calls = Calls()
        spec = ff.map(ff.vote(grader(calls), n=2, early_stop=False))
        essays = list(range(25))
        run_id = f"test-{uuid.uuid4().hex}"
        await run_until(spec, essays, target, 10, run_id=run_id, limits=ff.Limits(concurrency=3))
        result = await ff.run(spec, essays, store=target, resume=run_id)  # a new store object: from the database
        assert [o.index for o in result.outcomes] == essays
        assert result.outputs == [Grade(essay=e, score=e / 2) for e in essays]
        assert all(calls.finished[e] == 2 for e in essays)  # each sample finished once over both runs
        async with ff.PostgresStore(url) if kind == "postgres" else SQLiteStore(target) as store:
            record = await store.get_run(run_id)
            assert record is not None
            assert (record.status, record.resumes) == ("succeeded", 1)
            await store.delete_run(run_id)

    asyncio.run(main())


def journaled_by_an_older_fanfold(data: bytes, moves: dict[bytes, bytes]) -> bytes:
    """A protocol-2 pickle with its classes named as an older layout named them: each
    ``module\\nname`` global in ``moves`` replaced (protocol 2 names globals as text)."""
    for new, old in moves.items():
        data = data.replace(b"c" + new + b"\n", b"c" + old + b"\n")
    assert b"cfanfold\n" not in data, data  # nothing left under a public name
    return data


def test_a_value_journaled_before_a_module_moved_restores_after_it() -> None:
    """Values journaled under the old private module paths (``fanfold._team``, ``fanfold._plan``,
    ``fanfold._store._base``) or a private module that still exists (``fanfold._outcome``) come
    back on resume, without running their tasks again."""
    outcome = ff.Outcome(0, ff.Status.SUCCEEDED, "x", None, "map[0]", 1)
    values = {
        1: ff.TeamResult(answer="merged", results={"a[0]": 1}, missing={}, outcomes=[outcome]),
        2: (ff.Status.SKIPPED, ff.TeamCaps(max_subtasks=7)),
        3: ff.JournalEntry("k", 0, "map[0]", "succeeded", "1", None, None, None, None, 1, 0.0, 1.0, None, None),
    }
    old_names = {
        b"fanfold\nTeamResult": b"fanfold._team\nTeamResult",
        b"fanfold\nOutcome": b"fanfold._outcome\nOutcome",
        b"fanfold\nStatus": b"fanfold._outcome\nStatus",
        b"fanfold\nTeamCaps": b"fanfold._plan\nTeamCaps",
        b"fanfold\nJournalEntry": b"fanfold._store._base\nEntry",
    }
    calls: Counter[int] = Counter()

    @ff.agent
    async def make(n: int) -> Any:
        calls[n] += 1
        return values[n]

    async def main() -> None:
        store = MemoryStore()
        spec = ff.map(make)
        first = await ff.run(spec, list(values), store=store)
        entries = [entry async for entry in store.entries(first.run_id)]
        assert {entry.index for entry in entries} == {0, 1, 2}
        rewritten = []
        for entry in entries:
            value = pickle.loads(entry.value_pickle or b"")
            old = journaled_by_an_older_fanfold(pickle.dumps(value, protocol=2), old_names)
            rewritten.append(dataclasses.replace(entry, value_pickle=old))
        await store.write(first.run_id, rewritten)

        again = await ff.run(spec, list(values), store=store, resume=first.run_id)
        assert [o.resumed for o in again.outcomes] == [True, True, True]
        assert again.output == list(values.values())
        assert type(again.output[0]) is ff.TeamResult
        assert again.output[1][0] is ff.Status.SKIPPED
        assert calls == Counter({1: 1, 2: 1, 3: 1})  # not run again

    asyncio.run(main())


def test_a_private_name_that_is_gone_restores_as_the_public_one() -> None:
    """A class journaled under a private module the table does not know resolves to the export
    of that name; one the package does not export is an error naming it."""
    data = pickle.dumps(ff.Usage(requests=2), protocol=2)
    moved = data.replace(b"cfanfold\nUsage\n", b"cfanfold._accounting\nUsage\n")
    entry = Entry("k", 0, "map[0]", "succeeded", "{}", moved, None, None, None, 1, 0.0, 1.0, None, None)
    assert decode(entry) == ff.Usage(requests=2)
    gone = data.replace(b"cfanfold\nUsage\n", b"cfanfold._accounting\nLedgerRow\n")
    with pytest.raises(ModuleNotFoundError, match=r"fanfold\._accounting"):
        decode(dataclasses.replace(entry, value_pickle=gone))
