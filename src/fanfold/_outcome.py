"""Outcomes: what became of each input, and the summary that adds them up."""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from fanfold._redact import redact, scrub
from fanfold._usage import Usage

T = TypeVar("T")


class Status(enum.StrEnum):
    """The five ways a task can end. Every input of every fan-out ends in exactly one."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A failure, as plain data: the exception's type name and message."""

    type: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """The exception as plain data, its message redacted; the exception's own message (and
        its causes') is redacted in place too, so a traceback printed later shows no secret."""
        scrub(exc)
        return cls(type(exc).__name__, redact(str(exc)))

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True, slots=True)
class Call:
    """One leaf call a task made: one attempt of one model request, on the run's clock.

    ``start`` is when the attempt began (and waited for admission), ``admitted`` when it was
    let through, ``end`` when it ended, each in seconds since the run started. ``status`` is
    ``"ok"``, the provider's HTTP status (``"429"``) or the error's type (``"CancelledError"``
    for the loser of a hedge); ``pause`` is how long a 429 paused its resource. ``hedge`` is
    True for a hedge's backup call, ``won`` for a backup that answered first.

    >>> ff.Outcome(0, ff.Status.SUCCEEDED, "hi", calls=(Call("openai:gpt-5-mini", "gpt-5-mini", 1, 0.0, 0.1, 0.9,
    ...     "ok", tokens=42),)).calls[0].admitted
    0.1
    """

    resource: str
    model: str
    attempt: int
    start: float
    admitted: float
    end: float
    status: str
    tokens: int = 0
    cost: float = 0.0
    pause: float = 0.0
    hedge: bool = False
    won: bool = False

    def as_row(self) -> list[Any]:
        """The call as a compact JSON row (the journal keeps calls so, and the timeline reads them)."""
        return [self.resource, self.model, self.attempt, round(self.start, 4), round(self.admitted, 4),
                round(self.end, 4), self.status, self.tokens, round(self.cost, 6), round(self.pause, 3),
                int(self.hedge), int(self.won)]  # fmt: skip

    @classmethod
    def from_row(cls, row: list[Any]) -> Call:
        """A call from :meth:`as_row`'s row."""
        resource, model, attempt, start, admitted, end, status, tokens, cost, pause, hedge, won = row
        return cls(resource, model, attempt, start, admitted, end, status, tokens, cost, pause, bool(hedge), bool(won))


def settle_hedges(calls: list[Call]) -> tuple[Call, ...]:
    """The calls, each hedge's backup marked ``won`` when it answered and the call it hedged
    (the same attempt) had not answered before it."""
    if not any(call.hedge for call in calls):
        return tuple(calls)
    settled = []
    for call in calls:
        if call.hedge and call.status == "ok":
            beaten = any(
                not other.hedge and other.attempt == call.attempt and other.status == "ok" and other.end <= call.end
                for other in calls
            )
            call = replace(call, won=not beaten)
        settled.append(call)
    return tuple(settled)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What became of one input of a fan-out.

    ``start`` and ``end`` are seconds since the run started (``None`` when the task never
    started). ``exception`` is the live exception object for in-process use; ``error`` is the
    same as plain data. ``usage`` is what the task's model calls spent (``None``: it made none).
    ``resumed`` is True for an outcome restored from the journal of an earlier attempt at the
    run (its times are that attempt's). ``attempts`` counts the task's own attempts; ``retries``
    the retries of every leaf call under it (for an LLM agent: of its model requests).
    ``calls`` are the task's own leaf calls that were timed (its model requests, one
    :class:`Call` per attempt, hedges' backups included), or ``None`` for a task that made none
    (a function agent, a pattern: its children's outcomes have theirs).
    """

    index: int
    status: Status
    value: T | None = None
    key: Hashable | None = None
    path: str = ""
    attempts: int = 0
    start: float | None = None
    end: float | None = None
    error: ErrorInfo | None = None
    reason: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    usage: Usage | None = None
    resumed: bool = False
    retries: int = 0
    calls: tuple[Call, ...] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCEEDED

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts for the root fan-out's outcomes, plus whole-tree work figures.

    ``counts`` always adds up to ``total``. ``busy`` is the sum of the time leaf calls held a
    slot; ``parallelism`` is ``busy / wall``, the average number of leaf calls running at once.
    ``usage`` adds up every model request that left the process (tokens, requests, cost, 429s;
    see :class:`~fanfold.Usage` for what is estimated); ``resumed``
    counts the outcomes restored from the journal rather than run (they are in ``counts`` too).
    """

    total: int
    counts: dict[Status, int]
    wall: float
    busy: float
    retries: int
    tasks: int
    leaf_calls: int
    usage: Usage = field(default_factory=Usage)
    resumed: int = 0
    hedges: int = 0  # backup calls sent for slow leaf calls (ff.Hedge)
    hedges_won: int = 0  # of which answered first

    @property
    def parallelism(self) -> float:
        return self.busy / self.wall if self.wall > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (for a summary file, or a run store)."""
        return {
            "total": self.total,
            "counts": {status.value: n for status, n in self.counts.items()},
            "wall": self.wall,
            "busy": self.busy,
            "parallelism": self.parallelism,
            "retries": self.retries,
            "tasks": self.tasks,
            "leaf_calls": self.leaf_calls,
            "usage": self.usage.as_dict(),
            "resumed": self.resumed,
            "hedges": self.hedges,
            "hedges_won": self.hedges_won,
        }

    @property
    def succeeded(self) -> int:
        return self.counts[Status.SUCCEEDED]

    @property
    def failed(self) -> int:
        return self.counts[Status.FAILED]

    def __str__(self) -> str:
        parts = ", ".join(f"{n} {s.value}" for s, n in self.counts.items() if n)
        return (
            f"{self.total} inputs: {parts or 'none'}; wall {self.wall:.2f}s, busy {self.busy:.2f}s, "
            f"parallelism {self.parallelism:.1f}x, {self.retries} retries"
            + (f"; {self.usage}" if self.usage.requests else "")
            + (f"; {self.resumed} restored from the journal" if self.resumed else "")
        )


def empty_counts() -> dict[Status, int]:
    return dict.fromkeys(Status, 0)
