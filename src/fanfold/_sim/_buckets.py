"""The provider side of rate limiting: continuously refilled token buckets, as providers run them.

One bucket per configured limit (requests, total tokens, input tokens, output tokens). Each
refills at ``limit / 60`` per second and holds ``burst`` seconds of refill. A request needs one
request token and its input tokens at arrival, and its output tokens are charged as the limits'
``accounting`` says: its maximum (1024 where it gave none) at arrival with the unused part
credited back when the answer is known (``"reserve"``), its maximum at arrival and kept
(``"arrival"``, as OpenAI counts), or what it produced once it is known (``"usage"``).

Two rules make it behave like a real provider rather than a polite one:

- a request denied with a 429 still spends its request token, so the request bucket goes
  negative under a client that retries at once, and stays empty for as long as it keeps trying;
- a request bigger than a bucket's capacity is admitted when that bucket is full, and drives it
  negative (it would otherwise never be admitted), so the long-run rate still holds.

>>> limiter = ProviderLimiter(SimLimits(requests_per_minute=120, burst=1.0), now=0.0)
>>> [limiter.admit(0, 0, now=0.0).admitted for _ in range(3)]
[True, True, False]
>>> limiter.admit(0, 0, now=0.0).retry_after   # two denied requests spent tokens: 1.5 s of debt
1.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fanfold._sim._config import SimLimits

DEFAULT_OUTPUT_RESERVATION = 1024
"""Output tokens reserved at arrival for a request that does not say its maximum."""


class Bucket:
    """A continuously refilled token bucket whose level may go negative (a debt)."""

    __slots__ = ("burst", "capacity", "level", "limit", "name", "rate", "updated")

    def __init__(self, name: str, per_minute: float, burst: float, now: float, *, minimum: float = 0.0) -> None:
        self.name = name
        self.limit = per_minute
        self.burst = burst
        self.rate = per_minute / 60.0
        self.capacity = max(self.rate * burst, minimum)
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float, factor: float) -> None:
        elapsed = now - self.updated
        if elapsed > 0:
            self.level = min(self.capacity * factor, self.level + elapsed * self.rate * factor)
            self.updated = now
        elif self.level > self.capacity * factor:
            self.level = self.capacity * factor

    def shortfall(self, need: float, factor: float) -> float:
        """Seconds until the bucket can admit ``need`` (0: it can now)."""
        target = min(need, self.capacity * factor)
        if self.level >= target:
            return 0.0
        return (target - self.level) / (self.rate * factor)

    def credit(self, amount: float, factor: float) -> None:
        self.level = min(self.capacity * factor, self.level + amount)

    def state(self, factor: float) -> BucketState:
        """The bucket as rate-limit headers report it: per minute, on a one-minute scale."""
        capacity = self.capacity * factor
        remaining = self.limit * factor - (capacity - self.level) * 60.0 / self.burst
        reset = max(0.0, capacity - self.level) / (self.rate * factor)
        return BucketState(self.name, self.limit, max(0, min(int(self.limit), math.floor(remaining))), reset)


@dataclass(frozen=True, slots=True)
class BucketState:
    """One bucket as rate-limit headers report it.

    ``name``: ``"requests"``, ``"tokens"``, ``"input-tokens"`` or ``"output-tokens"``; ``limit``:
    per minute; ``remaining``: what a one-minute bucket at the same fill would hold;
    ``reset``: seconds until the bucket is full again.
    """

    name: str
    limit: float
    remaining: int
    reset: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one request at arrival.

    ``admitted``; if not, ``retry_after`` seconds until every bucket that said no could say yes,
    and ``bucket``, the name of the bucket that needs the longest wait.
    """

    admitted: bool
    retry_after: float = 0.0
    bucket: str = ""


