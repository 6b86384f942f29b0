"""Google ADK agents as fanfold agents: run by an ``InMemoryRunner``, one session per input.

A runner is built once per fanfold run and agent (and closed when the run ends); each input
gets a session of its own. Model or transport exceptions propagate out of ``run_async`` as ADK
raises them; a failure the model reports as an event (``error_code``/``error_message``) raises
:class:`ForeignAgentError` with its message. The answer is the final response's text; usage
is summed over the events' ``usage_metadata``.
"""

from __future__ import annotations

from typing import Any

from fanfold._adapters._base import ForeignAgent, ForeignAgentError, require, telemetry_off
from fanfold._context import Context
from fanfold._errors import UsageError
from fanfold._usage import Usage

telemetry_off("LITELLM_LOCAL_MODEL_COST_MAP")

_APP = "fanfold"
_USER = "fanfold"


class ADKAgent(ForeignAgent):
    """A Google ADK agent (``LlmAgent``, or any ``BaseAgent``)."""

    framework = "adk"

    async def invoke(self, input: Any, ctx: Context) -> tuple[Any, Usage]:
        types = require("google.genai.types", "adk")
        runner = self._runner(ctx)
        session = await runner.session_service.create_session(app_name=_APP, user_id=_USER)
        text = input if isinstance(input, str) else str(input)
        message = types.Content(role="user", parts=[types.Part(text=text)])
        final: str | None = None
        usage = Usage()
        errors: list[str] = []
        async for event in runner.run_async(user_id=_USER, session_id=session.id, new_message=message):
            meta = event.usage_metadata
            if meta is not None:
                usage += Usage(
                    requests=1,
                    input_tokens=meta.prompt_token_count or 0,
                    output_tokens=meta.candidates_token_count or 0,
                )
            if event.error_code or event.error_message:
                errors.append(f"{event.error_code}: {event.error_message}")
            if event.is_final_response() and event.content and event.content.parts:
                final = "".join(part.text or "" for part in event.content.parts)
        if errors:
            raise ForeignAgentError(f"ADK agent {self.name!r} reported: {'; '.join(errors)}")
        return final, usage

    def _runner(self, ctx: Context) -> Any:
        """This run's runner for the agent (ADK runners hold their sessions)."""
        state = ctx.run_state
        key = ("adk-runner", id(self))
        runner = state.services.get(key)
        if runner is None:
            runners = require("google.adk.runners", "adk")
            runner = state.services[key] = runners.InMemoryRunner(agent=self.agent, app_name=_APP)
            state.cleanups.append(runner.close)
        return runner


def adapt(obj: Any) -> ADKAgent:
    if not type(obj).__module__.startswith("google.adk."):
        raise UsageError(
            f"{obj!r} comes from the package 'google', but is not a Google ADK agent; "
            "pass an ADK agent (LlmAgent, ...), or wrap your object with ff.agent"
        )
    return ADKAgent(obj)
