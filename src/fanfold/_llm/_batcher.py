"""The batching core of ``ff.run(..., batch_api=True)``: a :class:`Batcher` per model and run
collects request bodies, sends them as batches through a provider's :class:`Endpoint`, journals
each batch's id before it waits, polls it until it ends, and answers every request from its
results; :class:`Transport` is the SDK's HTTP client that hands a request's body to the batcher
instead of the network. The providers' endpoints are ``fanfold._llm._batch`` (OpenAI's Batch API)
and ``fanfold._llm._batch_anthropic`` (Anthropic's Message Batches).

>>> # batcher = Batcher(OpenAIBatches(openai.AsyncOpenAI()), "openai:gpt-5-mini", state)
>>> # status, body = await batcher.submit(custom_id, {"model": ..., "messages": [...]})
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import json
from typing import Any, Protocol

import httpx2 as httpx

from fanfold._context import RunState
from fanfold._records import RunRecord

SIZE = 1_000  # a batch is sent once it has this many requests ...
LINGER = 0.5  # ... or this many seconds after its first one
POLL = (0.2, 1.5, 30.0)  # polling backoff: first wait, growth, longest wait (seconds)
# The request being sent in this task: (its task's path, its attempt).
ITEM: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("fanfold_batch_item", default=None)

Answer = tuple[int, Any]  # an HTTP status and a JSON body


class Endpoint(Protocol):
    """One provider's batch API, as a :class:`Batcher` uses it."""

    path: str  # the path of the requests it batches (the SDK's HTTP client hands these over)

    def custom_id(self, key: str) -> str:
        """The ``custom_id`` for a request's key (its task's path, attempt and body digest)."""

    async def create(self, items: list[tuple[str, dict[str, Any]]], run_id: str) -> str:
        """Send ``(custom_id, body)`` pairs as one batch; its id."""

    async def ended(self, batch_id: str) -> Any | None:
        """The batch if it has ended (whatever the reason), else None."""

    async def results(self, batch: Any) -> dict[str, Answer]:
        """Each request's answer (by ``custom_id``) in an ended batch."""

    async def close(self) -> None: ...


class Batcher:
    """One model's batches in one run: collects request bodies, sends them as batches, and
    answers each from its batch's results."""

    def __init__(self, endpoint: Endpoint, spec: str, state: RunState) -> None:
        self.endpoint = endpoint
        self._spec = spec
        self._state = state
        self._pending: list[tuple[str, dict[str, Any], asyncio.Future[Answer]]] = []
        self._linger: asyncio.TimerHandle | None = None
        self._polls: dict[str, asyncio.Task[dict[str, Answer]]] = {}
        self._known: asyncio.Task[dict[str, str]] | None = None  # custom_id -> the journaled batch it is in
        self._tasks: set[asyncio.Task[Any]] = set()
        self.created: list[str] = []  # the batches this process created

    async def submit(self, custom_id: str, body: dict[str, Any]) -> Answer:
        """The answer to one request: from the journaled batch it is in already, or a new one."""
        known = await self._journaled()
        batch_id = known.get(custom_id)
        if batch_id is not None:  # sent before the run was stopped: await that batch
            return _answer_of(await asyncio.shield(self._poll(batch_id)), custom_id)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append((custom_id, body, future))
        if len(self._pending) >= SIZE:
            self._flush()
        elif self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(LINGER, self._flush)
        return await future

    async def aclose(self) -> None:
        for task in (*self._tasks, *self._polls.values()):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._polls.values(), return_exceptions=True)
        await self.endpoint.close()

    def _flush(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        items = [item for item in self._pending if not item[2].done()]  # a cancelled request is left out
        self._pending = []
        if items:
            task = asyncio.get_running_loop().create_task(self._send(items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, items: list[tuple[str, dict[str, Any], asyncio.Future[Answer]]]) -> None:
        try:
            batch_id = await self.endpoint.create(
                [(custom_id, body) for custom_id, body, _ in items], self._state.run_id
            )
            self.created.append(batch_id)
            await self._journal(batch_id, [custom_id for custom_id, _, _ in items])
            results = await asyncio.shield(self._poll(batch_id))
        except Exception as exc:  # the upload, the batch or its polling failed: every item fails so
            for _, _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        for custom_id, _, future in items:
            if not future.done():
                future.set_result(_answer_of(results, custom_id))

    def _poll(self, batch_id: str) -> asyncio.Task[dict[str, Answer]]:
        task = self._polls.get(batch_id)
        if task is None:
            task = self._polls[batch_id] = asyncio.get_running_loop().create_task(self._results(batch_id))
        return task

    async def _results(self, batch_id: str) -> dict[str, Answer]:
        """Poll the batch until it ends, then read its results."""
        wait, growth, longest = POLL
        while (batch := await self.endpoint.ended(batch_id)) is None:
            await asyncio.sleep(wait)
            wait = min(longest, wait * growth)
        return await self.endpoint.results(batch)

    async def _journaled(self) -> dict[str, str]:
        """What the run's record says was sent in batches already (read once, by the first request)."""
        if self._known is None:
            self._known = asyncio.get_running_loop().create_task(self._read_journal())
        return await asyncio.shield(self._known)

    async def _read_journal(self) -> dict[str, str]:
        known: dict[str, str] = {}
        journal = self._state.journal
        if journal is not None:
            record = await journal.store.get_run(journal.run_id)
            for batch in record.config.get("batches", []) if record is not None else []:
                if batch.get("model") == self._spec:
                    known.update(dict.fromkeys(batch.get("custom_ids", []), batch["id"]))
        return known

    async def _journal(self, batch_id: str, custom_ids: list[str]) -> None:
        journal = self._state.journal
        if journal is None:
            return
        entry = {"id": batch_id, "model": self._spec, "custom_ids": custom_ids}

        def add(record: RunRecord) -> RunRecord:
            config = {**record.config, "batches": [*record.config.get("batches", []), entry]}
            return dataclasses.replace(record, config=config)

        await journal.store.change_run(journal.run_id, add)


def _answer_of(results: dict[str, Answer], custom_id: str) -> Answer:
    found = results.get(custom_id)
    if found is not None:
        return found
    message = f"the batch has no result for {custom_id}"
    return 503, {"error": {"message": message, "type": "server_error", "code": "missing"}}


class Transport(httpx.AsyncBaseTransport):
    """The SDK's HTTP client for batched requests: a request to the endpoint's path goes to the
    batcher. A provider's subclass may change the body first (:meth:`prepare`) and shape the
    answer (:meth:`respond`)."""

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    def prepare(self, request: httpx.Request, body: dict[str, Any]) -> Any:
        """Make the request's body a batch item's (in place); what :meth:`respond` needs to know."""
        return None

    def respond(self, request: httpx.Request, status: int, payload: Any, prepared: Any) -> httpx.Response:
        return httpx.Response(status, json=payload, request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        item = ITEM.get()
        body = json.loads(await request.aread())
        path = self._batcher.endpoint.path
        if item is None or not request.url.path.endswith(path):
            raise httpx.UnsupportedProtocol(f"fanfold's batch client sends {path} requests only, not {request.url}")
        prepared = self.prepare(request, body)
        task, attempt = item
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        custom_id = self._batcher.endpoint.custom_id(f"{task or 'root'}#{attempt}#{digest}")
        status, payload = await self._batcher.submit(custom_id, body)
        return self.respond(request, status, payload, prepared)
