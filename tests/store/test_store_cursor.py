"""Cursor reads (``Store.entries_after``): a reader that polls a live run reads only the entries
written since its last look, on every store; and the dashboard's store feed polls so."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.store.test_store import Bench, entry

from fanfold._lease import Lease, first
from fanfold._observe._feeds import StoreFeed
from fanfold._records import Entry, RunRecord, Store
from fanfold._store._sqlite import SQLiteStore


def test_a_cursor_read_returns_only_what_was_written_after_it(bench: Bench) -> None:
    run_id = bench.run_id()

    async def main(store: Store) -> None:
        await store.create_run(RunRecord(run_id, "map"))
        assert await store.entries_after(run_id) == []
        await store.write(run_id, [entry(f"map[{i}]") for i in range(5)])
        first = await store.entries_after(run_id, 0)
        assert [e.key for _, e in first] == [f"map[{i}]" for i in range(5)]
        positions = [p for p, _ in first]
        assert positions == sorted(positions)
        assert len(set(positions)) == 5
        await store.write(run_id, [entry("map[1]", "failed"), entry("map[5]"), entry("map[6]")])  # one replaced
        fresh = await store.entries_after(run_id, positions[-1])
        assert [e.key for _, e in fresh] == ["map[5]", "map[6]"]  # only the new rows
        assert await store.entries_after(run_id, fresh[-1][0]) == []
        paged = await store.entries_after(run_id, 0, limit=3)
        assert [e.key for _, e in paged] == ["map[0]", "map[1]", "map[2]"]
        assert paged[1][1].status == "failed"  # a replaced entry keeps its place
        rest = await store.entries_after(run_id, paged[-1][0], limit=3)
        assert [e.key for _, e in rest] == ["map[3]", "map[4]", "map[5]"]

    bench.run(main)


class CountingStore(SQLiteStore):
    """A SQLite store that counts the entry rows it hands back."""

    rows = 0

    async def entries_after(self, run_id: str, after: int = 0, limit: int = 1_000) -> list[tuple[int, Entry]]:
        found = await super().entries_after(run_id, after, limit)
        self.rows += len(found)
        return found

    def entries(self, run_id: str) -> Any:
        raise AssertionError("the dashboard reads with the cursor, not the whole journal")


def test_the_dashboards_poll_after_n_entries_reads_only_the_new_ones(tmp_path: Path) -> None:
    async def main() -> list[int]:
        async with CountingStore(tmp_path / "runs.db") as store:
            await store.create_run(first(RunRecord("live", "map"), Lease.new(time.time())))  # live: owned
            await store.write("live", [entry(f"map[{i}]", start=0.0, end=0.1) for i in range(1_500)])
            feed = StoreFeed(store, poll=0.0)
            messages = feed.follow("live")
            read = []
            one = await anext(messages)
            read.append(store.rows)
            await store.write("live", [entry(f"map[{i}]", start=0.1, end=0.2) for i in range(1_500, 1_507)])
            second = await anext(messages)
            read.append(store.rows)
            third = await anext(messages)  # nothing new
            read.append(store.rows)
            await messages.aclose()
            assert (len(one["spans"]), len(second["spans"]), len(third["spans"])) == (1_500, 7, 0)
            return read

    assert asyncio.run(main()) == [1_500, 1_507, 1_507]
