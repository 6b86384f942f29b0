"""Backends: where a leaf's work executes.

A run's scheduler, its governor (in-process or in Redis) and its journal always stay with the
driver, the process that called ``ff.run``. A backend decides only where the *work* of a leaf
agent runs, inside the one leaf boundary (``AgentCall.send`` asks the run's backend), so
admission, retries, timeouts, budgets, events, outcomes and the journal hold unchanged::

    "threads"     the default: sync function agents in the run's thread pool, the rest on the loop
    "processes"   sync function agents in a local process pool        (fanfold._backends._processes)
    "ray"         sync function agents as tasks on a Ray cluster      (fanfold._backends._ray)

What is shipped to a process or a node is a sync function agent's function and its input (and,
for a function that takes the context, a :class:`TaskInfo` snapshot of it): plain, picklable
data. Everything else stays on the driver: composites (patterns, teams) never run remotely, their
leaves do; async function agents and agent objects run on the driver's event loop, where their
I/O is concurrent already (a process would add a loop per worker and gain nothing); model-calling
agents (``ff.llm``) stay because their governor, the one that shares a provider's limits, is here.

The backends are loaded by name from :data:`_BACKENDS`: the core names its wing, it does not
import it, and a backend's heavy dependency (Ray) loads only when a run uses it.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fanfold._agent import FunctionAgent
from fanfold._errors import Retry, UsageError

if TYPE_CHECKING:
    from fanfold._context import Context


class WorkerLost(Retry):
    """The process or node running a leaf's work died before it answered (a crashed or killed
    worker, a lost node). The input is not lost: like ``ff.Retry``, every retry policy retries
    it, within its attempts and time bounds."""


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """What a function agent that takes the context receives on a process or a Ray node: a
    plain snapshot of its :class:`~fanfold.Context` (the live context holds the run's state,
    which stays with the driver). Channels are not reachable from there: return the value."""

    run_id: str
    path: str
    attempt: int
    index: int

    def publish(self, channel: Any, value: Any) -> None:
        raise UsageError(
            f"ctx.publish({getattr(channel, 'name', channel)!r}, ...) in {self.path}: channels live on the driver "
            "and this task runs on another process; return the value instead, or use backend='threads'"
        )


class Backend(abc.ABC):
    """Where the work of sync function agents runs. Subclasses implement :meth:`call`, and
    :meth:`aclose` if they hold anything; the run starts nothing until a leaf needs it."""

    name: ClassVar[str]

    def run(self, agent: Any, value: Any, ctx: Context) -> Awaitable[Any]:
        """A leaf agent's work on ``value``: shipped if it is a sync function agent, else run here."""
        if not isinstance(agent, FunctionAgent) or agent.is_async:
            return agent.run(value, ctx)  # type: ignore[no-any-return]
        if agent.takes_ctx:
            return self.call(agent.fn, (value, TaskInfo(ctx.run_id, ctx.path, ctx.attempt, ctx.index)))
        return self.call(agent.fn, (value,))

    def for_run(self) -> Backend:
        """This backend's own copy for one run, started by nothing yet: the instance a user
        passes is its configuration, and two runs given the same one do not share a pool."""
        return self

    @abc.abstractmethod
    async def call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """Call ``fn(*args)`` where this backend runs work, and return its value (or raise its
        exception; a lost worker raises :class:`WorkerLost`). Cancelling the call cancels the
        work where the backend can."""

    async def aclose(self) -> None:
        """Release what the backend started (a pool, a connection): the run has ended."""
        return  # nothing to release by default (not abstract: a backend may hold nothing)


class Threads(Backend):
    """The default: a leaf's work runs in the driver (sync functions in the run's thread pool)."""

    name = "threads"

    def run(self, agent: Any, value: Any, ctx: Context) -> Awaitable[Any]:
        return agent.run(value, ctx)  # type: ignore[no-any-return]

    async def call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        raise NotImplementedError  # run() never ships anything


# name -> "module:factory"; a factory takes the text after "name://" (an address), or None.
_BACKENDS = {
    "processes": "fanfold._backends._processes:Processes",
    "ray": "fanfold._backends._ray:Ray",
}

BackendOption = Backend | str | None


def open_backend(option: BackendOption) -> Backend:
    """The backend an option names: None or ``"threads"``, ``"processes"``, ``"ray"``,
    ``"ray://host:port"`` (a Ray client address), or a :class:`Backend` instance."""
    if option is None or option == "threads":
        return _THREADS
    if isinstance(option, Backend):
        return option
    if not isinstance(option, str):
        raise UsageError(f"backend={option!r}: pass 'threads', 'processes', 'ray', ff.Processes(...) or ff.Ray(...)")
    name = option.partition("://")[0]
    target = _BACKENDS.get(name)
    if target is None:
        known = ", ".join(repr(n) for n in ("threads", *_BACKENDS))
        raise UsageError(f"backend={option!r}: no such backend; pass one of {known}, or 'ray://host:port'")
    module, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(f"{module}"), attr)
    backend: Backend = factory(address=option) if "://" in option else factory()
    return backend


def check_backend(option: object) -> None:
    """Check a ``backend=`` option without starting anything (names only; instances as they are)."""
    if option is None or isinstance(option, Backend):
        return
    if not isinstance(option, str) or option.partition("://")[0] not in ("threads", *_BACKENDS):
        raise UsageError(
            f"backend={option!r}: pass 'threads' (the default), 'processes', 'ray', 'ray://host:port', "
            "ff.Processes(workers=...) or ff.Ray(address=...)"
        )
    if option.startswith(("threads://", "processes://")):
        raise UsageError(f"backend={option!r}: only 'ray://host:port' takes an address; pass {option.split(':')[0]!r}")


_THREADS = Threads()
