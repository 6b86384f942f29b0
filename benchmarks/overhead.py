"""Per-task overhead of ``ff.map`` against bare ``asyncio.gather``.

N trivial tasks (``async def f(x): return x``) for N = 1k, 10k, 100k and 1M, run three ways in
the same process, interleaved, best of a few repeats each:

- ``gather``: ``asyncio.gather`` over N coroutines, no limit;
- ``sem``: the same gated by ``asyncio.Semaphore(100)``, what users write by hand;
- ``map``: ``ff.run(ff.map(f), range(N), limits=ff.Limits(concurrency=100))`` with an
  ``on_event`` callback counting every event and every outcome kept.

Targets: map costs <= 3x gather per task at 100k, and map's microseconds per task at 1M are
within 1.3x of those at 10k (no per-task cost that grows with the input).
"""

from __future__ import annotations

import asyncio
import functools

import fanfold as ff
from _common import check, gated_gather, info, timed, title

REPEATS = {1_000: 10, 10_000: 5, 100_000: 3, 1_000_000: 2}
CONCURRENCY = 100


async def f(x: int) -> int:
    return x


async def bare(n: int) -> None:
    await asyncio.gather(*(f(i) for i in range(n)))


async def semaphore(n: int) -> None:
    await gated_gather(f, range(n), CONCURRENCY)


async def fanfold_map(n: int) -> None:
    events = 0

    def count(event: ff.events.Event) -> None:
        nonlocal events
        events += 1

    result = await ff.run(ff.map(f), range(n), limits=ff.Limits(concurrency=CONCURRENCY), on_event=count)
    assert len(result.outcomes) == n, result.summary
    assert result.summary.succeeded == n, result.summary
    assert events >= 2 * n, f"only {events} events for {n} tasks; is the callback wired?"


def per_task_us(n: int) -> dict[str, float]:
    """Best microseconds per task for each way, the repeats interleaved so drift hits all alike."""
    ways = {"gather": bare, "sem": semaphore, "map": fanfold_map}
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(REPEATS[n]):
        for name, way in ways.items():
            best[name] = min(best[name], timed(functools.partial(way, n)))
    return {name: seconds / n * 1e6 for name, seconds in best.items()}


def main() -> None:
    title("overhead: trivial tasks, microseconds per task (best of repeats)")
    info(f"{'N':>9} {'gather':>8} {'sem':>8} {'map':>8} {'map/gather':>11} {'map/sem':>8}")
    figures: dict[int, dict[str, float]] = {}
    for n in REPEATS:
        us = figures[n] = per_task_us(n)
        info(
            f"{n:>9,} {us['gather']:>8.2f} {us['sem']:>8.2f} {us['map']:>8.2f} "
            f"{us['map'] / us['gather']:>10.2f}x {us['map'] / us['sem']:>7.2f}x"
        )
    at_100k = figures[100_000]
    check("map/gather per task at 100k", at_100k["map"] / at_100k["gather"], 3.0)
    check("map per task, 1M/10k", figures[1_000_000]["map"] / figures[10_000]["map"], 1.3)


if __name__ == "__main__":
    main()
