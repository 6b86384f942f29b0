"""Deterministic answers, token counts, and filler that fits a JSON schema.

Token counting, the same rule client-side estimators use::

    input tokens  = ceil(characters / 4) over all text in the request: message text, system
                    text, tool calls' names and arguments, tool results, and the compact JSON
                    (``json.dumps(..., separators=(",", ":"))``) of each tool definition and
                    of a response-format schema
    output tokens = ceil(characters / 4) of the answer text plus each tool call's argument
                    JSON, at least 1, at most the request's max tokens (the answer is cut there
                    and the finish reason says so)

>>> count_tokens("abcde")
2
>>> fill_schema({"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}, "required": ["n"]})
{'n': 3}
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fanfold._errors import UsageError
from fanfold._sim._config import AnswerSetting, Reply, SimRequest
from fanfold._sim._schema import fill_schema

__all__ = ["Answer", "ToolCall", "compact_json", "count_tokens", "fill_schema", "make_answer"]

Draft = tuple[str, list[tuple[str, str]]]  # an answer before the cut: text, [(tool name, arguments JSON)]

_WORDS = (
    *("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "bright", "owls"),
    *("watch", "silver", "rivers", "under", "quiet", "northern", "hills", "and", "patient", "gardeners", "plant"),
)


def count_tokens(text: str) -> int:
    """Tokens in ``text`` by the simulator's rule: a quarter of its characters, rounded up."""
    return math.ceil(len(text) / 4)


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def is_output_tool(name: str) -> bool:
    """pydantic-ai names the tool that carries structured output ``final_result`` (with a
    suffix when there are several output types)."""
    return name.startswith("final_result")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call in an answer: its id, the tool's name and the arguments as JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What the provider sends back, whatever the wire format. ``truncated``: cut at max tokens."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    output_tokens: int
    truncated: bool

    @property
    def calls_tools(self) -> bool:
        return bool(self.tool_calls)


def digest(seed: int, *parts: str) -> str:
    """A short hex digest, stable across processes (unlike ``hash``)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(seed).encode())
    for part in parts:
        h.update(b"\x00" + part.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def pad(text: str, tokens: int | None, salt: str) -> str:
    """Pad (or cut) ``text`` to exactly ``tokens * 4`` characters with words chosen by ``salt``
    (a hex digest).

    >>> pad("Hi", 3, "00ff")
    'Hi rivers un'
    """
    if tokens is None:
        return text
    size = tokens * 4
    if len(text) >= size:
        return text[:size]
    start = int(salt[:4] or "0", 16)
    words: list[str] = [text]
    length = len(text)
    i = start
    while length < size:
        word = " " + _WORDS[i % len(_WORDS)]
        words.append(word)
        length += len(word)
        i += 1
    return "".join(words)[:size]


def default_text(request: SimRequest, seed: int) -> str:
    """``"Simulated answer: "`` and a digest of the last user message (and the model)."""
    return "Simulated answer: " + digest(seed, request.model, request.last_user_text)


def make_answer(setting: AnswerSetting, request: SimRequest, seed: int) -> Answer:
    """The answer to ``request``: from ``setting`` (None, a canned string, a :class:`Reply`, or
    a callable), cut to the request's max tokens."""
    reply = setting(request) if callable(setting) else setting
    if reply is None:
        reply = Reply()
    if isinstance(reply, str):
        reply = Reply(text=reply)
    elif isinstance(reply, Mapping):
        return _finish(request, seed, _structured(request, dict(reply), seed))
    elif not isinstance(reply, Reply):
        raise UsageError(f"the simulator's answer gave {reply!r}; return a str, a dict (structured output) or a Reply")
    if reply.text is None and not reply.tool_calls:
        return _finish(request, seed, _default(request, seed, reply.output_tokens))
    text = pad(reply.text or "", reply.output_tokens, digest(seed, "pad", request.last_user_text))
    calls = [(name, compact_json(dict(args))) for name, args in reply.tool_calls]
    return _finish(request, seed, (text, calls))


def _default(request: SimRequest, seed: int, output_tokens: int | None) -> Draft:
    """Structured output when the request asks for it; otherwise text. Tools that are not
    output tools are called only when the request forces a tool call."""
    forced = request.forced_tool
    if forced is not None and forced in request.tool_schemas:
        return "", [(forced, compact_json(fill_schema(request.tool_schemas[forced])))]
    if request.output_tool is not None or request.output_schema is not None or request.json_mode:
        return _structured(request, None, seed)
    return pad(default_text(request, seed), output_tokens, digest(seed, "pad", request.last_user_text)), []


def _structured(request: SimRequest, data: dict[str, Any] | None, seed: int) -> Draft:
    schema = request.output_schema
    if data is None:  # the default: filler for the schema, or a JSON object when there is none
        data = fill_schema(schema) if schema is not None else {"answer": default_text(request, seed)}
    if request.output_tool is not None:
        return "", [(request.output_tool, compact_json(data))]
    return compact_json(data), []


def _finish(request: SimRequest, seed: int, draft: Draft) -> Answer:
    """Cut the draft at the request's max tokens (text first, then each call's arguments) and
    give each tool call an id."""
    text, calls = draft
    budget = request.max_tokens
    chars = len(text) + sum(len(args) for _, args in calls)
    tokens = max(1, math.ceil(chars / 4))
    truncated = False
    if budget is not None and tokens > budget:
        truncated = True
        room = budget * 4
        text = text[:room]
        room -= len(text)
        cut: list[tuple[str, str]] = []
        for name, args in calls:
            cut.append((name, args[: max(room, 0)]))
            room -= len(args)
        calls, tokens = cut, budget
    prefix = digest(seed, "call", str(request.number))
    tool_calls = tuple(ToolCall(f"call_{prefix}{i}", name, args) for i, (name, args) in enumerate(calls))
    return Answer(text, tool_calls, tokens, truncated)
