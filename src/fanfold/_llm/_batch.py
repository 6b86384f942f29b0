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
run's :class:`~fanfold._llm._batcher.Batcher` for that model instead of the network: the
batcher collects bodies until it has ``SIZE`` of them or ``LINGER`` seconds pass, sends them as
one batch through its endpoint (here OpenAI's: a JSONL file uploaded, then a batch on it), polls it with backoff, and
answers each request with its result (a failed one is that request's HTTP error, retried or
failed as any; one the batch never ran, expired or cancelled, is a transient 503). A request's
outcome is reported as soon as its own batch ends, whatever the run's other batches do.
Usage is priced at :data:`DISCOUNT` (half) the model's price.

The batch's id and its items' ``custom_id`` are written to the run's record in the store
(``config["batches"]``) as soon as the batch is created. A ``custom_id`` is the task's path,
the attempt and a digest of the body (Anthropic's, a digest of those), the same when a crashed
or stopped run is resumed: a request whose ``custom_id`` is in a journaled batch awaits that
batch (polling it) instead of being sent again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2 as httpx
from pydantic_ai.messages import ModelResponse

from fanfold._context import Context, RunState
from fanfold._llm._batch_anthropic import build_anthropic_batch_model
from fanfold._llm._batcher import ITEM, Answer, Batcher, Transport
from fanfold._llm._model_call import ModelCall, _Request
from fanfold._llm._providers import ModelRef
from fanfold._usage import Price

BATCH_API = "fanfold:batch_api"  # the run's services hold this key when it runs with batch_api=True
DISCOUNT = 0.5  # the batch price, as a share of the model's price
BATCHABLE = ("openai", "openai-chat", "anthropic")  # providers whose requests can go through a batch API
_DONE = frozenset({"completed", "expired", "cancelled", "failed"})


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
        token = ITEM.set((self.ctx.path, self.attempt))
        try:
            return await super().send()
        finally:
            ITEM.reset(token)


def batchable(ref: ModelRef | None) -> bool:
    return ref is not None and ref.provider in BATCHABLE


def build_batch_model(ref: ModelRef, state: RunState) -> Any:
    """A model whose requests go through a new :class:`Batcher` (closed with the run): OpenAI's
    chat model on the Batch API, or Anthropic's model on Message Batches."""
    if ref.provider == "anthropic":
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
