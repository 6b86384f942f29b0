"""How much a store's ``write`` costs per journaled entry: 10,000 entries in batches of 256.

    python benchmarks/_store_probe.py [postgresql://...]

Not a benchmark of its own (run_all skips it): a probe for the journal's budget of <= 200 us per
task on SQLite, journal overhead included. Each figure is the best of a few repeats, and splits
into wall time per entry and the time the event loop itself spent (the rest ran on the store's
worker thread or waited on the server). Entries look like real ones: a JSON value, usage, timings.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from fanfold._records import Entry, Store
from fanfold._store._memory import MemoryStore
from fanfold._store._postgres import PostgresStore
from fanfold._store._sqlite import SQLiteStore

N = 10_000
BATCH = 256
REPEATS = 3
POSTGRES_URL = os.environ.get("FANFOLD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def entries() -> list[Entry]:
    return [
        Entry(
            key=f"map[{i}]",
            index=i,
            path=f"map[{i}]",
            status="succeeded",
            value_json=f'{{"summary": "document {i} is about this and that", "score": 0.{i}}}',
            attempts=1,
            start=1_700_000_000.0 + i,
            end=1_700_000_000.5 + i,
            usage='{"requests": 1, "input_tokens": 812, "output_tokens": 96}',
            input_digest=f"{i:064x}",
        )
        for i in range(N)
    ]


async def probe(store: Store) -> tuple[float, float]:
    """Best (wall us/entry, event-loop CPU us/entry) over REPEATS runs of N entries."""
    batch_list = entries()
    batches = [batch_list[i : i + BATCH] for i in range(0, N, BATCH)]
    best_wall = best_cpu = float("inf")
    async with store:
        for _ in range(REPEATS):
            run_id = f"probe-{uuid.uuid4().hex}"
            wall, cpu = time.perf_counter(), time.thread_time()
            for batch in batches:
                await store.write(run_id, batch)
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
            assert (await store.counts(run_id)) == {"succeeded": N}
            await store.delete_run(run_id)
    return best_wall / N * 1e6, best_cpu / N * 1e6


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else POSTGRES_URL
    with tempfile.TemporaryDirectory() as tmp:
        stores: list[Store] = [MemoryStore(), SQLiteStore(Path(tmp) / "runs.db"), PostgresStore(url)]
        print(f"write() of {N:,} entries in batches of {BATCH}, best of {REPEATS}")
        for store in stores:
            try:
                wall, cpu = asyncio.run(probe(store))
            except Exception as exc:  # a probe: report the store that could not run, go on with the rest
                print(f"  {store!r}: not measured ({exc})")
                continue
            print(f"  {store!r}: {wall:7.2f} us/entry wall, {cpu:6.2f} us/entry on the event loop")


if __name__ == "__main__":
    main()
