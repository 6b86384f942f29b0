"""The shared governor's scripts and limiter against the local Redis: buckets that refill by
the server's clock, slots that never exceed their limit across clients and lapse when not
renewed, and 429 pauses, learnt limits, adaptive cuts and budgets that every client sees."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fanfold as ff
from fanfold._limits import Admission, open_limiter
from fanfold._shared._link import SharedGovernorError
from fanfold._shared._redis_limiter import RedisLimiter

MODEL = "openai-chat:sim-1"


def limiter(url: str, namespace: str, **resources: Any) -> RedisLimiter:
    lease = resources.pop("lease", 10.0)
    return ff.RedisLimiter(url, namespace=namespace, limits=ff.Limits(resources=resources), lease=lease)


async def server_ms(shared: RedisLimiter) -> float:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(shared._link.url)
    try:
        seconds, micros = await client.time()
    finally:
        await client.aclose()
    return seconds * 1000 + micros / 1000


async def ask(shared: RedisLimiter, resources: tuple[str, ...], slot: str = "probe") -> list[Any]:
    """One admission script call, as the limiter makes it, without waiting: its raw verdict."""
    plan = shared._plan(resources)
    assert plan is not None
    link = shared._link
    await link.open()
    return list(await link.call("ACQUIRE", plan.keys, (slot, link.lease_ms, link.idle_ms, 0, 0, 0, *plan.config)))


def test_a_bucket_refills_by_the_servers_clock_not_the_clients(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with limiter(redis_url, namespace) as shared:
            shared._rate_limits[MODEL] = ff.RateLimit(requests_per_minute=600, burst=0.5)  # holds 5
            shared.meter(MODEL)
            assert (await ask(shared, (MODEL,), "a"))[0] == 1  # a new bucket holds one to start
            verdict = await ask(shared, (MODEL,), "b")
            assert verdict[0] == 0
            assert 0 < float(verdict[1]) <= 100
            # Stamp the bucket one second ago on the *server's* clock: it refilled to its capacity.
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(redis_url)
            key = f"fanfold:{{{namespace}}}:{MODEL}:state"
            await client.hset(key, mapping={"requests:lvl": 0, "requests:at": await server_ms(shared) - 1000})
            await client.aclose()
            granted = [(await ask(shared, (MODEL,), f"c{i}"))[0] for i in range(6)]
            assert granted == [1, 1, 1, 1, 1, 0]

    asyncio.run(main())


def test_a_call_larger_than_a_new_buckets_start_is_admitted_once_it_refills(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with limiter(redis_url, namespace) as shared:
            shared._rate_limits[MODEL] = ff.RateLimit(tokens_per_minute=45_000)  # holds 375, starts at 37.5
            shared.meter(MODEL)
            admission = Admission(resources=(MODEL,), cost={"input_tokens": 26, "output_tokens": 64})
            await shared.acquire(admission)
            shared.release(admission)

    asyncio.run(asyncio.wait_for(main(), 10))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clients=st.integers(2, 5), limit=st.integers(1, 4), calls=st.integers(5, 25), yields=st.integers(0, 3))
def test_concurrency_never_exceeds_the_limit_across_clients(
    redis_url: str, namespace: str, clients: int, limit: int, calls: int, yields: int
) -> None:
    held = peak = 0

    async def call(shared: RedisLimiter, i: int) -> None:
        nonlocal held, peak
        admission = Admission(resources=("db",))
        await shared.acquire(admission)
        held += 1
        peak = max(peak, held)
        for _ in range(yields + i % 3):
            await asyncio.sleep(0)
        held -= 1
        shared.release(admission)

    async def main() -> None:
        example = f"{namespace}-{clients}-{limit}-{calls}-{yields}"
        shared = [limiter(redis_url, example, db=limit) for _ in range(clients)]
        try:
            async with asyncio.TaskGroup() as tasks:
                for i in range(calls):
                    tasks.create_task(call(shared[i % clients], i))
        finally:
            for one in shared:
                await one.aclose()

    asyncio.run(main())
    assert 1 <= peak <= limit


def test_a_slot_whose_lease_is_not_renewed_lapses(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        dead = limiter(redis_url, namespace, db=1, lease=0.3)
        alive = limiter(redis_url, namespace, db=1, lease=0.3)
        await dead.acquire(Admission(resources=("db",)))
        await dead._link.aclose()  # its process is gone: nobody renews or releases the slot
        assert (await ask(alive, ("db",)))[0] == 0  # held by the dead one...
        admission = Admission(resources=("db",))
        await alive.acquire(admission)  # ...until its lease lapses
        alive.release(admission)
        await alive.aclose()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_renewal_extends_held_leases_only(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with limiter(redis_url, namespace, db=2) as shared:
            admission = Admission(resources=("db",))
            await shared.acquire(admission)
            link = shared._link
            key = f"fanfold:{{{namespace}}}:db:slots"
            link.leases[key].add("lapsed-long-ago")  # a slot it thinks it holds, but lost
            assert await link.renew() == 1
            assert await ask(shared, ("db",)) == [1]  # the lapsed one was not brought back
            shared.release(admission)

    asyncio.run(main())


def test_a_429_pauses_every_client_and_cuts_the_adaptive_cap(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with limiter(redis_url, namespace) as first, limiter(redis_url, namespace) as second:
            for shared in (first, second):
                shared.meter(MODEL)  # no limit known: adaptive, starting at 8 at once
                await shared._link.open()
            for slot in ("a", "b", "c"):
                assert (await ask(second, (MODEL,), slot))[0] == 1
            first._mirrors[MODEL].throttled(
                3.0, {}, asyncio.get_running_loop().time(), remaining={"requests": 0.0}
            )  # a breach
            await first._link.flush()
            verdict = await ask(second, (MODEL,))
            assert verdict[0] == 0
            assert 2000 < float(verdict[1]) <= 3000
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(redis_url)
            state = await client.hgetall(f"fanfold:{{{namespace}}}:{MODEL}:state")
            await client.aclose()
            assert float(state[b"cap"]) == pytest.approx(2.1)  # cut to 70% of the three in flight
            assert int(state[b"throttles"]) == 1

    asyncio.run(main())


def test_limits_learnt_by_one_client_govern_the_others(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with limiter(redis_url, namespace) as first, limiter(redis_url, namespace) as second:
            for shared in (first, second):
                shared.meter(MODEL)
                await shared._link.open()
            first._mirrors[MODEL].succeeded(0.1, {"requests": 60.0}, asyncio.get_running_loop().time())
            await first._link.flush()
            # 60 requests a minute: the bucket holds one; the next waits about a second.
            assert (await ask(second, (MODEL,), "a"))[0] == 1
            verdict = await ask(second, (MODEL,), "b")
            assert verdict[0] == 0
            assert 500 < float(verdict[1]) <= 1000

    asyncio.run(main())


def test_a_budget_is_shared_by_every_ledger_of_the_namespace(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with limiter(redis_url, namespace) as first, limiter(redis_url, namespace) as second:
            budget = ff.Budget(requests=3)
            ledgers = [first.begin_run(budget), second.begin_run(budget)]
            for ledger in (*ledgers, ledgers[0]):
                await ledger.reserve(10, 0.0)
                ledger.settle(10, 0.0, ff.Usage(requests=1, input_tokens=10))
            await first._link.flush()
            spent = rf"requests: 3 of 3 spent, shared in namespace \{{{namespace}"
            for ledger in ledgers:
                with pytest.raises(ff.BudgetExhausted, match=spent):
                    await ledger.reserve(10, 0.0)
            assert [ledger.spent.requests for ledger in ledgers] == [2, 1]  # each process's own

    asyncio.run(main())


def test_a_reservation_whose_process_died_counts_as_spent(redis_url: str, namespace: str) -> None:
    async def main() -> None:
        dead = limiter(redis_url, namespace, lease=0.2)
        await dead.begin_run(ff.Budget(tokens=100)).reserve(60, 0.0)
        await dead._link.aclose()  # never settled, never renewed
        async with limiter(redis_url, namespace) as alive:
            ledger = alive.begin_run(ff.Budget(tokens=100))
            with pytest.raises(ff.BudgetExhausted, match="tokens: 60 of 100"):
                await ledger.reserve(60, 0.0)  # waits for the lapse, then finds 60 spent

    asyncio.run(asyncio.wait_for(main(), 10))


def test_bad_limiters_are_named_with_the_fix(redis_url: str) -> None:
    with pytest.raises(ff.UsageError, match=r"limiter='mysql://me@db/x'.*redis://127.0.0.1:6379/0"):
        ff.run_sync(ff.map(lambda x: x), [1], limiter="mysql://me:hunter22@db/x")
    with pytest.raises(ff.UsageError, match="namespace='a b'"):
        ff.RedisLimiter(redis_url, namespace="a b")
    with pytest.raises(ff.UsageError, match="lease='x' is not a number"):
        open_limiter(f"{redis_url}?lease=x", ff.Limits())
    with pytest.raises(ff.UsageError, match=r"idle=1.0\) is shorter than lease=10.0"):
        ff.RedisLimiter(redis_url, idle=1.0)


def test_an_unreachable_redis_fails_the_call_naming_it_without_its_password() -> None:
    @ff.agent(resources=["db"])
    def work(x: int) -> int:
        return x

    url = "redis://:s3cret-pass@127.0.0.1:1/0"
    result = ff.run_sync(ff.map(work), [1], limits=ff.Limits(resources={"db": 1}), limiter=url)
    error = result.outcomes[0].error
    assert error is not None
    assert "127.0.0.1:1" in error.message
    assert "s3cret" not in error.message
    assert error.type == SharedGovernorError.__name__
