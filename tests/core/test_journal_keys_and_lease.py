"""Duplicate fan-out keys under a journal, and the lease's state machine on a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fanfold as ff
from fanfold._errors import RunOwned
from fanfold._lease import Lease, renew, seen, take
from fanfold._records import RunRecord
from fanfold._store._memory import MemoryStore


def test_a_duplicate_key_fails_the_later_input_naming_both() -> None:
    calls: list[int] = []

    def grade(row: dict[str, int]) -> int:
        calls.append(row["n"])
        return row["n"]

    rows = [{"id": 1, "n": 10}, {"id": 2, "n": 20}, {"id": 1, "n": 30}]
    store = MemoryStore()
    result = ff.run_sync(ff.map(grade, key=lambda row: row["id"]), rows, store=store)
    assert [o.status for o in result.outcomes] == [ff.Status.SUCCEEDED, ff.Status.SUCCEEDED, ff.Status.FAILED]
    message = str(result.outcomes[2].error)
    assert "inputs 0 and 2" in message
    assert "same key 1" in message
    assert sorted(calls) == [10, 20]
    # Resumed, nothing is called again: the first input is restored, the duplicate fails again.
    again = ff.run_sync(ff.map(grade, key=lambda row: row["id"]), rows, store=store, resume=result.run_id)
    assert sorted(calls) == [10, 20]
    assert [o.resumed for o in again.outcomes] == [True, True, False]


# -- the lease, as a state machine ---------------------------------------------------------------

TTL = 10.0
OWNERS = ("a", "b")
op = st.one_of(
    st.tuples(st.just("take"), st.sampled_from(OWNERS)),
    st.tuples(st.just("renew"), st.sampled_from(OWNERS)),
    st.tuples(st.just("wait"), st.floats(min_value=0, max_value=2 * TTL)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=30))
def test_at_most_one_live_owner_and_only_a_lapsed_lease_changes_hands(ops: list[tuple[str, object]]) -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])

    async def main() -> None:
        leases = {name: dataclasses.replace(Lease.new(now[0], TTL), token=name) for name in OWNERS}
        await store.create_run(RunRecord("r", "run", attempts=({"started": now[0], "ended": 0.0, "status": "x"},)))
        owner: str | None = None  # the model: who holds a live lease
        expires = 0.0
        for kind, arg in ops:
            if kind == "wait":
                now[0] += float(arg)  # type: ignore[arg-type]
                continue
            name = str(arg)
            live = owner is not None and now[0] < expires
            if kind == "take":
                lease = dataclasses.replace(leases[name], acquired_at=now[0], expires_at=now[0] + TTL)
                try:
                    await store.change_run("r", lambda r, lease=lease: take(r, lease, now[0]))
                except RunOwned as exc:
                    refused: Lease | None = exc.lease
                    assert live
                    assert owner != name
                    assert refused is not None
                    assert refused.token == owner
                else:
                    assert not live or owner == name
                    owner, expires = name, now[0] + TTL
            else:
                try:
                    await store.change_run("r", lambda r, name=name: renew(r, name, now[0], {"requests": 1}))
                except RunOwned:
                    assert owner != name
                else:
                    assert owner == name  # a lapsed lease may be renewed by its owner while nobody took it
                    expires = now[0] + TTL
            record = await store.get_run("r")
            assert record is not None
            shown_live = record.status == "running"
            assert shown_live == (owner is not None and now[0] < expires)
            if record.lease is not None:
                assert record.lease.token == owner
        record = await store.get_run("r")
        assert record is not None
        assert seen(record, now[0]).status in ("running", "interrupted")

    asyncio.run(main())


def test_a_live_lease_refuses_with_the_owner_named() -> None:
    record = RunRecord("r", "run", attempts=({"started": 0.0, "ended": None, "status": "running"},))
    held = Lease("t1", "host-a", 42, 100.0, 130.0, 30.0)
    record = dataclasses.replace(record, lease=held)
    with pytest.raises(RunOwned, match=r"process 42 on host 'host-a'.*lapses within 30 seconds") as caught:
        take(record, Lease("t2", "host-b", 7, 110.0, 140.0, 30.0), 110.0)
    assert caught.value.lease == held
    taken = take(record, Lease("t2", "host-b", 7, 131.0, 161.0, 30.0), 131.0)
    assert taken.lease is not None
    assert taken.lease.token == "t2"
    assert [a["status"] for a in taken.attempts] == ["interrupted", "running"]
