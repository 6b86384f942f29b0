"""What the dashboard shows, from either of two sources.

- :class:`StoreFeed`: any run in a store, live or not, in this process or another. The feed
  reads the run's record and the entries journaled since its last look (a cursor read,
  ``Store.entries_after``), every :data:`POLL` seconds; a cancel is a request written into the
  run's record, which the process that runs it
  sees (``fanfold._journal.Journal``) and acts on by cancelling its run.
- :class:`BusFeed`: one run of this process, through its events (so it also sees the tasks in
  flight, which a journal does not hold); a cancel is ``Run.cancel()``.

Both produce the same messages: ``{"run": {...}, "spans": [rows], "inflight": [[path, start]]}``,
where ``spans`` are the tasks finished since the previous message (rows in
:data:`fanfold._observe._spans.ROW_FIELDS` order) and ``run`` the run's figures now.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

from fanfold._errors import UsageError
from fanfold._events import (
    Event,
    FanoutStarted,
    ModelCalled,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskRetrying,
    TaskStarted,
    Throttled,
)
from fanfold._journal import request_cancel
from fanfold._lease import seen, total_usage
from fanfold._observe._spans import SpanReader
from fanfold._records import RunRecord, Store
from fanfold._redact import redact
from fanfold._usage import Usage

if TYPE_CHECKING:
    from fanfold._run import Run

POLL = 0.5  # seconds between looks at a store
SLOWEST = 8  # in-flight tasks shown
PAGE = 1_000  # entries read from a store per round trip
FINAL = ("succeeded", "failed", "partial", "cancelled", "interrupted")


class Feed(Protocol):
    async def runs(self) -> list[dict[str, Any]]: ...
    def follow(self, run_id: str) -> AsyncIterator[dict[str, Any]]: ...
    async def cancel(self, run_id: str) -> None: ...


def _run_info(record: RunRecord, now: float) -> dict[str, Any]:
    total = (record.summary or {}).get("total") or (record.config.get("inputs") or {}).get("count")
    usage = total_usage(record.attempts) or (record.summary or {}).get("usage") or {}
    started = float(record.attempts[-1].get("started") or record.created_at) if record.attempts else record.created_at
    ended = record.attempts[-1].get("ended") if record.attempts else None
    end = ended if ended is not None else (now if record.status == "running" else record.updated_at)
    return {
        "run_id": record.run_id,
        "name": record.name,
        "status": record.status,
        "total": total,
        "created_at": record.created_at,
        "elapsed": max(0.0, end - started),
        "attempts": len(record.attempts),
        "tokens": int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0)),
        "cost": float(usage.get("cost", 0.0)),
        "requests": int(usage.get("requests", 0)),
        "throttled": int(usage.get("throttled", 0)),
    }


class StoreFeed:
    """The runs of a store (opened by the caller)."""

    def __init__(self, store: Store, poll: float = POLL) -> None:
        self.store = store
        self.poll = poll

    async def runs(self) -> list[dict[str, Any]]:
        now = time.time()
        return [_run_info(seen(record, now), now) for record in await self.store.list_runs(100)]

    async def _record(self, run_id: str) -> RunRecord:
        record = await self.store.get_run(run_id)
        if record is None:
            raise UsageError(f"{self.store.url} has no run {run_id!r}; pick one of the runs listed")
        return seen(record, time.time())

    async def follow(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        record = await self._record(run_id)
        reader = SpanReader(record)
        cursor = 0  # the position of the last entry read: each poll reads only the entries after it
        while True:
            reader.update(record)
            fresh = []
            while batch := await self.store.entries_after(run_id, cursor, PAGE):
                cursor = batch[-1][0]
                fresh += [entry for _, entry in batch]
                if len(batch) < PAGE:
                    break
            spans = reader.read(fresh)
            # A journal holds finished tasks only: what is in flight is known to the run's own process.
            yield {"run": _run_info(record, time.time()), "spans": [s.as_row() for s in spans], "inflight": None}
            if record.status in FINAL:
                return
            await asyncio.sleep(self.poll)  # a poll is how a store is watched: no store pushes changes
            record = await self._record(run_id)

    async def cancel(self, run_id: str) -> None:
        await self._record(run_id)
        await self.store.change_run(run_id, request_cancel)


class BusFeed:
    """One run of this process, fed by its events; take it before the run's first ``await``."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self.run_id = run.run_id
        self.status = "running"
        self.started_at = time.time()
        self.total: int | None = None
        self.usage = Usage()
        self.retries = 0
        self.throttled = 0
        self.spans: list[list[Any]] = []
        self.inflight: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._events = run.events()

    async def consume(self) -> None:
        """Read the run's events until it ends (the dashboard runs this as a task)."""
        async for event in self._events:
            self.take(event)

    def take(self, event: Event) -> None:
        if isinstance(event, TaskFinished):
            self.inflight.pop(event.path, None)
            self.spans.append(_outcome_row(event))
        elif isinstance(event, TaskStarted):
            self.inflight[event.path] = event.at
        elif isinstance(event, ModelCalled):
            self.usage += event.usage
        elif isinstance(event, TaskRetrying):
            self.retries += 1
        elif isinstance(event, Throttled):
            self.throttled += 1
        elif isinstance(event, FanoutStarted) and event.top:
            self.total = event.total
        elif isinstance(event, RunStarted):
            self.started_at = event.started_at
        elif isinstance(event, RunFinished):
            self.status = event.status
        self._changed.set()

    def _info(self) -> dict[str, Any]:
        usage = asdict(self.usage)
        return {
            "run_id": self.run_id, "name": "this process's run", "status": self.status, "total": self.total,
            "created_at": self.started_at, "elapsed": time.time() - self.started_at, "attempts": 1,
            "tokens": self.usage.tokens, "cost": usage["cost"], "requests": usage["requests"],
            "throttled": max(self.throttled, self.usage.throttled), "retries": self.retries,
        }  # fmt: skip

    async def runs(self) -> list[dict[str, Any]]:
        return [self._info()]

    async def follow(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        self._check(run_id)
        sent = 0
        while True:
            self._changed.clear()
            spans, sent = self.spans[sent:], len(self.spans)
            now = time.time() - self.started_at
            slowest = sorted(self.inflight.items(), key=lambda item: item[1])[:SLOWEST]
            yield {"run": self._info(), "spans": spans, "inflight": [[p, round(now - at, 3)] for p, at in slowest]}
            if self.status != "running":
                return
            await self._changed.wait()
            if self.status == "running":
                await asyncio.sleep(POLL / 2)  # gather a few events into one message

    async def cancel(self, run_id: str) -> None:
        self._check(run_id)
        self._run.cancel()

    def _check(self, run_id: str) -> None:
        if run_id != self.run_id:
            raise UsageError(f"this dashboard shows run {self.run_id!r}, not {run_id!r}")


def _outcome_row(event: TaskFinished) -> list[Any]:
    """The outcome as a span's row (the hot path of a busy run: no Span object on the way)."""
    o = event.outcome
    usage = o.usage
    error = o.reason if o.error is None else redact(str(o.error))
    return [o.path, o.path if o.key is None else repr(o.key), o.status.value,
            None if o.start is None else round(o.start, 4), None if o.end is None else round(o.end, 4), o.attempts, 1,
            0 if usage is None else usage.tokens, 0.0 if usage is None else round(usage.cost, 6),
            0 if usage is None else usage.throttled, error,
            None if o.calls is None else [c.as_row() for c in o.calls]]  # fmt: skip
