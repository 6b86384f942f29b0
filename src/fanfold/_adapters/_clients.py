"""Governed SDK clients for other frameworks' agents: ``ff.openai_client`` and ``ff.anthropic_client``.

A framework that lets its caller supply the model client (agno, LangChain, the OpenAI Agents
SDK, Google ADK) is given one of these. Inside a fanfold run (while an adapted agent runs, see
:mod:`fanfold._adapters._base`), each HTTP request it sends is one model request of the run:
a leaf call through the core's one boundary (``ModelCall.request_on_wire``), which reserves
its estimated spend from the run's budget, waits for admission on the global limit and the
provider resource (the same resource as ``ff.llm`` on the same model, endpoint and key, so
fanfold's agents and foreign ones share one limit), is retried on transient answers by the
model-request policy (429s paced by the paused resource; the SDK's own retries are off), and
charges the usage the provider reports to the task. Outside a run the client passes requests
through as any SDK client would.

The client learns the usage from the answer's body, so a streamed answer is read whole before
the framework sees it (governed streams arrive at once, not token by token).
"""

from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError

from fanfold._context import Context
from fanfold._errors import FanfoldError, UsageError
from fanfold._llm._model_call import ModelCall
from fanfold._llm._providers import ModelRef, governed_http_client, parse_model, sdk_client
from fanfold._retry import RetryPolicy
from fanfold._usage import Price


@dataclass(eq=False)
class ForeignRun:
    """One run of an adapted agent on one input: its task, and the fanfold error (a budget
    exhausted, a timeout) that stopped one of its requests, which the framework may have
    turned into an error message of its own."""

    ctx: Context
    error: FanfoldError | None = None
    requests: int = field(default=0)


# The adapted agent running in this task (asyncio copies it into the tasks a framework starts).
_FOREIGN: contextvars.ContextVar[ForeignRun | None] = contextvars.ContextVar("fanfold_foreign", default=None)


@dataclass(frozen=True, slots=True)
class _Lent:
    """What a governed client knows: its model's resource and how to price and retry it."""

    ref: ModelRef
    price: Price | None
    retry: RetryPolicy | None
    output_tokens: int


class _Usage:
    __slots__ = ("input_tokens", "output_tokens")

    def __init__(self, input_tokens: int, output_tokens: int) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens


class _Answer:
    """A provider's answer as ``ModelCall.succeeded`` reads it."""

    __slots__ = ("response", "usage")

    def __init__(self, response: Any) -> None:
        self.response = response
        self.usage = _Usage(*usage_of(response.content))


class _Refused(ModelHTTPError):
    """A 4xx or 5xx answer, raised so that the boundary learns from it and retries it; the last
    one goes back to the SDK, which raises its own error for it."""

    def __init__(self, response: Any, model: str) -> None:
        headers = {name.lower(): value for name, value in response.headers.items()}
        super().__init__(response.status_code, model, response.text[:500], headers=headers)
        self.response = response


class _Unreachable(ModelAPIError):
    """A transport error (connection refused, reset), raised so that the boundary retries it;
    the last one goes back to the SDK unwrapped."""

    def __init__(self, error: Exception, model: str) -> None:
        super().__init__(model, f"{type(error).__name__}: {error}")
        self.error = error


class GovernedSend:
    """The HTTP client's ``send``, admitted by the run of the adapted agent calling it."""

    _fanfold: _Lent

    async def send(self, request: Any, **kwargs: Any) -> Any:
        foreign = _FOREIGN.get()
        if foreign is None:  # outside a fanfold run: nothing to govern
            return await super().send(request, **kwargs)  # type: ignore[misc]
        return await _governed(self, super().send, foreign, request, kwargs)  # type: ignore[misc]


