"""The simulated provider's HTTP handlers: one request from arrival to answer.

At arrival a request is checked for an API key, parsed by its wire format, given a number, a
fault draw and a latency draw (both seeded, one draw each per request, so the sequences depend
only on the seed and the arrival order), and then admitted or denied by the rate limiter. An
admitted request gets its fault, or its answer after its latency.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fanfold._errors import UsageError
from fanfold._sim._answers import Answer, digest, make_answer
from fanfold._sim._anthropic import Messages
from fanfold._sim._batches import Batches
from fanfold._sim._buckets import DEFAULT_OUTPUT_RESERVATION, ProviderLimiter, Verdict
from fanfold._sim._config import AnswerSetting, FaultKind, Faults, Latency, SimLimits, SimRequest
from fanfold._sim._openai import ChatCompletions, Responses
from fanfold._sim._stats import Slot, StatsRecorder
from fanfold._sim._wire import BadRequest, ErrorKind, Wire

_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"
_MAX_WRITES = 16  # a stream with latency is written in at most this many timed slices


class SimService:
    """The state behind one simulated provider and its aiohttp application."""

    def __init__(
        self,
        *,
        limits: SimLimits | None,
        latency: Latency,
        faults: Faults,
        answer: AnswerSetting,
        seed: int,
        rate_limit_headers: bool,
        batch_delay: float = 0.0,
        batch_expiry: float | None = None,
    ) -> None:
        self.limits = limits
        self.latency = latency
        self.faults = faults
        self.answer = answer
        self.seed = seed
        self.rate_limit_headers = rate_limit_headers
        self.recorder = StatsRecorder()
        self.limiter: ProviderLimiter | None = None
        self._numbers = itertools.count(1)
        self._fault_rng = random.Random(f"fanfold-sim:faults:{seed}")
        self._latency_rng = random.Random(f"fanfold-sim:latency:{seed}")
        self.batches = Batches(
            answer=lambda: self.answer,
            faults=faults,
            seed=seed,
            delay=batch_delay,
            expiry=batch_expiry,
            numbers=self._numbers,
            fault_rng=self._fault_rng,
        )

    def started(self, now: float) -> None:
        """The server starts listening: buckets start full, and a ramp starts now."""
        self.limiter = None if self.limits is None else ProviderLimiter(self.limits, now)

    def set_limits(self, limits: SimLimits | None) -> None:
        if limits is not None and not isinstance(limits, SimLimits):
            raise UsageError(f"set_limits({limits!r}): pass a SimLimits, or None for no rate limits")
        self.limits = limits
        if limits is None:
            self.limiter = None
        elif self.limiter is None:
            self.limiter = ProviderLimiter(limits, time.monotonic())
        else:
            self.limiter.set_limits(limits, time.monotonic())

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path, wire in (
            ("/v1/chat/completions", ChatCompletions()),
            ("/v1/responses", Responses()),
            ("/v1/messages", Messages()),
        ):
            app.router.add_post(path, self._handler(wire))
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        self.batches.routes(app)  # OpenAI's Batch API and Anthropic's Message Batches
        app.router.add_get("/_sim/stats", self._get_stats)
        app.router.add_get("/_sim/limits", self._get_limits)
        app.router.add_post("/_sim/limits", self._post_limits)
        app.router.add_post("/_sim/reset", self._post_reset)
        return app

    # --- control endpoints -------------------------------------------------------------------

    async def _get_stats(self, request: web.Request) -> web.Response:
        return _json(self.recorder.snapshot().to_dict())

    async def _get_limits(self, request: web.Request) -> web.Response:
        return _json(None if self.limits is None else self.limits.to_dict())

    async def _post_limits(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
            limits = None if data is None else SimLimits.from_dict(data)
        except (ValueError, TypeError) as exc:  # UsageError is a ValueError
            return _json({"error": f"{exc}; POST a JSON object of SimLimits fields, or null"}, status=400)
        self.set_limits(limits)
        return _json(None if limits is None else limits.to_dict())

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.recorder.reset()
        return _json({"reset": True})

    async def _count_tokens(self, request: web.Request) -> web.Response:
        wire = Messages()
        try:
            body = json.loads(await request.read())
            parsed = wire.parse({"max_tokens": 1, **body}, 0)
        except (ValueError, BadRequest, AttributeError, TypeError, KeyError) as exc:
            return _json(wire.error("invalid", str(exc), "req_count"), status=400)
        return _json({"input_tokens": parsed.input_tokens})

    # --- the API endpoints -------------------------------------------------------------------

    def _handler(self, wire: Wire) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            now = time.monotonic()
            recorder = self.recorder
            slot = recorder.arrive(now)
            try:
                return await self._serve(request, wire, slot, now)
            except asyncio.CancelledError:  # the client went away (aiohttp cancels the handler)
                recorder.disconnected(slot)
                raise
            finally:
                recorder.leave()

        return handle

    async def _serve(self, request: web.Request, wire: Wire, slot: Slot, now: float) -> web.StreamResponse:
        sim_request = await self._read(request, wire, slot)
        if isinstance(sim_request, web.Response):
            return sim_request
        number = sim_request.number
        fault = self.faults.pick(self._fault_rng, number, sim_request)
        base_latency = self.latency.draw(self._latency_rng)
        ids = digest(self.seed, "id", str(number))
        reservation = sim_request.max_tokens or DEFAULT_OUTPUT_RESERVATION
        limiter = self.limiter
        if limiter is not None:
            verdict = limiter.admit(sim_request.input_tokens, reservation, now)
            if not verdict.admitted:
                return self._denied(wire, slot, sim_request, verdict, ids)
        used = 0
        try:
            if fault == "429" and limiter is not None:  # turned away: charged no tokens after all
                limiter.refund(sim_request.input_tokens, reservation, now)
                limiter = None
            if fault is not None and fault != "malformed":
                return await self._fault(request, wire, slot, fault, ids)
            try:
                answer = make_answer(self.answer, sim_request, self.seed)
            except Exception as exc:  # a bug in a scripted answer: tell the client, as a 500
                message = f"the simulator's answer raised {type(exc).__name__}: {exc}"
                return self._error(wire, slot, 500, "server", message, ids)
            delay = self.latency.total(base_latency, answer.output_tokens)
            if fault == "malformed":
                return await self._malformed(request, wire, slot, sim_request, answer, ids, delay)
            response = await self._respond(request, wire, sim_request, answer, ids, delay)
            if response is None:  # the client went away mid-stream
                self.recorder.disconnected(slot)
                return web.Response()  # never sent: the connection is gone
            used = answer.output_tokens
            self.recorder.succeeded(slot, sim_request.input_tokens, used)
            return response
        finally:
            if limiter is not None:
                limiter.settle(reservation, used, time.monotonic())

    async def _read(self, request: web.Request, wire: Wire, slot: Slot) -> SimRequest | web.Response:
        """The request, numbered in arrival order; or a 401 (no API key) or 400 (a bad body)."""
        headers = request.headers
        authorization = headers.get("Authorization", "")
        if not (authorization.startswith("Bearer ") and len(authorization) > 7) and not headers.get("x-api-key"):
            message = "No API key provided: send 'Authorization: Bearer <key>' or 'x-api-key: <key>' (any value)"
            return self._error(wire, slot, 401, "auth", message, "unauthenticated")
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise BadRequest("the request body must be a JSON object")
            sim_request = wire.parse(body, next(self._numbers))
        except (ValueError, BadRequest) as exc:
            return self._error(wire, slot, 400, "invalid", str(exc), "invalid")
        except (AttributeError, TypeError, KeyError) as exc:  # a field of the wrong shape, deep inside
            message = f"the request body does not have the shape the API expects ({type(exc).__name__}: {exc})"
            return self._error(wire, slot, 400, "invalid", message, "invalid")
        self.recorder.model(sim_request.model)
        return sim_request

    def _denied(self, wire: Wire, slot: Slot, sim_request: SimRequest, verdict: Verdict, ids: str) -> web.Response:
        message = (
            f"Rate limit reached for {sim_request.model} on {verdict.bucket} per min. "
            f"Please try again in {verdict.retry_after:.3f}s."
        )
        kind: ErrorKind = "rate_limit_tokens" if "tokens" in verdict.bucket else "rate_limit"
        return self._limited(wire, slot, verdict.retry_after, message, ids, kind)

    async def _respond(
        self, request: web.Request, wire: Wire, sim_request: SimRequest, answer: Answer, ids: str, delay: float
    ) -> web.StreamResponse | None:
        """The answer after its latency, whole or streamed; None if the client left mid-stream."""
        if sim_request.stream:
            try:
                return await self._stream(request, wire, sim_request, answer, ids, delay)
            except ConnectionResetError:
                return None
        if delay > 0:
            await asyncio.sleep(delay)
        return _json(wire.body(answer, sim_request, ids, int(time.time())), headers=self._headers(wire, ids))

    def _headers(self, wire: Wire, ids: str) -> dict[str, str]:
        headers = {wire.request_id_header: f"req_{ids}"}
        if self.rate_limit_headers and self.limiter is not None:
            headers.update(wire.limit_headers(self.limiter.states(time.monotonic()), time.time()))
        return headers

    def _error(
        self, wire: Wire, slot: Slot, status: int, kind: ErrorKind, message: str, ids: str, fault: str | None = None
    ) -> web.Response:
        self.recorder.failed(slot, status, fault)
        return _json(wire.error(kind, message, f"req_{ids}"), status=status, headers=self._headers(wire, ids))

    def _limited(
        self, wire: Wire, slot: Slot, retry_after: float, message: str, ids: str, kind: ErrorKind | None
    ) -> web.Response:
        """A 429: ``kind`` None for an injected one, else which kind of bucket ran dry."""
        self.recorder.limited(slot, injected=kind is None)
        headers = self._headers(wire, ids)
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))
        return _json(wire.error(kind or "rate_limit", message, f"req_{ids}"), status=429, headers=headers)

    async def _fault(
        self, request: web.Request, wire: Wire, slot: Slot, fault: FaultKind, ids: str
    ) -> web.StreamResponse:
        if fault == "429":
            return self._limited(wire, slot, 1.0, "Rate limit reached (injected by the simulator)", ids, None)
        if fault == "500":
            message = "The server had an error while processing your request (injected by the simulator)"
            return self._error(wire, slot, 500, "server", message, ids, fault)
        if fault == "529":
            message = "Overloaded (injected by the simulator)"
            return self._error(wire, slot, wire.overloaded_status, "overloaded", message, ids, fault)
        # "timeout": hold the request, then drop the connection without an answer. A client that
        # gives up first cancels this handler.
        self.recorder.failed(slot, None, fault)
        await asyncio.sleep(self.faults.hang)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=504)  # never reaches the client: the connection is closed

    async def _malformed(
        self,
        request: web.Request,
        wire: Wire,
        slot: Slot,
        sim_request: SimRequest,
        answer: Answer,
        ids: str,
        delay: float,
    ) -> web.StreamResponse:
        self.recorder.failed(slot, 200, "malformed")
        if delay > 0:
            await asyncio.sleep(delay)
        if sim_request.stream:
            events = wire.events(answer, sim_request, ids, int(time.time()))
            first = events[0]
            response = web.StreamResponse(headers={**self._headers(wire, ids), "Content-Type": _SSE})
            await response.prepare(request)
            await response.write(first[: len(first) // 2] + b"\n\n")
            await response.write_eof()
            return response
        text = json.dumps(wire.body(answer, sim_request, ids, int(time.time())))
        return web.Response(text=text[: len(text) // 2], content_type=_JSON, headers=self._headers(wire, ids))

    async def _stream(
        self, request: web.Request, wire: Wire, sim_request: SimRequest, answer: Answer, ids: str, delay: float
    ) -> web.StreamResponse:
        events = wire.events(answer, sim_request, ids, int(time.time()))
        response = web.StreamResponse(headers={**self._headers(wire, ids), "Content-Type": _SSE})
        response.headers["Cache-Control"] = "no-cache"
        if delay <= 0:
            await response.prepare(request)
            await response.write(b"".join(events))
        else:
            size = math.ceil(len(events) / _MAX_WRITES)
            slices = [b"".join(events[i : i + size]) for i in range(0, len(events), size)]
            pause = delay / len(slices)
            await asyncio.sleep(pause)  # the time to the first token
            await response.prepare(request)
            for i, chunk in enumerate(slices):
                if i:
                    await asyncio.sleep(pause)
                await response.write(chunk)
        await response.write_eof()
        return response


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(), status=status, content_type=_JSON, headers=headers
    )
