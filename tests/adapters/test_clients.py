"""The lent clients: what they read from answers, and what they refuse."""

from __future__ import annotations

import json

import pytest

import fanfold as ff
from fanfold._adapters._clients import usage_of


def sse(*events: dict[str, object]) -> bytes:
    return "".join(f"data: {json.dumps(event)}\n\n" for event in events).encode() + b"data: [DONE]\n\n"


def test_usage_is_read_from_every_wire_format() -> None:
    assert usage_of(b'{"usage": {"prompt_tokens": 12, "completion_tokens": 5}}') == (12, 5)
    assert usage_of(b'{"usage": {"input_tokens": 7, "output_tokens": 3}}') == (7, 3)  # Responses, Messages
    openai_stream = sse({"choices": []}, {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}})
    assert usage_of(openai_stream) == (9, 4)
    anthropic_stream = sse(
        {"type": "message_start", "message": {"usage": {"input_tokens": 11, "output_tokens": 1}}},
        {"type": "message_delta", "usage": {"output_tokens": 6}},  # cumulative
    )
    assert usage_of(anthropic_stream) == (11, 6)
    responses_stream = sse(
        {"type": "response.completed", "response": {"usage": {"input_tokens": 8, "output_tokens": 2}}}
    )
    assert usage_of(responses_stream) == (8, 2)
    assert usage_of(b"not json") == (0, 0)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: ff.openai_client("gpt-5-mini"), "'openai:<model>'"),
        (lambda: ff.openai_client("anthropic:claude", base_url="http://x"), "'openai:<model>'"),
        (lambda: ff.anthropic_client("anthropic:c", base_url="http://x", retry=3), "retry=3"),
        (lambda: ff.openai_client("openai:m", base_url="http://x", output_tokens=0), "output_tokens=0"),
    ],
)
def test_bad_arguments_name_the_value_and_the_fix(call: object, named: str) -> None:
    with pytest.raises(ff.UsageError, match=r"pass|name") as raised:
        call()  # type: ignore[operator]
    assert named in raised.value.args[0]


def test_adapt_refuses_what_no_framework_made() -> None:
    with pytest.raises(ff.UsageError, match="not an agent of a framework fanfold adapts"):
        ff.adapt(lambda claim: claim)
