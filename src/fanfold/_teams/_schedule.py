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
out and runs not started are not started.

A plan of up to :data:`DETAIL` runs keeps every run's outcome. Past that, only the values of the
runs that succeeded and the reasons of the runs that started and did not are kept, and the runs
never pulled are counted per subtask and reported as one range (``"check[9000:200000]"``), so that
stopping two million runs costs a count, not two million outcomes. The tally, the verdicts and the final failure are the
:class:`~fanfold._judge.Judge`'s, as for every fan-out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from fanfold._context import Context
from fanfold._judge import Judge
from fanfold._outcome import Outcome, Status
from fanfold._task import execute
from fanfold._teams._crew import Crew
from fanfold._teams._plan import Runs, Work

DETAIL = 10_000
"""Plans of at most this many runs keep one outcome per run (``TeamResult.outcomes``)."""

_LATE = "the team's deadline passed before it could start"


@dataclass(slots=True)
class Ran:
    """What a plan's runs left, in plan order: each success's ``value`` by its key, each other
    run's reason in ``missing`` (runs never started past :data:`DETAIL`: one entry per range),
    the ``counts`` by status (they add up to the plan's runs), the ``values`` of each subtask's
    successes, and one outcome per run when the plan has at most :data:`DETAIL` runs."""

    results: dict[str, Any]
    missing: dict[str, str]
    counts: dict[Status, int]
    values: dict[str, list[tuple[str, Any]]]
    outcomes: list[Outcome[Any]] = field(default_factory=list)


