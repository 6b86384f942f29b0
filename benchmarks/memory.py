"""Memory: a million inputs from a generator, streamed through ``ff.map`` with ``ff.as_completed``.

The agent is trivial (``async def f(x): return x``), the concurrency 100, and the consumer only
counts the outcomes, so the run keeps none. Each figure is the peak RSS (``ru_maxrss``) of a
fresh child process, so one run's heap cannot flatter or burden the next:

- baseline: the interpreter with fanfold imported, running nothing;
- 100k: the same after streaming 100,000 inputs;
- 1M: the same after streaming 1,000,000 inputs.

Targets: the 1M peak is <= 150 MB, and memory stays flat: the 1M peak is within 1.1x of the
100k peak.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

import fanfold as ff
from _common import check_flat_memory, info, title

CONCURRENCY = 100


async def f(x: int) -> int:
    return x


async def stream(n: int) -> int:
    count = 0
    inputs = (i for i in range(n))
    async for _ in ff.as_completed(ff.map(f), inputs, limits=ff.Limits(concurrency=CONCURRENCY)):
        count += 1
    return count


def child(n: int) -> None:
    """Stream ``n`` inputs (none: only the import) and print the peak RSS as JSON."""
    began = time.perf_counter()
    count = asyncio.run(stream(n)) if n else 0
    seconds = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    print(json.dumps({"count": count, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    title(f"memory: inputs from a generator through ff.map + ff.as_completed, concurrency {CONCURRENCY}")
    info("peak RSS of a fresh process per row")
    check_flat_memory(__file__, "baseline (import fanfold)", "inputs")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]))
    else:
        main()
