"""What every benchmark shares: timing a coroutine, the asyncio baselines, and the verdict line.

The machine is shared and noisy, so each figure is a ratio against a baseline measured in the
same run, and each timing is the best of a few repeats (noise only ever adds time).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Main = Callable[[], Awaitable[object]]


def timed(main: Main) -> float:
    """Seconds ``main()`` takes on a fresh event loop, after a full garbage collection."""

    async def clocked() -> float:
        began = time.perf_counter()
        await main()
        return time.perf_counter() - began

    gc.collect()
    return asyncio.run(clocked())


def best_of(repeats: int, main: Main) -> float:
    """The fastest of ``repeats`` runs of ``main``, in seconds."""
    return min(timed(main) for _ in range(repeats))


async def gated_gather(agent: Callable[[Any], Awaitable[Any]], inputs: Iterable[Any], concurrency: int) -> list[Any]:
    """The hand-written baseline: ``asyncio.gather`` over every input, gated by a semaphore."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(value: Any) -> Any:
        async with gate:
            return await agent(value)

    return await asyncio.gather(*(gated(value) for value in inputs))


def title(text: str) -> None:
    print(f"\n== {text}", flush=True)


def info(text: str) -> None:
    print(f"   {text}", flush=True)


def check(claim: str, value: float, target: float, *, unit: str = "x", below: bool = False) -> bool:
    """Print ``PASS`` or ``MISS`` for ``value <= target`` (or ``value < target`` with ``below``)."""
    ok = value < target if below else value <= target
    sign = "<" if below else "<="
    print(f"{'PASS' if ok else 'MISS'} {claim}: {value:.3f}{unit} (target {sign} {target:g}{unit})", flush=True)
    return ok
