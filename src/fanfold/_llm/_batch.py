"""Model requests through the provider's batch endpoint, at half the price, for work that can wait.

``ff.run(..., batch_api=True)`` sends the model requests of ``ff.llm`` agents that qualify (an
OpenAI model named ``openai:...`` or ``openai-chat:...``, or an Anthropic model named
``anthropic:...``; no tools, text or structured output; not a stream, not hedged) through the
provider's batch endpoint: OpenAI's Batch API instead of Chat Completions, Anthropic's Message
Batches (``fanfold._llm._batch_anthropic``) instead of Messages.
Each request is still a leaf call through the one leaf boundary (a :class:`_BatchRequest`):
it reserves its estimated spend from the budget (at the batch price), is admitted on the run's
global concurrency (not on the model's per-minute rate limits: a batch has its own queue), and
is settled and charged when its answer comes back. Its ``send`` goes through pydantic-ai and
the provider's SDK as any request does, but the SDK's HTTP client hands the request body to the
run's :class:`Batcher` for that model instead of the network: the batcher collects bodies
until it has ``SIZE`` of them or ``LINGER`` seconds pass, sends them as one batch through its
:class:`Endpoint` (OpenAI: a JSONL file uploaded, then a batch on it), polls it with backoff, and
answers each request with its result (a failed one is that request's HTTP error, retried or
failed as any; one the batch never ran, expired or cancelled, is a transient 503). A request's
outcome is reported as soon as its own batch ends, whatever the run's other batches do.
Usage is priced at :data:`DISCOUNT` (half) the model's price.

The batch's id and its items' ``custom_id`` are written to the run's record in the store
(``config["batches"]``) as soon as the batch is created. A ``custom_id`` is the task's path,
the attempt and a digest of the body (Anthropic's, a digest of those), the same when a crashed
or stopped run is resumed: a
request whose ``custom_id`` is in a journaled batch awaits that batch (polling it) instead of
being sent again.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx2 as httpx
from pydantic_ai.messages import ModelResponse

from fanfold._context import Context, RunState
from fanfold._llm._model_call import ModelCall, _Request
from fanfold._llm._providers import ModelRef
from fanfold._records import RunRecord
from fanfold._usage import Price

BATCH_API = "fanfold:batch_api"  # the run's services hold this key when it runs with batch_api=True
DISCOUNT = 0.5  # the batch price, as a share of the model's price
SIZE = 1_000  # a batch is sent once it has this many requests ...
LINGER = 0.5  # ... or this many seconds after its first one
POLL = (0.2, 1.5, 30.0)  # polling backoff: first wait, growth, longest wait (seconds)
BATCHABLE = ("openai", "openai-chat", "anthropic")  # providers whose requests can go through a batch API
_DONE = frozenset({"completed", "expired", "cancelled", "failed"})

# The request being sent in this task: (its task's path, its attempt).
_ITEM: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("fanfold_batch_item", default=None)

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


class OpenAIBatches:
    """OpenAI's Batch API: a JSONL file uploaded, a batch on it, its output and error files."""

    path = "/chat/completions"

    def __init__(self, client: Any) -> None:
        self._client = client  # an openai.AsyncOpenAI for the files and batches endpoints

    def custom_id(self, key: str) -> str:
        return key

    async def create(self, items: list[tuple[str, dict[str, Any]]], run_id: str) -> str:
        lines = [
            {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
            for custom_id, body in items
        ]
        content = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
        file = await self._client.files.create(file=("fanfold-batch.jsonl", content), purpose="batch")
        batch = await self._client.batches.create(
            input_file_id=file.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"fanfold_run": run_id},
        )
        return str(batch.id)

    async def ended(self, batch_id: str) -> Any | None:
        batch = await self._client.batches.retrieve(batch_id)
        return batch if batch.status in _DONE else None

    async def results(self, batch: Any) -> dict[str, Answer]:
        results: dict[str, Answer] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id is None:
                continue
            content = await self._client.files.content(file_id)
            for raw in content.text.splitlines():
                if raw.strip():
                    line = json.loads(raw)
                    results[line["custom_id"]] = _line_answer(line)
        return results

    async def close(self) -> None:
        await self._client.close()


def _line_answer(line: dict[str, Any]) -> Answer:
    response = line.get("response")
    if response is not None:
        return int(response.get("status_code", 500)), response.get("body")
    error = line.get("error") or {}
    # never run (the batch expired or was cancelled): a transient error, sent again if retried
    message = f"the batch did not run this request: {error.get('code')}: {error.get('message')}"
    return 503, {"error": {"message": message, "type": "server_error", "code": error.get("code")}}


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
        item = _ITEM.get()
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


class BatchModelCall(ModelCall):
    """A model's governance for batched requests: priced at :data:`DISCOUNT`, admitted on the
    run's global limit only (the model's rate limits do not apply to a batch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resource = None
        self.resources = ()  # type: ignore[assignment]  # the global limit only

    def price(self) -> Price | None:
        price = super().price()
        return None if price is None else Price(price.input * DISCOUNT, price.output * DISCOUNT)

    def leaf(self, ctx: Context, cost: dict[str, float], send: Callable[[], Awaitable[ModelResponse]]) -> _Request:
        return _BatchRequest(self, ctx, cost, send)


class _BatchRequest(_Request):
    """One model request sent through its model's batcher (not hedged: a backup would be a
    second line of the same batch)."""

    __slots__ = ()

    def backup(self) -> None:
        return None

    async def send(self) -> ModelResponse:
        token = _ITEM.set((self.ctx.path, self.attempt))
        try:
            return await super().send()
        finally:
            _ITEM.reset(token)


def batchable(ref: ModelRef | None) -> bool:
    return ref is not None and ref.provider in BATCHABLE


def build_batch_model(ref: ModelRef, state: RunState) -> Any:
    """A model whose requests go through a new :class:`Batcher` (closed with the run): OpenAI's
    chat model on the Batch API, or Anthropic's model on Message Batches."""
    if ref.provider == "anthropic":
        from fanfold._llm._batch_anthropic import build_anthropic_batch_model

        return build_anthropic_batch_model(ref, state)
    import openai
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    api_key = ref.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
    base_url = ref.base_url or os.environ.get("OPENAI_BASE_URL") or None
    control = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=3)
    batcher = Batcher(OpenAIBatches(control), ref.spec, state)
    state.cleanups.append(batcher.aclose)
    client = openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=Transport(batcher)),
    )
    state.cleanups.append(client.close)
    return OpenAIChatModel(ref.model, provider=OpenAIProvider(openai_client=client)), batcher
