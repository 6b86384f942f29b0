"""``ff.adapt``: another framework's agent, with options that recognising it by type cannot give."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fanfold._adapters._base import ForeignAgent
from fanfold._agent import as_agent
from fanfold._errors import UsageError


def adapt(
    agent: Any,
    *,
    name: str | None = None,
    resources: Iterable[str] | None = None,
    governed: bool | None = None,
) -> ForeignAgent:
    """Adapt another framework's agent (agno, Google ADK, LangChain/LangGraph, OpenAI Agents SDK,
    CrewAI) with options. Patterns and teams adapt them on their own; use this to name one, to
    put its runs on ``resources`` (when it runs as one leaf), or to say whether its model calls
    go through a client fanfold lent it (``governed``; found by looking through it otherwise).

    >>> async def check(claim: str) -> str:
    ...     return "holds"
    >>> ff.adapt(check)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fanfold.UsageError: ff.adapt(<function check ...>): not an agent of a framework fanfold adapts ...
    """
    adapted = as_agent(agent, where="ff.adapt")
    if not isinstance(adapted, ForeignAgent):
        raise UsageError(
            f"ff.adapt({agent!r}): not an agent of a framework fanfold adapts (agno, Google ADK, LangChain, "
            "LangGraph, OpenAI Agents SDK, CrewAI); pass a function or an object with async run(input, ctx) "
            "to a pattern directly"
        )
    if name is None and resources is None and governed is None:
        return adapted
    return type(adapted)(
        agent,
        name=name or adapted.name,
        resources=resources,
        governed=adapted.governed if governed is None else governed,
    )
