"""Model requests of ``anthropic:...`` models through Anthropic's Message Batches, at half price.

The Anthropic side of ``ff.run(..., batch_api=True)`` (see ``fanfold._llm._batch``, which
collects, journals and polls): pydantic-ai's Anthropic model sends ``POST /v1/messages`` through
the ``anthropic`` SDK, whose HTTP client hands the body to the run's :class:`~fanfold._llm._batch.Batcher`;
the batcher sends bodies as one ``messages.batches.create`` call, polls ``messages.batches.retrieve``
until ``processing_status`` is ``ended``, and reads ``messages.batches.results``. Each result is
that request's answer: ``succeeded`` its message; ``errored`` Anthropic's error, with the status
the Messages API gives that error type (an overload a 529, retried; an invalid request a 400,
failed); ``canceled`` or ``expired`` (never run) a transient 503, sent again in a new batch if
retried. A ``custom_id`` must be 1 to 64 letters, digits, ``_`` or ``-``: fanfold's is a digest
of the request's key, stable across a resume.

>>> # ff.run_sync(ff.map(ff.llm("anthropic:claude-haiku-4-5")), docs, batch_api=True)
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import httpx2 as httpx

from fanfold._context import RunState
from fanfold._llm._batch import Answer, Batcher, Transport
from fanfold._llm._providers import ModelRef

# The HTTP status the Messages API answers with for each error type.
_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicBatches:
    """Anthropic's Message Batches, as a :class:`~fanfold._llm._batch.Batcher` endpoint."""

    path = "/v1/messages"

    def __init__(self, client: Any) -> None:
        self._client = client  # an anthropic.AsyncAnthropic for the messages.batches endpoints
        self.betas: set[str] = set()  # the anthropic-beta features the batched requests asked for

    def custom_id(self, key: str) -> str:
        return "ff-" + hashlib.sha256(key.encode()).hexdigest()[:40]

    async def create(self, items: list[tuple[str, dict[str, Any]]], run_id: str) -> str:
        headers = {"anthropic-beta": ",".join(sorted(self.betas))} if self.betas else None
        requests: Any = [{"custom_id": custom_id, "params": body} for custom_id, body in items]
        batch = await self._client.messages.batches.create(requests=requests, extra_headers=headers)
        return str(batch.id)

    async def ended(self, batch_id: str) -> Any | None:
        batch = await self._client.messages.batches.retrieve(batch_id)
        return batch if batch.processing_status == "ended" else None

    async def results(self, batch: Any) -> dict[str, Answer]:
        return {
            line.custom_id: _answer(line.result) async for line in await self._client.messages.batches.results(batch.id)
        }

    async def close(self) -> None:
        await self._client.close()


def _answer(result: Any) -> Answer:
    """A result line as the Messages API would have answered the request."""
    if result.type == "succeeded":
        return 200, result.message.model_dump(mode="json")
    if result.type == "errored":
        error = result.error.model_dump(mode="json")
        return _STATUS.get(error["error"]["type"], 500), error
    # canceled or expired: never run; a transient error, sent again if retried
    message = f"the message batch did not run this request: {result.type}"
    return 503, {"type": "error", "error": {"type": "api_error", "message": message}}


def _prepare(request: httpx.Request, body: dict[str, Any], endpoint: AnthropicBatches) -> None:
    """A Messages request made a batch request's params: not streamed, its betas kept for the batch."""
    body.pop("stream", None)
    beta = request.headers.get("anthropic-beta")
    if beta:
        endpoint.betas.update(part.strip() for part in beta.split(",") if part.strip())


def build_anthropic_batch_model(ref: ModelRef, state: RunState) -> Any:
    """An Anthropic model whose requests go through a new :class:`Batcher` (closed with the run)."""
    import anthropic
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    api_key = ref.api_key or os.environ.get("ANTHROPIC_API_KEY") or "not-needed"
    base_url = ref.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
    endpoint = AnthropicBatches(anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=3))
    batcher = Batcher(endpoint, ref.spec, state)
    state.cleanups.append(batcher.aclose)
    transport = Transport(batcher, lambda request, body: _prepare(request, body, endpoint))
    client = anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    )
    state.cleanups.append(client.close)
    return AnthropicModel(ref.model, provider=AnthropicProvider(anthropic_client=client)), batcher
