"""One model request as a leaf call: budget, admission, retries, usage and the provider's word.

A :class:`ModelCall` is one model's governance within one run; each of its requests is a
:class:`~fanfold._leaf.LeafCall` of its own kind, through the core's one leaf boundary. A
request reserves its estimated spend from the run's budget, waits for admission on the global
limit and on the model's provider resource (on the wire, for a client fanfold built), and is
sent; then the resource learns from the answer (usage, rate-limit headers, a 429), the budget
settles, and the task is charged. Transient failures (429, 408, 409, 5xx, 529, connection
errors, timeouts, garbled answers) are retried, unless the request's ``ff.llm`` or the run says
otherwise. A request throttled by a breach of the limit goes straight back to the queue: the
resource is paused for everyone, and resumes by refilling its buckets from empty, so waiters do
not wake together. An isolated 429, an overload or a server fault is retried by its own request
alone, after its ``Retry-After`` or a jittered backoff, while the others carry on. The resource
charges each request as its provider counts it (see :class:`~fanfold.RateLimit`'s
``accounting``), and gives a request the provider turned away its tokens back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelHTTPError,
    ModelQuotaExceededError,
    ModelRequestRejectedError,
    UnexpectedModelBehavior,
)
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import ModelRequestParameters, StreamedResponse

from fanfold._context import Context, RunState
from fanfold._errors import TaskTimeout, UsageError
from fanfold._events import ModelCalled, Throttled
from fanfold._governor import MAX_TOKENS, REJECTED, ProviderResource
from fanfold._leaf import LeafCall, call_leaf
from fanfold._limits import Admission, ConcurrencyLimiter
from fanfold._llm._providers import (
    Wire,
    accounting_of,
    limits_from_headers,
    on_wire,
    remaining_from_headers,
    retry_hint,
)
from fanfold._outcome import Call
from fanfold._retry import RetryPolicy, Timeouts
from fanfold._usage import Price, Usage

THROTTLED = frozenset({429, 529})  # the provider asks everyone to slow down
TRANSIENT = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def is_transient(exc: BaseException) -> bool:
    """Worth another try: rate limits, overloads, server errors, timeouts, dropped connections
    and garbled answers; not a rejected request, a bad key or an exhausted quota."""
    if isinstance(exc, ModelHTTPError):
        return exc.status_code in TRANSIENT or exc.status_code >= 500
    if isinstance(exc, ModelRequestRejectedError | ModelQuotaExceededError):
        return False
    return isinstance(exc, ModelAPIError | UnexpectedModelBehavior | TaskTimeout | ConnectionError)


# Model requests: retried on transient errors with jittered backoff, bounded by attempts and time.
PROVIDER_RETRY = RetryPolicy(retry_on=is_transient, attempts=8, initial=0.5, max_delay=30.0, timeout=600.0)

_PRICES: dict[tuple[str, str], Price | None] = {}


def known_price(provider: str, model: str) -> Price | None:
    """The built-in price (genai-prices) of a model, or None where it is not known."""
    key = (provider, model)
    if key not in _PRICES:
        from genai_prices import Usage as PriceUsage
        from genai_prices import calc_price

        provider_id = "openai" if provider.startswith("openai") else provider
        try:
            calc = calc_price(
                PriceUsage(input_tokens=1_000_000, output_tokens=1_000_000), model, provider_id=provider_id
            )
        except LookupError:
            _PRICES[key] = None
        else:
            _PRICES[key] = Price(float(calc.input_price), float(calc.output_price))
    return _PRICES[key]


class ModelCall:
    """One model's governance within one run (shared by every agent of the run calling it).

    ``retry`` and ``timeouts`` are the model's own (from ``ff.llm``); without them its requests
    follow the run's, and without those, :data:`PROVIDER_RETRY`.
    """

    def __init__(
        self,
        state: RunState,
        resource: str,
        lookup: tuple[str, ...],
        *,
        provider: str,
        model: str,
        price: Price | None,
        estimate: Callable[[Sequence[ModelMessage], ModelRequestParameters], int],
        output_tokens: int,
        on_wire: bool = False,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.retry = retry
        self.timeouts = timeouts
        self.state = state
        self.on_wire = on_wire  # the HTTP client's request hook takes the admission
        self.name = resource
        limiter = state.limiter
        self.resource: ProviderResource | None = (
            limiter.meter(resource, lookup) if isinstance(limiter, ConcurrencyLimiter) else None
        )
        if self.resource is not None:
            self.resource.accounts_like(accounting_of(provider))
        self.resources = (resource,)
        self._provider = provider
        self._model = model
        self.model = model  # as the request asks for it (the provider's answer may name a version)
        self._price = price
        self._estimate = estimate
        self._output_tokens = float(output_tokens)
        self._seen_output = 0.0  # a high-water estimate of answers' length, for the reservation

    def price(self) -> Price | None:
        return self._price or known_price(self._provider, self._model)

    async def request(
        self,
        ctx: Context,
        send: Callable[[], Awaitable[ModelResponse]],
        messages: Sequence[ModelMessage],
        parameters: ModelRequestParameters,
        max_tokens: int | None,
    ) -> ModelResponse:
        leaf = self.leaf(ctx, self._cost(messages, parameters, max_tokens), send)
        leaf.messages = messages  # for a trace with content
        response: ModelResponse = await call_leaf(leaf)
        return response

    def leaf(self, ctx: Context, cost: dict[str, float], send: Callable[[], Awaitable[ModelResponse]]) -> _Request:
        """The leaf call of one request (a batched model's requests are a kind of their own)."""
        return _Request(self, ctx, cost, send)

    @asynccontextmanager
    async def stream(
        self,
        ctx: Context,
        open_stream: Callable[[], AbstractAsyncContextManager[StreamedResponse]],
        messages: Sequence[ModelMessage],
        parameters: ModelRequestParameters,
        max_tokens: int | None,
    ) -> AsyncIterator[StreamedResponse]:
        """A streamed request, through the same admitted path (but not retried: part of it may
        have reached the caller)."""
        async with _Request(self, ctx, self._cost(messages, parameters, max_tokens), messages=messages) as request:
            async with AsyncExitStack() as stack:
                with on_wire(request.wire):  # the request goes out as the stream opens
                    response = await stack.enter_async_context(open_stream())
                yield response
            request.answered(response.get())

    def request_on_wire(
        self, ctx: Context, send: Callable[[], Awaitable[Any]], input_tokens: float, max_tokens: int | None
    ) -> Coroutine[Any, Any, Any]:
        """A request another framework's agent makes through a client fanfold lent it
        (``fanfold._adapters``): the same leaf call as this model's own requests. ``send``
        returns what :meth:`succeeded` reads (``usage.input_tokens`` and ``usage.output_tokens``)."""
        output = float(max_tokens) if max_tokens else max(self._output_tokens, self._seen_output)
        return call_leaf(_Request(self, ctx, {"input_tokens": float(input_tokens), "output_tokens": output}, send))

    def delay(self, exc: BaseException | None) -> float | None:
        resource = self.resource
        throttled = isinstance(exc, ModelHTTPError) and exc.status_code in THROTTLED
        if throttled and resource is not None and self.state.clock() < resource.paused_until:
            return 0.0  # a breach paused the resource, which paces it: straight back to the queue
        return retry_hint(exc)  # alone: what the answer asked for, else the policy's backoff

    def reservation(self, cost: Mapping[str, float]) -> tuple[float, float]:
        ledger = self.state.ledger
        tokens = cost["input_tokens"] + cost["output_tokens"]
        budget = ledger.budget
        if budget is None or budget.cost is None:
            return tokens, 0.0
        price = self.price()
        if price is None:
            raise UsageError(
                f"the run has a cost budget, but no price is known for {self._provider}:{self._model}; "
                "pass ff.llm(..., price=ff.Price(input=..., output=...)) in dollars per million tokens"
            )
        return tokens, price.of(cost["input_tokens"], cost["output_tokens"])

    def _cost(
        self, messages: Sequence[ModelMessage], parameters: ModelRequestParameters, max_tokens: int | None
    ) -> dict[str, float]:
        output = float(max_tokens) if max_tokens else max(self._output_tokens, self._seen_output)
        cost = {"input_tokens": float(self._estimate(messages, parameters)), "output_tokens": output}
        if max_tokens:
            cost[MAX_TOKENS] = float(max_tokens)  # what a provider charging on arrival reserves
        return cost

    def succeeded(self, response: ModelResponse, admission: Admission, headers: list[Any], began: float) -> Usage:
        usage = response.usage
        inp, out = usage.input_tokens, usage.output_tokens
        admission.usage = {"input_tokens": float(inp), "output_tokens": float(out)}
        if out > self._seen_output:
            self._seen_output = float(out)
        price = self.price()
        dollars = price.of(inp, out) if price is not None else 0.0
        resource = self.resource
        if resource is not None:
            now = self.state.clock()
            resource.succeeded(now - began, limits_from_headers(headers[-1] if headers else None), now)
        return Usage(1, inp, out, dollars)

    def failed(self, ctx: Context, exc: BaseException, admission: Admission) -> None:
        """The resource learns from a request that failed: a 429 was turned away uncharged, and
        may say the limit is spent (see :meth:`~fanfold._governor.ProviderResource.breach`);
        any other fault counts among the answers a burst of 429s is judged against."""
        resource = self.resource
        if resource is None or not isinstance(exc, Exception):
            return
        if isinstance(exc, ModelHTTPError) and exc.status_code == 429:
            admission.usage = {REJECTED: 1.0}  # turned away: its tokens go back to the buckets
            self.throttled(ctx, exc, admission)
        else:
            resource.faulted(self.state.clock())

    def throttled(self, ctx: Context, exc: ModelHTTPError, admission: Admission) -> None:
        resource = self.resource
        assert resource is not None
        state = self.state
        headers = exc.headers
        pause = resource.throttled(
            retry_hint(exc),
            limits_from_headers(headers),
            state.clock(),
            remaining_from_headers(headers),
            admission.cost,
            sent=getattr(admission, "sent", None),  # when the limiter admitted it, as the resource has it
        )
        if isinstance(admission, _Request):
            admission.pause = pause  # for the request's Call in its task's outcome
        if state.bus.active:
            event = Throttled(
                state.run_id, ctx.path, state.now(), self.name, exc.status_code, pause, resource.snapshot()
            )
            state.bus.emit(event)


class _Request(LeafCall):
    """One model request: a leaf call of its model's :class:`ModelCall`."""

    __slots__ = ("answer", "is_backup", "messages", "model_call", "pause", "queued", "send_request", "wire")

    default_retry = PROVIDER_RETRY
    what = "model request attempt"
    wire: Wire  # the current attempt's passage through the HTTP client

    def __init__(
        self,
        model_call: ModelCall,
        ctx: Context,
        cost: dict[str, float],
        send: Callable[[], Awaitable[ModelResponse]] | None = None,  # None: a stream, sent by its block
        *,
        messages: Sequence[ModelMessage] | None = None,
    ) -> None:
        super().__init__(ctx, model_call.resources, cost)
        # What the timeline and a trace show of each attempt: when it began waiting, how long a 429
        # paused its resource, whether it is a hedge's backup; the prompt and the answer (content).
        self.queued = 0.0
        self.pause = 0.0
        self.is_backup = False
        self.messages = messages
        self.answer: ModelResponse | None = None
        self.retry = model_call.retry
        self.timeouts = model_call.timeouts
        self.defers_admission = model_call.on_wire
        self.model_call = model_call
        self.send_request = send

    def backup(self) -> _Request | None:
        """A hedge's backup: the same request, sent again (a stream is not hedged)."""
        if self.send_request is None:
            return None
        backup = _Request(self.model_call, self.ctx, dict(self.cost or {}), self.send_request, messages=self.messages)
        backup.is_backup = True
        return backup

    def begin(self) -> tuple[float, float]:
        self.queued, self.pause, self.answer = self.ctx.run_state.now(), 0.0, None
        self.wire = Wire(self.admit if self.defers_admission else None)
        assert self.cost is not None
        return self.model_call.reservation(self.cost)

    async def send(self) -> ModelResponse:
        send = self.send_request
        assert send is not None, "a stream is sent by the block it is read in"
        with on_wire(self.wire):
            return await send()

    def answered(self, result: Any) -> None:
        state = self.ctx.run_state
        began = self.began if self.began is not None else state.clock()
        self.spent = self.model_call.succeeded(result, self, self.wire.headers, began)
        self.answer = result if isinstance(result, ModelResponse) else None
        self._report("ok")

    def failed(self, exc: BaseException) -> None:
        if self.spent is not None:  # answered, then failed on the way out: counted already
            return
        if self.began is not None and self.wire.unsent:  # ended before its headers were written
            self._report(type(exc).__name__)
            return
        if self.began is not None:  # it reached the provider: the resource learns from the answer
            self.model_call.failed(self.ctx, exc, self)
        if isinstance(exc, ModelHTTPError):  # the provider answered: no tokens spent
            throttled = exc.status_code in THROTTLED
            self.spent = Usage(requests=1, throttled=int(throttled))
            self._report(str(exc.status_code))
            return
        if self.began is not None:
            # Admitted (on the wire, for a client fanfold built): the request left the process,
            # and whatever became of it (timed out, cancelled in flight, a garbled answer, a
            # dropped connection) it is counted, its tokens estimated as what it reserved.
            self.spent = self._estimated()
        self._report(type(exc).__name__)

    def _estimated(self) -> Usage:
        cost = self.cost
        assert cost is not None
        inp, out = round(cost["input_tokens"]), round(cost["output_tokens"])
        price = self.model_call.price()
        dollars = price.of(inp, out) if price is not None else 0.0
        return Usage(1, inp, out, dollars, estimated_requests=1, estimated_tokens=inp + out)

    def _report(self, status: str) -> None:
        began = self.began
        if began is None:
            return
        ctx = self.ctx
        state = ctx.run_state
        model_call = self.model_call
        seconds = state.clock() - began
        end = state.now()
        spent = self.spent or Usage()
        ctx.called(
            Call(model_call.name, model_call.model, self.attempt, self.queued, end - seconds, end, status,
                 spent.tokens, spent.cost, self.pause, self.is_backup)
        )  # fmt: skip
        if state.bus.active:
            answer = self.answer
            tracer = state.tracer
            content = tracer is not None and tracer.content
            event = ModelCalled(
                state.run_id,
                ctx.path,
                end,
                model_call.name,
                self.attempt,
                status,
                spent,
                seconds,
                model=model_call.model,
                response_model=None if answer is None else answer.model_name,
                hedge=self.is_backup,
                messages=self.messages if content else None,
                answer=answer if content else None,
            )
            state.bus.emit(event)

    def delay(self, exc: BaseException | None) -> float | None:
        return self.model_call.delay(exc)
