"""LangChain runnables and LangGraph compiled graphs as fanfold agents, through ``ainvoke``.

The input goes to ``ainvoke`` as it is, except a string given to a graph, which becomes
``{"messages": [("user", text)]}``; a chat model's message answer becomes its text. Usage is
what LangChain's usage callback saw across the whole run (every chat model of a graph).
Errors raise as LangChain raises them.
"""

from __future__ import annotations

from typing import Any

from fanfold._adapters._base import ForeignAgent, require
from fanfold._context import Context
from fanfold._errors import UsageError
from fanfold._usage import Usage


class LangChainAgent(ForeignAgent):
    """A LangChain ``Runnable`` (a chain, a chat model) or a LangGraph compiled graph."""

    framework = "langchain"

    async def invoke(self, input: Any, ctx: Context) -> tuple[Any, Usage]:
        callbacks = require("langchain_core.callbacks", "langchain")
        messages = require("langchain_core.messages", "langchain")
        value = {"messages": [("user", input)]} if isinstance(input, str) and _is_graph(self.agent) else input
        with callbacks.get_usage_metadata_callback() as seen:
            output = await self.agent.ainvoke(value)
        usage = Usage()
        for metadata in seen.usage_metadata.values():
            usage += Usage(input_tokens=metadata["input_tokens"], output_tokens=metadata["output_tokens"])
        if isinstance(output, messages.BaseMessage):
            content = output.content
            return (content if isinstance(content, str) else str(output.text)), usage
        return output, usage


def _is_graph(obj: Any) -> bool:
    return type(obj).__module__.startswith("langgraph.")


def adapt(obj: Any) -> LangChainAgent:
    runnables = require("langchain_core.runnables", "langchain")
    if not isinstance(obj, runnables.Runnable):
        raise UsageError(
            f"{obj!r} comes from LangChain, but is not a Runnable (a chain, a chat model or a compiled graph); "
            "pass one, or wrap your object with ff.agent"
        )
    return LangChainAgent(obj)
