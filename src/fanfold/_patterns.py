"""The fan-out patterns: map, parallel, sequence and race. Each is a frozen spec and an agent,
so any pattern nests in any other.

What sees a pattern's results (a parallel's ``merge``, a vote's ``judge``, a map-reduce's
``reduce``, a sequence's next step) may also see the pattern's own input: wrap it in
:func:`with_input`, and it is given both."""

from __future__ import annotations

import abc
import inspect
from collections.abc import AsyncIterable, Callable, Hashable, Iterable, Mapping, Sized
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Generic, TypeVar

from fanfold._agent import Agent, FunctionAgent, agent_name, as_agent
from fanfold._context import Context
from fanfold._errors import RaceFailed, UsageError
from fanfold._fanout import Fanout
from fanfold._hedge import SCOPE, Hedge, check_hedge
from fanfold._outcome import Outcome, Status
from fanfold._policy import Collect, FailurePolicy, Tally, Verdict
from fanfold._task import run_step

InputT = TypeVar("InputT")
ResultsT = TypeVar("ResultsT")


class Pattern(abc.ABC):
    """Base of every composite agent. A pattern holds no slot while its children run.

    Subclass it to write an agent that runs patterns of its own: call a pattern with
    ``await spec.run(input, ctx)``. The inner pattern's leaves are governed by the run's limits,
    retries and budget, their events come with the run's, and their outcomes are named under
    this agent's path (``map[3]/parallel[spanish]``)::

        class BestTranslation(ff.Pattern):
            name = "best_translation"

            async def run(self, text, ctx):
                drafts = await ff.parallel(formal, casual).run(text, ctx)
                return min(drafts.values(), key=len)

    Being a pattern (``composite``) matters: a plain agent is a leaf, which holds a concurrency
    slot while it runs, so the inner leaves would wait for slots that it holds, and a retry of
    it would run the whole inner pattern again.
    """

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


@dataclass(frozen=True, slots=True)
class Given(Generic[InputT, ResultsT]):
    """What an agent wrapped in :func:`with_input` receives: the pattern's ``input`` and the
    ``results`` it would otherwise get alone (a sequence step: the previous step's result)."""

    input: InputT
    results: ResultsT


@dataclass(frozen=True, slots=True, eq=False)
class WithInput:
    """An agent (or a vote's ``decide`` function) that is given the pattern's input along with
    the results; made by :func:`with_input`."""

    agent: Agent  # takes a Given
    fn: Callable[..., Any] | None  # the function wrapped, for a vote's decide=
    name: str

    def __repr__(self) -> str:
        return f"ff.with_input({self.name})"


def with_input(agent: Any) -> WithInput:
    """Give what sees a pattern's results the pattern's input too.

    It works for a parallel's ``merge``, a vote's ``judge`` and ``decide``, a map-reduce's
    ``reduce`` (each reduction, on every level) and a sequence's steps. A function is called
    with the input first and the results second (and the context third, if it takes one); an
    agent object receives a :class:`Given` with ``.input`` and ``.results``::

        def best(source: str, translations: list[str]) -> str: ...
        ff.vote(to_spanish_a, to_spanish_b, judge=ff.with_input(best))

    >>> topic_first = ff.with_input(lambda topic, jokes: f"{topic}: {jokes['pun']}")
    >>> ff.run_sync(ff.parallel(pun=lambda t: f"{t} pun", merge=topic_first), "cats").output
    'cats: cats pun'
    """
    if isinstance(agent, WithInput):
        return agent
    if isinstance(agent, FunctionAgent):  # keeps its name, resources, retry and timeouts
        given = _given_to(agent.fn, agent.name)
        fed_agent = replace(agent, fn=given, takes_ctx=True, is_async=inspect.iscoroutinefunction(given))
        return WithInput(fed_agent, agent.fn, agent.name)
    if callable(agent) and not inspect.iscoroutinefunction(getattr(agent, "run", None)):
        name = agent_name(agent)
        given = _given_to(agent, name)
        return WithInput(FunctionAgent(given, name, True, inspect.iscoroutinefunction(given)), agent, name)
    return WithInput(as_agent(agent, "with_input"), None, agent_name(agent))