class ProviderLimiter:
    """The buckets for one :class:`SimLimits`, with its optional ramp. Not thread-safe: the
    server calls it from its event loop only."""

    def __init__(self, limits: SimLimits, now: float) -> None:
        self.limits = limits
        self.buckets: list[Bucket] = []
        self._ramp_start = now
        self._last_arrival = now
        self._build(limits, now, previous={})

    def _build(self, limits: SimLimits, now: float, previous: dict[str, Bucket]) -> None:
        configured = (
            ("requests", limits.requests_per_minute, 1.0),
            ("tokens", limits.tokens_per_minute, 0.0),
            ("input-tokens", limits.input_tokens_per_minute, 0.0),
            ("output-tokens", limits.output_tokens_per_minute, 0.0),
        )
        buckets = []
        for name, per_minute, minimum in configured:
            if per_minute is None:
                continue
            bucket = Bucket(name, per_minute, limits.burst, now, minimum=minimum)
            if name in previous:  # keep the debt or the fill, within the new capacity
                bucket.level = min(previous[name].level, bucket.capacity)
            buckets.append(bucket)
        self.buckets = buckets
        self._requests = next((b for b in buckets if b.name == "requests"), None)
        self._tokens = next((b for b in buckets if b.name == "tokens"), None)
        self._input = next((b for b in buckets if b.name == "input-tokens"), None)
        self._output = next((b for b in buckets if b.name == "output-tokens"), None)

    def set_limits(self, limits: SimLimits, now: float) -> None:
        """Change the limits mid-run. Buckets keep their level, cut to the new capacity; a newly
        configured limit starts full."""
        factor = self._factor(now)
        for bucket in self.buckets:
            bucket.refill(now, factor)
        self.limits = limits
        self._build(limits, now, previous={b.name: b for b in self.buckets})

    def _factor(self, now: float) -> float:
        ramp = self.limits.ramp
        if ramp is None:
            return 1.0
        return ramp.factor(now - self._ramp_start)

    def _arrive(self, now: float) -> float:
        ramp = self.limits.ramp
        if ramp is not None and now - self._last_arrival >= ramp.seconds:
            self._ramp_start = now  # an idle spell: ramp up again from `initial`
        self._last_arrival = now
        factor = self._factor(now)
        for bucket in self.buckets:
            bucket.refill(now, factor)
        return factor

    @property
    def _charges_output_later(self) -> bool:
        return self.limits.accounting == "usage"

    def admit(self, input_tokens: int, output_reservation: int, now: float) -> Verdict:
        """Take what the request needs from every bucket, or deny it: a denied request spends
        its request token all the same."""
        factor = self._arrive(now)
        needs = self._needs(input_tokens, output_reservation)
        wait, slowest = 0.0, ""
        for bucket, need in needs:
            shortfall = bucket.shortfall(need, factor)
            if shortfall > wait:
                wait, slowest = shortfall, bucket.name
        if slowest:
            if self._requests is not None:
                self._requests.level -= 1.0
                wait = max(wait, self._requests.shortfall(1.0, factor))
            return Verdict(False, wait, slowest)
        for bucket, need in needs:
            bucket.level -= need
        return Verdict(True)

    def _needs(self, input_tokens: int, output_reservation: int) -> list[tuple[Bucket, float]]:
        if self._charges_output_later:
            output_reservation = 0  # admitted while the output bucket is out of debt
        needs: list[tuple[Bucket, float]] = []
        if self._requests is not None:
            needs.append((self._requests, 1.0))
        if self._tokens is not None:
            needs.append((self._tokens, float(input_tokens + output_reservation)))
        if self._input is not None:
            needs.append((self._input, float(input_tokens)))
        if self._output is not None:
            needs.append((self._output, float(output_reservation)))
        return needs

    def settle(self, output_reservation: int, output_tokens: int, now: float) -> None:
        """The answer is known: credit back the unused reservation (``"reserve"``), charge the
        output (``"usage"``), or keep what was charged (``"arrival"``)."""
        accounting = self.limits.accounting
        if accounting == "arrival":
            return
        change = -float(output_tokens) if accounting == "usage" else float(output_reservation - output_tokens)
        if change == 0:
            return
        factor = self._factor(now)
        for bucket in (self._tokens, self._output):
            if bucket is not None:
                bucket.refill(now, factor)
                bucket.credit(change, factor)

    def refund(self, input_tokens: int, output_reservation: int, now: float) -> None:
        """An admitted request was turned away after all (an injected 429): a provider charges
        no tokens for it. Call this instead of :meth:`settle`."""
        factor = self._factor(now)
        for bucket, need in self._needs(input_tokens, output_reservation):
            if bucket is not self._requests:
                bucket.refill(now, factor)
                bucket.credit(need, factor)

    def states(self, now: float) -> list[BucketState]:
        """Every configured bucket as rate-limit headers report it."""
        factor = self._factor(now)
        for bucket in self.buckets:
            bucket.refill(now, factor)
        return [bucket.state(factor) for bucket in self.buckets]
