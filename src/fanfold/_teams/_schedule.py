"""Running a team's plan: every subtask run starts as soon as the subtasks it needs have finished.

The runs are child tasks of the team, in one task group, each through the runtime's
:func:`~fanfold._task.execute` (limits, retries, budgets and events apply; a member that is a
pattern holds no slot). A run whose needs left no result is skipped with the reason; when the
team's failure policy stops the plan, or the team is cancelled, runs still waiting are skipped
too, so every run ends in exactly one outcome. Past the team's cutoff, members still running time
out and runs not started are not started. The tally, the verdicts and the final failure are the
:class:`~fanfold._judge.Judge`'s, as for every fan-out.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from fanfold._context import Context
from fanfold._judge import Judge
from fanfold._outcome import Outcome, Status
from fanfold._task import execute
from fanfold._teams._crew import Crew
from fanfold._teams._plan import Work


class Schedule:
    """One run of a plan's works; :meth:`run` returns one outcome per work, in plan order."""

    def __init__(self, crew: Crew, ctx: Context, works: list[Work], cutoff: float | None) -> None:
        self.crew = crew
        self.ctx = ctx
        self.works = works
        self.cutoff = cutoff
        self.by_subtask: dict[str, list[Work]] = {}
        for work in works:
            self.by_subtask.setdefault(work.subtask, []).append(work)
        self.left = {subtask: len(runs) for subtask, runs in self.by_subtask.items()}
        self.done = {subtask: asyncio.Event() for subtask in self.by_subtask}
        self.outcomes: dict[str, Outcome[Any]] = {}
        self.judge = Judge(crew.name, crew.policy, total=len(works))

    async def run(self) -> list[Outcome[Any]]:
        judge = self.judge
        try:
            await judge.run(self._one(work) for work in self.works)
        except asyncio.CancelledError:
            self._drain(judge.interrupted(self.ctx))
            raise
        self._drain(judge.close())
        return judge.settle([self.outcomes[work.key] for work in self.works])

    async def _one(self, work: Work) -> None:
        for need in work.needs:
            await self.done[need].wait()
        if self.judge.verdict is not None:
            return  # the plan stopped while this run waited: the drain records it
        ctx = self.ctx.child(work.subtask, work.index)
        report = partial(self._record, work)
        lacking = next((need for need in work.needs if not self._values(need)), None)
        if lacking is not None:
            self.judge.unrun(ctx, report, f"needs {lacking!r}, which has no result")
            return
        state = ctx.run_state
        timeout = None if self.cutoff is None else self.cutoff - state.clock()
        if timeout is not None and timeout <= 0:
            reason = "the team's deadline passed before it could start"
            self.judge.unrun(ctx, report, reason, status=Status.TIMED_OUT)
            return
        value = self._needed(work) if work.from_needs else work.input
        agent, value = self.crew.assign(work.member, value, work.instruction)
        await execute(agent, value, ctx, report, timeout=timeout, stop_reason=self.judge.stop_reason)

    def _values(self, subtask: str) -> list[Any]:
        """The successful results of a subtask's runs, in order."""
        outcomes = (self.outcomes.get(w.key) for w in self.by_subtask[subtask])
        return [o.value for o in outcomes if o is not None and o.status is Status.SUCCEEDED]

    def _needed(self, work: Work) -> Any:
        """A run's input from its needs: one need's result (a list for a split one), or a dict
        of them by subtask id."""
        results = {
            need: values if self.by_subtask[need][0].split else values[0]
            for need in work.needs
            for values in [self._values(need)]
        }
        return results[work.needs[0]] if len(results) == 1 else results

    def _record(self, work: Work, outcome: Outcome[Any]) -> None:
        self.outcomes[work.key] = outcome
        self.left[work.subtask] -= 1
        if not self.left[work.subtask]:
            self.done[work.subtask].set()
        self.judge.record(outcome)

    def _drain(self, reason: str) -> None:
        """Skip every run that has no outcome yet (it was stopped before it started)."""
        for work in self.works:
            if work.key not in self.outcomes:
                self.judge.unrun(self.ctx.child(work.subtask, work.index), partial(self._record, work), reason)


def reason_of(outcome: Outcome[Any]) -> str:
    """Why a run did not succeed, in a few words: its status, and its reason or error."""
    error = outcome.error
    if outcome.reason or error is None:
        detail = outcome.reason or ""
    else:  # a timeout says so by its status; a failure's type says what went wrong
        detail = error.message if outcome.status is Status.TIMED_OUT else str(error)
    return f"{outcome.status.value}: {detail}" if detail else outcome.status.value
