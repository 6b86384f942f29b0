"""What a simulated provider is told to do: its rate limits, latency, faults and answers.

Every class here is frozen configuration; the server keeps the state that changes
(buckets, counters, random generators) in its own objects.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal, TypeGuard

from fanfold._errors import UsageError

Api = Literal["openai-chat", "openai-responses", "anthropic"]
FaultKind = Literal["429", "500", "529", "timeout", "malformed"]
FAULT_KINDS: tuple[FaultKind, ...] = ("429", "500", "529", "timeout", "malformed")
SimAccounting = Literal["reserve", "arrival", "usage"]
ACCOUNTINGS: tuple[SimAccounting, ...] = ("reserve", "arrival", "usage")


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_number(where: str, value: object, *, minimum: float = 0.0, strict: bool = False, none: bool = False) -> None:
    if value is None and none:
        return
    if _is_number(value) and (value > minimum or (value == minimum and not strict)):
        return
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    raise UsageError(f"{where} got {value!r}; pass a number {bound}" + (", or None for no limit" if none else ""))


@dataclass(frozen=True, slots=True)
class RampLimit:
    """Penalise sharp ramps: after the server starts, or after ``seconds`` without a request,
    the effective limits start at ``initial`` times the configured ones and grow linearly to
    the full limits over ``seconds``.

    >>> RampLimit(initial=0.5, seconds=4.0).factor(elapsed=2.0)
    0.75
    """

    initial: float = 0.25
    seconds: float = 10.0

    def __post_init__(self) -> None:
        if not (isinstance(self.initial, (int, float)) and 0 < self.initial <= 1):
            raise UsageError(f"RampLimit(initial={self.initial!r}): pass a fraction in (0, 1], e.g. 0.25")
        _check_number("RampLimit(seconds=...)", self.seconds, strict=True)

    def factor(self, elapsed: float) -> float:
        """The share of the configured limits in force ``elapsed`` seconds into a ramp."""
        return self.initial + (1.0 - self.initial) * min(1.0, max(0.0, elapsed) / self.seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimLimits:
    """A provider's rate limits, per minute, enforced as continuously refilled token buckets.

    Each bucket refills at ``limit / 60`` per second and holds ``burst`` seconds of refill
    (providers enforce limits in per-second slices, not per minute); the request bucket holds
    at least one request. A limit of ``None`` is not enforced and not reported in headers.
    ``ramp``: see :class:`RampLimit`.

    ``accounting``: how tokens are charged. ``"reserve"`` (the default): the prompt plus the
    request's max tokens (1,024 where it gives none) on arrival, the unused part credited back
    when the answer is known. ``"arrival"`` (as OpenAI counts): the same charge on arrival, kept.
    ``"usage"`` (as Anthropic counts): the prompt on arrival, the output when it is known; a
    request is admitted while the output bucket is not in debt. A request turned away with a
    429 is charged no tokens in any mode (but spends its request).

    >>> SimLimits(requests_per_minute=60, burst=2.0).requests_per_minute
    60
    """

    requests_per_minute: float | None = 600
    tokens_per_minute: float | None = None
    input_tokens_per_minute: float | None = None
    output_tokens_per_minute: float | None = None
    burst: float = 1.0
    ramp: RampLimit | None = None
    accounting: SimAccounting = "reserve"

    def __post_init__(self) -> None:
        if self.accounting not in ACCOUNTINGS:
            raise UsageError(f"SimLimits(accounting={self.accounting!r}): pass one of {list(ACCOUNTINGS)}")
        for name in ("requests_per_minute", "tokens_per_minute", "input_tokens_per_minute", "output_tokens_per_minute"):
            _check_number(f"SimLimits({name}=...)", getattr(self, name), strict=True, none=True)
        _check_number("SimLimits(burst=...)", self.burst, strict=True)
        if self.ramp is not None and not isinstance(self.ramp, RampLimit):
            raise UsageError(f"SimLimits(ramp={self.ramp!r}): pass RampLimit(initial=..., seconds=...) or None")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, as ``POST /_sim/limits`` takes it."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _LIMIT_FIELDS}
        data["ramp"] = None if self.ramp is None else {"initial": self.ramp.initial, "seconds": self.ramp.seconds}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimLimits:
        """The inverse of :meth:`to_dict`; unknown keys are a :class:`~fanfold.UsageError`.

        >>> SimLimits.from_dict({"requests_per_minute": 30, "ramp": {"initial": 0.5}}).ramp
        RampLimit(initial=0.5, seconds=10.0)
        """
        unknown = set(data) - {*_LIMIT_FIELDS, "ramp"}
        if unknown:
            raise UsageError(f"unknown SimLimits fields {sorted(unknown)}; known: {[*_LIMIT_FIELDS, 'ramp']}")
        values = dict(data)
        ramp = values.pop("ramp", None)
        if isinstance(ramp, Mapping):
            ramp = RampLimit(**ramp)
        return cls(**values, ramp=ramp)


_LIMIT_FIELDS = (
    "requests_per_minute",
    "tokens_per_minute",
    "input_tokens_per_minute",
    "output_tokens_per_minute",
    "burst",
    "accounting",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    """Time to answer one request, drawn per request from a seeded generator.

    ``median`` seconds; ``sigma`` sets the tail: the log-space standard deviation for
    ``"lognormal"``, the reciprocal of the shape for ``"pareto"`` (heavier tail). Each output
    token adds ``per_output_token`` seconds; ``maximum`` caps the total. Streaming spreads the
    time over its chunks. A slow tail: ``slow_fraction`` of the requests (drawn from the same
    value) take ``slow_factor`` times as long, the stragglers a hedge is for.

    >>> Latency.fixed(0.05).draw(random.Random(0))
    0.05
    >>> 0 < Latency(median=0.2, sigma=0.6).draw(random.Random(0)) < 10
    True
    """

    median: float = 0.2
    sigma: float = 0.6
    distribution: Literal["lognormal", "pareto", "fixed"] = "lognormal"
    per_output_token: float = 0.0
    maximum: float | None = None
    slow_fraction: float = 0.0
    slow_factor: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.slow_fraction <= 1:
            raise UsageError(f"Latency(slow_fraction={self.slow_fraction!r}): pass a fraction of requests in [0, 1]")
        _check_number("Latency(slow_factor=...)", self.slow_factor)
        _check_number("Latency(median=...)", self.median)
        _check_number("Latency(sigma=...)", self.sigma)
        _check_number("Latency(per_output_token=...)", self.per_output_token)
        _check_number("Latency(maximum=...)", self.maximum, none=True)
        if self.distribution not in ("lognormal", "pareto", "fixed"):
            raise UsageError(f"Latency(distribution={self.distribution!r}): pass 'lognormal', 'pareto' or 'fixed'")

    @classmethod
    def fixed(cls, seconds: float) -> Latency:
        """Every request takes exactly ``seconds`` (plus ``per_output_token`` time, none here)."""
        return cls(median=seconds, sigma=0.0, distribution="fixed")

    def draw(self, rng: random.Random) -> float:
        """One request's latency before its output tokens, in seconds. Always takes one value
        from ``rng``, so the sequence of draws does not depend on the distribution."""
        u = rng.random()
        if self.distribution == "fixed" or self.sigma == 0:
            base = self.median
        elif self.distribution == "lognormal":
            base = self.median * math.exp(self.sigma * _normal_quantile(u))
        else:  # pareto with its median at `median`: x_m * U**-sigma, x_m = median * 2**-sigma
            base = self.median * (2.0 * (1.0 - u)) ** -self.sigma
        if self.slow_fraction and (u * 1e6) % 1.0 < self.slow_fraction:  # low digits: independent of base
            base *= self.slow_factor
        return base if self.maximum is None else min(base, self.maximum)

    def total(self, base: float, output_tokens: int) -> float:
        """A drawn latency plus the time for ``output_tokens``, within ``maximum``."""
        total = base + self.per_output_token * output_tokens
        return total if self.maximum is None else min(total, self.maximum)


_STANDARD_NORMAL = NormalDist()


def _normal_quantile(u: float) -> float:
    return _STANDARD_NORMAL.inv_cdf(min(max(u, 1e-12), 1 - 1e-12))


FaultScript = Callable[[int, "SimRequest"], str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    """Failures to inject, each a probability per request, drawn from a seeded generator.

    ``rate_429``: a 429 with ``retry-after: 1``; ``rate_500``: an internal error; ``rate_529``:
    overloaded (529 ``overloaded_error`` from Anthropic, 503 from OpenAI); ``rate_timeout``: the
    server holds the request for ``hang`` seconds (or until the client goes away) and closes the
    connection without answering; ``rate_malformed``: status 200 with a truncated JSON body.
    ``script(request_number, request)`` instead decides exactly, returning one of ``"429"``,
    ``"500"``, ``"529"``, ``"timeout"``, ``"malformed"`` or ``None``.

    >>> every_other = Faults(script=lambda n, request: "500" if n % 2 == 0 else None)
    >>> [every_other.pick(random.Random(0), n, SimRequest(api="anthropic", model="m")) for n in (1, 2)]
    [None, '500']
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_529: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    hang: float = 30.0
    script: FaultScript | None = None

    def __post_init__(self) -> None:
        rates = self._rates()
        for kind, rate in zip(FAULT_KINDS, rates, strict=True):
            if not (isinstance(rate, (int, float)) and 0 <= rate <= 1):
                raise UsageError(f"Faults(rate_{kind}={rate!r}): pass a probability between 0 and 1")
        if sum(rates) > 1 + 1e-9:
            raise UsageError(f"Faults: the rates add up to {sum(rates):g}; their sum must be at most 1")
        _check_number("Faults(hang=...)", self.hang)
        if self.script is not None and not callable(self.script):
            raise UsageError(
                f"Faults(script={self.script!r}): pass a function (request_number, request) -> kind or None"
            )

    def _rates(self) -> tuple[float, ...]:
        return (self.rate_429, self.rate_500, self.rate_529, self.rate_timeout, self.rate_malformed)

    def pick(self, rng: random.Random, number: int, request: SimRequest) -> FaultKind | None:
        """The fault for request ``number`` (1-based), or None. Takes one value from ``rng``."""
        u = rng.random()
        if self.script is not None:
            kind = self.script(number, request)
            if kind is not None and kind not in FAULT_KINDS:
                raise UsageError(f"Faults(script=...) returned {kind!r}; return one of {list(FAULT_KINDS)} or None")
            return kind
        for kind, rate in zip(FAULT_KINDS, self._rates(), strict=True):
            if u < rate:
                return kind
            u -= rate
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What a scripted answer says: ``text``, and/or ``tool_calls`` as ``(name, arguments)``
    pairs. ``output_tokens`` pads (or cuts) the text to that many tokens; with no text, the
    default answer is padded. Cut short by the request's max tokens like any answer.

    >>> Reply(tool_calls=[("search", {"query": "tides"})]).tool_calls[0][0]
    'search'
    """

    text: str | None = None
    tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()
    output_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.output_tokens is not None and (isinstance(self.output_tokens, bool) or self.output_tokens < 1):
            raise UsageError(f"Reply(output_tokens={self.output_tokens!r}): pass a whole number >= 1, or None")
        for call in self.tool_calls:
            if not (isinstance(call, tuple) and len(call) == 2 and isinstance(call[0], str)):
                raise UsageError(f"Reply(tool_calls=...) has {call!r}; pass (name, arguments-dict) pairs")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimRequest:
    """One request as an ``answer`` callable or a fault script sees it, whatever the wire format.

    ``messages``: ``(role, text)`` pairs in order, roles ``system``, ``user``, ``assistant`` and
    ``tool`` (a tool result); ``tool_results``: ``(tool name, content)`` pairs; ``tools``: the
    names of the tools offered; ``output_tool``: the tool pydantic-ai uses for structured output
    (named ``final_result...``), if offered; ``output_schema``: the JSON schema the answer must
    fit (from that tool or a ``json_schema`` response format); ``json_mode``: JSON was asked
    for, with or without a schema; ``forced_tool``: the tool ``tool_choice`` insists on;
    ``input_tokens``: by the simulator's counting rule; ``number``: 1-based, in arrival order;
    ``details``: provider-specific fields the response echoes back.
    """

    api: Api
    model: str
    messages: tuple[tuple[str, str], ...] = ()
    tool_results: tuple[tuple[str, str], ...] = ()
    tools: tuple[str, ...] = ()
    tool_schemas: Mapping[str, Any] = field(default_factory=dict)
    forced_tool: str | None = None
    output_tool: str | None = None
    output_schema: Mapping[str, Any] | None = None
    json_mode: bool = False
    max_tokens: int | None = None
    stream: bool = False
    input_tokens: int = 0
    number: int = 0
    details: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def last_user_text(self) -> str:
        """The text of the last user message, or ``""``."""
        return next((text for role, text in reversed(self.messages) if role == "user"), "")


AnswerFn = Callable[[SimRequest], "str | dict[str, Any] | Reply | None"]
"""An ``answer`` function: text, structured output (a dict), a :class:`Reply`, or None for the
default answer. It runs on the server's event loop, so it must not block."""
AnswerSetting = str | Reply | AnswerFn | None
