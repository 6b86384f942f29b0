"""Adapters for other frameworks' agents (agno, Google ADK, LangChain and LangGraph, the OpenAI
Agents SDK, CrewAI), and the governed SDK clients fanfold lends them. One module per framework,
named in ``fanfold._agent``'s table by the framework's top-level package and loaded on first use."""
