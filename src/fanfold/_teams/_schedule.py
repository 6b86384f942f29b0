"""Running a team's plan: every subtask run starts as soon as the subtasks it needs have finished.

The runs are pulled by a sliding window of workers (the run's fan-out window, as for
:class:`~fanfold._fanout.Fanout`), in an order where every subtask comes after the ones it
needs, so a plan of two million runs holds a window of tasks, never two million. A worker whose
run needs subtasks still running waits for them (they were pulled before it, so they are held
by other workers or done). The runs are child tasks of the team, in one task group, each through the runtime's
:func:`~fanfold._task.execute` (limits, retries, budgets and events apply; a member that is a
pattern holds no slot). A run whose needs left no result is skipped with the reason; when the
team's failure policy stops the plan, or the team is cancelled, runs still waiting are skipped
too, so every run ends in exactly one outcome. Past the team's cutoff, members still running time
out and runs not started are not started. The tally, the verdicts and the final failure are the
:class:`~fanfold._judge.Judge`'s, as for every fan-out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
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
        self._order = self._ordered()

    def _ordered(self) -> Iterator[Work]:
        """The works, each subtask's after those of the subtasks it needs (else in plan order)."""
        placed: set[str] = set()
        subtasks = list(self.by_subtask)
        while len(placed) < len(subtasks):
            for subtask in subtasks:
                if subtask not in placed and all(n in placed for n in self.by_subtask[subtask][0].needs):
                    placed.add(subtask)
                    yield from self.by_subtask[subtask]
                    break

    async def run(self) -> list[Outcome[Any]]:
        judge = self.judge
        window = min(self.ctx.run_state.window, len(self.works)) or 1
        try:
            await judge.run(self._worker() for _ in range(window))
        except asyncio.CancelledError:
            self._drain(judge.interrupted(self.ctx))
            raise
        self._drain(judge.close())
        return judge.settle([self.outcomes[work.key] for work in self.works])

    async def _worker(self) -> None:
        clock = self.ctx.run_state.clock
        while self.judge.verdict is None and (self.cutoff is None or clock() < self.cutoff):
            work = next(self._order, None)
            if work is None:
                return
            await self._one(work)

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
        """End every run that has no outcome yet (it was stopped before it started): skipped,
        or timed out when the team's deadline passed."""
        status = Status.SKIPPED
        if self.cutoff is not None and self.ctx.run_state.clock() >= self.cutoff and self.judge.verdict is None:
            status, reason = Status.TIMED_OUT, "the team's deadline passed before it could start"
        for work in self.works:
            if work.key not in self.outcomes:
                ctx = self.ctx.child(work.subtask, work.index)
                self.judge.unrun(ctx, partial(self._record, work), reason, status=status)


def reason_of(outcome: Outcome[Any]) -> str:
    """Why a run did not succeed, in a few words: its status, and its reason or error."""
    error = outcome.error
    if outcome.reason or error is None:
        detail = outcome.reason or ""
    else:  # a timeout says so by its status; a failure's type says what went wrong
        detail = error.message if outcome.status is Status.TIMED_OUT else str(error)
    return f"{outcome.status.value}: {detail}" if detail else outcome.status.value
