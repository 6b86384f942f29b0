"""A guard: answer while a screen checks the input, and cancel the answer if the screen says no."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fanfold._agent import Agent, agent_name
from fanfold._context import Context
from fanfold._fanout import Fanout
from fanfold._outcome import Outcome, Status
from fanfold._patterns import Pattern, as_worker
from fanfold._policy import Collect, Tally, Verdict

_ANSWER, _SCREEN = 0, 1
_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Blocked:
    """What a screen returns to block the answer, with its reason; a guard whose screen blocked
    returns it (unless the guard was given ``blocked=``).

    >>> ff.Blocked("homework questions are not answered here")
    Blocked(reason='homework questions are not answered here')
    """

    reason: Any = None


@dataclass(frozen=True, slots=True, eq=False)
class Guard(Pattern):
    answer: Agent
    screen: Agent
    blocked: Any = _UNSET
    name: str = "guard"

    async def run(self, input: Any, ctx: Context, /) -> Any:
        screen_name = agent_name(self.screen)
        verdicts: list[Blocked] = []

        def screened(outcome: Outcome[Any], tally: Tally) -> Verdict | None:
            if outcome.index != _SCREEN:
                return None  # the answer waits for the screen, whatever became of it
            if outcome.status is not Status.SUCCEEDED:
                return Verdict(True, f"the screen {screen_name} did not pass the input")
            verdict = _blocked(outcome.value, screen_name)
            if verdict is None:
                return None
            verdicts.append(verdict)
            return Verdict(True, f"blocked by {screen_name}")

        fanout = Fanout(
            ctx,
            "guard",
            ((self.answer, input), (self.screen, input)),
            policy=Collect(),
            total=2,
            window=2,
            labels=("answer", "screen"),
            watch=screened,
        )
        outcomes = await fanout.run()
        if verdicts:
            return verdicts[0] if self.blocked is _UNSET else self.blocked
        screen = outcomes[_SCREEN]
        if screen.status is not Status.SUCCEEDED:  # fail closed: no answer unless the screen passed
            assert screen.exception is not None
            raise screen.exception
        answer = outcomes[_ANSWER]
        if answer.status is not Status.SUCCEEDED:
            assert answer.exception is not None
            raise answer.exception
        return answer.value


def _blocked(value: Any, screen: str) -> Blocked | None:
    if isinstance(value, Blocked):
        return value
    if not value:
        return Blocked(f"{screen} returned {value!r}")
    return None


def guard(answer: Any, screen: Any, *, blocked: Any = _UNSET) -> Guard:
    """Run ``answer`` and ``screen`` on the input at the same time, and return the answer only if
    the screen passes it.

    The screen blocks by returning an :class:`ff.Blocked` (with its reason) or anything falsy
    (``False``, ``None``); anything else passes. When it blocks, the answer is cancelled at once
    (its model calls too) and the guard returns the ``Blocked`` value, or ``blocked`` if given.
    When it passes, the guard returns the answer's result as soon as both are done. A screen
    that fails (raises, times out) blocks too, and the guard fails with its error: no answer
    leaves a guard whose screen did not pass it::

        tutor = ff.guard(math_tutor, not_homework, blocked="Ask me about something else.")

    Guards nest: ``ff.guard(ff.guard(answer, on_topic), not_homework)`` screens twice.

    >>> ff.run_sync(ff.guard(str.upper, lambda q: "exam" not in q), "help").output
    'HELP'
    """
    return Guard(as_worker(answer, "guard(answer)"), as_worker(screen, "guard(screen)"), blocked)
