"""The judge of a fan-out: one place that decides what its outcomes add up to.

Every fan-out, whether a pattern's sliding window (:class:`~fanfold._fanout.Fanout`) or a team's
plan with dependencies (:class:`~fanfold._teams._schedule.Schedule`), runs its work as sibling
tasks of one :class:`Judge`, which

- tallies every outcome and keeps the first error (the cause of the final failure);
- after each outcome asks the pattern's ``watch`` (votes and races) and then the failure policy
  for a :class:`~fanfold._policy.Verdict`; the first verdict stops the fan-out: the siblings
  still running are cancelled, and they end with the verdict's reason;
- ends work that never started in an outcome of its own, with its event (:meth:`Judge.unrun`);
- once every piece of work has its outcome, has the policy take its last look and raises the
  :class:`~fanfold.FanoutFailed` of a failing verdict (:meth:`Judge.settle`).

What the judge does not know is where outcomes are kept and how work is pulled: its owner stores
each outcome, then hands it to :meth:`Judge.record`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from fanfold._context import Context
from fanfold._errors import FanoutFailed
from fanfold._events import FINISHED_EVENT
from fanfold._outcome import Outcome, Status
from fanfold._policy import FailurePolicy, Tally, Verdict

Watch = Callable[[Outcome[Any], Tally], Verdict | None]


class Judge:
    """Tallies one fan-out's outcomes and decides when it stops, and whether it failed.

    A sketch of its owner's life::

        judge = Judge("map", policy, total=len(items))
        try:
            await judge.run(work(item) for item in items)   # each reports to judge.record
        except asyncio.CancelledError:
            skip_the_rest(judge.interrupted(ctx))           # each through judge.unrun
            raise
        skip_the_rest(judge.close())
        return judge.settle(outcomes)                        # or raises FanoutFailed
    """

    __slots__ = ("_closed", "_group", "_tasks", "first_error", "name", "policy", "tally", "verdict", "watch")

    def __init__(
        self, name: str, policy: FailurePolicy, *, total: int | None = None, watch: Watch | None = None
    ) -> None:
        self.name = name  # names the fan-out in its error: "map failed: ..."
        self.policy = policy
        self.watch = watch
        self.tally = Tally(total=total)
        self.verdict: Verdict | None = None
        self.first_error: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._group: asyncio.TaskGroup | None = None
        self._closed = False

    async def run(self, work: Iterable[Coroutine[Any, Any, None]]) -> None:
        """Run each coroutine as a task of one group and wait for them all (and for those
        :meth:`spawn` adds); a verdict cancels the ones still running. A cancellation of the
        fan-out itself propagates."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            for coro in work:
                self._track(group.create_task(coro))
        self._group = None

    def spawn(self, work: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run ``work()`` as one more task of the group :meth:`run` waits for; False (and nothing
        started) once the fan-out has stopped or its group is shutting down."""
        group = self._group
        if group is None or self.verdict is not None or self._closed:
            return False
        coro = work()
        try:
            task = group.create_task(coro)
        except RuntimeError:  # the group is shutting down (a sibling failed, or it was cancelled)
            coro.close()
            return False
        self._track(task)
        return True

    def _track(self, task: asyncio.Task[None]) -> None:
        # A set that forgets finished tasks: a long fan-out spawns workers all along.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def record(self, outcome: Outcome[Any]) -> None:
        """Count an outcome and, unless the fan-out has stopped, ask the watch and the policy
        whether it stops now."""
        tally = self.tally
        tally.finished += 1
        status = outcome.status
        if status is Status.SUCCEEDED:
            tally.succeeded += 1
        elif status is Status.FAILED or status is Status.TIMED_OUT:
            tally.failed += 1
            if self.first_error is None:
                self.first_error = outcome.exception
        if self.verdict is None and not self._closed:
            verdict = self.watch(outcome, tally) if self.watch is not None else None
            verdict = verdict or self.policy.check(tally, final=False)
            if verdict is not None:
                self._stop(verdict)

    def _stop(self, verdict: Verdict) -> None:
        self.verdict = verdict
        me = asyncio.current_task()
        for task in list(self._tasks):
            if task is not me:  # the task that reported the outcome finishes on its own
                task.cancel()

    def stop_reason(self) -> str | None:
        """Why the fan-out stopped, for the outcome of a task it cancelled; ``None`` while it runs."""
        return self.verdict.reason if self.verdict is not None else None

    def close(self) -> str:
        """Stop judging (the outcomes still to come only count), and say why work not started
        is skipped."""
        self._closed = True
        return self.verdict.reason if self.verdict is not None else "stopped"

    def interrupted(self, ctx: Context) -> str:
        """Stop judging because the fan-out was cancelled, and say why: the deadline, or not."""
        self._closed = True
        return "the run's deadline passed" if ctx.run_state.deadline_passed() else "cancelled"

    def unrun(
        self,
        ctx: Context,
        report: Callable[[Outcome[Any]], None],
        reason: str,
        *,
        status: Status = Status.SKIPPED,
        key: Any = None,
    ) -> None:
        """End work that never started (its task context is ``ctx``) in an outcome with its
        reason: ``report`` stores and records it, and the events hear of it."""
        outcome: Outcome[Any] = Outcome(ctx.index, status, None, key, ctx.path, 0, reason=reason)
        report(outcome)
        state = ctx.run_state
        if state.bus.active:
            state.bus.emit(FINISHED_EVENT[status](state.run_id, ctx.path, state.now(), outcome))

    def settle(self, outcomes: list[Outcome[Any]]) -> list[Outcome[Any]]:
        """The fan-out's outcomes, once each piece of work has one; raises
        :class:`~fanfold.FanoutFailed` (caused by the first error) if the verdict, or the
        policy's last look, is a failure."""
        verdict = self.verdict or self.policy.check(self.tally, final=True)
        if verdict is not None and not verdict.ok:
            error = FanoutFailed(f"{self.name} failed: {verdict.reason}", outcomes)
            error.__cause__ = self.first_error
            raise error
        return outcomes
