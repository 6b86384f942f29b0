"""The OpenAI Responses API's response objects and its typed streaming events.

A response's ``output`` holds a ``message`` item with the text (when there is text) and one
``function_call`` item per tool call. A stream announces the response, opens each item, sends
its deltas, closes it, and ends with ``response.completed`` (or ``response.incomplete`` when the
answer was cut at ``max_output_tokens``), every event numbered in ``sequence_number``.
"""

from __future__ import annotations

from typing import Any

from fanfold._sim._answers import Answer
from fanfold._sim._config import SimRequest
from fanfold._sim._wire import pieces, sse


def _items(answer: Answer, ids: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if answer.text or not answer.tool_calls:
        items.append(
            {
                "type": "message",
                "id": f"msg_{ids}",
                "status": "incomplete" if answer.truncated else "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}],
            }
        )
    for i, call in enumerate(answer.tool_calls):
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{ids}{i}",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "incomplete" if answer.truncated else "completed",
            }
        )
    return items


def _usage(request: SimRequest, answer: Answer) -> dict[str, Any]:
    return {
        "input_tokens": request.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": answer.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": request.input_tokens + answer.output_tokens,
    }


def _envelope(request: SimRequest, ids: str, created: int) -> dict[str, Any]:
    echo = request.details
    return {
        "id": f"resp_{ids}",
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "model": request.model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": echo.get("text") or {"format": {"type": "text"}},
        "tool_choice": echo.get("tool_choice") or "auto",
        "tools": echo.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "metadata": {},
    }


def render_response(answer: Answer, request: SimRequest, ids: str, created: int) -> dict[str, Any]:
    """The finished response object, as ``POST /v1/responses`` returns it."""
    response = _envelope(request, ids, created)
    response["output"] = _items(answer, ids)
    response["usage"] = _usage(request, answer)
    if answer.truncated:
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        response["status"] = "completed"
    return response


def render_events(answer: Answer, request: SimRequest, ids: str, created: int) -> list[bytes]:
    """The stream of typed events for a streaming ``POST /v1/responses``."""
    out: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        out.append(sse({"type": kind, "sequence_number": len(out), **fields}, event=kind))

    emit("response.created", response=_envelope(request, ids, created))
    emit("response.in_progress", response=_envelope(request, ids, created))
    for index, item in enumerate(_items(answer, ids)):
        opened = {**item, "status": "in_progress"}
        if item["type"] == "message":
            opened["content"] = []
            emit("response.output_item.added", output_index=index, item=opened)
            _text_events(emit, item, index)
        else:
            opened["arguments"] = ""
            emit("response.output_item.added", output_index=index, item=opened)
            where = {"item_id": item["id"], "output_index": index}
            for piece in pieces(item["arguments"]):
                emit("response.function_call_arguments.delta", **where, delta=piece)
            emit("response.function_call_arguments.done", **where, arguments=item["arguments"])
        emit("response.output_item.done", output_index=index, item=item)
    final = render_response(answer, request, ids, created)
    emit("response.incomplete" if answer.truncated else "response.completed", response=final)
    return out


def _text_events(emit: Any, item: dict[str, Any], index: int) -> None:
    part = item["content"][0]
    where = {"item_id": item["id"], "output_index": index, "content_index": 0}
    emit("response.content_part.added", **where, part={**part, "text": ""})
    for piece in pieces(part["text"]):
        emit("response.output_text.delta", **where, delta=piece, logprobs=[])
    emit("response.output_text.done", **where, text=part["text"], logprobs=[])
    emit("response.content_part.done", **where, part=part)
