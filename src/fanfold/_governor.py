"""Provider resources: the metered part of admission.

A provider resource (one endpoint, key and model, or a group the user names) meters what its
calls spend as continuously refilled buckets (providers enforce per-second slices of their
per-minute limits, not minute windows), caps how many of its calls run at once, and reacts to
the provider: rate-limit headers teach it limits it was not given, and a 429 pauses it for the
advised time. While no limit is known it finds one with adaptive concurrency: a slow-start ramp,
then additive increase and multiplicative decrease.

The limiter in :mod:`fanfold._limits` owns the queue; a resource only answers "how long until
this call fits" and keeps its books.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

from fanfold._errors import UsageError

# What a call can spend, by bucket; the cost of a call names some of these.
REQUESTS = "requests"
TOKENS = "tokens"
INPUT_TOKENS = "input_tokens"
OUTPUT_TOKENS = "output_tokens"
KINDS = (REQUESTS, TOKENS, INPUT_TOKENS, OUTPUT_TOKENS)


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """The limits of one provider resource (a model behind an endpoint and key).

    Pass it in ``ff.Limits(resources={"openai:gpt-5-mini": ff.RateLimit(...)})``; the key is the
    LLM agent's resource name (``provider:model`` unless ``ff.llm(resource=...)`` names a group),
    or a provider name (``"openai"``) for all its models.

    ``requests_per_minute``, ``tokens_per_minute`` (input plus output, as OpenAI counts),
    ``input_tokens_per_minute`` and ``output_tokens_per_minute`` become buckets that refill
    continuously and hold ``burst`` seconds of refill: half a second by default, less than a
    provider's own slice, so that calls that reach it bunched up by the network still fit.
    ``concurrency`` caps calls in flight.
    With ``learn`` (the default), limits the provider reports in its rate-limit headers are
    used too (the lower one wins), and while no limit at all is known, concurrency adapts: it
    starts at ``initial_concurrency``, doubles each round trip until the first 429, then grows
    by one per round trip and shrinks by 30% on a 429.

    >>> ff.RateLimit(requests_per_minute=500, output_tokens_per_minute=80_000)
    RateLimit(requests_per_minute=500, output_tokens_per_minute=80000)
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    input_tokens_per_minute: float | None = None
    output_tokens_per_minute: float | None = None
    concurrency: int | None = None
    burst: float = 0.5
    learn: bool = True
    initial_concurrency: int = 8
    max_concurrency: int = 10_000

    def __post_init__(self) -> None:
        for kind in KINDS:
            value = getattr(self, f"{kind}_per_minute")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise UsageError(f"RateLimit({kind}_per_minute={value!r}): pass a number > 0, or None for no limit")
        for name in ("concurrency", "initial_concurrency", "max_concurrency"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UsageError(f"RateLimit({name}={value!r}): pass a whole number >= 1")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int | float) or self.burst <= 0:
            raise UsageError(f"RateLimit(burst={self.burst!r}): pass the seconds of refill a bucket holds, > 0")

    def per_minute(self, kind: str) -> float | None:
        value: float | None = getattr(self, f"{kind}_per_minute")
        return value

    def __repr__(self) -> str:  # only what was set: these are read in logs and test failures
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if getattr(self, f.name) != f.default]
        return f"RateLimit({', '.join(shown)})"


