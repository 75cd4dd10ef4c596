"""The Anthropic Messages translator: request blocks in, Anthropic's stream events out.

Events and messages are validated with anthropic-sdk-python's own types
(``RawMessageStreamEvent``, ``Message``); the byte fast path equals the encoder.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

import llmrelay
from llmrelay._wire import anthropic as wire
from llmrelay._wire._common import sse_event
from llmrelay.types import FinishReason, ProviderInfo, Reasoning, ToolCallDelta, Usage

EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def run(events: list[Any], *, thinking: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    builder = wire.MessageEvents(id="msg_1", model="alpha:m", thinking=thinking)
    out = builder.start()
    for event in events:
        out += builder.event(event)
    return out, builder.message


def check(out: list[dict[str, Any]]) -> None:
    """Anthropic's stream grammar: one block open at a time, indexes in order."""
    assert [e["type"] for e in out[:2]] == ["message_start", "ping"]
    assert [e["type"] for e in out[-2:]] == ["message_delta", "message_stop"]
    open_index: int | None = None
    started = 0
    for event in out:
        kind = event["type"]
        if kind != "ping":  # a ping is no message event (the SDKs skip it)
            EVENT.validate_python(event)
        if kind == "content_block_start":
            assert open_index is None, "a block starts only after the previous one stopped"
            assert event["index"] == started
            open_index, started = event["index"], started + 1
        elif kind == "content_block_delta":
            assert event["index"] == open_index
        elif kind == "content_block_stop":
            assert event["index"] == open_index
            open_index = None
    assert open_index is None


@pytest.mark.parametrize(
    ("reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_the_stop_reason(reason: str, stop_reason: str) -> None:
    out, message = run([ProviderInfo("a", "m"), "hi", Usage(4, 1, 5), FinishReason(reason)])
    check(out)
    assert out[-2]["delta"]["stop_reason"] == stop_reason
    assert out[-2]["usage"] == {"input_tokens": 4, "output_tokens": 1}
    assert message["stop_reason"] == stop_reason
    AnthropicMessage.model_validate(message)


def test_thinking_text_and_interleaved_tool_calls() -> None:
    out, message = run(
        [
            Reasoning("think"),
            "Sure.",
            ToolCallDelta(0, "toolu_a", "f", '{"a"'),
            ToolCallDelta(1, "toolu_b", "g", '{"b":'),
            ToolCallDelta(0, arguments=":1}"),
            ToolCallDelta(1, arguments="2}"),
            FinishReason("tool_calls"),
        ]
    )
    check(out)
    assert message["content"] == [
        {"type": "thinking", "thinking": "think", "signature": ""},
        {"type": "text", "text": "Sure."},
        {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {"b": 2}},
    ]
    deltas = [e["delta"] for e in out if e["type"] == "content_block_delta"]
    assert [d["type"] for d in deltas] == [
        "thinking_delta",
        "text_delta",
        "input_json_delta",
        "input_json_delta",
        "input_json_delta",
    ]
    # the second call waited for the first block to close, then came whole
    assert deltas[-1]["partial_json"] == '{"b":2}'
    AnthropicMessage.model_validate(message)


def test_reasoning_is_left_out_without_thinking() -> None:
    out, message = run([Reasoning("think"), "x", FinishReason("stop")], thinking=False)
    check(out)
    assert [b["type"] for b in message["content"]] == ["text"]


def test_no_usage_reported_is_zero_output_tokens() -> None:
    out, message = run(["x", FinishReason("stop")])
    assert out[-2]["usage"] == {"output_tokens": 0}
    assert message["usage"] == {"input_tokens": 0, "output_tokens": 0}


def test_a_failure_is_an_error_event() -> None:
    builder = wire.MessageEvents(id="m", model="m", thinking=False)
    builder.start()
    builder.text("par")
    [event] = builder.fail("overloaded_error", "try later")
    assert event == {"type": "error", "error": {"type": "overloaded_error", "message": "try later"}}
    assert builder.fail("api_error", "x") == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=6))
