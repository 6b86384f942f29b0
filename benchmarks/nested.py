"""Nested fan-outs: a map of 100 votes of 5 samples each, at concurrency 10.

Each sample is a leaf that sleeps 50 ms. Composites hold no slot, so the 10 slots stay busy
and the 500 leaves should finish in ceil(500 / 10) x 50 ms = 2.5 s. A semaphore-gated
``asyncio.gather`` over 500 flat sleeps is timed in the same run as the floor asyncio itself
reaches on this machine.

Checks: the run completes with all 100 outcomes succeeded; target: wall / ideal <= 1.03.
Each timing is the best of 2.
"""

from __future__ import annotations

import asyncio
import math

import fanfold as ff
from _common import best_of, check, gated_gather, info, title

VOTES = 100
SAMPLES = 5
CONCURRENCY = 10
LATENCY = 0.050
REPEATS = 2


async def leaf(x: int) -> int:
    await asyncio.sleep(LATENCY)
    return x


async def nested() -> None:
    spec = ff.map(ff.vote(leaf, n=SAMPLES, early_stop=False))
    result = await ff.run(spec, range(VOTES), limits=ff.Limits(concurrency=CONCURRENCY))
    assert len(result.outcomes) == VOTES, result.summary
    assert all(outcome.ok for outcome in result.outcomes), result.summary
    assert result.output == list(range(VOTES)), "each vote should return its input"
    assert result.summary.leaf_calls == VOTES * SAMPLES, result.summary


async def flat_sleeps() -> None:
    await gated_gather(leaf, range(VOTES * SAMPLES), CONCURRENCY)


def main() -> None:
    ideal = math.ceil(VOTES * SAMPLES / CONCURRENCY) * LATENCY
    title(f"nested: map of {VOTES} votes of {SAMPLES}, {LATENCY * 1e3:.0f} ms leaves, concurrency {CONCURRENCY}")
    fanfold = best_of(REPEATS, nested)
    floor = best_of(REPEATS, flat_sleeps)
    info(f"every run completed with all {VOTES} outcomes succeeded and {VOTES * SAMPLES} leaf calls")
    info(f"ideal {ideal:.3f}s, fanfold {fanfold:.3f}s, semaphore gather {floor:.3f}s ({floor / ideal:.3f}x ideal)")
    check("fanfold / ideal", fanfold / ideal, 1.03)


if __name__ == "__main__":
    main()
