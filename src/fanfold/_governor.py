"""Provider resources: the metered part of admission.

A provider resource (one endpoint, key and model, or a group the user names) meters what its
calls spend as continuously refilled buckets (providers enforce per-second slices of their
per-minute limits, not minute windows), caps how many of its calls run at once, and reacts to
the provider: rate-limit headers teach it limits it was not given, and a 429 pauses it for the
advised time. While no limit is known it finds one with adaptive concurrency (a slow-start ramp)
and, from the first breach on, paces requests at a rate learnt from the 429s
(:class:`~fanfold._pacing.LearntPace`).

Two things differ between providers and are modelled here. **Accounting**: an OpenAI-style
limiter charges a request's prompt plus its ``max_tokens`` (or the server's default) on arrival
and keeps the charge ("arrival"); an Anthropic-style one charges what the call really spent
("usage"). A rejected call is charged nothing either way. **Breaches**: a 429 that says the limit
is spent pauses the resource for everyone; an isolated 429 or an overload is retried by its own
call alone, with backoff, and the others carry on. A ``remaining`` header at zero says the limit
is spent; without headers, the calls sent lately say it (:class:`~fanfold._pacing.Sends`): a
provider past its limit refuses every request that arrives, so calls refused in a row, or a
burst of them, are the limit, while random 429s come scattered among served calls at any rate.

The limiter in :mod:`fanfold._limits` owns the queue; a resource only answers "how long until
this call fits" and keeps its books.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from itertools import takewhile
from typing import Literal

from fanfold._errors import UsageError
from fanfold._pacing import Bucket, LearntPace, Sends

# What a call can spend, by bucket; the cost of a call names some of these.
REQUESTS = "requests"
TOKENS = "tokens"
INPUT_TOKENS = "input_tokens"
OUTPUT_TOKENS = "output_tokens"
KINDS = (REQUESTS, TOKENS, INPUT_TOKENS, OUTPUT_TOKENS)
# Other keys of a call's cost and usage: the ``max_tokens`` it asked for (what an
# arrival-charging provider reserves), and a usage mark for a call the provider turned away.
MAX_TOKENS = "max_tokens"
REJECTED = "rejected"

Accounting = Literal["arrival", "usage"]
ARRIVAL: Accounting = "arrival"
USAGE: Accounting = "usage"


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
    used too (the lower one wins). While no limit at all is known, concurrency adapts: it
    starts at ``initial_concurrency`` and doubles each round trip until the limit is first
    met; from then on requests are paced at a rate learnt from the provider's 429s. At each
    breach the pace drops to 70% of the rate the provider accepted since the last one, climbs
    back to it within 3 seconds, then probes beyond, ever faster, so that a raised limit is
    found within seconds. Without headers, a 429 is the limit met when calls were refused in
    a row (a provider past its limit refuses everything that arrives): 3 in a row where 429s
    are rare, up to 6 where one call in four is refused at random; when half the calls sent
    over a round trip were; or, while paced, the first 429 after 24 calls sent without one.
    Other 429s are retried by their own call alone.

    ``accounting`` says how the provider counts tokens against its limits: ``"arrival"``
    (OpenAI and OpenAI-compatible servers: the prompt plus ``max_tokens`` are charged as the
    request arrives, ``default_max_tokens`` where the request sends none, and kept whatever the
    answer's length) or ``"usage"`` (Anthropic: what the call really spent). ``None`` (the
    default) picks by provider: ``"arrival"`` for ``openai*`` models, ``"usage"`` otherwise.
    Set both for an OpenAI-compatible server that counts its own way.

    >>> ff.RateLimit(requests_per_minute=500, output_tokens_per_minute=80_000)
    RateLimit(requests_per_minute=500, output_tokens_per_minute=80000)
    >>> ff.RateLimit(tokens_per_minute=45_000, accounting="arrival", default_max_tokens=4096)
    RateLimit(tokens_per_minute=45000, accounting='arrival', default_max_tokens=4096)
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
    accounting: Accounting | None = None
    default_max_tokens: int = 1024

    def __post_init__(self) -> None:
        for kind in KINDS:
            value = getattr(self, f"{kind}_per_minute")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise UsageError(f"RateLimit({kind}_per_minute={value!r}): pass a number > 0, or None for no limit")
        if self.accounting not in (None, ARRIVAL, USAGE):
            raise UsageError(
                f"RateLimit(accounting={self.accounting!r}): pass 'arrival' (prompt plus max_tokens charged as the "
                "request arrives, as OpenAI counts), 'usage' (what the call spent, as Anthropic counts), or None "
                "to pick by provider"
            )
        reserve = self.default_max_tokens
        if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 1:
            # (said without "name=value": the redactor would take a "..._tokens=" for a secret)
            raise UsageError(f"RateLimit: default_max_tokens is {reserve!r}; pass a whole number of tokens >= 1")
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


def amounts(cost: Mapping[str, float] | None) -> dict[str, float]:
    """A call's spend per bucket kind, from its cost (input and output tokens)."""
    inp = float(cost.get(INPUT_TOKENS, 0.0)) if cost else 0.0
    out = float(cost.get(OUTPUT_TOKENS, 0.0)) if cost else 0.0
    return {REQUESTS: 1.0, TOKENS: inp + out, INPUT_TOKENS: inp, OUTPUT_TOKENS: out}


