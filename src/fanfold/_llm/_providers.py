"""Provider plumbing for LLM agents: which resource a model is, how its client is built, and
what the provider's response headers say about its limits.

For OpenAI and Anthropic models named by string, fanfold builds the SDK client itself: on the
aiohttp transport (several times the requests per second of the default one at high fan-out),
with the SDK's own retries off (the governor retries, and paces the retries of every call
against the resource together, instead of each call sleeping the same Retry-After), and with a
response hook that hands the rate-limit headers to the governor. Other providers go through
pydantic-ai's own ``infer_model``; their errors still carry their headers. Building a client
imports its SDK and makes an SSL context: :func:`build_model_off_loop` does it on a worker thread,
so that the run's other branches are not held up while the first model call gets ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import math
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fanfold._errors import UsageError
from fanfold._governor import ARRIVAL, INPUT_TOKENS, OUTPUT_TOKENS, REQUESTS, TOKENS, USAGE, Accounting
from fanfold._redact import register, register_url
from fanfold._retry import delay_hint


class Wire:
    """One model request's passage through the HTTP client fanfold built: admission (``admit``,
    for a request that defers it) is taken by the request hook, just before the request goes
    on the wire (after pydantic-ai and the SDK have done their work, which at the start of a
    large fan-out waits behind every other task's), and the responses' headers are kept for
    the governor. ``started`` and ``sent`` follow the request through aiohttp: one started but
    not sent (cancelled while waiting for a connection or in a TLS handshake) never left."""

    __slots__ = ("admit", "admitted", "headers", "sent", "started")

    def __init__(self, admit: Callable[[], Awaitable[None]] | None) -> None:
        self.admit = admit
        self.admitted = self.started = self.sent = False
        self.headers: list[Mapping[str, str]] = []

    @property
    def unsent(self) -> bool:
        """The request reached aiohttp and was ended before its headers were written."""
        return self.started and not self.sent


# The model request running in this task, if it goes through a client fanfold built.
_WIRE: contextvars.ContextVar[Wire | None] = contextvars.ContextVar("fanfold_wire", default=None)

# provider prefix -> (SDK family, API key variable, base URL variable)
_BUILT_HERE = {
    "openai": ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "openai-chat": ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "openai-responses": ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "anthropic": ("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
}


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model named by string, with the endpoint and key it is called through.

    ``api_key`` never reaches a repr, an event or a journal: resources are named with a short
    digest of it (and only when it was passed explicitly).
    """

    provider: str
    model: str
    base_url: str | None = None
    api_key: str | None = None
    group: str | None = None

    def __repr__(self) -> str:
        return f"ModelRef({self.provider}:{self.model}, resource={self.resource!r})"

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def resource(self) -> str:
        """The resource's name: the group, or ``provider:model`` plus the endpoint and key
        digest where they are not the provider's defaults."""
        if self.group is not None:
            return self.group
        name = self.spec
        if self.base_url:
            name += f"@{urlsplit(self.base_url).netloc or self.base_url}"
        if self.api_key:
            name += "#" + hashlib.sha256(self.api_key.encode()).hexdigest()[:8]
        return name

    @property
    def lookup(self) -> tuple[str, ...]:
        """Keys under which ``Limits(resources=...)`` may configure this resource."""
        return (self.spec, self.provider)


def parse_model(model: str, *, api_key: str | None, base_url: str | None, group: str | None) -> ModelRef:
    """Check a ``provider:model`` string and that its key is at hand; name what is missing."""
    if not isinstance(model, str) or ":" not in model or model.startswith(":") or model.endswith(":"):
        raise UsageError(
            f"ff.llm(model={model!r}): name the model as 'provider:model', e.g. 'openai:gpt-5-mini' or "
            "'anthropic:claude-sonnet-4-5', or pass a pydantic-ai Model or Agent"
        )
    provider, name = model.split(":", 1)
    family = _BUILT_HERE.get(provider)
    # Every key this model may be called with is a secret from now on: nothing fanfold writes shows it.
    register(api_key, *(os.environ.get(var) for var in _key_variables(provider, family)))
    register_url(base_url)
    if family is not None:
        register_url(os.environ.get(family[2]))
    if family is not None and api_key is None:
        _, key_var, url_var = family
        if not os.environ.get(key_var) and not (base_url or os.environ.get(url_var)):
            raise UsageError(
                f"ff.llm({model!r}) needs an API key: set the environment variable {key_var}, or pass "
                f"ff.llm(..., api_key=...); to run without one, point base_url at fanfold's simulated provider "
                "('fanfold simulate')"
            )
    return ModelRef(provider, name, base_url, api_key, group)


def _key_variables(provider: str, family: tuple[str, str, str] | None) -> list[str]:
    """The environment variables a provider reads its credentials from."""
    prefix = provider.split("-")[0].upper() + "_"
    names = [name for name in os.environ if name.startswith(prefix) and name.endswith(_SECRET_SUFFIXES)]
    return names + ([family[1]] if family is not None else [])


_SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_KEY")


async def _on_request(request: Any) -> None:
    wire = _WIRE.get()
    if wire is not None and wire.admit is not None and not wire.admitted:
        await wire.admit()
        wire.admitted = True


async def _on_aiohttp_start(session: Any, trace: Any, params: Any) -> None:
    wire = _WIRE.get()
    if wire is not None:
        wire.started = True


async def _on_aiohttp_sent(session: Any, trace: Any, params: Any) -> None:
    wire = _WIRE.get()
    if wire is not None:
        wire.sent = True


def _follow_sending(client: Any) -> Any:
    """Have the client's aiohttp session say when each request's headers are written, so that a
    request cancelled before then is known not to have left the process (and is not counted).
    A transport without what this needs is left alone: its requests count once admitted."""
    transport: Any = getattr(client, "_transport", None)
    if getattr(transport, "client", True) is not None or not hasattr(transport, "ssl_context"):
        return client

    def session() -> Any:  # called by the transport on its first request, on the loop
        import aiohttp

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(_on_aiohttp_start)
        trace.on_request_headers_sent.append(_on_aiohttp_sent)
        limits = transport.limits
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0, keepalive_timeout=limits.keepalive_expiry, ssl=transport.ssl_context
        )
        return aiohttp.ClientSession(connector=connector, trace_configs=[trace])

    transport.client = session
    return client


