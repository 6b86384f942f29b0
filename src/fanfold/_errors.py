"""The exception tree. Every error fanfold raises derives from :class:`FanfoldError`::

    FanfoldError
    +-- UsageError            misuse: a bad argument or configuration; says the value and the fix
    |   +-- RunOwned          the run is being run by another live process (``.lease`` names it)
    +-- RunError              a run or a task did not succeed
    |   +-- FanoutFailed      a fan-out's failure policy gave up (``.outcomes`` holds what finished)
    |   |   +-- VoteFailed    no sample of a vote succeeded
    |   |   +-- RaceFailed    every racer failed
    |   +-- TaskTimeout       an attempt or a task ran past its timeout
    |   +-- BudgetExhausted   the run's budget cannot cover another model call (the task is skipped)
    |   +-- PlanRejected      a team's leader gave no plan that passed the checks, within its re-plans
    |   +-- JournalFailed     the run's store could not keep an outcome, so the run stopped
    |   +-- RunFailed         raised by ``ff.run``: the root failed (``.result`` holds partial results)
    +-- Signal                raised on purpose by user code
        +-- Retry             "retry this", optionally after a delay
        +-- Skip              "skip this", with a reason

``asyncio.CancelledError`` is never wrapped or swallowed. A message never shows a secret the
run knows (``fanfold._redact``): ``str()`` of any of these is redacted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fanfold._redact import redact

if TYPE_CHECKING:
    from fanfold._lease import Lease
    from fanfold._outcome import Outcome
    from fanfold._run import Result


class FanfoldError(Exception):
    """The root of every exception fanfold raises."""

    def __str__(self) -> str:
        # A message may quote a provider's error body, which may echo the key it was sent.
        return redact(super().__str__())


class UsageError(FanfoldError, ValueError):
    """Misuse: a bad argument, configuration or input. The message names the value and the fix."""


class RunOwned(UsageError):
    """The run is being run by another live process: one process runs a run at a time.
    ``lease`` names the owner (host, pid, since when); it is ``None`` when this process lost
    the run it was running."""

    def __init__(self, message: str, lease: Lease | None) -> None:
        super().__init__(message)
        self.lease = lease


class RunError(FanfoldError):
    """A run, a task or a fan-out did not succeed."""


class TaskTimeout(RunError, TimeoutError):
    """An attempt or a task ran past its timeout."""


class FanoutFailed(RunError):
    """A fan-out's failure policy gave up. ``outcomes`` holds one outcome per input seen so far."""

    def __init__(self, message: str, outcomes: list[Outcome[Any]] | None = None) -> None:
        super().__init__(message)
        self.outcomes: list[Outcome[Any]] = outcomes or []


class VoteFailed(FanoutFailed):
    """No sample of a vote succeeded, so there is nothing to decide between."""


class RaceFailed(FanoutFailed):
    """Every racer failed."""


class BudgetExhausted(RunError):
    """The run's budget cannot cover another model call. A task that meets it ends ``skipped``
    with this as its reason; what finished before is kept."""


class JournalFailed(RunError):
    """The run's store could not make an outcome durable. The run stops rather than report what
    it could not keep; what was journaled stays, and the run can be resumed."""


class PlanRejected(RunError):
    """A team's leader gave no plan that passed the checks (known members, no cycle, within the
    caps) in its first try and ``TeamCaps.max_replans`` more. ``errors`` says why each failed."""

    def __init__(self, message: str, errors: list[str]) -> None:
        super().__init__(message)
        self.errors = errors


class RunFailed(RunError):
    """Raised by ``ff.run`` when the root task failed. ``result`` keeps everything that finished."""

    def __init__(self, message: str, result: Result[Any]) -> None:
        super().__init__(message)
        self.result = result


class Signal(FanfoldError):
    """Raised on purpose by user code to steer the runtime."""


class Retry(Signal):
    """Ask for another attempt, optionally after ``after`` seconds (a Retry-After hint).

    Honoured by every retry policy, up to its attempt and time bounds::

        if response.status == 503:
            raise ff.Retry("busy", after=float(response.headers["retry-after"]))
    """

    def __init__(self, message: str = "retry requested", *, after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = after


class Skip(Signal):
    """Skip this input: its outcome becomes ``skipped`` with ``reason``; not a failure."""

    def __init__(self, reason: str = "skipped by the agent") -> None:
        super().__init__(reason)
        self.reason = reason
