"""Anthropic's wire format: the Messages API (``POST /v1/messages``), with Anthropic's error
bodies and ``anthropic-ratelimit-*`` headers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fanfold._sim._answers import Answer, compact_json
from fanfold._sim._buckets import BucketState
from fanfold._sim._config import SimRequest
from fanfold._sim._wire import BadRequest, ErrorKind, RequestBuilder, Wire, pieces, positive_int, require, sse, text_of

_ERRORS: dict[ErrorKind, str] = {
    "rate_limit": "rate_limit_error",
    "rate_limit_tokens": "rate_limit_error",
    "server": "api_error",
    "overloaded": "overloaded_error",
    "auth": "authentication_error",
    "invalid": "invalid_request_error",
}


def _rfc3339(wall: float) -> str:
    """A Unix time as Anthropic writes reset times, rounded up to the second."""
    return datetime.fromtimestamp(int(-(-wall // 1)), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Messages(Wire):
    """``POST /v1/messages``: system, text / tool_use / tool_result blocks, tools and
    ``tool_choice``, ``max_tokens`` (required, as Anthropic requires it), structured outputs
    (``output_config.format``), streaming events."""

    api = "anthropic"
    overloaded_status = 529
    request_id_header = "request-id"

    def parse(self, body: dict[str, Any], number: int) -> SimRequest:
        model = require(body, "model", str, "a model name")
        max_tokens = positive_int(body, "max_tokens")
        if max_tokens is None:
            raise BadRequest("max_tokens: Field required", param="max_tokens")
        messages = require(body, "messages", list, "a list of messages")
        b = RequestBuilder()
        system = body.get("system")
        if system is not None:
            b.message("system", text_of(system))
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
                raise BadRequest(f"messages.{i}: expected a user or assistant message", param=f"messages.{i}")
            self._message(b, message)
        for tool in body.get("tools") or ():
            if isinstance(tool, Mapping):
                b.tool(tool, tool.get("name"), tool.get("input_schema"))
        choice = body.get("tool_choice")
        if not isinstance(choice, Mapping):
            choice = {}
        kind = choice.get("type")
        forced = None
        if kind == "tool":
            forced = choice.get("name")
        elif kind == "any":
            forced = b.output_tool(False) or (b.tool_names[0] if b.tool_names else None)
        schema = _output_schema(body)
        if schema is not None:
            b.schema(schema)
        return b.build(
            api=self.api,
            model=model,
            forced_tool=forced,
            output_tool=b.output_tool(kind == "none"),
            output_schema=schema,
            json_mode=schema is not None,
            max_tokens=max_tokens,
            stream=bool(body.get("stream")),
            number=number,
        )

    def _message(self, b: RequestBuilder, message: Mapping[str, Any]) -> None:
        role = message["role"]
        content = message.get("content")
        if isinstance(content, str):
            b.message(role, content)
            return
        if not isinstance(content, list):
            raise BadRequest("content: expected a string or a list of content blocks", param="content")
        texts = []
        for block in content:
            kind = block.get("type") if isinstance(block, Mapping) else None
            if kind == "text":
                texts.append(block.get("text", ""))
            elif kind == "tool_use":
                b.tool_call(block.get("id", ""), block.get("name", ""), compact_json(block.get("input", {})))
            elif kind == "tool_result":
                b.tool_result(block.get("tool_use_id", ""), text_of(block.get("content")))
            elif kind == "thinking":
                texts.append(block.get("thinking", ""))
        if texts:
            b.message(role, "".join(texts))

    def _usage(self, request: SimRequest, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": request.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _message_head(self, request: SimRequest, ids: str) -> dict[str, Any]:
        return {
            "id": f"msg_{ids}",
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }

    def _blocks(self, answer: Answer) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if answer.text or not answer.tool_calls:
            blocks.append({"type": "text", "text": answer.text})
        for call in answer.tool_calls:
            try:
                arguments = json.loads(call.arguments)
            except ValueError:  # cut at max_tokens: Anthropic gives what it could parse, here nothing
                arguments = {}
            blocks.append({"type": "tool_use", "id": _tool_id(call.id), "name": call.name, "input": arguments})
        return blocks

    def body(self, answer: Answer, request: SimRequest, ids: str, created: int) -> dict[str, Any]:
        return {
            **self._message_head(request, ids),
            "content": self._blocks(answer),
            "stop_reason": _stop_reason(answer),
            "usage": self._usage(request, answer.output_tokens),
        }

    def events(self, answer: Answer, request: SimRequest, ids: str, created: int) -> list[bytes]:
        out = []

        def emit(kind: str, **fields: Any) -> None:
            out.append(sse({"type": kind, **fields}, event=kind))

        emit("message_start", message={**self._message_head(request, ids), "usage": self._usage(request, 1)})
        emit("ping")
        calls = iter(answer.tool_calls)
        for index, block in enumerate(self._blocks(answer)):
            if block["type"] == "text":
                emit("content_block_start", index=index, content_block={"type": "text", "text": ""})
                for piece in pieces(block["text"]):
                    emit("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
            else:
                call = next(calls)
                emit("content_block_start", index=index, content_block={**block, "input": {}})
                for piece in pieces(call.arguments):
                    emit("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": piece})
            emit("content_block_stop", index=index)
        emit(
            "message_delta",
            delta={"stop_reason": _stop_reason(answer), "stop_sequence": None},
            usage={k: v for k, v in self._usage(request, answer.output_tokens).items() if k != "service_tier"},
        )
        emit("message_stop")
        return out

    def error(self, kind: ErrorKind, message: str, request_id: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": _ERRORS[kind], "message": message}, "request_id": request_id}

    def limit_headers(self, states: list[BucketState], wall: float) -> dict[str, str]:
        headers = {}
        for state in states:
            prefix = f"anthropic-ratelimit-{state.name}"
            headers[f"{prefix}-limit"] = str(int(state.limit))
            headers[f"{prefix}-remaining"] = str(state.remaining)
            headers[f"{prefix}-reset"] = _rfc3339(wall + state.reset)
        return headers


def _output_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON schema of structured outputs: ``output_config.format`` (or the older top-level
    ``output_format``) of type ``json_schema``."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else body.get("output_format")
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return None
    schema = fmt.get("schema")
    return schema if isinstance(schema, Mapping) else None


def _tool_id(call_id: str) -> str:
    return "toolu_" + call_id.removeprefix("call_")


def _stop_reason(answer: Answer) -> str:
    if answer.truncated:
        return "max_tokens"
    return "tool_use" if answer.tool_calls else "end_turn"
