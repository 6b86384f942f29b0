"""The seam between the simulator's core and each provider's wire format.

A :class:`Wire` reads a request body into a :class:`SimRequest`, and writes answers, streams,
errors and rate-limit headers the way its provider does. The server knows nothing else about
OpenAI or Anthropic.
"""

from __future__ import annotations

import abc
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

from fanfold._sim._answers import Answer, compact_json, is_output_tool
from fanfold._sim._buckets import BucketState
from fanfold._sim._config import Api, SimRequest

# "rate_limit": out of requests (or injected); "rate_limit_tokens": out of tokens.
ErrorKind = Literal["rate_limit", "rate_limit_tokens", "server", "overloaded", "auth", "invalid"]


class BadRequest(Exception):
    """The request body is not what the provider accepts: answered with a 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class Wire(abc.ABC):
    """One provider API: how its requests read and its responses look."""

    api: Api
    overloaded_status: int  # what the provider sends when overloaded: 529 or 503

    @abc.abstractmethod
    def parse(self, body: dict[str, Any], number: int) -> SimRequest:
        """The request as the simulator's core sees it; :class:`BadRequest` if malformed."""

    @abc.abstractmethod
    def body(self, answer: Answer, request: SimRequest, ids: str, created: int) -> dict[str, Any]:
        """The non-streaming response body. ``ids`` makes the response's identifiers."""

    @abc.abstractmethod
    def events(self, answer: Answer, request: SimRequest, ids: str, created: int) -> list[bytes]:
        """The streaming response, one server-sent event per item."""

    @abc.abstractmethod
    def error(self, kind: ErrorKind, message: str, request_id: str) -> dict[str, Any]:
        """An error body in the provider's shape."""

    @abc.abstractmethod
    def limit_headers(self, states: list[BucketState], wall: float) -> dict[str, str]:
        """Rate-limit headers for the configured buckets at Unix time ``wall``."""

    request_id_header = "x-request-id"


def sse(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    """One server-sent event (``data:`` line, preceded by ``event:`` when given)."""
    payload = data if isinstance(data, str) else compact_json(data)
    if event is None:
        return f"data: {payload}\n\n".encode()
    return f"event: {event}\ndata: {payload}\n\n".encode()


def pieces(text: str, *, size: int = 16, most: int = 48) -> list[str]:
    """``text`` cut into streaming deltas of about ``size`` characters, at most ``most`` of them.

    >>> pieces("abcdefghij", size=4)
    ['abcd', 'efgh', 'ij']
    """
    if not text:
        return []
    size = max(size, math.ceil(len(text) / most))
    return [text[i : i + size] for i in range(0, len(text), size)]


def text_of(content: Any) -> str:
    """The text in a message's content: a string, or a list of parts with ``text`` (or a
    nested ``content``, as tool results have); other parts (images, files) carry none."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif "content" in part:
                    out.append(text_of(part["content"]))
        return "".join(out)
    raise BadRequest(f"message content must be a string or a list of parts, not {type(content).__name__}")


_PROMPTED_MARKER = "compatible with this schema:"
_DECODER = json.JSONDecoder()


class RequestBuilder:
    """Collects a request's pieces as a wire format reads them, counting characters by the
    token rule in :mod:`fanfold._sim._answers`."""

    def __init__(self) -> None:
        self.chars = 0
        self.messages: list[tuple[str, str]] = []
        self.tool_results: list[tuple[str, str]] = []
        self.tool_names: list[str] = []
        self.tool_schemas: dict[str, Any] = {}
        self.call_names: dict[str, str] = {}  # tool call id -> tool name

    def message(self, role: str, text: str) -> None:
        self.chars += len(text)
        self.messages.append((role, text))

    def tool_call(self, call_id: str, name: str, arguments: str) -> None:
        self.chars += len(name) + len(arguments)
        self.call_names[call_id] = name

    def tool_result(self, call_id: str, text: str) -> None:
        self.message("tool", text)
        self.tool_results.append((self.call_names.get(call_id, call_id), text))

    def tool(self, definition: Any, name: str | None, schema: Any) -> None:
        self.chars += len(compact_json(definition))
        if name:
            self.tool_names.append(name)
            self.tool_schemas[name] = schema if isinstance(schema, Mapping) else {}

    def schema(self, schema: Any) -> None:
        self.chars += len(compact_json(schema))

    def prompted_schema(self) -> Mapping[str, Any] | None:
        """The schema in pydantic-ai's prompted-output instructions ("Always respond with a JSON
        object that's compatible with this schema: {...}"), if a system message has them."""
        for role, text in self.messages:
            at = text.find(_PROMPTED_MARKER) if role == "system" else -1
            if at < 0:
                continue
            start = text.find("{", at)
            try:
                schema, _ = _DECODER.raw_decode(text, start) if start >= 0 else (None, 0)
            except ValueError:
                continue
            if isinstance(schema, Mapping):
                return schema
        return None

    def output_tool(self, choice_none: bool) -> str | None:
        if choice_none:
            return None
        return next((name for name in self.tool_names if is_output_tool(name)), None)

    def build(self, **fields: Any) -> SimRequest:
        output_tool = fields.get("output_tool")
        if output_tool is not None and fields.get("output_schema") is None:
            fields["output_schema"] = self.tool_schemas.get(output_tool)
        if fields.get("output_schema") is None and (prompted := self.prompted_schema()) is not None:
            fields["output_schema"], fields["json_mode"] = prompted, True
        return SimRequest(
            messages=tuple(self.messages),
            tool_results=tuple(self.tool_results),
            tools=tuple(self.tool_names),
            tool_schemas=self.tool_schemas,
            input_tokens=math.ceil(self.chars / 4),
            **fields,
        )


def require(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRequest(f"{key}: expected {what}, got {json.dumps(value)[:80]}", param=key)
    return value


def positive_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{key}: expected an integer >= 1, got {json.dumps(value)[:80]}", param=key)
    return value


def duration(seconds: float) -> str:
    """OpenAI's reset duration: ``"120ms"``, ``"1s"``, ``"2.5s"``, ``"6m0s"``, ``"1h2m3s"``.

    >>> [duration(s) for s in (0.12, 1, 2.5, 360, 3723)]
    ['120ms', '1s', '2.5s', '6m0s', '1h2m3s']
    """
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs = math.ceil(secs * 1000) / 1000
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text
