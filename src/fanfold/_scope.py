"""Channels scoped to a subtree: ``ff.scope(spec, channels=[...])``.

A channel nobody declares is the run's: every task of the run publishes to it and reads it, and
``Result.channels`` has its final value. A scope declares channels at its own task, so that the
publishes of the tasks below it merge there, apart from every other subtree (each input of a
``map`` over a scope gets channels of its own), and reads below it see only that subtree's
merged publishes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fanfold._agent import Agent, agent_name, as_agent
from fanfold._context import Channel, Context
from fanfold._errors import UsageError
from fanfold._patterns import Pattern
from fanfold._task import run_step


@dataclass(frozen=True, slots=True, eq=False)
class Scope(Pattern):
    """A subtree with channels of its own; see :func:`scope`."""

    agent: Agent
    channels: tuple[Channel[Any], ...]
    name: str = "scope"

    async def run(self, input: Any, ctx: Context, /) -> Any:
        ctx.declare(self.channels)
        return await run_step(self.agent, input, ctx.child("scope", 0, agent_name(self.agent)))


def scope(agent: Any, *, channels: Iterable[Channel[Any]]) -> Scope:
    """Run ``agent`` (any agent or pattern) with ``channels`` scoped to it: what its tasks
    publish merges within this subtree only, and what they read is that merge. A step that
    follows in the same subtree reads the total::

        notes = ff.Channel("notes", merge=lambda a, b: a + b, initial=())
        per_doc = ff.scope(ff.sequence(ff.parallel(skim, check), summarize), channels=[notes])
        ff.map(per_doc)   # each document's notes are its own; summarize reads ctx.read(notes)

    A scoped channel's value stays in its subtree (it is not in ``Result.channels``).
    """
    declared = list(channels) if isinstance(channels, Iterable) else [channels]
    bad = next((c for c in declared if not isinstance(c, Channel)), None)
    if bad is not None or not declared:
        raise UsageError(
            f"scope(channels={channels!r}): pass a list of ff.Channel to scope, e.g. channels=[ff.Channel('n', ...)]"
        )
    names = [c.name for c in declared]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"scope(channels=...) declares the channel {twice[0]!r} twice; declare each once")
    return Scope(as_agent(agent, "scope"), tuple(declared))