async def _governed(client: GovernedSend, send_http: Any, foreign: ForeignRun, request: Any, kwargs: Any) -> Any:
    lent = client._fanfold
    ctx = foreign.ctx
    model = _model_call(ctx, lent)
    body = request.content or b""
    max_tokens = _max_tokens(body)

    async def send() -> _Answer:
        try:
            response = await send_http(request, **{**kwargs, "stream": True})
        except Exception as exc:
            if type(exc).__module__.partition(".")[0] in ("httpx", "httpx2"):
                raise _Unreachable(exc, lent.ref.model) from exc
            raise
        try:
            await response.aread()  # the usage is in the body (a stream's included)
        except BaseException:
            await response.aclose()
            raise
        if response.status_code >= 400:
            raise _Refused(response, lent.ref.model)
        return _Answer(response)

    foreign.requests += 1
    try:
        answer: _Answer = await model.request_on_wire(ctx, send, len(body) // 4 + 1, max_tokens)
    except _Refused as refused:
        return refused.response
    except _Unreachable as unreachable:
        raise unreachable.error from None
    except FanfoldError as exc:  # the budget, a timeout: the adapter re-raises it, whatever the framework does
        foreign.error = exc
        raise
    return answer.response


def _model_call(ctx: Context, lent: _Lent) -> ModelCall:
    """This run's governance of the lent client's model (one per run and resource)."""
    state = ctx.run_state
    key = ("lent-model", lent)
    call: ModelCall | None = state.services.get(key)
    if call is None:
        ref = lent.ref
        call = state.services[key] = ModelCall(
            state,
            ref.resource,
            ref.lookup,
            provider=ref.provider,
            model=ref.model,
            price=lent.price,
            estimate=_no_estimate,
            output_tokens=lent.output_tokens,
            retry=lent.retry,
        )
    return call


def _no_estimate(messages: Any, parameters: Any) -> int:
    raise AssertionError("a lent client's requests are estimated from their body")  # pragma: no cover


def _max_tokens(body: bytes) -> int | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def usage_of(body: bytes) -> tuple[int, int]:
    """Input and output tokens an answer reports: a JSON body (OpenAI's Chat Completions or
    Responses, Anthropic's Messages) or a stream of server-sent events (the largest count seen:
    Anthropic reports output tokens cumulatively).

    >>> usage_of(b'{"usage": {"prompt_tokens": 12, "completion_tokens": 5}}')
    (12, 5)
    """
    inp = out = 0
    for payload in _payloads(body):
        for holder in (payload, payload.get("response"), payload.get("message")):
            usage = holder.get("usage") if isinstance(holder, dict) else None
            if isinstance(usage, dict):
                inp = max(inp, _int(usage.get("prompt_tokens", usage.get("input_tokens"))))
                out = max(out, _int(usage.get("completion_tokens", usage.get("output_tokens"))))
    return inp, out


def _payloads(body: bytes) -> list[dict[str, Any]]:
    text = body.decode("utf-8", "replace")
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        return [whole]
    found = []
    for line in text.splitlines():
        if line.startswith("data:"):
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue  # "[DONE]"
            if isinstance(event, dict):
                found.append(event)
    return found


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _lend(
    family: str,
    model: str,
    *,
    base_url: str | None,
    api_key: str | None,
    resource: str | None,
    price: Price | None,
    retry: RetryPolicy | None,
    output_tokens: int,
) -> Any:
    where = f"ff.{family}_client"
    if not isinstance(model, str) or not model.startswith(family):
        raise UsageError(f"{where}(model={model!r}): name a {family} model as '{family}:<model>'")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise UsageError(f"{where}(retry={retry!r}): pass ff.RetryPolicy(retry_on=..., attempts=...)")
    if price is not None and not isinstance(price, Price):
        raise UsageError(f"{where}(price={price!r}): pass ff.Price(input=..., output=...) in dollars per million")
    if isinstance(output_tokens, bool) or not isinstance(output_tokens, int) or output_tokens < 1:
        raise UsageError(f"{where}(output_tokens={output_tokens!r}): pass a whole number of tokens >= 1")
    try:
        __import__(family)
    except ImportError:
        raise UsageError(f"{where} needs the {family} SDK: pip install 'fanfold[{family}]'") from None
    ref = parse_model(model, api_key=api_key, base_url=base_url, group=resource)
    lent = _Lent(ref, price, retry, output_tokens)

    def http_client(sdk_module: Any) -> Any:
        client = governed_http_client(sdk_module, GovernedSend)
        client._fanfold = lent
        return client

    return sdk_client(ref, http_client)


def openai_client(
    model: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    resource: str | None = None,
    price: Price | None = None,
    retry: RetryPolicy | None = None,
    output_tokens: int = 512,
) -> Any:
    """An ``openai.AsyncOpenAI`` to hand to another framework's agent, whose requests fanfold governs.

    ``model`` names the resource the requests count against, as ``ff.llm`` names it
    (``'openai:gpt-5-mini'``; with the same ``base_url`` and key, both share one limit); keys and
    base URL come from the arguments or ``OPENAI_API_KEY``/``OPENAI_BASE_URL``. In a fanfold run,
    each request is admitted, budgeted, retried (by ``retry``, else the run's, else the
    model-request policy; the SDK's own retries are off) and counted; outside one it passes
    through. Pass it where the framework takes a client::

        client = ff.openai_client("openai:gpt-5-mini")
        OpenAIChat(id="gpt-5-mini", async_client=client)                       # agno
        ChatOpenAI(model="gpt-5-mini", root_async_client=client,
                   async_client=client.chat.completions)                       # LangChain
        OpenAIChatCompletionsModel(model="gpt-5-mini", openai_client=client)   # OpenAI Agents SDK
        LiteLlm(model="openai/gpt-5-mini", client=client)                      # Google ADK
    """
    return _lend(
        "openai",
        model,
        base_url=base_url,
        api_key=api_key,
        resource=resource,
        price=price,
        retry=retry,
        output_tokens=output_tokens,
    )


def anthropic_client(
    model: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    resource: str | None = None,
    price: Price | None = None,
    retry: RetryPolicy | None = None,
    output_tokens: int = 512,
) -> Any:
    """An ``anthropic.AsyncAnthropic`` whose requests fanfold governs; see :func:`openai_client`.
    Google ADK takes it as ``AnthropicLlm(model=..., client=ff.anthropic_client("anthropic:..."))``."""
    return _lend(
        "anthropic",
        model,
        base_url=base_url,
        api_key=api_key,
        resource=resource,
        price=price,
        retry=retry,
        output_tokens=output_tokens,
    )


def is_governed_client(obj: Any) -> bool:
    """Whether ``obj`` is an HTTP client fanfold lent (found inside a framework's model)."""
    return isinstance(obj, GovernedSend)