def _given_to(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``fn(input, results[, ctx])`` as a function of a :class:`Given` and the context."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []  # a builtin without a signature: given the input and the results
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    if params and not varargs and len(positional) < 2:
        raise UsageError(
            f"with_input({name}): {name!r} takes {len(positional)} positional parameter(s); it is called with "
            "the pattern's input and the results: def f(input, results) or def f(input, results, ctx)"
        )
    takes_ctx = not varargs and len(positional) >= 3
    target = getattr(fn, "func", fn)
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(target).__call__):

        async def given_async(given: Given[Any, Any], ctx: Context) -> Any:
            return await (fn(given.input, given.results, ctx) if takes_ctx else fn(given.input, given.results))

        return given_async

    def given_sync(given: Given[Any, Any], ctx: Context) -> Any:
        return fn(given.input, given.results, ctx) if takes_ctx else fn(given.input, given.results)

    return given_sync


Step = Agent | WithInput


def as_step(obj: Any, where: str) -> Step:
    """An agent that sees results, which :func:`with_input` may have wrapped."""
    return obj if isinstance(obj, WithInput) else as_agent(obj, where)


def fed(step: Step, input: Any, results: Any) -> tuple[Agent, Any]:
    """The agent to run on ``results``, and what it receives: the results, or a :class:`Given`."""
    if isinstance(step, WithInput):
        return step.agent, Given(input, results)
    return step, results


def as_worker(obj: Any, where: str) -> Agent:
    """An agent that gets the pattern's input already, which :func:`with_input` cannot wrap."""
    if isinstance(obj, WithInput):
        raise UsageError(
            f"{where} got {obj!r}; its agents get the input already. ff.with_input is for what sees the "
            "results: parallel(merge=), vote(judge=, decide=), map_reduce(reduce=) and sequence steps"
        )
    return as_agent(obj, where)


@dataclass(frozen=True, slots=True, eq=False)
class Map(Pattern):
    agent: Agent
    policy: FailurePolicy = field(default_factory=Collect)
    window: int | None = None
    key: Callable[[Any], Hashable] | None = None
    timeout: float | None = None
    name: str = "map"
    hedge: Hedge | None = None

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
        if self.hedge is None:
            outcomes = await fanout.run()
        else:  # every leaf below, unless it has a hedge of its own
            token = SCOPE.set(self.hedge)
            try:
                outcomes = await fanout.run()
            finally:
                SCOPE.reset(token)
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
    hedge: Hedge | None = None,
) -> Map:
    """One agent over many inputs; results in input order.

    Inputs may be a list, any iterable or generator, or an async iterable; they are read lazily,
    at most ``window`` in flight. ``policy`` decides what failures do (default: collect them as
    outcomes). ``key(input)`` names each outcome; ``timeout`` bounds each input.
    The value is the list of successful results in input order; ``Result.outcomes`` has one
    outcome per input.
    ``hedge`` sends a backup call for a leaf call below that is slow (``ff.Hedge``).

    >>> ff.run_sync(ff.map(str.upper), ["a", "b"]).output
    ['A', 'B']
    """
    check_window("map", window)
    _check_timeout("map", timeout)
    policy = policy or Collect()
    check_policy("map", policy)
    check_hedge("map", hedge)
    return Map(as_worker(agent, "map"), policy, window, key, timeout, hedge=hedge)


@dataclass(frozen=True, slots=True, eq=False)
class Parallel(Pattern):
    agents: tuple[Agent, ...]
    names: tuple[str, ...]
    policy: FailurePolicy = field(default_factory=Collect)
    timeout: float | None = None
    merge: Step | None = None
    name: str = "parallel"

    async def run(self, input: Any, ctx: Context, /) -> Any:
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
        results = {self.names[o.index]: o.value for o in outcomes if o.status is Status.SUCCEEDED}
        if self.merge is None:
            return results
        merge, value = fed(self.merge, input, results)
        return await run_step(merge, value, ctx.child("merge", 0, "merge"))


