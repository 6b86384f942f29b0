"""What a simulated provider has served: counters, and per-second timelines.

Memory stays bounded by the length of the run, not the number of requests: every count is a
counter, and the timelines hold one number per second since the first arrival.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Slot = tuple[int, int]  # (generation, second since the first arrival): where a request counts


@dataclass(frozen=True, slots=True, kw_only=True)
class SimStats:
    """A snapshot of what the simulated provider has seen since it started (or was reset).

    ``by_status``: responses by HTTP status (a timed-out request sends none and is counted in
    ``faults["timeout"]``); ``rate_limited``: 429s because a bucket was empty, ``injected_429``:
    429s from :class:`Faults`; ``input_tokens`` and ``output_tokens``: of successful requests
    only; ``first_arrival`` and ``last_arrival``: Unix times; ``timeline_ok``,
    ``timeline_429`` and ``timeline_tokens``: per whole second since the first arrival, the
    requests that arrived in that second and succeeded, that got a 429, and the tokens the
    successful ones used.

    >>> stats = SimStats(requests=3, by_status={200: 2, 429: 1}, timeline_ok=(2,), timeline_429=(1,))
    >>> SimStats.from_dict(stats.to_dict()) == stats
    True
    >>> stats.succeeded, stats.status_429
    (2, 1)
    """

    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    rate_limited: int = 0
    injected_429: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    disconnects: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    peak_concurrency: int = 0
    in_flight: int = 0
    first_arrival: float | None = None
    last_arrival: float | None = None
    timeline_ok: tuple[int, ...] = ()
    timeline_429: tuple[int, ...] = ()
    timeline_tokens: tuple[int, ...] = ()
    requests_by_model: dict[str, int] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        """Requests answered with status 200 and a well-formed body."""
        return sum(self.timeline_ok)

    @property
    def status_429(self) -> int:
        return self.by_status.get(429, 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, as ``GET /_sim/stats`` serves it."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["by_status"] = {str(status): count for status, count in self.by_status.items()}
        for name in ("timeline_ok", "timeline_429", "timeline_tokens"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimStats:
        """Read what :meth:`to_dict` (or ``GET /_sim/stats``) gave."""
        values = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        values["by_status"] = {int(status): count for status, count in data.get("by_status", {}).items()}
        for name in ("timeline_ok", "timeline_429", "timeline_tokens"):
            values[name] = tuple(data.get(name, ()))
        return cls(**values)


class StatsRecorder:
    """Counts as requests arrive and finish; :meth:`snapshot` makes a :class:`SimStats`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # in_flight survives a reset: those requests are still running and will finish. What
        # they did is not counted: their arrival slot belongs to the previous generation.
        in_flight = getattr(self, "in_flight", 0)
        self.generation = getattr(self, "generation", -1) + 1
        self.requests = 0
        self.by_status: Counter[int] = Counter()
        self.rate_limited = 0
        self.injected_429 = 0
        self.faults: Counter[str] = Counter()
        self.disconnects = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.in_flight = in_flight
        self.peak_concurrency = in_flight
        self.first_mono: float | None = None
        self.first_wall: float | None = None
        self.last_wall: float | None = None
        self.timeline_ok: list[int] = []
        self.timeline_429: list[int] = []
        self.timeline_tokens: list[int] = []
        self.by_model: Counter[str] = Counter()

    def arrive(self, now: float) -> Slot:
        """Count an arrival at monotonic time ``now``; return its slot on the timelines."""
        self.requests += 1
        self.in_flight += 1
        if self.in_flight > self.peak_concurrency:
            self.peak_concurrency = self.in_flight
        wall = time.time()
        if self.first_mono is None:
            self.first_mono, self.first_wall = now, wall
        self.last_wall = wall
        second = int(now - self.first_mono)
        timeline = self.timeline_ok
        if second >= len(timeline):
            grow = second + 1 - len(timeline)
            for line in (timeline, self.timeline_429, self.timeline_tokens):
                line.extend([0] * grow)
        return (self.generation, second)

    def leave(self) -> None:
        self.in_flight -= 1

    def model(self, name: str) -> None:
        self.by_model[name] += 1

    def failed(self, slot: Slot, status: int | None, fault: str | None = None) -> None:
        """A response other than success or 429 (``status`` None: none was sent)."""
        if slot[0] != self.generation:
            return
        if status is not None:
            self.by_status[status] += 1
        if fault is not None:
            self.faults[fault] += 1

    def disconnected(self, slot: Slot) -> None:
        if slot[0] == self.generation:
            self.disconnects += 1

    def limited(self, slot: Slot, *, injected: bool) -> None:
        """A 429: from an empty bucket, or injected."""
        generation, second = slot
        if generation != self.generation:
            return
        self.by_status[429] += 1
        if injected:
            self.injected_429 += 1
            self.faults["429"] += 1
        else:
            self.rate_limited += 1
        self._bump(self.timeline_429, second, 1)

    def succeeded(self, slot: Slot, input_tokens: int, output_tokens: int) -> None:
        generation, second = slot
        if generation != self.generation:
            return
        self.by_status[200] += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self._bump(self.timeline_ok, second, 1)
        self._bump(self.timeline_tokens, second, input_tokens + output_tokens)

    def _bump(self, line: list[int], second: int, amount: int) -> None:
        line[second] += amount

    def snapshot(self) -> SimStats:
        return SimStats(
            requests=self.requests,
            by_status=dict(self.by_status),
            rate_limited=self.rate_limited,
            injected_429=self.injected_429,
            faults=dict(self.faults),
            disconnects=self.disconnects,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            peak_concurrency=self.peak_concurrency,
            in_flight=self.in_flight,
            first_arrival=self.first_wall,
            last_arrival=self.last_wall,
            timeline_ok=tuple(self.timeline_ok),
            timeline_429=tuple(self.timeline_429),
            timeline_tokens=tuple(self.timeline_tokens),
            requests_by_model=dict(self.by_model),
        )
