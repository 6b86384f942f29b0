"""Self-consistency: run one agent n times on one input and decide."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from fanfold._agent import Agent, as_agent
from fanfold._context import Context
from fanfold._errors import UsageError, VoteFailed
from fanfold._fanout import Fanout
from fanfold._outcome import Outcome, Status
from fanfold._patterns import Pattern, check_policy
from fanfold._policy import Collect, FailurePolicy, Tally, Verdict
from fanfold._task import run_step


def as_hashable(value: Any) -> Hashable:
    """The value itself if it can be hashed, else its printed form: how votes compare answers,
    and how groups and distinct values are keyed."""
    try:
        hash(value)
    except TypeError:
        return repr(value)  # lists and dicts vote by their printed form
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True, eq=False)
class Vote(Pattern):
    agent: Agent
    n: int
    judge: Agent | None = None
    decide: Callable[[list[Any]], Any] | None = None
    key: Callable[[Any], Hashable] = as_hashable
    early_stop: bool = True
    policy: FailurePolicy = field(default_factory=Collect)
    name: str = "vote"

    async def run(self, input: Any, ctx: Context, /) -> Any:
        majority = self.judge is None and self.decide is None
        watch = self._watch() if majority and self.early_stop else None
        fanout = Fanout(
            ctx,
            "vote",
            ((self.agent, input) for _ in range(self.n)),
            policy=self.policy,
            total=self.n,
            window=self.n,
            watch=watch,
        )
        outcomes = await fanout.run()
        answers = [o for o in outcomes if o.status is Status.SUCCEEDED]
        if not answers:
            error = VoteFailed(f"vote: none of the {self.n} samples succeeded", outcomes)
            error.__cause__ = next((o.exception for o in outcomes if o.exception is not None), None)
            raise error
        values = [o.value for o in answers]  # in sample order
        if self.decide is not None:
            return self.decide(values)
        if self.judge is not None:
            return await run_step(self.judge, values, ctx.child("judge", 0, "judge"))
        return majority_of(values, self.key)

    def _watch(self) -> Callable[[Outcome[Any], Tally], Verdict | None]:
        counts: Counter[Hashable] = Counter()
        n = self.n
        key = self.key

        def decided(outcome: Outcome[Any], tally: Tally) -> Verdict | None:
            if outcome.status is not Status.SUCCEEDED:
                return None
            counts[key(outcome.value)] += 1
            top = counts.most_common(2)
            lead = top[0][1]
            runner_up = top[1][1] if len(top) > 1 else 0
            # Stop only when the samples still to come could not even tie the leader.
            if lead > runner_up + (n - tally.finished):
                return Verdict(True, "the vote is decided; remaining samples cannot change it")
            return None

        return decided


def majority_of(values: list[Any], key: Callable[[Any], Hashable] = as_hashable) -> Any:
    """The most frequent value; a tie goes to the answer that appears first in sample order."""
    counts: Counter[Hashable] = Counter(key(v) for v in values)
    best = max(counts.values())
    for value in values:
        if counts[key(value)] == best:
            return value
    raise AssertionError("unreachable")  # pragma: no cover


def vote(
    agent: Any,
    n: int = 5,
    *,
    judge: Any = None,
    decide: Callable[[list[Any]], Any] | None = None,
    key: Callable[[Any], Hashable] | None = None,
    early_stop: bool = True,
    policy: FailurePolicy | None = None,
) -> Vote:
    """Run ``agent`` ``n`` times on the same input and decide between the answers.

    By default the majority wins (answers compared by ``key``, default the answer itself), and a
    tie goes to the answer that appears first in sample order; sampling stops as soon as the
    remaining samples could not change the outcome (``early_stop``). Or pass a ``judge`` agent,
    which receives the list of successful answers and returns the chosen one, or a ``decide``
    function doing the same in plain code. Failed samples do not vote; if none succeeds the vote
    fails with :class:`VoteFailed`.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"vote(n={n!r}): pass how many samples to draw, a whole number >= 1")
    if judge is not None and decide is not None:
        raise UsageError("vote() got both judge= and decide=; pass one: a judge agent or a decide function")
    policy = policy or Collect()
    check_policy("vote", policy)
    return Vote(
        as_agent(agent, "vote"),
        n,
        None if judge is None else as_agent(judge, "vote(judge=...)"),
        decide,
        key or as_hashable,
        early_stop,
        policy,
    )
