"""Model requests of ``anthropic:...`` models through Anthropic's Message Batches, at half price.

The Anthropic side of ``ff.run(..., batch_api=True)`` (see ``fanfold._llm._batcher``, which
collects, journals and polls): pydantic-ai's Anthropic model sends ``POST /v1/messages`` through
the ``anthropic`` SDK, whose HTTP client hands the body to the run's :class:`~fanfold._llm._batcher.Batcher`;
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
import json
import os
from typing import Any

import httpx2 as httpx

from fanfold._context import RunState
from fanfold._llm._batcher import Answer, Batcher, Transport
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
    """Anthropic's Message Batches, as a :class:`~fanfold._llm._batcher.Batcher` endpoint."""

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


class AnthropicTransport(Transport):
    """Messages requests as batch items. pydantic-ai streams a request whose ``max_tokens`` is
    too large to wait for (the SDK insists on it: a model's default maximum output, say): a batch
    item is never streamed, so its answer is replayed as the events of a stream."""

    def __init__(self, batcher: Batcher, endpoint: AnthropicBatches) -> None:
        super().__init__(batcher)
        self._endpoint = endpoint

    def prepare(self, request: httpx.Request, body: dict[str, Any]) -> bool:
        beta = request.headers.get("anthropic-beta")
        if beta:  # the features the request asked for, asked for by its batch
            self._endpoint.betas.update(part.strip() for part in beta.split(",") if part.strip())
        return bool(body.pop("stream", False))

    def respond(self, request: httpx.Request, status: int, payload: Any, prepared: Any) -> httpx.Response:
        if not prepared or status != 200:
            return super().respond(request, status, payload, prepared)
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(status, content=_events(payload), headers=headers, request=request)


def _events(message: dict[str, Any]) -> bytes:
    """A whole message as the Messages API streams it: start, each block (one delta), stop."""
    out: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        out.append(f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode())

    usage = message.get("usage") or {}
    head = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    emit("message_start", message=head)
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type")
        if kind == "text":
            emit("content_block_start", index=index, content_block={**block, "text": ""})
            emit("content_block_delta", index=index, delta={"type": "text_delta", "text": block.get("text", "")})
        elif kind == "tool_use":
            emit("content_block_start", index=index, content_block={**block, "input": {}})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block.get("input", {}))}
            emit("content_block_delta", index=index, delta=delta)
        elif kind == "thinking":
            emit("content_block_start", index=index, content_block={**block, "thinking": "", "signature": ""})
            emit(
                "content_block_delta",
                index=index,
                delta={"type": "thinking_delta", "thinking": block.get("thinking", "")},
            )
            emit(
                "content_block_delta",
                index=index,
                delta={"type": "signature_delta", "signature": block.get("signature", "")},
            )
        else:  # a block with no deltas (redacted thinking, a server tool's result): whole at its start
            emit("content_block_start", index=index, content_block=block)
        emit("content_block_stop", index=index)
    ending: dict[str, Any] = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    emit("message_delta", delta=ending, usage={k: v for k, v in usage.items() if k != "service_tier"})
    emit("message_stop")
    return b"".join(out)


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
    transport = AnthropicTransport(batcher, endpoint)
    client = anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    )
    state.cleanups.append(client.close)
    return AnthropicModel(ref.model, provider=AnthropicProvider(anthropic_client=client)), batcher
