"""The two meters a provider resource paces its calls by: a continuously refilled bucket (a
limit that is known, given or read from headers) and a request rate learnt from 429s alone (a
provider that sends no headers). :mod:`fanfold._governor` keeps a resource's books with them."""

from __future__ import annotations


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

    At each breach of the limit, the rate the provider served over the last few seconds is the
    best estimate of its limit (the ``peak``); the pace drops to ``DECREASE`` of it, climbs back
    along a cubic curve that flattens near the peak (few probes where the limit was met), then
    probes beyond it ever faster, so that a limit that was raised is found within seconds (as
    TCP CUBIC does for a congestion window).

    >>> pace = LearntPace(peak_per_second=10.0, now=0.0)
    >>> round(pace.per_second(0.0), 1), round(pace.per_second(LearntPace.PLATEAU), 1)
    (7.0, 10.0)
    """

    DECREASE = 0.7
    PLATEAU = 3.0  # seconds from a breach back to its peak rate
    SERVED_OVER = 4.0  # seconds of answers the served rate is measured over

    __slots__ = ("breached", "peak")

    def __init__(self, peak_per_second: float, now: float) -> None:
        self.peak = peak_per_second
        self.breached = now

    def per_second(self, now: float) -> float:
        growth = (1.0 - self.DECREASE) / self.PLATEAU**3
        since = max(0.0, now - self.breached)  # (a clock read a moment earlier elsewhere)
        return self.peak * (1.0 + growth * (since - self.PLATEAU) ** 3)

    def breach(self, served_per_second: float, now: float) -> None:
        """The limit was met at ``now``: the new peak is what was served, or the pace if lower."""
        self.peak = max(1.0 / 60.0, min(self.per_second(now), served_per_second))
        self.breached = now
