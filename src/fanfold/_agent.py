"""Agents: anything with ``async run(input, ctx) -> output``, and plain functions made into one."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, overload, runtime_checkable

from fanfold._errors import UsageError
from fanfold._hedge import Hedge, check_hedge
from fanfold._retry import RetryPolicy, Timeouts

if TYPE_CHECKING:
    from fanfold._context import Context


@runtime_checkable
class Agent(Protocol):
    """Anything with ``async run(input, ctx) -> output`` is an agent.

    An agent that is not a fanfold pattern is a *leaf*: the runtime admits it through the
    limiter, retries it and times it out. Leaves may set ``resources``, ``retry`` and ``timeouts``
    attributes to override the run's defaults.
    """

    async def run(self, input: Any, ctx: Context, /) -> Any: ...


@dataclass(frozen=True, slots=True, eq=False)
class FunctionAgent:
    """A plain function, sync or async, as an agent. Sync functions run in the run's worker
    threads; what one returns that is still to be awaited (a coroutine, a future, any
    awaitable) is awaited on the run's loop. The function takes the input, and optionally the
    :class:`Context` as a second parameter. Calling the agent calls the function."""

    fn: Callable[..., Any]
    name: str
    takes_ctx: bool
    is_async: bool
    resources: tuple[str, ...] = ()
    retry: RetryPolicy | None = None
    timeouts: Timeouts | None = None
    hedge: Hedge | None = None

    async def run(self, input: Any, ctx: Context, /) -> Any:
        args = (input, ctx) if self.takes_ctx else (input,)
        if self.is_async:
            return await self.fn(*args)
        result = await ctx.run_state.to_thread(self.fn, *args)
        # A sync function may hand back work still to do (``lambda x: chain.ainvoke(x)``): a
        # coroutine, a future or any awaitable is awaited here, on the loop, not taken as the value.
        if isinstance(result, concurrent.futures.Future):
            return await asyncio.wrap_future(result)
        if inspect.isawaitable(result):
            return await result
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<agent {self.name}>"


@overload
def agent(fn: Callable[..., Any], /) -> FunctionAgent: ...
@overload
def agent(
    *,
    name: str | None = None,
    resources: Iterable[str] = (),
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
    hedge: Hedge | None = None,
) -> Callable[[Callable[..., Any]], FunctionAgent]: ...
def agent(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    resources: Iterable[str] = (),
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
    hedge: Hedge | None = None,
) -> FunctionAgent | Callable[[Callable[..., Any]], FunctionAgent]:
    """Make a function, sync or async, an agent. Use bare or with options::

    @ff.agent
    async def summarize(doc: str) -> str: ...

    @ff.agent(resources=["db"], retry=ff.RetryPolicy(retry_on=ConnectionError))
    def lookup(row, ctx): ...
    """
    if isinstance(resources, str):
        raise UsageError(f"agent(resources={resources!r}) takes a list of names; pass [{resources!r}]")
    names = tuple(resources)
    check_hedge("agent", hedge)

    def wrap(f: Callable[..., Any]) -> FunctionAgent:
        return _function_agent(f, name=name, resources=names, retry=retry, timeouts=timeouts, hedge=hedge)

    return wrap if fn is None else wrap(fn)


def _function_agent(
    fn: Callable[..., Any],
    *,
    name: str | None,
    resources: tuple[str, ...],
    retry: RetryPolicy | None,
    timeouts: Timeouts | None,
    hedge: Hedge | None = None,
) -> FunctionAgent:
    if not callable(fn):
        raise UsageError(
            f"agent() got {fn!r}, which is not callable; pass a function or an object with async run(input, ctx)"
        )
    target = fn.func if isinstance(fn, functools.partial) else fn
    is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(target).__call__)
    default_name: str = getattr(target, "__name__", None) or type(target).__name__
    return FunctionAgent(
        fn=fn,
        name=name or default_name,
        takes_ctx=_takes_ctx(fn),
        is_async=is_async,
        resources=resources,
        retry=retry,
        timeouts=timeouts,
        hedge=hedge,
    )


def _takes_ctx(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False  # builtins without a signature take the input alone
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return False
    required = [p for p in positional if p.default is p.empty]
    if not positional:
        raise UsageError(
            f"{getattr(fn, '__name__', fn)!r} takes no positional parameter; an agent function takes "
            "the input, and optionally the context: def f(input) or def f(input, ctx)"
        )
    if len(required) > 2:
        raise UsageError(
            f"{getattr(fn, '__name__', fn)!r} requires {len(required)} arguments; an agent function takes "
            "the input, and optionally the context: def f(input) or def f(input, ctx)"
        )
    return len(positional) >= 2 and (len(required) == 2 or positional[1].name == "ctx")


# Agents of other libraries, recognised by the top-level package their type comes from, and
# adapted by the wing named here (loaded on first use: the core names its wings, it does not
# import them). A pydantic-ai Agent or Model has an async run of its own, with another signature:
# ff.llm wraps it, so that its model requests are governed like any ff.llm agent's.
# Other frameworks' agents are adapted by fanfold._adapters (one module each, behind an extra).
_ADAPTERS = {
    "pydantic_ai": "fanfold._llm._agent:llm",
    "agno": "fanfold._adapters._agno:adapt",
    "google": "fanfold._adapters._adk:adapt",  # google.adk
    "langchain": "fanfold._adapters._langchain:adapt",
    "langchain_core": "fanfold._adapters._langchain:adapt",
    "langchain_openai": "fanfold._adapters._langchain:adapt",
    "langchain_anthropic": "fanfold._adapters._langchain:adapt",
    "langgraph": "fanfold._adapters._langchain:adapt",
    "agents": "fanfold._adapters._openai_agents:adapt",  # the OpenAI Agents SDK
    "crewai": "fanfold._adapters._crewai:adapt",
}


def is_composite(agent: Any) -> bool:
    """Composites (patterns, teams, LLM agents) hold no slot; everything else is a leaf."""
    return getattr(agent, "composite", False) is True


def as_agent(obj: Any, where: str = "agent") -> Agent:
    """Coerce a function or an agent object into an agent, or say what to pass instead."""
    if isinstance(obj, FunctionAgent):
        return obj
    adapter = _ADAPTERS.get(type(obj).__module__.partition(".")[0])
    if adapter is not None:
        module, _, name = adapter.partition(":")
        adapted: Agent = getattr(importlib.import_module(module), name)(obj)
        return adapted
    run = getattr(obj, "run", None)
    if isinstance(obj, type) and inspect.iscoroutinefunction(run):
        raise UsageError(f"{where} got the class {obj.__name__}; pass an instance: {obj.__name__}(...)")
    if run is not None and inspect.iscoroutinefunction(run):
        return obj  # type: ignore[no-any-return]
    if callable(obj):
        return _function_agent(obj, name=None, resources=(), retry=None, timeouts=None)
    raise UsageError(
        f"{where} got {obj!r}; pass a function (sync or async) or an object with an async method run(input, ctx)"
    )


def agent_name(obj: Any) -> str:
    for attribute in ("name", "__name__"):
        name = getattr(obj, attribute, None)
        if isinstance(name, str) and name:
            return name
    return type(obj).__name__