class Bucket:
    """A continuously refilled bucket. A call needs ``min(amount, capacity)`` in it to start and
    then takes its whole amount, so one call larger than the bucket still runs, and pays after."""

    __slots__ = ("capacity", "level", "per_minute", "rate", "stamp")

    # A new bucket starts nearly empty and fills at its rate: a gradual start, which some
    # providers ask for, and which leaves the provider's own bucket full as a cushion for calls
    # that reach it bunched up (the client's loop is busiest as a fan-out starts).
    START = 0.1

    def __init__(self, per_minute: float, burst: float, now: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst)
        self.level = max(min(1.0, self.capacity), self.capacity * self.START)
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` may start (0: now)."""
        self.refill(now)
        need = min(amount, self.capacity)
        if self.level >= need:
            return 0.0
        start = max(now, self.stamp)  # a paused bucket refills only from the end of the pause
        return start - now + (need - self.level) / self.rate

    def resize(self, per_minute: float, burst: float, now: float) -> None:
        self.refill(now)
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst)
        self.level = min(self.level, self.capacity)

    def hold(self, until: float) -> None:
        """Empty the bucket and let it refill only from ``until``: what a 429 asks for."""
        self.level = min(self.level, 0.0)
        self.stamp = max(self.stamp, until)


def amounts(cost: Mapping[str, float] | None) -> dict[str, float]:
    """A call's spend per bucket kind, from its cost (input and output tokens)."""
    inp = float(cost.get(INPUT_TOKENS, 0.0)) if cost else 0.0
    out = float(cost.get(OUTPUT_TOKENS, 0.0)) if cost else 0.0
    return {REQUESTS: 1.0, TOKENS: inp + out, INPUT_TOKENS: inp, OUTPUT_TOKENS: out}


class ProviderResource:
    """One provider resource's buckets, concurrency cap, pause and adaptive state."""

    DECREASE = 0.7  # multiplicative decrease on a 429 while no limit is known

    def __init__(self, name: str, limit: RateLimit, now: float) -> None:
        self.name = name
        self.limit = limit
        self.buckets: dict[str, Bucket] = {}
        for kind in KINDS:
            per_minute = limit.per_minute(kind)
            if per_minute is not None:
                self.buckets[kind] = Bucket(per_minute, limit.burst, now)
        self.learned: dict[str, float] = {}
        self.in_flight = 0
        self.adaptive = limit.concurrency is None and limit.learn
        self.cap: float = float(limit.concurrency) if limit.concurrency else float(limit.initial_concurrency)
        if limit.concurrency is None and (self.buckets or not self.adaptive):
            self.cap = float(limit.max_concurrency) if self.adaptive else math.inf  # the buckets govern
        self.slow_start = True
        self.paused_until = -math.inf
        self.last_decrease = -math.inf
        self.throttles = 0
        self.latency = 1.0  # smoothed seconds per call: one round trip, for the adaptive steps

    # -- admission ---------------------------------------------------------------------------

    def wait(self, cost: Mapping[str, float] | None, now: float) -> float:
        """Seconds until a call of ``cost`` fits: 0 now, ``inf`` until a call in flight ends."""
        if now < self.paused_until:
            return self.paused_until - now
        if self.in_flight >= self.cap:
            return math.inf
        if not self.buckets:
            return 0.0
        spend = amounts(cost)
        return max(bucket.wait(spend[kind], now) for kind, bucket in self.buckets.items())

    def take(self, cost: Mapping[str, float] | None) -> None:
        self.in_flight += 1
        if self.buckets:
            spend = amounts(cost)
            for kind, bucket in self.buckets.items():
                bucket.level -= spend[kind]

    def release(self, cost: Mapping[str, float] | None, usage: Mapping[str, float] | None) -> None:
        """A call ended; ``usage`` (what it really spent) corrects the estimate it was admitted on."""
        self.in_flight -= 1
        if usage is None or not self.buckets:
            return
        estimated = amounts(cost)
        spent = amounts(usage)
        for kind, bucket in self.buckets.items():
            if kind != REQUESTS:
                bucket.level = min(bucket.capacity, bucket.level + estimated[kind] - spent[kind])

    # -- what the provider said ----------------------------------------------------------------

    def succeeded(self, seconds: float, limits: Mapping[str, float], now: float) -> None:
        self.latency += 0.2 * (seconds - self.latency)
        self.learn(limits, now)
        if self.adaptive and not self.buckets and self.in_flight >= self.cap - 1:
            # Grow only while the cap binds (this call still counts as in flight): a resource
            # limited by something else must not build up a cap it never tested.
            step = 1.0 if self.slow_start else 1.0 / self.cap
            self.cap = min(float(self.limit.max_concurrency), self.cap + step)

    def throttled(self, retry_after: float | None, limits: Mapping[str, float], now: float) -> float:
        """A 429 (or 529): pause the whole resource and return how long."""
        self.throttles += 1
        self.learn(limits, now)
        pause = retry_after if retry_after is not None else 1.0
        until = now + pause
        if until > self.paused_until:
            self.paused_until = until
            for bucket in self.buckets.values():
                bucket.hold(until)  # resume by refilling from empty: gradual, no herd
        if self.adaptive and not self.buckets and now - self.last_decrease > self.latency:
            self.slow_start = False
            self.cap = max(1.0, min(self.cap, self.in_flight) * self.DECREASE)
            self.last_decrease = now
        return pause

    def learn(self, limits: Mapping[str, float], now: float) -> None:
        """Take per-minute limits the provider reported; a configured lower limit still wins."""
        if not limits or not self.limit.learn:
            return
        for kind, per_minute in limits.items():
            if per_minute <= 0 or self.learned.get(kind) == per_minute:
                continue
            self.learned[kind] = per_minute
            configured = self.limit.per_minute(kind)
            effective = per_minute if configured is None else min(configured, per_minute)
            bucket = self.buckets.get(kind)
            if bucket is None:
                self.buckets[kind] = Bucket(effective, self.limit.burst, now)
            elif bucket.per_minute != effective:
                bucket.resize(effective, self.limit.burst, now)
        if self.adaptive and self.buckets:
            self.cap = max(self.cap, float(self.limit.max_concurrency))  # the buckets govern now

    def snapshot(self) -> dict[str, float]:
        """Current limits per minute, for events and display."""
        shown = {f"{kind}_per_minute": bucket.per_minute for kind, bucket in self.buckets.items()}
        shown["concurrency"] = self.cap
        return shown
