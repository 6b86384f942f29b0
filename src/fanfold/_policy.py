"""Failure policies: when a fan-out keeps going, stops with what it has, or gives up.

A policy looks at the tally after every finished input and returns a :class:`Verdict` or ``None``
(keep going). ``final=True`` is the last look, once every input has finished.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from fanfold._errors import UsageError


@dataclass(slots=True)
class Tally:
    """Running counts for one fan-out. ``failed`` counts failures and timeouts."""

    succeeded: int = 0
    failed: int = 0
    finished: int = 0
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Stop the fan-out: ``ok`` says whether it succeeded; ``reason`` is shown in outcomes and errors."""

    ok: bool
    reason: str


class FailurePolicy(abc.ABC):
    """Decides a fan-out's fate from its tally. Subclass to write your own."""

    @abc.abstractmethod
    def check(self, tally: Tally, *, final: bool) -> Verdict | None: ...


@dataclass(frozen=True, slots=True)
class Collect(FailurePolicy):
    """Run every input whatever fails; failures become outcomes. The default for ``map``."""

    def check(self, tally: Tally, *, final: bool) -> Verdict | None:
        return None


@dataclass(frozen=True, slots=True)
class FailFast(FailurePolicy):
    """Give up at the first failure and cancel the siblings still running."""

    def check(self, tally: Tally, *, final: bool) -> Verdict | None:
        if tally.failed:
            return Verdict(False, "fail-fast: an input failed")
        return None


@dataclass(frozen=True, slots=True)
class MaxFailures(FailurePolicy):
    """Tolerate up to ``k`` failures; give up at failure ``k + 1``."""

    k: int

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 0:
            raise UsageError(f"MaxFailures(k={self.k!r}): k is how many failures to tolerate; pass a whole number >= 0")

    def check(self, tally: Tally, *, final: bool) -> Verdict | None:
        if tally.failed > self.k:
            return Verdict(False, f"{tally.failed} failures, more than the {self.k} tolerated")
        return None


@dataclass(frozen=True, slots=True)
class MaxFailureRate(FailurePolicy):
    """Give up once more than ``rate`` of the finished inputs failed, judged after ``min_finished``."""

    rate: float
    min_finished: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.rate < 1:
            raise UsageError(f"MaxFailureRate(rate={self.rate!r}): pass a fraction from 0 up to (not including) 1")
        if self.min_finished < 1:
            raise UsageError(f"MaxFailureRate(min_finished={self.min_finished!r}): pass a whole number >= 1")

    def check(self, tally: Tally, *, final: bool) -> Verdict | None:
        judged = tally.finished >= self.min_finished or final
        if judged and tally.finished and tally.failed / tally.finished > self.rate:
            return Verdict(False, f"{tally.failed} of {tally.finished} failed, above the rate {self.rate:g}")
        return None


@dataclass(frozen=True, slots=True)
class Quorum(FailurePolicy):
    """Succeed as soon as ``k`` inputs succeeded and cancel the rest; fail once ``k`` is out of reach."""

    k: int

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise UsageError(f"Quorum(k={self.k!r}): k is how many successes are enough; pass a whole number >= 1")

    def check(self, tally: Tally, *, final: bool) -> Verdict | None:
        if tally.succeeded >= self.k:
            return Verdict(True, f"quorum of {self.k} reached")
        reachable = None if tally.total is None else tally.succeeded + tally.total - tally.finished
        out_of_reach = final or (reachable is not None and reachable < self.k)
        if out_of_reach:
            return Verdict(
                False, f"quorum of {self.k} out of reach: {tally.succeeded} succeeded, {tally.failed} failed"
            )
        return None