async def _on_response(response: Any) -> None:
    wire = _WIRE.get()
    if wire is not None:
        wire.headers.append(response.headers)


def accounting_of(provider: str) -> Accounting:
    """How a provider counts tokens against its limits: OpenAI (and the many servers that copy
    its API) charges the prompt plus ``max_tokens`` on arrival; Anthropic and others count what
    a call spent."""
    return ARRIVAL if provider.startswith("openai") else USAGE


def builds_client(ref: ModelRef | None) -> bool:
    """Whether fanfold builds this model's HTTP client (and so admits its requests on the wire)."""
    return ref is not None and ref.provider in _BUILT_HERE


def build_model(ref: ModelRef, cleanups: list[Callable[[], Any]]) -> Any:
    """A pydantic-ai ``Model`` for ``ref``; clients it opens are closed through ``cleanups``."""
    from pydantic_ai.models import infer_model

    family = _BUILT_HERE.get(ref.provider)
    if family is None:
        return infer_model(ref.spec)
    sdk, key_var, url_var = family
    api_key = ref.api_key or os.environ.get(key_var) or "not-needed"
    base_url = ref.base_url or os.environ.get(url_var) or None
    sdk_module: Any
    client_class: Any
    provider_of: Callable[[Any], Any]
    if sdk == "openai":
        import openai as sdk_module
        from pydantic_ai.providers.openai import OpenAIProvider

        client_class, provider_of = sdk_module.AsyncOpenAI, lambda c: OpenAIProvider(openai_client=c)
    else:
        import anthropic as sdk_module
        from pydantic_ai.providers.anthropic import AnthropicProvider

        client_class, provider_of = sdk_module.AsyncAnthropic, lambda c: AnthropicProvider(anthropic_client=c)
    client = client_class(
        api_key=api_key, base_url=base_url, max_retries=0, http_client=governed_http_client(sdk_module)
    )
    cleanups.append(client.close)
    provider = provider_of(client)
    return infer_model(ref.spec, provider_factory=lambda _: provider)


