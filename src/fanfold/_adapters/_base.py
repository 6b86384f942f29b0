"""What every adapter of another framework's agent shares: governed, or one leaf.

An adapted agent runs the framework's own async entry point on each input. How fanfold governs
it depends on whether its model calls go through a client fanfold lent it
(``ff.openai_client``, ``ff.anthropic_client``; found by looking through the agent's objects):

- **governed**: the agent is a composite, like ``ff.llm``: it holds no slot, and each of its
  model requests is a leaf call of its own (admitted, budgeted, retried, counted) on the
  provider resource. Usage comes from those requests; what the framework reports beyond them
  (a model it calls through a client of its own) is charged once the run ends.
- **one leaf**: otherwise the whole agent run is one admitted leaf call, on ``resources``
  (``[<framework>]`` by default: ``ff.Limits(resources={"crewai": 4})`` bounds
  it), refused once the budget is exhausted, and charged what the framework reports.

Frameworks that report a failure instead of raising it (agno's ``RunStatus.error``, ADK's
error events) raise :class:`ForeignAgentError` with the framework's message; a fanfold error
that stopped one of the agent's requests (the budget, a timeout) is raised as itself, whatever
the framework made of it. Cancelling the task cancels the framework's run.
"""

from __future__ import annotations

import abc
import functools
import inspect
import os
from collections.abc import Iterable
from typing import Any, ClassVar

from fanfold._adapters._clients import _FOREIGN, ForeignRun, is_governed_client
from fanfold._agent import agent_name
from fanfold._context import Context
from fanfold._errors import RunError, UsageError
from fanfold._usage import Usage

# Switches that keep the frameworks from calling home (set unless the user set them).
TELEMETRY_OFF = {
    "AGNO_TELEMETRY": "false",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
}


def telemetry_off(*names: str) -> None:
    for name in names:
        os.environ.setdefault(name, TELEMETRY_OFF[name])


class ForeignAgentError(RunError):
    """Another framework's agent reported that its run failed; the message is the framework's."""


def require(module: str, extra: str) -> Any:
    """Import a framework's module, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"this agent needs {module} ({exc}): pip install 'fanfold[{extra}]'") from None


class ForeignAgent(abc.ABC):
    """An agent of another framework, adapted. Immutable once built: any number of runs at once."""

    framework: ClassVar[str]

    def __init__(
        self,
        obj: Any,
        *,
        name: str | None = None,
        resources: Iterable[str] | None = None,
        governed: bool | None = None,
    ) -> None:
        if isinstance(resources, str):
            raise UsageError(f"adapt(resources={resources!r}) takes a list of names; pass [{resources!r}]")
        self.agent = obj
        self.name = name or agent_name(obj)
        self.governed = uses_governed_client(obj) if governed is None else governed
        self.composite = self.governed  # governed: each model request is the leaf, not the run
        self.resources: tuple[str, ...] = tuple(resources) if resources is not None else (self.framework,)
        if self.governed:
            self.resources = ()
        self.retry = None
        self.timeouts = None

    def __repr__(self) -> str:
        how = "governed" if self.governed else "one leaf"
        return f"<{self.framework} agent {self.name} ({how})>"

    @abc.abstractmethod
    async def invoke(self, input: Any, ctx: Context) -> tuple[Any, Usage]:
        """Run the framework's agent on ``input``: its output, and the usage it reports."""

    async def run(self, input: Any, ctx: Context) -> Any:
        if self.governed:
            return await self._run_governed(input, ctx)
        return await self._run_leaf(input, ctx)

    async def _run_governed(self, input: Any, ctx: Context) -> Any:
        foreign = ForeignRun(ctx)
        token = _FOREIGN.set(foreign)
        before = ctx.usage or Usage()
        try:
            output, reported = await self.invoke(input, ctx)
        except Exception as exc:
            if foreign.error is not None:
                raise foreign.error from exc
            raise
        finally:
            _FOREIGN.reset(token)
        if foreign.error is not None:  # the framework reported it as an answer
            raise foreign.error
        after = ctx.usage or Usage()
        # What the framework spent through clients fanfold did not lend: charge it once.
        rest = Usage(
            requests=max(0, reported.requests - (after.requests - before.requests)),
            input_tokens=max(0, reported.input_tokens - (after.input_tokens - before.input_tokens)),
            output_tokens=max(0, reported.output_tokens - (after.output_tokens - before.output_tokens)),
        )
        if rest.tokens or rest.requests:
            ctx.charge(rest)
            ctx.run_state.ledger.spent += rest
        return output

    async def _run_leaf(self, input: Any, ctx: Context) -> Any:
        ledger = ctx.run_state.ledger
        await ledger.reserve(0.0, 0.0)  # refused once the budget is exhausted
        spent = Usage()
        try:
            output, spent = await self.invoke(input, ctx)
        finally:
            ledger.settle(0.0, 0.0, spent)
            ctx.charge(spent)
        return output


def uses_governed_client(obj: Any, limit: int = 20_000) -> bool:
    """Whether a client fanfold lent is reachable from ``obj`` (its attributes, fields, items,
    closures), looking at no more than ``limit`` objects."""
    seen: set[int] = set()
    stack = [obj]
    while stack and len(seen) < limit:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (_LEAVES, type)):
            continue
        seen.add(id(item))
        if is_governed_client(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
            continue
        if isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
            continue
        if type(item).__module__ in _OPAQUE and not callable(item):
            continue
        stack.extend(_parts(item))
    return False


_LEAVES = (str, bytes, int, float, bool, type(None), type(os))
_OPAQUE = ("builtins", "asyncio", "threading", "logging", "weakref")


def _parts(item: Any) -> list[Any]:
    parts: list[Any] = []
    attributes = getattr(item, "__dict__", None)
    if isinstance(attributes, dict):
        parts.extend(attributes.values())
    for holder in ("__pydantic_private__", "__pydantic_extra__"):
        extra = getattr(item, holder, None) if attributes is not None else None
        if isinstance(extra, dict):
            parts.extend(extra.values())
    for slot in getattr(type(item), "__slots__", ()):
        if isinstance(slot, str) and not slot.startswith("__"):
            parts.append(getattr(item, slot, None))
    closure = getattr(item, "__closure__", None)
    if closure:
        for cell in closure:
            try:
                parts.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
    if isinstance(item, functools.partial):
        parts.extend((item.func, *item.args, *item.keywords.values()))
    elif inspect.ismethod(item):
        parts.extend((item.__self__, item.__func__))
    return parts
