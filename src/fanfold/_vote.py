"""Votes: run one agent n times, or several agents, on one input, and decide between the answers
by a rule (a majority, a threshold), a judge agent or a function."""

from __future__ import annotations

import abc
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from fanfold._agent import Agent, agent_name
from fanfold._context import Context
from fanfold._errors import UsageError, VoteFailed
from fanfold._fanout import Fanout
from fanfold._outcome import Outcome, Status
from fanfold._patterns import Pattern, Step, WithInput, as_step, as_worker, check_policy, fed, numbered
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


class VoteRule(abc.ABC):
    """How a vote decides from its answers, and when the answers still to come could no longer
    change the outcome (so the vote stops early). Answers are compared by the vote's ``key``."""

    @abc.abstractmethod
    def decide(self, values: list[Any], key: Callable[[Any], Hashable]) -> Any:
        """The vote's value, from the successful answers in sample order."""

    @abc.abstractmethod
    def settled(self, counts: Counter[Hashable], remaining: int) -> bool:
        """Whether the outcome is decided, given the answers so far counted by key and the
        number of samples not yet finished."""

    def check(self, samples: int) -> None:  # noqa: B027 - most rules accept any number of samples
        """Refuse a vote of ``samples`` samples that this rule could never decide sensibly."""


@dataclass(frozen=True, slots=True)
class Majority(VoteRule):
    """The most frequent answer wins; a tie goes to the answer first in sample order (the
    default rule)."""

    def decide(self, values: list[Any], key: Callable[[Any], Hashable]) -> Any:
        return majority_of(values, key)

    def settled(self, counts: Counter[Hashable], remaining: int) -> bool:
        top = counts.most_common(2)
        lead = top[0][1] if top else 0
        runner_up = top[1][1] if len(top) > 1 else 0
        # Settled only when the samples still to come could not even tie the leader.
        return lead > runner_up + remaining


@dataclass(frozen=True, slots=True)
class AtLeast(VoteRule):
    """True when at least ``k`` answers are ``answer`` (compared through the vote's ``key``),
    else False: "approve if at least 2 of 3 reviewers say yes". Failed samples count as not
    ``answer``. The vote stops as soon as ``k`` have said it, or too few samples are left to.

    >>> reviewers = [lambda pr: "yes", lambda pr: "no", lambda pr: "yes"]
    >>> ff.run_sync(ff.vote(*reviewers, rule=ff.AtLeast(2, "yes")), "PR #7").output
    True
    """

    k: int
    answer: Any = True

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise UsageError(f"AtLeast(k={self.k!r}): pass how many answers must agree, a whole number >= 1")

    def decide(self, values: list[Any], key: Callable[[Any], Hashable]) -> bool:
        target = as_hashable(self.answer)
        return sum(1 for v in values if key(v) == target) >= self.k

    def settled(self, counts: Counter[Hashable], remaining: int) -> bool:
        said = counts[as_hashable(self.answer)]
        return said >= self.k or said + remaining < self.k

    def check(self, samples: int) -> None:
        if self.k > samples:
            raise UsageError(
                f"vote(rule=AtLeast({self.k}, ...)) over {samples} sample(s) could never pass; lower k, or draw "
                f"more samples (n= per agent)"
            )


