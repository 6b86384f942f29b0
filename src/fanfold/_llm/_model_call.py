"""One model request as a leaf call: budget, admission, retries, usage and the provider's word.

A :class:`ModelCall` is one model's governance within one run. Each request reserves its
estimated spend from the run's budget, waits for admission on the global limit and on the
model's provider resource, and is sent; then the resource learns from the answer (usage,
rate-limit headers, a 429), the budget settles, and the task is charged. Transient failures
(429, 408, 409, 5xx, 529, connection errors, timeouts, garbled answers) are retried. A
throttled request goes straight back to the queue: the resource is paused for everyone, and
resumes by refilling its buckets from empty, so waiters do not wake together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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
from fanfold._errors import BudgetExhausted, TaskTimeout, UsageError
from fanfold._events import ModelCalled, TaskRetrying, Throttled
from fanfold._governor import ProviderResource
from fanfold._limits import Admission, ConcurrencyLimiter
from fanfold._llm._providers import Wire, limits_from_headers, on_wire
from fanfold._outcome import ErrorInfo
from fanfold._retry import RetryPolicy, call_with_retries, delay_hint
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
    """One model's governance within one run (shared by every agent of the run calling it)."""

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
    ) -> None:
        self.retry = retry or PROVIDER_RETRY
        self.state = state
        self.on_wire = on_wire  # the HTTP client's request hook takes the admission
        self.name = resource
        limiter = state.limiter
        self.resource: ProviderResource | None = (
            limiter.meter(resource, lookup) if isinstance(limiter, ConcurrencyLimiter) else None
        )
        self._resources = (resource,)
        self._provider = provider
        self._model = model
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
        cost = self._cost(messages, parameters, max_tokens)
        # The first attempt runs outside tenacity: most requests succeed, and should cost nothing extra.
        try:
            return await self._attempt(ctx, send, cost, 1)
        except Exception as first:
            if self.retry.attempts == 1 or not self.retry.should_retry(first):
                raise
            failed = first

        async def replay(n: int) -> ModelResponse:
            if n == 1:
                raise failed
            return await self._attempt(ctx, send, cost, n)

        def on_retry(n: int, delay: float, exc: BaseException) -> None:
            state = self.state
            state.retries += 1
            if state.bus.active:
                state.bus.emit(TaskRetrying(state.run_id, ctx.path, state.now(), n + 1, delay, ErrorInfo.of(exc)))

        return await call_with_retries(replay, self.retry, on_retry, hint=self._delay)

    def _delay(self, exc: BaseException | None) -> float | None:
        if self.resource is not None and isinstance(exc, ModelHTTPError) and exc.status_code in THROTTLED:
            return 0.0  # the paused resource paces it: straight back to the queue
        return delay_hint(exc)

    def _reservation(self, cost: dict[str, float]) -> tuple[float, float]:
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
        return {"input_tokens": float(self._estimate(messages, parameters)), "output_tokens": output}

    async def _attempt(
        self, ctx: Context, send: Callable[[], Awaitable[ModelResponse]], cost: dict[str, float], n: int
    ) -> ModelResponse:
        async with self._admitted(ctx, cost, n) as call:
            with on_wire(call.wire):
                response = await self._send(send, n, call.wire)
            call.answered(response)
        return response

    @asynccontextmanager
    async def stream(
        self,
        ctx: Context,
        open_stream: Callable[[], AbstractAsyncContextManager[StreamedResponse]],
        messages: Sequence[ModelMessage],
        parameters: ModelRequestParameters,
        max_tokens: int | None,
    ) -> AsyncIterator[StreamedResponse]:
        """A streamed request, governed like any other (but not retried: part of it may have
        reached the caller)."""
        async with self._admitted(ctx, self._cost(messages, parameters, max_tokens), 1) as call:
            async with AsyncExitStack() as stack:
                with on_wire(call.wire):  # the request goes out as the stream opens
                    response = await stack.enter_async_context(open_stream())
                yield response
            call.answered(response.get())

    @asynccontextmanager
    async def _admitted(self, ctx: Context, cost: dict[str, float], n: int) -> AsyncIterator[_Call]:
        """Reserve from the budget, take admission (here, or on the wire), and account for
        whatever the request inside the block ends in."""
        state = self.state
        ledger = state.ledger
        tokens, dollars = self._reservation(cost)
        await ledger.reserve(tokens, dollars)
        call = _Call(self, ctx, Admission(self._resources, cost))
        status = "ok"
        try:
            if not self.on_wire:
                await call.admit()
            yield call
        except ModelHTTPError as exc:
            status = str(exc.status_code)
            call.spent = Usage(requests=1, throttled=int(exc.status_code in THROTTLED))
            ctx.charge(call.spent)
            if exc.status_code in THROTTLED:
                self._throttled(ctx, exc)
            raise
        except BaseException as exc:
            status = type(exc).__name__
            raise
        finally:
            ledger.settle(tokens, dollars, call.spent)
            began = call.began
            if began is not None:  # it was admitted: give the admission back, and count the call
                state.limiter.release(call.admission)
                seconds = state.clock() - began
                state.busy += seconds
                state.leaf_calls += 1
                if state.bus.active:
                    event = ModelCalled(state.run_id, ctx.path, state.now(), self.name, n, status, call.spent, seconds)
                    state.bus.emit(event)

    async def _send(self, send: Callable[[], Awaitable[ModelResponse]], n: int, wire: Wire) -> ModelResponse:
        """Send, bounded by the run's per-attempt timeout (from admission on), and cancellable
        by the budget."""
        state = self.state
        timeouts = state.timeouts
        limit = timeouts.attempt if timeouts is not None else None
        ledger = state.ledger
        cancellable = ledger.budget is not None and ledger.budget.in_flight == "cancel"
        if limit is None and not cancellable:
            return await send()
        admitted_on_wire = wire.admit is not None
        try:
            async with asyncio.timeout(None if admitted_on_wire else limit) as scope:
                wire.scope, wire.limit = scope, limit
                if cancellable:
                    ledger.track(scope)
                return await send()
        except TimeoutError:
            if not scope.expired():
                raise
            if ledger.exhausted is not None and cancellable:
                what = f"the run's budget is exhausted ({ledger.exhausted}); cancelled in flight"
                raise BudgetExhausted(what) from None
            raise TaskTimeout(f"model request attempt {n} timed out after {limit:g}s") from None
        finally:
            ledger.untrack(scope)

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

    def _throttled(self, ctx: Context, exc: ModelHTTPError) -> None:
        resource = self.resource
        if resource is None:
            return
        state = self.state
        pause = resource.throttled(exc.retry_after, limits_from_headers(exc.headers), state.clock())
        if state.bus.active:
            event = Throttled(
                state.run_id, ctx.path, state.now(), self.name, exc.status_code, pause, resource.snapshot()
            )
            state.bus.emit(event)


class _Call:
    """One admitted (or about to be admitted) model request."""

    __slots__ = ("admission", "began", "ctx", "model_call", "spent", "wire")

    def __init__(self, model_call: ModelCall, ctx: Context, admission: Admission) -> None:
        self.model_call = model_call
        self.ctx = ctx
        self.admission = admission
        self.began: float | None = None
        self.spent = Usage()
        self.wire = Wire(self.admit if model_call.on_wire else None)

    async def admit(self) -> None:
        state = self.model_call.state
        limiter = state.limiter
        if not limiter.try_acquire(self.admission):
            await limiter.acquire(self.admission)
        self.began = state.clock()
        wire = self.wire
        if wire.scope is not None and wire.limit is not None:  # the attempt's time starts now
            wire.scope.reschedule(asyncio.get_running_loop().time() + wire.limit)

    def answered(self, response: ModelResponse) -> None:
        began = self.began if self.began is not None else self.model_call.state.clock()
        self.spent = self.model_call.succeeded(response, self.admission, self.wire.headers, began)
        self.ctx.charge(self.spent)
