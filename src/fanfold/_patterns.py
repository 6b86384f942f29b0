"""The fan-out patterns: map, parallel, sequence and race. Each is a frozen spec and an agent,
so any pattern nests in any other."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, Callable, Hashable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fanfold._agent import Agent, agent_name, as_agent
from fanfold._context import Context
from fanfold._errors import RaceFailed, UsageError
from fanfold._fanout import Fanout
from fanfold._outcome import Outcome, Status
from fanfold._policy import Collect, FailurePolicy, Tally, Verdict
from fanfold._task import run_step


class Pattern(abc.ABC):
    """Base of every composite agent. A pattern holds no slot while its children run."""

    composite: ClassVar[bool] = True
    name: str

    @abc.abstractmethod
    async def run(self, input: Any, ctx: Context, /) -> Any: ...


def check_window(where: str, window: int | None) -> None:
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise UsageError(f"{where}(window={window!r}): pass a whole number >= 1, or None for the run's default")


def _check_timeout(where: str, timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise UsageError(f"{where}(timeout={timeout!r}): pass seconds > 0 for each input, or None")


def check_policy(where: str, policy: object) -> None:
    if not isinstance(policy, FailurePolicy):
        raise UsageError(f"{where}(policy={policy!r}): pass a policy such as ff.Collect(), ff.FailFast(), ff.Quorum(3)")


@dataclass(frozen=True, slots=True, eq=False)
class Map(Pattern):
    agent: Agent
    policy: FailurePolicy = field(default_factory=Collect)
    window: int | None = None
    key: Callable[[Any], Hashable] | None = None
    timeout: float | None = None
    name: str = "map"

    async def run(self, input: Any, ctx: Context, /) -> list[Any]:
        if isinstance(input, (str, bytes, Mapping)) or not isinstance(input, (Iterable, AsyncIterable)):
            raise UsageError(
                f"map needs many inputs and got a {type(input).__name__}: {_short(input)}; pass a list, "
                "an iterable or an async iterable of inputs (wrap one input in a list: [x])"
            )
        agent = self.agent
        total = len(input) if isinstance(input, Sized) else None
        source: Iterable[Any] | AsyncIterable[Any] = (
            _pair_async(agent, input) if isinstance(input, AsyncIterable) else ((agent, v) for v in input)
        )
        fanout = Fanout(
            ctx, "map", source, policy=self.policy, total=total, window=self.window, key=self.key, timeout=self.timeout
        )
        outcomes = await fanout.run()
        return [o.value for o in outcomes if o.status is Status.SUCCEEDED]


async def _pair_async(agent: Agent, inputs: AsyncIterable[Any]) -> Any:
    async for value in inputs:
        yield agent, value


def map(  # noqa: A001 - the pattern's name, used as ff.map
    agent: Any,
    *,
    policy: FailurePolicy | None = None,
    window: int | None = None,
    key: Callable[[Any], Hashable] | None = None,
    timeout: float | None = None,
) -> Map:
    """One agent over many inputs; results in input order.

    Inputs may be a list, any iterable or generator, or an async iterable; they are read lazily,
    at most ``window`` in flight. ``policy`` decides what failures do (default: collect them as
    outcomes). ``key(input)`` names each outcome; ``timeout`` bounds each input.
    The value is the list of successful results in input order; ``Result.outcomes`` has one
    outcome per input.

    >>> ff.run_sync(ff.map(str.upper), ["a", "b"]).output
    ['A', 'B']
    """
    check_window("map", window)
    _check_timeout("map", timeout)
    policy = policy or Collect()
    check_policy("map", policy)
    return Map(as_agent(agent, "map"), policy, window, key, timeout)


@dataclass(frozen=True, slots=True, eq=False)
class Parallel(Pattern):
    agents: tuple[Agent, ...]
    names: tuple[str, ...]
    policy: FailurePolicy = field(default_factory=Collect)
    timeout: float | None = None
    name: str = "parallel"

    async def run(self, input: Any, ctx: Context, /) -> dict[str, Any]:
        fanout = Fanout(
            ctx,
            "parallel",
            ((a, input) for a in self.agents),
            policy=self.policy,
            total=len(self.agents),
            window=len(self.agents),
            timeout=self.timeout,
            labels=self.names,
        )
        outcomes = await fanout.run()
        return {self.names[o.index]: o.value for o in outcomes if o.status is Status.SUCCEEDED}


def parallel(*agents: Any, policy: FailurePolicy | None = None, timeout: float | None = None, **named: Any) -> Parallel:
    """Several agents on one input, all at once; the value maps each agent's name to its result.

    Names come from the agents (a function's name) or from keywords::

        ff.parallel(skeptic, optimist)            # {'skeptic': ..., 'optimist': ...}
        ff.parallel(fast=model_a, careful=model_b)
    """
    pairs = [(agent_name(a), as_agent(a, "parallel")) for a in agents]
    pairs += [(name, as_agent(a, "parallel")) for name, a in named.items()]
    if not pairs:
        raise UsageError("parallel() got no agents; pass at least one: ff.parallel(a, b)")
    names = [n for n, _ in pairs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(
            f"parallel() has two agents named {duplicates[0]!r}; results are keyed by name, so give "
            f"each its own: ff.parallel(first=..., second=...) or ff.agent(fn, name=...)"
        )
    _check_timeout("parallel", timeout)
    policy = policy or Collect()
    check_policy("parallel", policy)
    return Parallel(tuple(a for _, a in pairs), tuple(names), policy, timeout)


@dataclass(frozen=True, slots=True, eq=False)
class Sequence(Pattern):
    steps: tuple[Agent, ...]
    name: str = "sequence"

    async def run(self, input: Any, ctx: Context, /) -> Any:
        value = input
        for index, step in enumerate(self.steps):
            value = await run_step(step, value, ctx.child("sequence", index))
        return value


def sequence(*steps: Any) -> Sequence:
    """Run agents one after another, each on the previous one's result.

    A step that fails, times out or skips ends the sequence with that outcome."""
    if not steps:
        raise UsageError("sequence() got no steps; pass at least one agent: ff.sequence(extract, classify)")
    return Sequence(tuple(as_agent(s, "sequence") for s in steps))


@dataclass(frozen=True, slots=True, eq=False)
class Race(Pattern):
    agents: tuple[Agent, ...]
    names: tuple[str, ...]
    stagger: float = 0.0
    timeout: float | None = None
    name: str = "race"

    async def run(self, input: Any, ctx: Context, /) -> Any:
        def first_success(outcome: Outcome[Any], tally: Tally) -> Verdict | None:
            if outcome.status is Status.SUCCEEDED:
                return Verdict(True, f"race won by {self.names[outcome.index]}")
            return None

        fanout = Fanout(
            ctx,
            "race",
            ((a, input) for a in self.agents),
            policy=Collect(),
            total=len(self.agents),
            window=len(self.agents),
            timeout=self.timeout,
            labels=self.names,
            watch=first_success,
            stagger=self.stagger,
        )
        outcomes = await fanout.run()
        for outcome in outcomes:
            if outcome.status is Status.SUCCEEDED:
                return outcome.value
        error = RaceFailed(f"race: all {len(outcomes)} racers failed", outcomes)
        error.__cause__ = next((o.exception for o in outcomes if o.exception is not None), None)
        raise error


def race(*agents: Any, stagger: float = 0.0, timeout: float | None = None) -> Race:
    """The first success wins and the others are cancelled.

    With ``stagger`` it is a hedge: racer ``i`` starts only after ``i * stagger`` seconds, and not
    at all if an earlier one has already won::

        ff.race(model, model, stagger=2.0)   # a second try only if the first is slow
    """
    if not agents:
        raise UsageError("race() got no agents; pass at least two: ff.race(fast, slow)")
    if isinstance(stagger, bool) or not isinstance(stagger, int | float) or stagger < 0:
        raise UsageError(f"race(stagger={stagger!r}): pass seconds >= 0")
    _check_timeout("race", timeout)
    names = [agent_name(a) for a in agents]
    labels = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
    return Race(tuple(as_agent(a, "race") for a in agents), tuple(labels), stagger, timeout)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
