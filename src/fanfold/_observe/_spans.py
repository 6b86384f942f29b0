"""A run's tasks as spans on one clock, read from its journal: what the timeline draws and the
dashboard streams.

A journal entry's ``start`` and ``end`` count from the start of the attempt at the run that wrote
it. The journal notes in the current attempt of the run record how many entries that attempt has
journaled (``journaled``, kept in the same transaction as each batch), and entries come back in the
order they were first written; so the first ``journaled`` entries belong to the first attempt, the
next ones to the second, and so on. A run written before that note existed puts every entry in its
last attempt.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fanfold._outcome import Call, Outcome
from fanfold._records import Entry, RunRecord

STATUSES = ("succeeded", "failed", "timed_out", "cancelled", "skipped")


@dataclass(frozen=True, slots=True)
class Span:
    """One journaled task. ``start`` and ``end`` are seconds since the run's first attempt began
    (``None``: the task never started); ``run_attempt`` is 1 for the first attempt at the run, 2
    for the first resume; ``attempts`` is how many times the task itself was tried. ``calls`` are
    its model requests (on the same clock), empty for a task that made none."""

    path: str
    key: str
    status: str
    start: float | None
    end: float | None
    attempts: int
    run_attempt: int
    tokens: int
    cost: float
    throttled: int
    error: str | None
    calls: tuple[Call, ...] = ()

    @property
    def top(self) -> bool:
        """True for an input of the run's top fan-out (``map[3]``), False for a nested task."""
        return "/" not in self.path

    def as_row(self) -> list[Any]:
        """The span as a compact JSON row, in :data:`ROW_FIELDS` order (``calls``: their rows, or None)."""
        return [self.path, self.key, self.status, _round(self.start), _round(self.end), self.attempts,
                self.run_attempt, self.tokens, round(self.cost, 6), self.throttled, self.error,
                [c.as_row() for c in self.calls] or None]  # fmt: skip


ROW_FIELDS = ("path", "key", "status", "start", "end", "attempts", "run_attempt", "tokens", "cost", "throttled",
              "error", "calls")  # fmt: skip


def calls_of(text: str | None, offset: float) -> tuple[Call, ...]:
    """A journal entry's calls (JSON rows), moved onto the first attempt's clock by ``offset``."""
    if not text:
        return ()
    calls = (Call.from_row(row) for row in json.loads(text))
    if not offset:
        return tuple(calls)
    return tuple(replace(c, start=c.start + offset, admitted=c.admitted + offset, end=c.end + offset) for c in calls)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def origin(record: RunRecord) -> float:
    """The wall-clock time (seconds since the epoch) every span's times count from."""
    if record.attempts and record.attempts[0].get("started"):
        return float(record.attempts[0]["started"])
    return record.created_at


def attempt_offsets(record: RunRecord) -> list[float]:
    """Each attempt's start, in seconds since the first attempt's."""
    zero = origin(record)
    return [float(a.get("started") or zero) - zero for a in record.attempts] or [0.0]


def span_of(entry: Entry, run_attempt: int, offset: float) -> Span:
    usage: dict[str, Any] = json.loads(entry.usage) if entry.usage else {}
    error = None if entry.error_type is None else f"{entry.error_type}: {entry.error_message or ''}"
    if error is None and entry.reason:
        error = entry.reason
    return Span(
        entry.path,
        entry.key,
        entry.status,
        None if entry.start is None else entry.start + offset,
        None if entry.end is None else entry.end + offset,
        entry.attempts,
        run_attempt,
        int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0)),
        float(usage.get("cost", 0.0)),
        int(usage.get("throttled", 0)),
        error,
        calls_of(entry.calls, offset),
    )


def span_of_outcome(outcome: Outcome[Any]) -> Span:
    """A finished run's outcome as a span (its times are on the run's clock already)."""
    usage = outcome.usage
    error = outcome.reason if outcome.error is None else str(outcome.error)
    return Span(
        outcome.path,
        outcome.path if outcome.key is None else repr(outcome.key),
        outcome.status.value,
        outcome.start,
        outcome.end,
        outcome.attempts,
        1,
        0 if usage is None else usage.tokens,
        0.0 if usage is None else usage.cost,
        0 if usage is None else usage.throttled,
        error,
        outcome.calls or (),
    )


class SpanReader:
    """Turns a run's entries, read in journal order (all at once, or a few at a time as a live
    run writes them), into spans."""

    def __init__(self, record: RunRecord) -> None:
        self.update(record)
        self.seen = 0  # entries read so far

    def update(self, record: RunRecord) -> None:
        """Take the record as it is now (a live run's attempts grow)."""
        self._offsets = attempt_offsets(record)
        counts = [a.get("journaled") for a in record.attempts]
        # Where each attempt's entries end, in journal order; an attempt without a count takes the rest.
        self._bounds: list[int] = []
        total = 0
        for count in counts[:-1]:
            if not isinstance(count, int):
                break
            total += count
            self._bounds.append(total)

    def read(self, entries: Iterable[Entry]) -> list[Span]:
        spans = []
        for entry in entries:
            attempt = next((i for i, bound in enumerate(self._bounds) if self.seen < bound), len(self._bounds))
            attempt = min(attempt, len(self._offsets) - 1)
            spans.append(span_of(entry, attempt + 1, self._offsets[attempt]))
            self.seen += 1
        return spans


def assign_lanes(spans: Sequence[Span]) -> list[int]:
    """A lane for each span (``-1`` for one that never started), greedily: in order of start,
    each span takes the lowest-numbered lane free at its start, so the lanes needed are the most
    spans that overlap at one moment (the run's concurrency, as it was)."""
    lanes = [-1] * len(spans)
    order = sorted((i for i, s in enumerate(spans) if s.start is not None), key=lambda i: (spans[i].start, i))
    busy: list[tuple[float, int]] = []  # (end, lane) of the spans still running
    free: list[int] = []  # lanes whose span ended, lowest first
    count = 0
    for i in order:
        start = spans[i].start
        assert start is not None
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane, count = count, count + 1
        lanes[i] = lane
        end = spans[i].end
        heapq.heappush(busy, (start if end is None else max(end, start), lane))
    return lanes


@dataclass(frozen=True, slots=True)
class Bins:
    """Spans counted per lane band and time bin, per status: ``counts[band][bin][status]``.
    A span counts in every bin it overlaps."""

    bands: int
    lanes_per_band: int
    bins: int
    width: float  # seconds per bin
    counts: list[list[dict[str, int]]]


def bin_spans(spans: Sequence[Span], lanes: Sequence[int], end: float, *, bands: int, bins: int) -> Bins:
    lane_count = max(lanes, default=-1) + 1
    per_band = max(1, -(-lane_count // bands))  # ceil
    bands = max(1, -(-lane_count // per_band))
    width = max(end, 1e-9) / bins
    counts: list[list[dict[str, int]]] = [[{} for _ in range(bins)] for _ in range(bands)]
    for span, lane in zip(spans, lanes, strict=True):
        if lane < 0 or span.start is None:
            continue
        row = counts[lane // per_band]
        last = span.start if span.end is None else span.end
        for b in range(min(bins - 1, int(span.start / width)), min(bins - 1, int(last / width)) + 1):
            cell = row[b]
            cell[span.status] = cell.get(span.status, 0) + 1
    return Bins(bands, per_band, bins, width, counts)