def test_the_text_fast_path_writes_what_the_encoder_writes(deltas: list[str]) -> None:
    fast = wire.MessageEvents(id="m", model="m", thinking=False)
    slow = wire.MessageEvents(id="m", model="m", thinking=False)
    fast.text(deltas[0]), slow.text(deltas[0])
    for delta in deltas[1:]:
        [event] = slow.text(delta)
        assert fast.text_frame(delta) == sse_event(event["type"], event)


def test_frames_parse_as_the_events() -> None:
    builder = wire.MessageEvents(id="m", model="m", thinking=False)
    frames = wire.MessageFrames(builder)
    body = b"".join(
        f
        for f in (
            frames.event(ProviderInfo("a", "m")),
            frames.text("a"),
            frames.text("b"),
            frames.event(FinishReason("length")),
        )
        if f
    )
    events = []
    for block in body.decode().split("\n\n")[:-1]:
        name, data = block.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}"
        events.append(payload)
    check(events)
    assert frames.finish_reason == "max_tokens"


# -- the request --------------------------------------------------------------------


def test_blocks_become_chat_messages() -> None:
    request = wire.parse_request(
        {
            "model": "alpha:m",
            "max_tokens": 100,
            "system": [
                {"type": "text", "text": "One."},
                {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}},
            ],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Look"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "x", "signature": "s"},
                        {"type": "text", "text": "Calling"},
                        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "text", "text": "42"}],
                        },
                        {"type": "text", "text": "and?"},
                    ],
                },
                {"role": "assistant", "content": "Done"},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t2",
                            "content": "boom",
                            "is_error": True,
                        }
                    ],
                },
            ],
            "stop_sequences": ["END"],
            "temperature": 0.3,
            "top_p": 0.9,
            "top_k": 5,
            "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "metadata": {"user_id": "u"},
        }
    )
    assert request.system == "One.\n\nTwo."
    assert request.messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Calling",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "42"},
        {"role": "user", "content": [{"type": "text", "text": "and?"}]},
        {"role": "assistant", "content": "Done"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: boom"},
    ]
    assert request.chat == {
        "max_tokens": 100,
        "temperature": 0.3,
        "top_p": 0.9,
        "options": {"top_k": 5},
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object"}, "description": "d"},
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    assert llmrelay.types.normalize_messages(request.messages)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "mcp_servers": [],
            },
            "mcp_servers",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "temperature": 1.5,
            },
            "temperature",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "w"}],
            },
            "tools[0].type",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}],
            },
            "messages[0].content[0].type",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages[0].role",
        ),
        (
            {
                "model": "m",
                "max_tokens": 2000,
                "messages": [{"role": "user", "content": "x"}],
                "thinking": {"type": "enabled", "budget_tokens": 10},
            },
            "thinking.budget_tokens",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "metadata": {"other": "x"},
            },
            "metadata.other",
        ),
    ],
)
def test_a_field_llmrelay_cannot_honour_is_refused_by_name(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(llmrelay.ConfigError) as caught:
        wire.parse_request(body)
    assert caught.value.param == param


def test_count_tokens_is_a_bytes_estimate() -> None:
    request = wire.parse_request(
        {"model": "m", "messages": [{"role": "user", "content": "x" * 400}]}, count_only=True
    )
    assert wire.estimate_tokens(request) == 100


def test_null_fields_are_as_not_given() -> None:
    """An SDK's dumped block carries every unset field as null (``caller``, ``toolset_name``)."""
    request = wire.parse_request(
        {
            "model": "m",
            "max_tokens": 5,
            "top_k": None,
            "messages": [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t", "name": "f", "input": {}, "caller": None}
                    ],
                },
            ],
        }
    )
    assert "options" not in request.chat
    with pytest.raises(llmrelay.ConfigError) as caught:
        wire.parse_request(
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "tool_use",
                                "id": "t",
                                "name": "f",
                                "input": {},
                                "caller": {"type": "direct"},
                            }
                        ],
                    }
                ],
            }
        )
    assert caught.value.param == "messages[0].content[0].caller"