class ProviderResource:
    """One provider resource's buckets, concurrency cap, pause and adaptive state."""

    DECREASE = 0.7  # multiplicative decrease on a breach while no limit is known
    # A 429 with no ``remaining`` header to read is a breach when it ends a row (see Sends), or
    # is one of a burst: at least BURST of them, and at least BREACH_SHARE of the calls sent
    # over the last round trip. A provider past its limit turns away nearly everything that
    # arrives (a denied request spends its request token too); random 429s, even one in four,
    # reach half of 12 calls sent about once in twenty tries, half of 50 once in 8,000. While
    # paced, the first 429 after HISTORY calls sent without one is the pace meeting the limit.
    BURST = 3
    BREACH_SHARE = 0.5
    HISTORY = 24
    NEAR = 0.9  # adaptive: within this share of the last breach's concurrency, any 429 is one
    SERVED_KEPT = 4096  # answer times kept to measure the rate first served (a bound on memory)
    ECHO = 0.1  # seconds after a breach within which a 429 of unknown send time is taken for its echo
    RESIZE = 0.02  # a learnt pace resizes its bucket when it moved by more than this share

    def __init__(self, name: str, limit: RateLimit, now: float) -> None:
        self.name = name
        self.limit = limit
        self.accounting: Accounting = limit.accounting or USAGE
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
        self.breaches = 0
        self.latency = 1.0  # smoothed seconds per call: one round trip, for the adaptive steps
        self.answers: deque[tuple[float, bool]] = deque(maxlen=self.HISTORY)  # (when, turned away)
        self.ceiling = math.inf  # adaptive: the concurrency at which the limit was last breached
        # No headers: a request rate learnt at each breach paces admissions (see LearntPace),
        # measured from the answers (at the first) and the calls its limiter accepted (later).
        self.pace: LearntPace | None = None
        self.born = now
        self.served: deque[float] = deque(maxlen=self.SERVED_KEPT)
        self.sends = Sends()  # when calls were sent, and which were refused

    def accounts_like(self, accounting: Accounting) -> None:
        """The provider's own way of counting, unless the ``RateLimit`` named one."""
        if self.limit.accounting is None:
            self.accounting = accounting

    def charges(self, cost: Mapping[str, float] | None) -> dict[str, float]:
        """What the provider's limiter charges a call of ``cost`` as it arrives."""
        spend = amounts(cost)
        if self.accounting == ARRIVAL and cost is not None:
            reserved = float(cost.get(MAX_TOKENS) or self.limit.default_max_tokens)
            spend[OUTPUT_TOKENS] = reserved
            spend[TOKENS] = spend[INPUT_TOKENS] + reserved
        return spend

    # -- admission ---------------------------------------------------------------------------

    def wait(self, cost: Mapping[str, float] | None, now: float) -> float:
        """Seconds until a call of ``cost`` fits: 0 now, ``inf`` until a call in flight ends."""
        if now < self.paused_until:
            return self.paused_until - now
        if self.in_flight >= self.cap:
            return math.inf
        if not self.buckets:
            return 0.0
        if self.pace is not None:
            self._follow_pace(now)
        spend = self.charges(cost)
        return max(bucket.wait(spend[kind], now) for kind, bucket in self.buckets.items())

    def take(self, cost: Mapping[str, float] | None, now: float | None = None) -> None:
        """A call of ``cost`` is sent at ``now`` (None: not recorded among the calls sent, by
        which a limit without headers is judged)."""
        self.in_flight += 1
        if now is not None:
            self.sends.add(now)
        if self.buckets:
            spend = self.charges(cost)
            for kind, bucket in self.buckets.items():
                bucket.level -= spend[kind]

    def release(self, cost: Mapping[str, float] | None, usage: Mapping[str, float] | None) -> None:
        """A call ended; ``usage`` (what it really spent) settles what it was charged on arrival,
        the way the provider does: a rejected call gets its tokens back; with "usage"
        accounting the charge becomes what was spent; with "arrival" it stays. A call that
        failed otherwise (``usage`` None) keeps its charge: the provider may have counted it."""
        self.in_flight -= 1
        if usage is None or not self.buckets:
            return
        charged = self.charges(cost)
        if usage.get(REJECTED):
            spent = dict.fromkeys(charged, 0.0)
        elif self.accounting == USAGE:
            spent = amounts(usage)
        else:
            return
        for kind, bucket in self.buckets.items():
            if kind != REQUESTS:  # a request turned away still counts against requests per minute
                bucket.level = min(bucket.capacity, bucket.level + charged[kind] - spent[kind])

    # -- what the provider said ----------------------------------------------------------------

    def succeeded(self, seconds: float, limits: Mapping[str, float], now: float) -> None:
        self.latency += 0.2 * (seconds - self.latency)
        self.answers.append((now, False))
        self.served.append(now)
        self.learn(limits, now)
        if self.adaptive and not self.buckets and self.in_flight >= self.cap - 1:
            # Grow only while the cap binds (this call still counts as in flight): a resource
            # limited by something else must not build up a cap it never tested.
            step = 1.0 if self.slow_start else 1.0 / self.cap
            self.cap = min(float(self.limit.max_concurrency), self.cap + step)

    def faulted(self, now: float) -> None:
        """A call failed in a way that says nothing about the limit (a 5xx, a timeout, a
        garbled answer): it counts among the answers a burst of 429s is judged against, and
        among those the provider served (its limiter let the request through)."""
        self.answers.append((now, False))
        self.served.append(now)

    def throttled(
        self,
        retry_after: float | None,
        limits: Mapping[str, float],
        now: float,
        remaining: Mapping[str, float] | None = None,
        cost: Mapping[str, float] | None = None,
        sent: float | None = None,
    ) -> float:
        """A 429: if it is a breach of the limit, pause the whole resource and return how long;
        if it is an isolated one, return 0 (its call backs off alone). ``sent``: when the call
        was admitted (as :meth:`take` was told), which tells the calls refused in a row, and a
        429 to a call sent before the last breach was known: its echo, which only lengthens
        the pause if it asks a longer wait (the breach spent more than its first 429 said)."""
        self.throttles += 1
        self.answers.append((now, True))
        self.sends.refuse(now if sent is None else sent)  # (refused as it arrived: at once)
        self.learn(limits, now)
        echo = self._echo(now, sent)
        quiet = not echo and sent is not None and self.sends.quiet(sent, self.HISTORY)
        breach = self.breach(now, remaining, cost, echo=echo, quiet=quiet)
        if breach:
            self.sends.breached(now)
        elif sent is not None and not echo:
            self.sends.isolated(sent)
        if not breach:
            if echo and not remaining and retry_after is not None:
                self._hold(now + retry_after)
            return 0.0
        self.breaches += 1
        if not remaining and not self.learned and self.limit.learn and not echo:
            self._learn_pace(now)
        pause = retry_after if retry_after is not None else 1.0
        self._hold(now + pause)
        if self.adaptive and not self.buckets and now - self.last_decrease > self.latency:
            self.slow_start = False
            self.ceiling = self.cap
            self.cap = max(1.0, min(self.cap, self.in_flight) * self.DECREASE)
            self.last_decrease = now
        return pause

    def _hold(self, until: float) -> None:
        """Pause until ``until`` (if later than now planned), and resume by refilling the
        buckets from empty: gradual, no herd."""
        if until > self.paused_until:
            self.paused_until = until
            for bucket in self.buckets.values():
                bucket.hold(until)

    def breach(
        self,
        now: float,
        remaining: Mapping[str, float] | None,
        cost: Mapping[str, float] | None,
        *,
        echo: bool = False,
        quiet: bool = False,
    ) -> bool:
        """Whether the 429 just recorded says the limit is spent.

        The provider's ``remaining`` headers decide where it sent them: a bucket without room
        for this call is a breach, room everywhere is not. Without them, the calls sent lately
        decide, by send time (see the class's constants and :class:`~fanfold._pacing.Sends`).
        """
        if remaining:
            need = self.charges(cost)
            return any(left < max(1.0, need.get(kind, 0.0)) for kind, left in remaining.items())
        if not echo and self.sends.limit_met():
            return True  # refused in a row, longer than chance gives
        if self.pace is not None and quiet:
            # Pacing at a rate learnt from breaches (which probes beyond it), and the first 429
            # after quiet: a provider past its limit refuses everything that arrives (and
            # charges for it), so waiting for a row costs a row. Where 429s come often, a row
            # or a burst decides.
            return True
        if self.adaptive and not self.buckets and self.cap >= self.NEAR * self.ceiling:
            # Probing near where the limit was last met: a provider past its limit turns away
            # everything that arrives, so waiting for a burst there costs a burst.
            return True
        since = now - max(0.5, self.latency)
        answered = sum(1 for _ in takewhile(lambda answer: answer[0] >= since, reversed(self.answers)))
        sent, refused = self.sends.since(since)
        # Judged by send time: answers alone overstate 429s, which come back at once while the
        # answers to calls sent with them take a round trip. (And against at least HISTORY / 2
        # calls: a few 429s among a handful, as at a slow pace, are as likely to be random ones
        # that a 1 s Retry-After bunched up.)
        return refused >= self.BURST and refused >= self.BREACH_SHARE * max(sent, answered, self.HISTORY // 2)

    def _echo(self, now: float, sent: float | None) -> bool:
        """Whether a 429 answers a call sent before the last breach was known (nothing is sent
        during a pause); without ``sent``, one that comes within a moment of it."""
        if now < self.paused_until:
            return True
        pace = self.pace
        if pace is None:
            return False
        return sent <= pace.breached if sent is not None else now - pace.breached < self.ECHO

    def served_per_second(self, now: float) -> float | None:
        """Answers that passed the provider's limiter (all but 429s) per second over the last
        ``LearntPace.SERVED_OVER`` seconds, since the resource began or its last pause ended (a
        pause serves nothing); None if that is less than a second: too short to measure. (At
        the first breach: later ones measure the calls accepted since the last.)"""
        since = max(now - LearntPace.SERVED_OVER, self.born, self.paused_until)
        if now - since < 1.0:
            return None
        count = sum(1 for _ in takewhile(lambda when: when >= since, reversed(self.served)))
        return count / (now - since)

    def _learn_pace(self, now: float) -> None:
        """A breach with no headers to learn from: learn the rate the limit let through, and
        pace at it."""
        pace = self.pace
        if self.buckets and pace is None:
            return  # the user's limits govern (configured, or learnt from headers earlier)
        if pace is None:
            # The first breach, as the adaptive window doubled: the answers so far (which lag
            # the sends by a round trip) say what the limit let through.
            served = self.served_per_second(now) or sum(1 for _ in self.served) / max(0.5, now - self.born)
            if served <= 0:
                return
            pace = self.pace = LearntPace(served, now)
            self.buckets[REQUESTS] = Bucket(pace.per_second(now) * 60.0, self.limit.burst, now)
            self.cap = float(self.limit.max_concurrency)  # the pace governs now
        else:
            # Met again: the limit let through the calls it accepted since the last breach
            # (which left its bucket empty), pauses included: they refilled it.
            since = max(now - LearntPace.SERVED_OVER, pace.breached)
            pace.breach(self.sends.accepted_per_second(since, now), now)
        self._follow_pace(now)

    def _follow_pace(self, now: float) -> None:
        assert self.pace is not None
        bucket = self.buckets[REQUESTS]
        per_minute = self.pace.per_second(now) * 60.0
        if abs(per_minute - bucket.per_minute) > self.RESIZE * bucket.per_minute:
            bucket.resize(per_minute, self.limit.burst, now)

    def learn(self, limits: Mapping[str, float], now: float) -> None:
        """Take per-minute limits the provider reported; a configured lower limit still wins."""
        if not limits or not self.limit.learn:
            return
        if self.pace is not None:  # the provider says its limits: no need to guess them
            self.pace = None
            if self.limit.per_minute(REQUESTS) is None:
                self.buckets.pop(REQUESTS, None)
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
