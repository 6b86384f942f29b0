"""What the live dashboard costs a run: its event feed attached, with a page reading it.

N tasks (``await asyncio.sleep(0.02)``) through ``ff.map`` at concurrency 100 (about 5,000
outcomes a second with nothing attached), run two ways in the same process, interleaved, best of
a few repeats: without a dashboard, and with ``serve_dashboard(run)`` serving the run and an HTTP
client (standing in for the page) reading its server-sent events to the end.

Targets: the run with the dashboard is at most 5% slower; the feed keeps up with >= 2,000
outcomes a second, delivering every outcome to the client by the run's end.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

import fanfold as ff
from _common import check, info, timed, title
from fanfold._observe._dashboard import serve_dashboard

N = 10_000
REPEATS = 3
CONCURRENCY = 100


async def work(x: int) -> int:
    await asyncio.sleep(0.02)
    return x


async def plain() -> None:
    result = await ff.run(ff.map(work), range(N), limits=ff.Limits(concurrency=CONCURRENCY), keep=False)
    assert result.summary.succeeded == N


received: list[int] = []


async def read_feed(url: str, run_id: str) -> int:
    """Read the run's event stream to its end, as the page does; the outcomes it carried."""
    count = 0
    async with aiohttp.ClientSession() as http, http.get(f"{url}api/runs/{run_id}/events") as response:
        async for line in response.content:
            if line.startswith(b'data: {"run"'):
                count += sum(1 for row in json.loads(line[6:])["spans"] if "/" not in row[0] and row[0])
    return count


async def listened() -> None:
    """The runtime's own cost of building events (a callback that does nothing), for reference."""
    result = await ff.run(ff.map(work), range(N), limits=ff.Limits(concurrency=CONCURRENCY), keep=False,
                          on_event=lambda event: None)  # fmt: skip
    assert result.summary.succeeded == N


run_seconds: list[float] = []


async def watched() -> None:
    """The run with the dashboard serving it and a reader on its feed; what counts is the run's
    own time (from its start to its result, the server's start included, not its stop)."""
    run = ff.start(ff.map(work), range(N), limits=ff.Limits(concurrency=CONCURRENCY), keep=False)
    async with run:
        began = time.perf_counter()
        async with serve_dashboard(run, port=0) as board:
            reader = asyncio.get_running_loop().create_task(read_feed(board.url, run.run_id))
            result = await run.result()
            run_seconds.append(time.perf_counter() - began)
            received.append(await reader)
    assert result.summary.succeeded == N


def main() -> None:
    title(f"dashboard: {N:,} tasks of 20 ms at concurrency {CONCURRENCY}, with and without the live feed")
    bare, events = [], []
    for _ in range(REPEATS):
        bare.append(timed(plain))
        events.append(timed(listened))
        timed(watched)
    best_bare, best_events, best_fed = min(bare), min(events), min(run_seconds)
    info(f"{'no dashboard':>24}: {best_bare:6.3f} s ({N / best_bare:,.0f} outcomes/s)")
    info(f"{'events only (no-op)':>24}: {best_events:6.3f} s ({best_events / best_bare:.3f}x: the runtime's events)")
    info(f"{'dashboard + SSE reader':>24}: {best_fed:6.3f} s ({N / best_fed:,.0f} outcomes/s); "
         f"outcomes the reader got: {min(received):,} of {N:,}")  # fmt: skip
    check("run time with the dashboard / without", best_fed / best_bare, 1.05)
    check("2,000 outcomes/s / the rate the feed delivered", 2000 / (N / best_fed), 1.0)
    check("outcomes the reader missed", N - min(received), 0, unit="")


if __name__ == "__main__":
    main()
