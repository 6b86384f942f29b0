"""CrewAI crews as fanfold agents, through ``Crew.akickoff``; each run is one leaf.

CrewAI makes its model calls with the *sync* OpenAI client in a worker thread, and lets no
client be supplied but through a private attribute, so fanfold cannot govern its requests one
by one. Instead the whole crew run is one admitted leaf call on ``resources`` (``["crewai"]``
by default: ``ff.Limits(resources={"crewai": 4})``), refused once the
budget is exhausted and charged the crew's ``token_usage``. Each input runs on a copy of the
crew (CrewAI's usage is cumulative per ``Crew`` object). Cancelling the task does not stop the
worker thread: set ``LLM(timeout=...)`` to bound it.

CrewAI cannot be installed beside ``fanfold[openai]`` (it needs ``openai<3``); it is imported
at run time and has no extra of its own.
"""

from __future__ import annotations

from typing import Any

from fanfold._adapters._base import ForeignAgent, require, telemetry_off
from fanfold._context import Context
from fanfold._errors import UsageError
from fanfold._usage import Usage

telemetry_off("CREWAI_DISABLE_TELEMETRY")


class CrewAIAgent(ForeignAgent):
    """A CrewAI ``Crew``."""

    framework = "crewai"

    async def invoke(self, input: Any, ctx: Context) -> tuple[Any, Usage]:
        inputs = input if isinstance(input, dict) else {"input": input}
        crew = self.agent.copy()
        output = await crew.akickoff(inputs=inputs)
        usage = output.token_usage
        return output.raw, Usage(
            requests=usage.successful_requests, input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens
        )


def adapt(obj: Any) -> CrewAIAgent:
    crew_class = require("crewai", "crewai").Crew
    if not isinstance(obj, crew_class):
        raise UsageError(
            f"{obj!r} comes from CrewAI, but is not a Crew; fanfold runs crews (Crew(agents=..., tasks=...))"
        )
    return CrewAIAgent(obj, governed=False)
