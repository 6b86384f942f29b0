"""OpenAI's wire formats: Chat Completions (``POST /v1/chat/completions``) and the Responses API
(``POST /v1/responses``), with OpenAI's error bodies and ``x-ratelimit-*`` headers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fanfold._sim._answers import Answer
from fanfold._sim._buckets import BucketState
from fanfold._sim._config import SimRequest
from fanfold._sim._responses import render_events, render_response
from fanfold._sim._wire import (
    BadRequest,
    ErrorKind,
    RequestBuilder,
    Wire,
    duration,
    pieces,
    positive_int,
    require,
    sse,
    text_of,
)

_ERRORS: dict[ErrorKind, tuple[str, str | None]] = {
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "rate_limit_tokens": ("tokens", "rate_limit_exceeded"),
    "server": ("server_error", None),
    "overloaded": ("server_error", "overloaded"),
    "auth": ("invalid_request_error", "invalid_api_key"),
    "invalid": ("invalid_request_error", None),
}


class _OpenAIWire(Wire):
    overloaded_status = 503

    def error(self, kind: ErrorKind, message: str, request_id: str) -> dict[str, Any]:
        kind_name, code = _ERRORS[kind]
        return {"error": {"message": message, "type": kind_name, "param": None, "code": code}}

    def limit_headers(self, states: list[BucketState], wall: float) -> dict[str, str]:
        headers = {}
        for state in states:
            if state.name not in ("requests", "tokens"):
                continue  # OpenAI reports no separate input or output token limits
            headers[f"x-ratelimit-limit-{state.name}"] = str(int(state.limit))
            headers[f"x-ratelimit-remaining-{state.name}"] = str(state.remaining)
            headers[f"x-ratelimit-reset-{state.name}"] = duration(state.reset)
        return headers


def _tool_choice(
    choice: Any, builder: RequestBuilder, name_of: Callable[[Mapping[str, Any]], Any]
) -> tuple[str | None, bool]:
    """(the tool a ``tool_choice`` forces, or None; whether it is ``"none"``)."""
    if choice == "none":
        return None, True
    if choice == "required":
        output = builder.output_tool(False)
        return output or (builder.tool_names[0] if builder.tool_names else None), False
    if isinstance(choice, Mapping):
        return name_of(choice), False
    return None, False


def _format_schema(fmt: Any, builder: RequestBuilder, where: str) -> tuple[Mapping[str, Any] | None, bool]:
    """(the JSON schema a response format asks for, whether it asks for JSON at all)."""
    if not isinstance(fmt, Mapping):
        return None, False
    kind = fmt.get("type")
    if kind == "json_object":
        return None, True
    if kind == "json_schema":
        spec = fmt.get("json_schema", fmt)  # chat nests it; the Responses API does not
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise BadRequest(f"{where}: a json_schema format needs a 'schema' object", param=where)
        builder.schema(schema)
        return schema, True
    return None, False


class ChatCompletions(_OpenAIWire):
    """``POST /v1/chat/completions``."""

    api = "openai-chat"

    def parse(self, body: dict[str, Any], number: int) -> SimRequest:
        model = require(body, "model", str, "a model name")
        messages = require(body, "messages", list, "a non-empty list of messages")
        if not messages:
            raise BadRequest("messages: expected a non-empty list of messages", param="messages")
        b = RequestBuilder()
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping):
                raise BadRequest(f"messages[{i}]: expected an object", param=f"messages[{i}]")
            self._message(b, message, i)
        for tool in body.get("tools") or ():
            fn = tool.get("function", {}) if isinstance(tool, Mapping) else {}
            b.tool(tool, fn.get("name"), fn.get("parameters"))
        forced, none = _tool_choice(body.get("tool_choice"), b, lambda c: c.get("function", {}).get("name"))
        schema, json_mode = _format_schema(body.get("response_format"), b, "response_format")
        options = body.get("stream_options")
        include_usage = bool(isinstance(options, Mapping) and options.get("include_usage"))
        max_tokens = positive_int(body, "max_completion_tokens") or positive_int(body, "max_tokens")
        return b.build(
            api=self.api,
            model=model,
            forced_tool=forced,
            output_tool=b.output_tool(none),
            output_schema=schema,
            json_mode=json_mode,
            max_tokens=max_tokens,
            stream=bool(body.get("stream")),
            details={"include_usage": include_usage},
            number=number,
        )

    def _message(self, b: RequestBuilder, message: Mapping[str, Any], i: int) -> None:
        role = message.get("role")
        text = text_of(message.get("content"))
        if role in ("system", "developer"):
            b.message("system", text)
        elif role == "user":
            b.message("user", text)
        elif role == "assistant":
            b.message("assistant", text)
            for call in message.get("tool_calls") or ():
                fn = call.get("function", {})
                b.tool_call(call.get("id", ""), fn.get("name", ""), fn.get("arguments", ""))
        elif role == "tool":
            b.tool_result(message.get("tool_call_id", ""), text)
        else:
            raise BadRequest(f"messages[{i}].role: unknown role {role!r}", param=f"messages[{i}].role")

    def body(self, answer: Answer, request: SimRequest, ids: str, created: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.text if answer.text or not answer.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if answer.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in answer.tool_calls
            ]
        return {
            **self._head(request, ids, created, "chat.completion"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(answer)}],
            "usage": _usage(request, answer),
        }

    def _head(self, request: SimRequest, ids: str, created: int, kind: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{ids}",
            "object": kind,
            "created": created,
            "model": request.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fanfold_sim",
        }

    def events(self, answer: Answer, request: SimRequest, ids: str, created: int) -> list[bytes]:
        head = self._head(request, ids, created, "chat.completion.chunk")
        if request.details.get("include_usage"):
            head["usage"] = None

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse({**head, "choices": [choice]})

        out = [chunk({"role": "assistant", "content": "", "refusal": None})]
        out += [chunk({"content": piece}) for piece in pieces(answer.text)]
        for index, call in enumerate(answer.tool_calls):
            start = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            out.append(chunk({"tool_calls": [start]}))
            for piece in pieces(call.arguments):
                out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        out.append(chunk({}, _finish(answer)))
        if request.details.get("include_usage"):
            out.append(sse({**head, "choices": [], "usage": _usage(request, answer)}))
        out.append(sse("[DONE]"))
        return out


def _finish(answer: Answer) -> str:
    if answer.truncated:
        return "length"
    return "tool_calls" if answer.tool_calls else "stop"


def _usage(request: SimRequest, answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": request.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": request.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class Responses(_OpenAIWire):
    """``POST /v1/responses``: input items, instructions, function tools and their outputs,
    ``text.format``, ``max_output_tokens``; streaming as typed events."""

    api = "openai-responses"

    def parse(self, body: dict[str, Any], number: int) -> SimRequest:
        model = require(body, "model", str, "a model name")
        b = RequestBuilder()
        instructions = body.get("instructions")
        if isinstance(instructions, str):
            b.message("system", instructions)
        items = body.get("input")
        if isinstance(items, str):
            b.message("user", items)
        elif isinstance(items, list):
            for i, item in enumerate(items):
                if not isinstance(item, Mapping):
                    raise BadRequest(f"input[{i}]: expected an object", param=f"input[{i}]")
                self._item(b, item)
        else:
            raise BadRequest("input: expected a string or a list of input items", param="input")
        for tool in body.get("tools") or ():
            is_function = isinstance(tool, Mapping) and tool.get("type") == "function"
            b.tool(tool, tool.get("name") if is_function else None, tool.get("parameters") if is_function else None)
        forced, none = _tool_choice(body.get("tool_choice"), b, lambda c: c.get("name"))
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, Mapping) else None
        schema, json_mode = _format_schema(fmt, b, "text.format")
        return b.build(
            api=self.api,
            model=model,
            forced_tool=forced,
            output_tool=b.output_tool(none),
            output_schema=schema,
            json_mode=json_mode,
            max_tokens=positive_int(body, "max_output_tokens"),
            stream=bool(body.get("stream")),
            number=number,
            details={k: body.get(k) for k in ("instructions", "tools", "tool_choice", "text", "max_output_tokens")},
        )

    def _item(self, b: RequestBuilder, item: Mapping[str, Any]) -> None:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            b.message("system" if role in ("system", "developer") else role, text_of(item.get("content")))
        elif kind == "function_call":
            b.tool_call(item.get("call_id", ""), item.get("name", ""), item.get("arguments", ""))
        elif kind == "function_call_output":
            b.tool_result(item.get("call_id", ""), text_of(item.get("output")))
        # reasoning items, item references and server tool calls carry no text to count

    def body(self, answer: Answer, request: SimRequest, ids: str, created: int) -> dict[str, Any]:
        return render_response(answer, request, ids, created)

    def events(self, answer: Answer, request: SimRequest, ids: str, created: int) -> list[bytes]:
        return render_events(answer, request, ids, created)
