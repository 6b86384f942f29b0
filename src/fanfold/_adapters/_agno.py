"""agno's ``Agent``, ``Team`` and ``Workflow`` as fanfold agents, through ``arun``.

agno reports a failed run as an answer (``RunOutput.status == RunStatus.error``, the message in
``content``) rather than raising: fanfold raises :class:`ForeignAgentError` with that message.
Usage is the run's ``metrics`` (a workflow's, summed over its steps). Each input runs in a
session of its own, so concurrent runs of one agent share no history.
"""

from __future__ import annotations

import uuid
from typing import Any

from fanfold._adapters._base import ForeignAgent, ForeignAgentError, require, telemetry_off
from fanfold._context import Context
from fanfold._usage import Usage

telemetry_off("AGNO_TELEMETRY")


class AgnoAgent(ForeignAgent):
    """An agno ``Agent``, ``Team`` or ``Workflow``."""

    framework = "agno"

    async def invoke(self, input: Any, ctx: Context) -> tuple[Any, Usage]:
        run_status = require("agno.run.base", "agno").RunStatus
        output = await self.agent.arun(input, session_id=f"fanfold-{uuid.uuid4().hex}")
        status = getattr(output, "status", None)
        if status in (run_status.error, run_status.cancelled):
            raise ForeignAgentError(f"agno {self.name!r} ended {status.value}: {output.content}")
        return output.content, usage_of(getattr(output, "metrics", None))


def usage_of(metrics: Any) -> Usage:
    """Tokens of a run's metrics; a workflow's are the sum over its steps."""
    if metrics is None:
        return Usage()
    steps = getattr(metrics, "steps", None)
    if isinstance(steps, dict):
        total = Usage()
        for step in steps.values():
            total += usage_of(getattr(step, "metrics", None))
        return total
    details = getattr(metrics, "details", None) or {}
    calls = details.get("model") if isinstance(details, dict) else None
    return Usage(
        requests=len(calls) if isinstance(calls, list) else 0,
        input_tokens=getattr(metrics, "input_tokens", 0) or 0,
        output_tokens=getattr(metrics, "output_tokens", 0) or 0,
    )


def adapt(obj: Any) -> AgnoAgent:
    return AgnoAgent(obj)
