"""The in-memory store: a journal that lives as long as the process, for tests and short runs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fanfold._lease import seen
from fanfold._records import Change, Entry, RunRecord, Store
from fanfold._store._rows import check_limit, check_run_id, dump_json, duplicate_run, stamped, unknown_run


class MemoryStore(Store):
    """Runs and entries in dictionaries. Nothing survives the process.

    It behaves like the SQL stores in every way a caller can see: configs and summaries go
    through JSON (so a tuple comes back a list, and a later change to the caller's dict does not
    change the stored record), and entries come back in first-written order.

        >>> import asyncio
        >>> async def main() -> list[str]:
        ...     async with MemoryStore() as store:
        ...         await store.create_run(RunRecord("r1", name="demo"))
        ...         await store.write("r1", [Entry("map[1]", 1, "map[1]", "succeeded", value_json="2")])
        ...         return [entry.key async for entry in store.entries("r1")]
        >>> asyncio.run(main())
        ['map[1]']
    """

    url = "memory://"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        # The clock leases are read against (a test passes a fake one).
        self.clock = clock
        self._runs: dict[str, RunRecord] = {}
        # A dict keeps first-insertion order, and assigning to an existing key keeps its place:
        # exactly "replace an entry, keep its position".
        self._entries: dict[str, dict[str, Entry]] = {}

    def __repr__(self) -> str:
        return "MemoryStore()"

    async def create_run(self, record: RunRecord) -> None:
        record = stamped(record)
        if record.run_id in self._runs:
            raise duplicate_run(record.run_id, self.url)
        self._runs[record.run_id] = dataclasses.replace(
            record, config=_through_json("config", record.run_id, record.config) or {}
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        record = self._runs.get(run_id)
        return None if record is None else seen(record, self.clock())

    async def change_run(self, run_id: str, change: Change) -> RunRecord:
        record = self._runs.get(run_id)
        if record is None:
            raise unknown_run(run_id, self.url)
        changed = change(record)
        self._runs[run_id] = dataclasses.replace(
            changed, summary=_through_json("summary", run_id, changed.summary), config=record.config
        )
        return changed

    async def update_run(
        self,
        run_id: str,
        *,
        status: str,
        summary: dict[str, Any] | None = None,
        resumed: bool = False,
    ) -> None:
        record = self._runs.get(run_id)
        if record is None:
            raise unknown_run(run_id, self.url)
        self._runs[run_id] = dataclasses.replace(
            record,
            status=status,
            summary=record.summary if summary is None else _through_json("summary", run_id, summary),
            resumes=record.resumes + 1 if resumed else record.resumes,
            updated_at=time.time(),
        )

    async def write(self, run_id: str, entries: Sequence[Entry], change: Change | None = None) -> None:
        if change is not None:
            await self.change_run(run_id, change)
        journal = self._entries.setdefault(check_run_id(run_id), {})
        for entry in entries:
            journal[entry.key] = entry

    async def entries(self, run_id: str) -> AsyncIterator[Entry]:
        # A snapshot: a write while the caller iterates must not break the iteration.
        for entry in list(self._entries.get(run_id, {}).values()):
            yield entry

    async def entries_after(self, run_id: str, after: int = 0, limit: int = 1_000) -> list[tuple[int, Entry]]:
        # An entry's position is its place in the run's dict: a replaced entry keeps it, and entries
        # are only ever removed with their run, so positions are stable. islice skips the entries
        # seen before without touching them.
        journal = self._entries.get(run_id, {})
        after = max(0, after)
        return list(zip(itertools.count(after + 1), itertools.islice(journal.values(), after, after + limit)))

    async def counts(self, run_id: str) -> dict[str, int]:
        return dict(Counter(entry.status for entry in self._entries.get(run_id, {}).values()))

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        check_limit(limit)
        runs = list(self._runs.values())
        # Newest first. The sort is stable (also with reverse=True), so reversing the insertion
        # order first puts the run created last first among runs created at the same moment.
        runs.reverse()
        runs.sort(key=lambda record: record.created_at, reverse=True)
        now = self.clock()
        return [seen(record, now) for record in runs[:limit]]

    async def delete_run(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
        self._entries.pop(run_id, None)


def _through_json(what: str, run_id: str, data: dict[str, Any] | None) -> dict[str, Any] | None:
    text = dump_json(what, run_id, data)
    return None if text is None else dict(json.loads(text))
