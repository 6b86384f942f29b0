"""The meters a provider resource paces its calls by: a continuously refilled bucket (a limit
that is known, given or read from headers), and, for a provider that sends no headers, a
request rate learnt from its 429s and the record of calls sent and refused it is learnt from.
:mod:`fanfold._governor` keeps a resource's books with them."""

from __future__ import annotations

import math
from collections import deque
from itertools import islice, takewhile


class Bucket:
    """A continuously refilled bucket. A call needs ``min(amount, capacity)`` in it to start and
    then takes its whole amount, so one call larger than the bucket still runs, and pays after."""

    __slots__ = ("capacity", "level", "per_minute", "rate", "stamp")

    # A new bucket starts nearly empty and fills at its rate: a gradual start, which some
    # providers ask for, and which leaves the provider's own bucket full as a cushion for calls
    # that reach it bunched up (the client's loop is busiest as a fan-out starts).
    START = 0.1
    # Rounding (a resized bucket's level) must not leave a call a wait too short for any clock
    # to pass: a level this close to what the call needs is enough.
    EPSILON = 1e-9

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
        if self.level >= need - self.EPSILON:
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


class LearntPace:
    """A request rate learnt from a provider that sends no rate-limit headers: its 429s only.

    At each breach of the limit, the rate the provider let through is the best estimate of its
    limit (the ``peak``): the calls it accepted since the last breach (at most the last
    ``SERVED_OVER`` seconds), no more than the pace it was sending at and no less than
    ``FLOOR`` of it (one breach never cuts deeper). The pace drops to ``DECREASE`` of the peak,
    climbs back along a cubic curve that flattens near the peak (few probes where the limit was
    met), then probes beyond it ever faster, so that a limit that was raised is found within
    seconds (as TCP CUBIC does for a congestion window).

    >>> pace = LearntPace(peak_per_second=10.0, now=0.0)
    >>> round(pace.per_second(0.0), 1), round(pace.per_second(LearntPace.PLATEAU), 1)
    (7.0, 10.0)
    """

    DECREASE = 0.7
    FLOOR = 0.5
    PLATEAU = 3.0  # seconds from a breach back to its peak rate
    SERVED_OVER = 10.0  # seconds, at most, the rate let through is measured over

    __slots__ = ("breached", "peak")

    def __init__(self, peak_per_second: float, now: float) -> None:
        self.peak = peak_per_second
        self.breached = now

    def per_second(self, now: float) -> float:
        growth = (1.0 - self.DECREASE) / self.PLATEAU**3
        since = max(0.0, now - self.breached)  # (a clock read a moment earlier elsewhere)
        return self.peak * (1.0 + growth * (since - self.PLATEAU) ** 3)

    def breach(self, served_per_second: float, now: float) -> None:
        """The limit was met at ``now``, having let ``served_per_second`` through: the new peak
        (see the class)."""
        rate = self.per_second(now)
        self.peak = max(1.0 / 60.0, self.FLOOR * rate, min(rate, served_per_second))
        self.breached = now


