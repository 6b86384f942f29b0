"""Makespan: how close ``ff.map`` comes to the ideal schedule when tasks wait (they sleep).

1. 1,000 tasks of 50 ms at concurrency 100. The ideal is ceil(n / c) x 50 ms = 0.5 s.
   Target: fanfold / ideal <= 1.03. A semaphore-gated ``asyncio.gather`` is timed in the same
   run as the floor asyncio itself reaches on this machine.
2. 1,000 tasks with log-normal durations (mean 50 ms, sigma 0.8, seeded) at concurrency 100.
   The ideal is max(total work / c, longest task). fanfold's sliding window is compared with
   "waves" (chunks of 100, each gathered before the next starts), timed in the same run.
   Target: fanfold / waves < 1.

Each timing is the best of 3.
"""

from __future__ import annotations

import asyncio
import math
import random

import fanfold as ff
from _common import best_of, check, gated_gather, info, title

N = 1_000
CONCURRENCY = 100
LATENCY = 0.050
SIGMA = 0.8
REPEATS = 3


async def sleep_for(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


async def fanfold_map(durations: list[float]) -> None:
    result = await ff.run(ff.map(sleep_for), durations, limits=ff.Limits(concurrency=CONCURRENCY))
    assert result.summary.succeeded == len(durations), result.summary


async def waves(durations: list[float]) -> None:
    for start in range(0, len(durations), CONCURRENCY):
        await asyncio.gather(*(sleep_for(d) for d in durations[start : start + CONCURRENCY]))


def log_normal_durations(seed: int = 1) -> list[float]:
    mu = math.log(LATENCY) - SIGMA**2 / 2  # so that the mean is LATENCY
    rng = random.Random(seed)
    return [rng.lognormvariate(mu, SIGMA) for _ in range(N)]


def fixed_latency() -> None:
    durations = [LATENCY] * N
    ideal = math.ceil(N / CONCURRENCY) * LATENCY
    title(f"makespan: {N:,} tasks of {LATENCY * 1e3:.0f} ms at concurrency {CONCURRENCY} (ideal {ideal:.3f}s)")
    fanfold = best_of(REPEATS, lambda: fanfold_map(durations))
    floor = best_of(REPEATS, lambda: gated_gather(sleep_for, durations, CONCURRENCY))
    info(f"fanfold {fanfold:.3f}s (Limits(concurrency={CONCURRENCY}))")
    info(f"baseline: semaphore gather {floor:.3f}s ({floor / ideal:.3f}x ideal)")
    check("fanfold / ideal", fanfold / ideal, 1.03)


def log_normal_latency() -> None:
    durations = log_normal_durations()
    ideal = max(sum(durations) / CONCURRENCY, max(durations))
    title(
        f"makespan: {N:,} log-normal tasks (mean {sum(durations) / N * 1e3:.1f} ms, longest "
        f"{max(durations) * 1e3:.0f} ms) at concurrency {CONCURRENCY} (ideal {ideal:.3f}s)"
    )
    fanfold = best_of(REPEATS, lambda: fanfold_map(durations))
    in_waves = best_of(REPEATS, lambda: waves(durations))
    info(f"fanfold {fanfold:.3f}s ({fanfold / ideal:.3f}x ideal)")
    info(f"waves   {in_waves:.3f}s ({in_waves / ideal:.3f}x ideal)")
    check("fanfold / waves", fanfold / in_waves, 1.0, below=True)


if __name__ == "__main__":
    fixed_latency()
    log_normal_latency()
