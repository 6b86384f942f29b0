"""What journaling costs per task: SQLite and Postgres against the in-memory store.

N trivial tasks (``async def f(x): return {"x": x, "label": ...}``) through ``ff.map`` at
concurrency 100, run four ways in the same process, interleaved, best of a few repeats:
no store, ``MemoryStore`` (the journal's own work: keys, digests, encoding, batching, but no
database), ``SQLiteStore`` (a file, WAL) and ``PostgresStore`` (the server on 127.0.0.1:5432,
skipped if none answers). Every journaled outcome is durable before it is reported.

Target: a journaled task costs <= 200 us more on SQLite than with no store (DBOS pays about
1.6 ms per step on SQLite on this machine). The ratios to the in-memory store are printed too.
"""

from __future__ import annotations

import asyncio
import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fanfold as ff
from _common import check, info, timed, title
from fanfold._records import Store
from fanfold._store._memory import MemoryStore
from fanfold._store._postgres import PostgresStore
from fanfold._store._sqlite import SQLiteStore

N = 20_000
REPEATS = 3
POSTGRES = os.environ.get("FANFOLD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def f(x: int) -> dict[str, Any]:
    return {"x": x, "label": "positive" if x % 3 else "negative"}


async def journaled(make_store: Callable[[], Store | None]) -> None:
    store = make_store()
    if store is not None:
        await store.open()
    try:
        result = await ff.run(ff.map(f), range(N), limits=ff.Limits(concurrency=100), store=store, keep=False)
        assert result.summary.succeeded == N, result.summary
        if store is not None:
            counts = await store.counts(result.run_id)
            assert counts == {"succeeded": N}, counts
            await store.delete_run(result.run_id)
    finally:
        if store is not None:
            await store.close()


async def postgres_reachable() -> str | None:
    try:
        async with PostgresStore(POSTGRES):
            return None
    except ff.UsageError as exc:
        return str(exc)


def main() -> None:
    title(f"journal: {N:,} tasks through ff.map, concurrency 100, best of {REPEATS}")
    folder = Path(tempfile.mkdtemp(prefix="fanfold-journal-"))
    ways: dict[str, Callable[[], Store | None]] = {
        "no store": lambda: None,
        "memory": MemoryStore,
        "sqlite": lambda: SQLiteStore(folder / "runs.db"),
    }
    unreachable = asyncio.run(postgres_reachable())
    if unreachable is None:
        ways["postgres"] = lambda: PostgresStore(POSTGRES)
    else:
        info(f"postgres skipped: {unreachable}")
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(REPEATS):
        for name, make in ways.items():
            best[name] = min(best[name], timed(functools.partial(journaled, make)))
    per_task = {name: seconds / N * 1e6 for name, seconds in best.items()}
    base = per_task["no store"]
    info(f"{'store':<10} {'us/task':>9} {'journal us/task':>16} {'x memory':>9}")
    for name, us in per_task.items():
        ratio = us / per_task["memory"]
        info(f"{name:<10} {us:>9.1f} {us - base:>16.1f} {ratio:>8.2f}x")
    check("sqlite journal cost per task (us over no store)", per_task["sqlite"] - base, 200.0, unit=" us")
    if "postgres" in per_task:
        info(f"postgres journal cost per task: {per_task['postgres'] - base:.1f} us over no store")


if __name__ == "__main__":
    main()
