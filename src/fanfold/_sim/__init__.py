"""A simulated LLM provider: a real HTTP server on loopback that speaks OpenAI's Chat Completions
and Responses APIs and Anthropic's Messages API, with a provider's rate limits, latency, faults
and deterministic answers. Public through :mod:`fanfold.testing`.

Modules: ``_config`` (what to simulate), ``_buckets`` (the provider-side rate limiter),
``_answers`` and ``_schema`` (answers, token counts, JSON-schema filler), ``_wire`` (the seam
between the core and a wire format), ``_openai``, ``_responses`` and ``_anthropic`` (the wire
formats), ``_server`` (the HTTP handlers), ``_stats`` (counters), ``_provider`` (the server's
lifecycle).
"""

from fanfold._sim._answers import count_tokens, fill_schema
from fanfold._sim._buckets import DEFAULT_OUTPUT_RESERVATION
from fanfold._sim._config import Faults, Latency, RampLimit, Reply, SimLimits, SimRequest
from fanfold._sim._provider import SimulatedProvider
from fanfold._sim._stats import SimStats

__all__ = [
    "DEFAULT_OUTPUT_RESERVATION",
    "Faults",
    "Latency",
    "RampLimit",
    "Reply",
    "SimLimits",
    "SimRequest",
    "SimStats",
    "SimulatedProvider",
    "count_tokens",
    "fill_schema",
]