class Schedule:
    """One run of a plan's runs; :meth:`run` returns what they left (:class:`Ran`)."""

    def __init__(self, crew: Crew, ctx: Context, runs: list[Runs], cutoff: float | None) -> None:
        self.crew = crew
        self.ctx = ctx
        self.runs = {r.subtask: r for r in runs}
        self.total = sum(len(r) for r in runs)
        self.cutoff = cutoff
        self.detail = self.total <= DETAIL
        self.left = {r.subtask: len(r) for r in runs}
        self.pulled = dict.fromkeys(self.runs, 0)  # runs of each subtask handed to a worker
        self.pending: dict[str, Work] = {}  # pulled, without an outcome yet
        self.done = {subtask: asyncio.Event() for subtask in self.runs}
        self.succeeded: dict[str, dict[int, Any]] = {subtask: {} for subtask in self.runs}
        self.failed: dict[str, dict[int, str]] = {subtask: {} for subtask in self.runs}
        self.unpulled: dict[str, tuple[Status, str]] = {}  # per subtask: its runs never pulled, why
        self.counts: dict[Status, int] = {}
        self.outcomes: dict[str, Outcome[Any]] = {}
        self._finished: dict[str, list[Any]] = {}
        self.judge = Judge(crew.name, crew.policy, total=self.total)
        self._order = self._ordered()

    def _ordered(self) -> Iterator[Work]:
        """The works, each subtask's after those of the subtasks it needs (else in plan order)."""
        placed: set[str] = set()
        while len(placed) < len(self.runs):
            for subtask, runs in self.runs.items():
                if subtask not in placed and all(n in placed for n in runs.needs):
                    placed.add(subtask)
                    for index in range(len(runs)):
                        self.pulled[subtask] = index + 1
                        work = runs.work(index)
                        self.pending[work.key] = work
                        yield work
                    break

    async def run(self) -> Ran:
        judge = self.judge
        window = min(self.ctx.run_state.window, self.total) or 1
        try:
            await judge.run(self._worker() for _ in range(window))
        except asyncio.CancelledError:
            self._drain(judge.interrupted(self.ctx))
            raise
        self._drain(judge.close())
        ran = self._ran()
        judge.settle(ran.outcomes)
        return ran

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
            self.judge.unrun(ctx, report, _LATE, status=Status.TIMED_OUT)
            return
        value = self._needed(work) if work.from_needs else work.input
        agent, value = self.crew.assign(work.member, value, work.instruction)
        await execute(agent, value, ctx, report, timeout=timeout, stop_reason=self.judge.stop_reason)

    def _values(self, subtask: str) -> list[Any]:
        """The successful results of a finished subtask's runs, in order."""
        values = self._finished.get(subtask)
        if values is None:
            succeeded = self.succeeded[subtask]
            values = self._finished[subtask] = [succeeded[i] for i in sorted(succeeded)]
        return values

    def _needed(self, work: Work) -> Any:
        """A run's input from its needs: one need's result (a list for a split one), or a dict
        of them by subtask id."""
        results = {need: self._values(need) for need in work.needs}
        results = {need: values if self.runs[need].split else values[0] for need, values in results.items()}
        return results[work.needs[0]] if len(results) == 1 else results

    def _record(self, work: Work, outcome: Outcome[Any]) -> None:
        del self.pending[work.key]
        if self.detail:
            self.outcomes[work.key] = outcome
        if outcome.status is Status.SUCCEEDED:
            self.succeeded[work.subtask][work.index] = outcome.value
        else:
            self.failed[work.subtask][work.index] = reason_of(outcome)
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        self.left[work.subtask] -= 1
        if not self.left[work.subtask]:
            self.done[work.subtask].set()
        self.judge.record(outcome)

    def _drain(self, reason: str) -> None:
        """End every run that has no outcome yet (it was stopped before it started): skipped,
        or timed out when the team's deadline passed. Runs never pulled get one outcome each
        in a plan of at most :data:`DETAIL` runs, else are counted."""
        status = Status.SKIPPED
        if self.cutoff is not None and self.ctx.run_state.clock() >= self.cutoff and self.judge.verdict is None:
            status, reason = Status.TIMED_OUT, _LATE
        for work in list(self.pending.values()):
            self._unrun(work, reason, status)
        for subtask, runs in self.runs.items():
            first = self.pulled[subtask]
            if first == len(runs):
                continue
            if self.detail:
                self.pulled[subtask] = len(runs)
                for index in range(first, len(runs)):
                    self._unrun(runs.work(index), reason, status)
                continue
            count = len(runs) - first
            self.unpulled[subtask] = status, reason
            self.counts[status] = self.counts.get(status, 0) + count
            self.left[subtask] -= count
            tally = self.judge.tally  # the judge is closed: these only count
            tally.finished += count
            if status is Status.TIMED_OUT:
                tally.failed += count

    def _unrun(self, work: Work, reason: str, status: Status) -> None:
        self.pending[work.key] = work
        ctx = self.ctx.child(work.subtask, work.index)
        self.judge.unrun(ctx, partial(self._record, work), reason, status=status)

    def _ran(self) -> Ran:
        ran = Ran({}, {}, self.counts, {})
        for subtask, runs in self.runs.items():
            succeeded, failed = self.succeeded[subtask], self.failed[subtask]
            values = ran.values[subtask] = []
            for index in sorted([*succeeded, *failed]):
                key = f"{subtask}[{index}]"
                if index in succeeded:
                    ran.results[key] = succeeded[index]
                    values.append((key, succeeded[index]))
                else:
                    ran.missing[key] = failed[index]
            if subtask in self.unpulled:
                status, reason = self.unpulled[subtask]
                first = self.pulled[subtask]
                count = len(runs) - first
                ran.missing[f"{subtask}[{first}:{len(runs)}]"] = f"{status.value}: {reason} ({count:,} runs)"
            if self.detail:
                ran.outcomes += [self.outcomes[f"{subtask}[{i}]"] for i in range(len(runs))]
        return ran


def reason_of(outcome: Outcome[Any]) -> str:
    """Why a run did not succeed, in a few words: its status, and its reason or error."""
    error = outcome.error
    if outcome.reason or error is None:
        detail = outcome.reason or ""
    else:  # a timeout says so by its status; a failure's type says what went wrong
        detail = error.message if outcome.status is Status.TIMED_OUT else str(error)
    return f"{outcome.status.value}: {detail}" if detail else outcome.status.value