@dataclass(frozen=True, slots=True, eq=False)
class Vote(Pattern):
    agents: tuple[Agent, ...]
    n: int
    judge: Step | None = None
    decide: Callable[[list[Any]], Any] | WithInput | None = None
    key: Callable[[Any], Hashable] = as_hashable
    early_stop: bool = True
    policy: FailurePolicy = field(default_factory=Collect)
    rule: VoteRule = field(default_factory=Majority)
    labels: tuple[str, ...] | None = None  # one per sample; None for one agent (vote[0], vote[1], ...)
    name: str = "vote"

    async def run(self, input: Any, ctx: Context, /) -> Any:
        total = self.n * len(self.agents)
        ruled = self.judge is None and self.decide is None
        watch = self._watch(total) if ruled and self.early_stop else None
        fanout = Fanout(
            ctx,
            "vote",
            ((agent, input) for agent in self.agents for _ in range(self.n)),
            policy=self.policy,
            total=total,
            window=total,
            labels=self.labels,
            watch=watch,
        )
        outcomes = await fanout.run()
        answers = [o for o in outcomes if o.status is Status.SUCCEEDED]
        if not answers:
            error = VoteFailed(f"vote: none of the {total} samples succeeded", outcomes)
            error.__cause__ = next((o.exception for o in outcomes if o.exception is not None), None)
            raise error
        values = [o.value for o in answers]  # in sample order
        if isinstance(self.decide, WithInput):
            assert self.decide.fn is not None
            return self.decide.fn(input, values)
        if self.decide is not None:
            return self.decide(values)
        if self.judge is not None:
            judge, given = fed(self.judge, input, values)
            return await run_step(judge, given, ctx.child("judge", 0, "judge"))
        return self.rule.decide(values, self.key)

    def _watch(self, total: int) -> Callable[[Outcome[Any], Tally], Verdict | None]:
        counts: Counter[Hashable] = Counter()
        key = self.key
        rule = self.rule

        def decided(outcome: Outcome[Any], tally: Tally) -> Verdict | None:
            if outcome.status is not Status.SUCCEEDED:
                return None
            counts[key(outcome.value)] += 1
            if rule.settled(counts, total - tally.finished):
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
    *agents: Any,
    n: int | None = None,
    judge: Any = None,
    decide: Callable[[list[Any]], Any] | WithInput | None = None,
    rule: VoteRule | None = None,
    key: Callable[[Any], Hashable] | None = None,
    early_stop: bool = True,
    policy: FailurePolicy | None = None,
) -> Vote:
    """Run an agent ``n`` times (default 5), or several agents ``n`` times each (default once),
    on the same input, and decide between the answers.

    By default the majority wins (answers compared by ``key``, default the answer itself), and a
    tie goes to the answer that appears first in sample order (every sample of the first agent,
    then of the second, ...). ``rule=ff.AtLeast(2, "yes")`` is a threshold instead: True when at
    least 2 answers are "yes". Under a rule, sampling stops as soon as the remaining samples
    could not change the outcome (``early_stop``). Or pass a ``judge`` agent, which receives the
    list of successful answers and returns the chosen one, or a ``decide`` function doing the
    same in plain code; wrapped in :func:`with_input`, either receives the vote's input too.
    Failed samples do not vote; if none succeeds the vote fails with :class:`VoteFailed`::

        ff.vote(solve, n=5)                                        # self-consistency
        ff.vote(strict, lenient, security, rule=ff.AtLeast(2, "approve"))
        ff.vote(translate_a, translate_b, judge=ff.with_input(pick_best))
    """
    if len(agents) == 1 and isinstance(agents[0], list | tuple):
        agents = tuple(agents[0])
    if len(agents) == 2 and n is None:
        first, count = agents  # ff.vote(agent, 5): the signature before votes took several agents
        if isinstance(count, int) and not isinstance(count, bool):
            agents, n = (first,), count
    if not agents:
        raise UsageError("vote() got no agents; pass one to sample n times, or several: ff.vote(a, b, c)")
    for a in agents:
        if isinstance(a, int):
            raise UsageError(f"vote(..., {a!r}): pass the number of samples by name: ff.vote(agent, n={a!r})")
    if n is None:
        n = 5 if len(agents) == 1 else 1
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"vote(n={n!r}): pass how many samples to draw from each agent, a whole number >= 1")
    if sum(x is not None for x in (judge, decide, rule)) > 1:
        raise UsageError("vote() takes one way to decide; pass one of rule=, judge= (an agent) or decide= (a function)")
    if isinstance(decide, WithInput) and decide.fn is None:
        raise UsageError(f"vote(decide={decide!r}) takes a function; pass an agent as judge= instead")
    if rule is not None and not isinstance(rule, VoteRule):
        raise UsageError(f"vote(rule={rule!r}): pass a rule such as ff.Majority() or ff.AtLeast(2, 'yes')")
    rule = rule or Majority()
    rule.check(n * len(agents))
    policy = policy or Collect()
    check_policy("vote", policy)
    workers = tuple(as_worker(a, "vote") for a in agents)
    return Vote(
        workers,
        n,
        None if judge is None else as_step(judge, "vote(judge=...)"),
        decide,
        key or as_hashable,
        early_stop,
        policy,
        rule,
        None if len(workers) == 1 else _labels(workers, n),
    )


def _labels(agents: tuple[Agent, ...], n: int) -> tuple[str, ...]:
    """Each sample's name in its path: the agent's (numbered if two share one), and the sample's
    number when each agent is sampled more than once: ``vote[strict]``, ``vote[strict.1]``."""
    names = numbered([agent_name(a) for a in agents])
    if n == 1:
        return tuple(names)
    return tuple(f"{name}.{j}" for name in names for j in range(n))
