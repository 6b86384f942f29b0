"""Memory: a million inputs from a generator, streamed through ``ff.map`` with ``ff.as_completed``,
and through a run handle (``ff.start(...)`` and ``run.as_completed()``).

The agent is trivial (``async def f(x): return x``), the concurrency 100, and the consumer only
counts the outcomes, so the run keeps none. Each figure is the peak RSS (``ru_maxrss``) of a
fresh child process, so one run's heap cannot flatter or burden the next:

- baseline: the interpreter with fanfold imported, running nothing;
- 100k: the same after streaming 100,000 inputs;
- 1M: the same after streaming 1,000,000 inputs.

Targets: the 1M peak is <= 150 MB, and memory stays flat: the 1M peak is within 1.1x of the
100k peak. Streaming through the handle (which stops keeping outcomes once they are streamed):
the 1M peak is <= 150 MB and within 1.05x of its 100k peak.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time

import fanfold as ff
from _common import check, check_flat_memory, info, title

CONCURRENCY = 100


async def f(x: int) -> int:
    return x


async def stream(n: int) -> int:
    count = 0
    inputs = (i for i in range(n))
    async for _ in ff.as_completed(ff.map(f), inputs, limits=ff.Limits(concurrency=CONCURRENCY)):
        count += 1
    return count


async def stream_handle(n: int) -> int:
    count = 0
    inputs = (i for i in range(n))
    async with ff.start(ff.map(f), inputs, limits=ff.Limits(concurrency=CONCURRENCY)) as run:
        async for _ in run.as_completed():
            count += 1
    result = await run.result()
    assert result.summary.total == n, result
    assert not result.outcomes, result
    return count


def child(n: int, handle: bool = False) -> None:
    """Stream ``n`` inputs (none: only the import) and print the peak RSS as JSON."""
    began = time.perf_counter()
    count = asyncio.run(stream_handle(n) if handle else stream(n)) if n else 0
    seconds = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    print(json.dumps({"count": count, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    title(f"memory: inputs from a generator through ff.map + ff.as_completed, concurrency {CONCURRENCY}")
    info("peak RSS of a fresh process per row")
    check_flat_memory(__file__, "baseline (import fanfold)", "inputs")
    title(f"memory: the same through a run handle: ff.start + run.as_completed(), concurrency {CONCURRENCY}")
    runs = {}
    for n in (100_000, 1_000_000):
        command = [sys.executable, __file__, "--child-handle", str(n)]
        runs[n] = figures = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        assert figures["count"] == n, f"handled {figures['count']} of {n}"
        info(f"{n:>26,}: {figures['peak_mb']:6.1f} MB ({n / figures['seconds']:,.0f} inputs/s)")
    peak_1m = runs[1_000_000]["peak_mb"]
    check("handle: peak RSS at 1M inputs", peak_1m, 150, unit=" MB")
    check("handle: peak RSS 1M / 100k", peak_1m / runs[100_000]["peak_mb"], 1.05)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]))
    elif sys.argv[1:2] == ["--child-handle"]:
        child(int(sys.argv[2]), handle=True)
    else:
        main()