async def build_model_off_loop(ref: ModelRef, cleanups: list[Callable[[], Any]]) -> Any:
    """:func:`build_model` on a worker thread: importing an SDK, building its client and its SSL
    context take a good part of a second, which on the event loop would stall every branch of
    the run. (The client binds to the event loop only when it sends its first request.)"""
    built: list[Callable[[], Any]] = []
    model = await asyncio.to_thread(build_model, ref, built)
    cleanups.extend(built)  # on the loop: the run's list is only ever touched from there
    return model


def _governed_pool(sdk_module: Any) -> Any:
    """Connection limits that leave concurrency to the governor: the SDK's default pool holds
    at most 1,000 connections, which would silently halve a run allowed 2,000 calls at once.
    Admission is taken before a request asks the pool for a connection, so the run's limits
    bound the connections (0 is aiohttp's "no limit of its own")."""
    limits = sdk_module.DEFAULT_CONNECTION_LIMITS
    return type(limits)(max_connections=0, max_keepalive_connections=None, keepalive_expiry=limits.keepalive_expiry)


class on_wire:
    """Route the model request made inside the block through ``wire``."""

    __slots__ = ("_token", "wire")

    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def __enter__(self) -> Wire:
        self._token = _WIRE.set(self.wire)
        return self.wire

    def __exit__(self, *exc: object) -> None:
        _WIRE.reset(self._token)


# -- what the headers say --------------------------------------------------------------------

_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": REQUESTS,
    "x-ratelimit-limit-tokens": TOKENS,
    "anthropic-ratelimit-requests-limit": REQUESTS,
    "anthropic-ratelimit-tokens-limit": TOKENS,
    "anthropic-ratelimit-input-tokens-limit": INPUT_TOKENS,
    "anthropic-ratelimit-output-tokens-limit": OUTPUT_TOKENS,
}
_REMAINING_HEADERS = {
    "x-ratelimit-remaining-requests": REQUESTS,
    "x-ratelimit-remaining-tokens": TOKENS,
    "anthropic-ratelimit-requests-remaining": REQUESTS,
    "anthropic-ratelimit-tokens-remaining": TOKENS,
    "anthropic-ratelimit-input-tokens-remaining": INPUT_TOKENS,
    "anthropic-ratelimit-output-tokens-remaining": OUTPUT_TOKENS,
}


_RAW_LIMIT_HEADERS = {name.encode(): kind for name, kind in _LIMIT_HEADERS.items()}
_RAW_REMAINING_HEADERS = {name.encode(): kind for name, kind in _REMAINING_HEADERS.items()}


def limits_from_headers(headers: Mapping[str, str] | None) -> dict[str, float]:
    """Per-minute limits named by OpenAI's ``x-ratelimit-*`` or Anthropic's
    ``anthropic-ratelimit-*`` headers.

    >>> limits_from_headers({"x-ratelimit-limit-requests": "500", "x-ratelimit-limit-tokens": "30000"})
    {'requests': 500.0, 'tokens': 30000.0}
    """
    return _read(headers, _LIMIT_HEADERS, _RAW_LIMIT_HEADERS)


