"""Hedging a slow tail: 2% of calls are 10x slower. p99 latency per input against no hedge, for
function agents (a hand-written asyncio hedge, ff.race with stagger, and ff.Hedge) and for model
requests on the simulated provider (with and without limits). Targets: p99 at least 3x lower,
for at most 5% extra calls."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import fanfold as ff
from _common import check, info, title
from fanfold.testing import Latency, SimulatedProvider

N = 1000
MEDIAN = 0.05
HEDGE = ff.Hedge(after="p95", max_extra=0.05)


def p99(latencies: list[float]) -> float:
    ranked = sorted(latencies)
    return ranked[int(0.99 * len(ranked)) - 1]


class Tail:
    """A function agent: lognormal latency around 50 ms, 2% of calls 10x slower; counts calls."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.calls = 0

    async def __call__(self, x: int) -> int:
        self.calls += 1
        seconds = MEDIAN * self.rng.lognormvariate(0, 0.2) * (10 if self.rng.random() < 0.02 else 1)
        await asyncio.sleep(seconds)
        return x


async def by_hand(agent: Tail, after: float) -> list[float]:
    """The hand-written hedge: a second call if the first is still running after ``after``."""
    latencies: list[float] = []

    async def one(x: int) -> None:
        began = time.perf_counter()
        first = asyncio.ensure_future(agent(x))
        done, _ = await asyncio.wait({first}, timeout=after)
        if not done:
            second = asyncio.ensure_future(agent(x))
            done, pending = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        latencies.append(time.perf_counter() - began)

    async with asyncio.TaskGroup() as group:
        for x in range(N):
            group.create_task(one(x))
    return latencies


async def with_fanfold(spec: Any, n: int = N, **options: Any) -> list[float]:
    result = await ff.run(ff.map(spec), range(n), limits=options.pop("limits", ff.Limits(concurrency=N)), **options)
    return [o.end - o.start for o in result.outcomes if o.end is not None and o.start is not None]


def report(name: str, base: float, latencies: list[float], extra: float) -> tuple[float, float]:
    ratio = base / p99(latencies)
    info(f"{name:>34}: p99 {p99(latencies) * 1000:7.1f} ms, {ratio:4.1f}x lower, {extra * 100:5.1f}% extra calls")
    return ratio, extra


def function_agents() -> None:
    title(f"function agents: {N} inputs, 2% of calls 10x slower")
    plain = Tail(1)
    base = p99(asyncio.run(with_fanfold(ff.agent(plain))))
    info(f"{'no hedge (ff.map)':>34}: p99 {base * 1000:7.1f} ms")
    hand = Tail(1)
    report("hand-written asyncio hedge (100 ms)", base, asyncio.run(by_hand(hand, 0.1)), hand.calls / N - 1)
    racer = Tail(1)
    race = ff.race(ff.agent(racer), ff.agent(racer), stagger=0.1)
    report("ff.race(a, a, stagger=0.1)", base, asyncio.run(with_fanfold(race)), racer.calls / N - 1)
    hedged = Tail(1)
    spec = ff.agent(hedged, hedge=HEDGE)
    ratio, extra = report("ff.Hedge(after='p95')", base, asyncio.run(with_fanfold(spec)), hedged.calls / N - 1)
    check("function agents: p99 no hedge / hedged", 1 / ratio, 1 / 3)
    check("function agents: extra calls", extra, 0.05)


def model_requests(limits: ff.Limits | None) -> None:
    n = 1000
    label = "with limits (concurrency 100)" if limits else "no limits given"
    title(f"model requests on the simulated provider: {n} inputs, 2% 10x slower, {label}")
    latency = Latency(median=MEDIAN, sigma=0.2, slow_fraction=0.02, slow_factor=10.0)

    async def served(hedge: ff.Hedge | None) -> tuple[list[float], int, int]:
        async with SimulatedProvider(latency=latency, seed=5) as sim:
            model = ff.llm("openai-chat:sim-1", base_url=sim.openai_base_url, api_key="sk-sim", hedge=hedge)
            options: dict[str, Any] = {"limits": limits} if limits else {}
            result = await ff.run(ff.map(model), [f"q{i}" for i in range(n)], **options)
            latencies = [o.end - o.start for o in result.outcomes if o.end is not None and o.start is not None]
            return latencies, sim.stats.requests, result.summary.usage.requests

    base, _, _ = asyncio.run(served(None))
    info(f"{'no hedge':>34}: p99 {p99(base) * 1000:7.1f} ms")
    latencies, requests, counted = asyncio.run(served(HEDGE))
    ratio, extra = report("ff.llm(..., hedge=ff.Hedge('p95'))", p99(base), latencies, requests / n - 1)
    info(f"{'provider requests / usage.requests':>34}: {requests} / {counted}")
    check(f"model requests, {label}: p99 no hedge / hedged", 1 / ratio, 1 / 3)
    check(f"model requests, {label}: extra calls", extra, 0.05)


def main() -> None:
    function_agents()
    model_requests(None)
    model_requests(ff.Limits(concurrency=100))


if __name__ == "__main__":
    main()
