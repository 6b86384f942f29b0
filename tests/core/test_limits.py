import asyncio

import pytest

import fanfold as ff
from fanfold.testing import ConcurrencyProbe


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"concurrency": 0}, r"Limits\(concurrency=...\) got 0"),
        ({"concurrency": 2.5}, "whole number"),
        ({"resources": {"db": 0}}, r"Limits\(resources=\{'db': ...\}\) got 0"),
        ({"resources": {"": 1}}, "non-empty strings"),
        ({"window": -1}, r"Limits\(window=...\)"),
        ({"resources": ["db"]}, "pass a dict of name -> limit"),
    ],
)
def test_bad_limits_name_the_value_and_the_fix(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ff.UsageError, match=match):
        ff.Limits(**kwargs)  # type: ignore[arg-type]


def test_named_resources_have_their_own_limits() -> None:
    probe = ConcurrencyProbe()

    @ff.agent(resources=["db"])
    async def query(x: int) -> int:
        async with probe.inside("db"):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        return x

    @ff.agent
    async def compute(x: int) -> int:
        async with probe.inside("cpu"):
            await asyncio.sleep(0)
        return x

    spec = ff.map(ff.parallel(query, compute))
    ff.run_sync(spec, range(30), limits=ff.Limits(concurrency=8, resources={"db": 2}))
    assert probe.peaks["db"] == 2
    assert probe.peak <= 8
    assert probe.entered == 60


def test_leaves_needing_several_resources_never_deadlock() -> None:
    @ff.agent(resources=["a", "b"])
    async def ab(x: int) -> int:
        await asyncio.sleep(0)
        return x

    @ff.agent(resources=["b", "a"])
    async def ba(x: int) -> int:
        await asyncio.sleep(0)
        return x

    result = ff.run_sync(ff.map(ff.parallel(ab, ba)), range(50), limits=ff.Limits(resources={"a": 1, "b": 1}))
    assert result.summary.counts[ff.Status.SUCCEEDED] == 50


def test_composites_hold_no_slot_so_nested_fanouts_finish_at_concurrency_one() -> None:
    async def leaf(x: int) -> int:
        await asyncio.sleep(0)
        return x

    spec = ff.map(ff.map(ff.vote(leaf, n=3, early_stop=False)))
    result = ff.run_sync(spec, [[1, 2], [3, 4], [5]], limits=ff.Limits(concurrency=1))
    assert result.output == [[1, 2], [3, 4], [5]]


def test_a_cancelled_waiter_takes_no_slot() -> None:
    limiter = ff.Limits(concurrency=1)
    from fanfold._limits import ConcurrencyLimiter

    async def main() -> None:
        slots = ConcurrencyLimiter(limiter)
        assert slots.try_acquire(ff.Admission())
        waiter = asyncio.ensure_future(slots.acquire(ff.Admission()))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        slots.release(ff.Admission())
        assert slots.try_acquire(ff.Admission())  # the cancelled waiter did not keep the freed slot

    asyncio.run(main())


def test_a_custom_limiter_plugs_in_without_touching_the_scheduler() -> None:
    from fanfold._limits import ConcurrencyLimiter

    class Counting(ConcurrencyLimiter):
        def __init__(self) -> None:
            super().__init__(ff.Limits(concurrency=2))
            self.grants = 0

        def release(self, admission: ff.Admission) -> None:
            self.grants += 1
            super().release(admission)

    limiter = Counting()
    ff.run_sync(ff.map(lambda x: x), range(10), limiter=limiter)
    assert limiter.grants == 10


def test_a_call_with_priority_is_admitted_ahead_of_waiting_calls() -> None:
    # One slot, held; three calls wait for it, then a hedge's backup (priority) asks. Each
    # release goes to the backup first, then to the others in the order they came.
    from fanfold._limits import Admission, ConcurrencyLimiter

    async def main() -> list[str]:
        limiter = ConcurrencyLimiter(ff.Limits(concurrency=1))
        holder = Admission()
        assert limiter.try_acquire(holder)
        order: list[str] = []

        async def wait(name: str, admission: Admission) -> None:
            await limiter.acquire(admission)
            order.append(name)
            limiter.release(admission)

        async with asyncio.TaskGroup() as group:
            for name in ("a", "b", "c"):
                group.create_task(wait(name, Admission()))
                await asyncio.sleep(0)  # queued in this order
            assert not limiter.try_acquire(Admission(priority=True))  # no room: it waits too
            group.create_task(wait("backup", Admission(priority=True)))
            await asyncio.sleep(0)
            limiter.release(holder)
        return order

    assert asyncio.run(main()) == ["backup", "a", "b", "c"]


def test_a_call_with_priority_does_not_pass_another_with_priority() -> None:
    from fanfold._limits import Admission, ConcurrencyLimiter

    async def main() -> list[str]:
        limiter = ConcurrencyLimiter(ff.Limits(concurrency=1, resources={"db": 1}))
        holder = Admission(resources=("db",))
        assert limiter.try_acquire(holder)
        order: list[str] = []

        async def wait(name: str, admission: Admission) -> None:
            await limiter.acquire(admission)
            order.append(name)
            limiter.release(admission)

        async with asyncio.TaskGroup() as group:
            group.create_task(wait("first backup", Admission(resources=("db",), priority=True)))
            await asyncio.sleep(0)
            assert not limiter.try_acquire(Admission(priority=True))  # a backup waits: behind it
            group.create_task(wait("plain", Admission()))
            group.create_task(wait("second backup", Admission(priority=True)))
            await asyncio.sleep(0)
            limiter.release(holder)
        return order

    assert asyncio.run(main()) == ["first backup", "second backup", "plain"]