def remaining_from_headers(headers: Mapping[str, str] | None) -> dict[str, float]:
    """What is left of each limit, by the same headers' ``remaining`` counterparts: a bucket at
    zero tells a 429 that breaches the limit from an isolated one.

    >>> remaining_from_headers({"x-ratelimit-remaining-requests": "0", "retry-after": "1"})
    {'requests': 0.0}
    """
    return _read(headers, _REMAINING_HEADERS, _RAW_REMAINING_HEADERS)


def _read(
    headers: Mapping[str, str] | None, table: Mapping[str, str], raw_table: Mapping[bytes, str]
) -> dict[str, float]:
    if not headers:
        return {}
    found: dict[str, float] = {}
    # httpx's headers (every response's) are read in one pass over their bytes
    raw = getattr(headers, "raw", None)
    pairs: Iterable[tuple[Any, Any]] = raw if raw is not None else headers.items()
    names: Mapping[Any, str] = raw_table if raw is not None else table
    for name, value in pairs:
        kind = names.get(name.lower())
        if kind is not None:
            with contextlib.suppress(ValueError):  # not a number: the header says nothing usable
                found[kind] = float(value)
    return found


def retry_hint(exc: BaseException | None) -> float | None:
    """The wait a failed request's answer asks for: its ``Retry-After`` (as pydantic-ai reads
    it), else a gateway's prefixed copy (LiteLLM sends ``llm_provider-retry-after``), in
    seconds, or in milliseconds for a ``...-retry-after-ms``.

    >>> class Answer(Exception):
    ...     headers = {"llm_provider-retry-after": "2"}
    >>> retry_hint(Answer())
    2.0
    """
    hint = delay_hint(exc)
    if hint is not None:
        return hint
    headers = getattr(exc, "headers", None)
    if not isinstance(headers, Mapping):
        return None
    for name, value in headers.items():
        key = str(name).lower()
        if key.endswith(("-retry-after-ms", "-retry-after")):
            with contextlib.suppress(ValueError):
                seconds = float(value) / (1000.0 if key.endswith("-ms") else 1.0)
                if 0 <= seconds < math.inf:
                    return seconds
    return None


# -- clients fanfold lends to other frameworks' agents (fanfold._adapters) -------------------


def sdk_client(ref: ModelRef, http_client: Callable[[Any], Any]) -> Any:
    """The SDK client (``AsyncOpenAI`` or ``AsyncAnthropic``) for ``ref``, as :func:`build_model`
    builds it (the SDK's own retries off), on the HTTP client ``http_client(sdk_module)`` returns."""
    family = _BUILT_HERE.get(ref.provider)
    if family is None:
        raise UsageError(
            f"no SDK client for {ref.spec!r}: fanfold builds clients for the providers "
            f"{', '.join(sorted(_BUILT_HERE))}; name the model as e.g. 'openai:gpt-5-mini'"
        )
    sdk, key_var, url_var = family
    sdk_module: Any
    if sdk == "openai":
        import openai as sdk_module

        client_class = sdk_module.AsyncOpenAI
    else:
        import anthropic as sdk_module

        client_class = sdk_module.AsyncAnthropic
    return client_class(
        api_key=ref.api_key or os.environ.get(key_var) or "not-needed",
        base_url=ref.base_url or os.environ.get(url_var) or None,
        max_retries=0,
        http_client=http_client(sdk_module),
    )


def governed_http_client(sdk_module: Any, base: type | None = None) -> Any:
    """An HTTP client as :func:`build_model` gives the SDK: on aiohttp, with fanfold's hooks
    (admission on the wire, rate-limit headers) and a pool that leaves concurrency to the
    governor. ``base`` is a mixin placed before the SDK's aiohttp client class."""
    client_class = sdk_module.DefaultAioHttpClient
    if base is not None:
        client_class = type(base.__name__, (base, client_class), {})
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [_on_request], "response": [_on_response]}
    return _follow_sending(client_class(event_hooks=hooks, limits=_governed_pool(sdk_module)))