class Sends:
    """The calls sent to a provider and those it refused (a 429), by when they were sent: what
    a limit is learnt from when the provider sends no rate-limit headers.

    A provider past its limit refuses every request that arrives (and counts it against the
    limit), so a limit met shows as calls refused *in a row*, with no other call sent among
    them; 429s that come at random are scattered among calls that were served, whatever the
    rate. How long a row says "limit" depends on how often 429s come anyway: the shortest row
    that chance would give less than once in ``1 / CHANCE``, at the share of scattered 429s
    among the calls sent before it (3 calls when 429s are rare, 6 when one call in four is
    refused at random).

    >>> sends = Sends()
    >>> for when in (0.0, 0.1, 0.2, 0.3, 0.4):
    ...     sends.add(when)
    >>> for when in (0.2, 0.3, 0.4):
    ...     sends.refuse(when)
    >>> sends.in_a_row(), sends.limit_met()
    ((3, 0.2), True)
    """

    KEPT = 4096  # calls remembered (a bound on memory)
    CHANCE = 0.002
    LONGEST = 8  # the longest row asked for (where chance gives rows that long, a burst decides)
    PRIOR = 25  # the share of scattered 429s starts as one in PRIOR calls
    SHARE_OVER = 100  # calls the share of scattered 429s is measured over

    __slots__ = ("breached_at", "refused", "scattered", "sent")

    def __init__(self) -> None:
        self.sent: deque[float] = deque(maxlen=self.KEPT)  # in the order they were sent
        self.refused: deque[float] = deque(maxlen=self.KEPT)  # in the order their 429s came
        self.scattered: deque[float] = deque(maxlen=self.KEPT)  # refused, and judged no breach
        self.breached_at = -math.inf  # calls sent before the last breach start no row

    def add(self, now: float) -> None:
        """A call is sent."""
        self.sent.append(now)

    def refuse(self, sent: float) -> None:
        """The call sent at ``sent`` was answered 429."""
        self.refused.append(sent)

    def isolated(self, sent: float) -> None:
        """The 429 to the call sent at ``sent`` was judged a random one, no breach."""
        self.scattered.append(sent)

    def breached(self, now: float) -> None:
        """A 429 was judged a breach of the limit at ``now``: the row it ends was no random
        429s, and the calls sent before it (that row, and the echoes of the breach) start no
        other row (the pause that follows must not make one row of two)."""
        _, first = self.in_a_row()
        scattered = self.scattered
        while scattered and scattered[-1] >= first:
            scattered.pop()
        self.breached_at = now

    def in_a_row(self) -> tuple[int, float]:
        """How many of the calls refused last were sent in a row, with no other call sent among
        them; and when the first of them was sent."""
        since = self.breached_at
        last = sorted((when for when in islice(reversed(self.refused), self.LONGEST) if when > since), reverse=True)
        if not last:
            return 0, math.inf
        newest = last[0]
        sends = reversed(self.sent)
        sent = next(sends, None)
        row, first = 0, newest
        count = 0  # calls sent from ``earliest`` to ``newest``
        for refused, earliest in enumerate(last, start=1):
            while sent is not None and sent >= earliest:
                count += sent <= newest
                sent = next(sends, None)
            within = refused + sum(1 for when in last[refused:] if when == earliest)  # (sent at once)
            if count != within:  # another call was sent among them (or sends are not recorded)
                break
            row, first = within, earliest
        return row, first

    def limit_met(self) -> bool:
        """Whether the calls refused last are a row longer than chance gives (see the class)."""
        row, first = self.in_a_row()
        return row >= 2 and row >= self._row_needed(first)

    def _row_needed(self, before: float) -> int:
        sent = list(islice((when for when in reversed(self.sent) if when < before), self.SHARE_OVER))
        oldest = sent[-1] if sent else before
        scattered = sum(1 for when in takewhile(lambda when: when >= oldest, reversed(self.scattered)) if when < before)
        share = (scattered + 1) / (len(sent) + self.PRIOR)
        return max(2, min(self.LONGEST, 1 + math.ceil(math.log(self.CHANCE) / math.log(share))))

    def quiet(self, sent: float, over: int) -> bool:
        """Whether none of the ``over`` calls sent before the one sent at ``sent`` was refused."""
        before = list(islice((when for when in reversed(self.sent) if when <= sent), over + 1))
        if len(before) <= over:
            return False  # too few calls to say (or sends are not recorded)
        refused = sum(1 for when in takewhile(lambda when: when >= before[-1], reversed(self.refused)) if when <= sent)
        return refused <= 1  # the call's own

    def since(self, since: float) -> tuple[int, int]:
        """Calls sent since ``since``, and how many of them were refused."""
        sent = sum(1 for _ in takewhile(lambda when: when >= since, reversed(self.sent)))
        refused = sum(1 for _ in takewhile(lambda when: when >= since, reversed(self.refused)))
        return sent, refused

    def accepted_per_second(self, since: float, now: float) -> float:
        """Calls sent since ``since`` that the provider did not refuse, per second."""
        sent, refused = self.since(since)
        return max(0, sent - refused) / max(now - since, 1e-9)
