"""What a team's helpers need of the team, and of its leader, as two small protocols.

The plan's runner (:mod:`~fanfold._teams._schedule`) and the delegate tool
(:mod:`~fanfold._teams._delegate`) see the team as a :class:`Crew`: its name and policy, its caps,
who is in it, and how one of them is handed a piece of work. They never import the team itself,
so the team imports them and nothing imports back.

An LLM leader is told more for one use (a plan as its output, a delegate tool, a subtask's
instruction) through :class:`Directable`, which ``ff.llm`` agents satisfy: the teams wing finds
LLM agents by that protocol, without importing the LLM wing (and pydantic-ai with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from fanfold._agent import Agent
from fanfold._policy import FailurePolicy
from fanfold._teams._plan import TeamCaps


@runtime_checkable
class Directable(Protocol):
    """An agent whose runs take pydantic-ai's run options: an ``ff.llm`` agent.

    ``with_options`` returns a twin whose runs pass ``run_options`` (``output_type``,
    ``instructions`` added to its own, ``toolsets``, ``capabilities``) to pydantic-ai's
    ``Agent.run``; with ``keep_prompt=False`` it takes its input as the prompt (a string as is,
    anything else as JSON) rather than through its own ``prompt`` function.
    """

    async def run(self, input: Any, ctx: Any, /) -> Any: ...

    def with_options(self, *, keep_prompt: bool = True, **run_options: Any) -> Directable: ...


class Described(Protocol):
    """A member as the leader sees it: its name and what it does."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...


class Crew(Protocol):
    """A team, as its plan's runs and its delegations see it."""

    @property
    def name(self) -> str: ...

    @property
    def policy(self) -> FailurePolicy: ...

    @property
    def caps(self) -> TeamCaps: ...

    @property
    def members(self) -> Sequence[Described]: ...

    def assign(self, member: str, value: Any, instruction: str) -> tuple[Agent, Any]:
        """The agent and the input for one run of the member named ``member`` on ``value``,
        told ``instruction``."""
        ...
