"""OpenAI Agents SDK agents as fanfold agents, through ``Runner.run``.

Tracing is off for fanfold's runs (``RunConfig(tracing_disabled=True)``, and
``OPENAI_AGENTS_DISABLE_TRACING=1`` unless set). Usage is the run's
``context_wrapper.usage``. Errors raise as the SDK raises them.
"""

from __future__ import annotations

from typing import Any

from fanfold._adapters._base import ForeignAgent, require, telemetry_off
from fanfold._context import Context
from fanfold._errors import UsageError
from fanfold._usage import Usage

telemetry_off("OPENAI_AGENTS_DISABLE_TRACING")


class OpenAIAgent(ForeignAgent):
    """An OpenAI Agents SDK ``Agent``."""

    framework = "openai-agents"

    async def invoke(self, input: Any, ctx: Context) -> tuple[Any, Usage]:
        agents = require("agents", "openai-agents")
        prompt = input if isinstance(input, str | list) else str(input)
        result = await agents.Runner.run(self.agent, prompt, run_config=agents.RunConfig(tracing_disabled=True))
        usage = result.context_wrapper.usage
        return result.final_output, Usage(
            requests=usage.requests, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens
        )


def adapt(obj: Any) -> OpenAIAgent:
    agents = require("agents", "openai-agents")
    if not isinstance(obj, agents.Agent):
        raise UsageError(
            f"{obj!r} comes from the package 'agents', but is not an OpenAI Agents SDK Agent; "
            "pass an agents.Agent, or wrap it with ff.agent"
        )
    return OpenAIAgent(obj)
