"""Anthropic's Message Batches on the simulated provider.

``POST /v1/messages/batches`` takes ``{"requests": [{"custom_id", "params"}, ...]}`` (each
``params`` a ``POST /v1/messages`` body; ``custom_id`` 1 to 64 letters, digits, ``_`` or ``-``,
unique in the batch). A batch is ``in_progress`` (every request counted as ``processing``) for the
provider's ``batch_delay`` (or until released), then ``ended``: each request answered as the
Messages route would answer it, ``succeeded`` with its message or ``errored`` with Anthropic's
error body (a fault drawn per request, as for a live request, or a body the route would refuse).
Past ``batch_expiry`` every request is ``expired`` instead; ``POST .../cancel`` makes the batch
``canceling`` and then ``ended`` with every request ``canceled``. Once ended, ``results_url``
(``GET /v1/messages/batches/{id}/results``) streams one JSONL line per request. These are the
shapes of the ``anthropic`` SDK's ``MessageBatch`` and ``MessageBatchIndividualResponse``.

>>> # client = anthropic.AsyncAnthropic(base_url=sim.anthropic_base_url, api_key="sk-test")
>>> # batch = await client.messages.batches.create(requests=[{"custom_id": "a", "params": {...}}])
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fanfold._sim._answers import digest, make_answer
from fanfold._sim._anthropic import Messages
from fanfold._sim._config import AnswerSetting, Faults
from fanfold._sim._wire import BadRequest

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_FAULT_ERRORS = {  # an injected fault, as the errored result's error type
    "429": "rate_limit_error",
    "500": "api_error",
    "529": "overloaded_error",
    "timeout": "api_error",
    "malformed": "api_error",
}
_DAY = 24 * 3600


def _rfc3339(wall: float | None) -> str | None:
    return None if wall is None else datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _MessageBatch:
    id: str
    requests: list[dict[str, Any]]
    created_at: float
    results_url: str  # given once the batch has ended
    processing_status: str = "in_progress"
    results: list[dict[str, Any]] = field(default_factory=list)
    ended_at: float | None = None
    cancel_initiated_at: float | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if self.processing_status != "ended":
            counts["processing"] = len(self.requests)
        for line in self.results:
            counts[line["result"]["type"]] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        ended = self.processing_status == "ended"
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.processing_status,
            "request_counts": self.counts(),
            "created_at": _rfc3339(self.created_at),
            "expires_at": _rfc3339(self.created_at + _DAY),
            "ended_at": _rfc3339(self.ended_at),
            "cancel_initiated_at": _rfc3339(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": self.results_url if ended else None,
        }


class MessageBatches:
    """Anthropic's Message Batches on one simulated provider (touched from its event loop only)."""

    def __init__(
        self,
        *,
        answer: Callable[[], AnswerSetting],
        faults: Faults,
        seed: int,
        timing: Callable[[], tuple[float, float | None]],
        numbers: Any,
        fault_rng: Any,
    ) -> None:
        self._answer = answer
        self._faults = faults
        self._seed = seed
        self._timing = timing  # (delay, expiry), as the OpenAI batches have them now
        self._numbers = numbers  # shared with the live routes: one arrival order
        self._fault_rng = fault_rng
        self.batches: dict[str, _MessageBatch] = {}
        self.answered = 0  # requests answered (successfully), over all batches
        self._tasks: set[asyncio.Task[None]] = set()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages/batches", self._create)
        app.router.add_get("/v1/messages/batches", self._list)
        app.router.add_get("/v1/messages/batches/{id}", self._retrieve)
        app.router.add_get("/v1/messages/batches/{id}/results", self._results)
        app.router.add_post("/v1/messages/batches/{id}/cancel", self._cancel)

    # --- the routes ----------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return _error(400, "requests: pass a non-empty list of {custom_id, params}")
        seen: set[str] = set()
        for i, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
                return _error(400, f"requests.{i}.custom_id={custom_id!r}: use 1 to 64 letters, digits, '_' or '-'")
            if custom_id in seen:
                return _error(400, f"requests.{i}.custom_id={custom_id!r}: custom_id must be unique in a batch")
            if not isinstance(item.get("params"), dict):
                return _error(400, f"requests.{i}.params: pass a Messages API body")
            seen.add(custom_id)
        batch_id = f"msgbatch_{digest(self._seed, 'msgbatch', str(len(self.batches) + 1))}"
        url = str(request.url.with_path(f"/v1/messages/batches/{batch_id}/results").with_query(None))
        batch = self.batches[batch_id] = _MessageBatch(batch_id, requests, time.time(), url)
        task = asyncio.get_running_loop().create_task(self._process(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _json(batch.to_dict())

    async def _list(self, request: web.Request) -> web.Response:
        data = [batch.to_dict() for batch in reversed(self.batches.values())]  # newest first, as Anthropic lists
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return _json({"data": data, "has_more": False, "first_id": first, "last_id": last})

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        return _json(batch.to_dict()) if batch is not None else _error(404, "no such message batch", "not_found_error")

    async def _results(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _error(404, "no such message batch", "not_found_error")
        if batch.processing_status != "ended":
            return _error(400, f"message batch {batch.id} has not ended yet: its results are not ready")
        content = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in batch.results)
        return web.Response(body=content.encode(), content_type="application/binary")

    async def _cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _error(404, "no such message batch", "not_found_error")
        if batch.processing_status == "in_progress":
            batch.processing_status = "canceling"
            batch.cancel_initiated_at = time.time()
            batch.release.set()
        return _json(batch.to_dict())

    # --- a batch's life ------------------------------------------------------------------------

    def release(self, batch_id: str | None = None) -> None:
        """Finish a batch (or every batch) waiting out its delay, now."""
        for batch in self.batches.values():
            if batch_id is None or batch.id == batch_id:
                batch.release.set()

    async def _process(self, batch: _MessageBatch) -> None:
        delay, expiry = self._timing()
        wait: float | None = delay if expiry is None else min(delay, expiry)
        if wait is not None and math.isinf(wait):
            wait = None  # held until released
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(batch.release.wait(), timeout=wait)
        if batch.processing_status == "canceling":
            outcome: str | None = "canceled"
        elif expiry is not None and not batch.release.is_set() and delay > expiry:
            outcome = "expired"
        else:
            outcome = None
        for item in batch.requests:
            result = {"type": outcome} if outcome is not None else self._answer_one(item["params"])
            batch.results.append({"custom_id": item["custom_id"], "result": result})
        self.answered += sum(line["result"]["type"] == "succeeded" for line in batch.results)
        batch.processing_status = "ended"
        batch.ended_at = time.time()

    def _answer_one(self, params: dict[str, Any]) -> dict[str, Any]:
        """One request's result, as ``POST /v1/messages`` would answer it."""
        wire = Messages()
        number = next(self._numbers)
        ids = digest(self._seed, "id", str(number))
        if params.get("stream"):
            return _errored("invalid_request_error", "stream: a batched request cannot be streamed", ids)
        try:
            sim_request = wire.parse(params, number)
        except (KeyError, ValueError, BadRequest, AttributeError, TypeError) as exc:
            return _errored("invalid_request_error", str(exc), ids)
        try:
            fault = self._faults.pick(self._fault_rng, number, sim_request)
            if fault is not None:
                return _errored(_FAULT_ERRORS[fault], f"an injected {fault} fault (the simulator)", ids)
            answer = make_answer(self._answer(), sim_request, self._seed)
        except Exception as exc:  # a bug in a scripted fault or answer: that request errs, as a live one gets a 500
            return _errored("api_error", f"the simulator's script raised {type(exc).__name__}: {exc}", ids)
        return {"type": "succeeded", "message": wire.body(answer, sim_request, ids, int(time.time()))}


def _errored(kind: str, message: str, ids: str) -> dict[str, Any]:
    error = {"type": "error", "error": {"type": kind, "message": message}, "request_id": f"req_{ids}"}
    return {"type": "errored", "error": error}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return _json({"type": "error", "error": {"type": kind, "message": message}}, status)
