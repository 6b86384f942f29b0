"""The LLM wing: agents on pydantic-ai whose every model request is a governed leaf call.

``_agent`` holds ``ff.llm`` and the governed pydantic-ai model; ``_model_call`` a model's
governance within a run (budget, admission, retries, the provider's word); ``_providers`` how a
model is named, which resource it is, and how its client is built.
"""