def parallel(
    *agents: Any,
    names: Iterable[str] | None = None,
    merge: Any = None,
    policy: FailurePolicy | None = None,
    timeout: float | None = None,
    **named: Any,
) -> Parallel:
    """Several agents on one input, all at once; the value maps each agent's name to its result.

    Names come from the agents (a function's name), from keywords, or from ``names`` (one per
    positional agent). The same name twice is numbered from its second use, so one agent may run
    several times::

        ff.parallel(skeptic, optimist)            # {'skeptic': ..., 'optimist': ...}
        ff.parallel(fast=model_a, careful=model_b)
        ff.parallel(spanish, spanish)             # {'spanish': ..., 'spanish#2': ...}
        ff.parallel(spanish, spanish, names=["first", "second"])

    ``merge`` (a function or an agent) receives that dict and its result is the value; wrapped
    in :func:`with_input` it receives the input too.
    """
    positional = list(agents)
    if names is not None:
        labels = [names] if isinstance(names, str) else list(names)
        if len(labels) != len(positional) or not all(isinstance(n, str) and n for n in labels):
            raise UsageError(
                f"parallel(names={names!r}) names the {len(positional)} agent(s) passed by position: pass a list "
                f"of {len(positional)} non-empty strings"
            )
    else:
        labels = [agent_name(a) for a in positional]
    pairs = [(n, as_worker(a, "parallel")) for n, a in zip(labels, positional, strict=True)]
    pairs += [(name, as_worker(a, "parallel")) for name, a in named.items()]
    if not pairs:
        raise UsageError("parallel() got no agents; pass at least one: ff.parallel(a, b)")
    _check_timeout("parallel", timeout)
    policy = policy or Collect()
    check_policy("parallel", policy)
    keys = numbered([n for n, _ in pairs])
    step = None if merge is None else as_step(merge, "parallel(merge=...)")
    return Parallel(tuple(a for _, a in pairs), tuple(keys), policy, timeout, step)


def numbered(names: list[str]) -> list[str]:
    """Each name as it is, and a name met again numbered from its second use: ``a``, ``a#2``
    (skipping a number another name already takes)."""
    taken = set(names)
    seen: dict[str, int] = {}
    keys: list[str] = []
    for name in names:
        count = seen.get(name, 0) + 1
        key = name
        while count > 1 and (key := f"{name}#{count}") in taken:
            count += 1
        seen[name] = count
        taken.add(key)
        keys.append(key)
    return keys


@dataclass(frozen=True, slots=True, eq=False)
class Sequence(Pattern):
    steps: tuple[Step, ...]
    name: str = "sequence"

    async def run(self, input: Any, ctx: Context, /) -> Any:
        value = input
        for index, step in enumerate(self.steps):
            agent, given = fed(step, input, value)
            value = await run_step(agent, given, ctx.child("sequence", index))
        return value


def sequence(*steps: Any) -> Sequence:
    """Run agents one after another, each on the previous one's result.

    A step wrapped in :func:`with_input` also receives the sequence's input. A step that fails,
    times out or skips ends the sequence with that outcome."""
    if not steps:
        raise UsageError("sequence() got no steps; pass at least one agent: ff.sequence(extract, classify)")
    return Sequence(tuple(as_step(s, "sequence") for s in steps))


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

    Racers see the input already, so there is nothing for :func:`with_input` to pass along.
    """
    if not agents:
        raise UsageError("race() got no agents; pass at least two: ff.race(fast, slow)")
    if isinstance(stagger, bool) or not isinstance(stagger, int | float) or stagger < 0:
        raise UsageError(f"race(stagger={stagger!r}): pass seconds >= 0")
    _check_timeout("race", timeout)
    names = [agent_name(a) for a in agents]
    labels = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
    return Race(tuple(as_worker(a, "race") for a in agents), tuple(labels), stagger, timeout)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
