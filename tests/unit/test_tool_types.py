"""The tool / structured-output type model (``llmrelay.types``): OpenAI shapes in and out."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import llmrelay
from llmrelay import (
    Completion,
    Conversation,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    event_to_dict,
)
from llmrelay._stream import Accumulator
from llmrelay._turn import is_content
from llmrelay.types import normalize_messages

CALL = {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a":1}'}}


def test_openai_tool_round_trip_messages() -> None:
    given: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    messages = normalize_messages(given)
    assert messages[1] == Message(
        "assistant", "", tool_calls=(ToolCall("call_1", "get", '{"a":1}'),)
    )
    assert messages[2].role == "tool"
    assert messages[2].tool_call_id == "call_1"
    assert [m.to_openai() for m in messages] == given


def test_assistant_tool_calls_without_content_key() -> None:
    (message,) = normalize_messages([{"role": "assistant", "tool_calls": [CALL]}])
    assert message.content == ""
    assert len(message.tool_calls) == 1


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id must be"),
        ([{"role": "user", "content": "x", "tool_call_id": "c"}], "only a tool message"),
        ([{"role": "user", "content": "x", "tool_calls": [CALL]}], "only an assistant"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]}],
            "messages[0].tool_calls[0].type 'custom' is not supported",
        ),
        (
            [{"role": "assistant", "tool_calls": [{"id": "", "function": {"name": "f"}}]}],
            "messages[0].tool_calls[0].id",
        ),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}],
                }
            ],
            "arguments must be a string",
        ),
    ],
)
def test_bad_tool_messages_name_the_part(bad: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        normalize_messages(bad)


def test_tool_definition_round_trip_and_validation() -> None:
    raw = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "d",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        },
    }
    tool = Tool.from_openai(raw)
    assert tool.to_openai() == raw
    assert Tool("x").to_openai() == {"type": "function", "function": {"name": "x"}}
    with pytest.raises(ValueError, match=r"tools\[2\]\.type must be 'function'"):
        Tool.from_openai({"type": "custom", "custom": {"name": "x"}}, "tools[2]")
    with pytest.raises(ValueError, match="tool name"):
        Tool("has space")
    with pytest.raises(ValueError, match="JSON Schema"):
        Tool("f", parameters="{}")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("auto", ToolChoice("auto")),
        ("none", ToolChoice("none")),
        ("required", ToolChoice("required")),
        ({"type": "function", "function": {"name": "f"}}, ToolChoice("function", "f")),
    ],
)
def test_tool_choice_shapes(raw: Any, expected: ToolChoice) -> None:
    assert ToolChoice.from_openai(raw) == expected
    assert expected.to_openai() == raw


@pytest.mark.parametrize(
    "raw", ["any", {"type": "allowed_tools", "allowed_tools": {}}, {"type": "function"}, 3]
)
def test_unsupported_tool_choice_is_refused(raw: Any) -> None:
    with pytest.raises(ValueError, match="tool_choice"):
        ToolChoice.from_openai(raw)


def test_response_format_shapes() -> None:
    for raw in (
        {"type": "text"},
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": True},
        },
    ):
        assert ResponseFormat.from_openai(raw).to_openai() == raw
    with pytest.raises(ValueError, match=r"response_format: .*needs a name"):
        ResponseFormat.from_openai({"type": "json_schema", "json_schema": {"schema": {}}})
    with pytest.raises(ValueError, match="type must be text, json_object or json_schema"):
        ResponseFormat.from_openai({"type": "xml"})
    with pytest.raises(ValueError, match="takes no schema"):
        ResponseFormat("json_object", schema={})


def test_tool_call_delta_event_dict_and_content() -> None:
    first = ToolCallDelta(0, "call_1", "get", "")
    assert event_to_dict(first) == {
        "type": "tool_call",
        "index": 0,
        "id": "call_1",
        "name": "get",
        "arguments": "",
    }
    json.dumps(event_to_dict(ToolCallDelta(1, arguments='{"')))
    assert is_content(first)  # a call is the commit point, as text is


def test_accumulator_assembles_interleaved_parallel_calls() -> None:
    acc = Accumulator()
    for event in [
        ToolCallDelta(0, "call_a", "f", ""),
        ToolCallDelta(1, "call_b", "g", '{"x"'),
        ToolCallDelta(0, arguments='{"y":'),
        ToolCallDelta(1, arguments=":2}"),
        ToolCallDelta(0, arguments="1}"),
        llmrelay.FinishReason("tool_calls"),
    ]:
        acc.add(event)
    completion = acc.completion([])
    assert completion.tool_calls == (
        ToolCall("call_a", "f", '{"y":1}'),
        ToolCall("call_b", "g", '{"x":2}'),
    )
    assert completion.finish_reason == "tool_calls"
    assert completion.message().tool_calls == completion.tool_calls


def test_conversation_keeps_tool_calls_and_results() -> None:
    conversation = Conversation([{"role": "user", "content": "q"}])
    call = ToolCall("call_1", "get", "{}")
    conversation.record([], "", None, (call,))
    conversation.messages.append(Message("tool", "42", tool_call_id="call_1"))
    data = json.loads(json.dumps(conversation.to_dict()))
    again = Conversation.from_dict(data)
    assert again.messages == conversation.messages
    assert again.messages[1].tool_calls == (call,)


def test_completion_defaults() -> None:
    completion = Completion("t", "stop", "p", "m")
    assert completion.tool_calls == ()
    assert completion.usage_estimated is False


def test_errors_carry_param() -> None:
    assert llmrelay.ConfigError("x", param="tools").param == "tools"
    assert llmrelay.ConfigError("x").param is None
    exc = llmrelay.InvalidRequestError("no tools", provider="ai2", param="tools")
    assert exc.param == "tools"
    assert exc.provider == "ai2"


def test_the_unknown_model_error_names_the_closest_few() -> None:
    valid = [f"provider:model-{i}" for i in range(200)] + ["qwen-2-72b", "qwen-2.5-72b"]
    exc = llmrelay.UnknownModelError("qwen-72b", valid)
    text = str(exc)
    assert len(text) < 400
    assert "closest: qwen-2-72b" in text
    assert "202 valid names: `llmrelay models` lists them" in text
    assert exc.valid == tuple(valid)  # all of them, for programs
    few = llmrelay.UnknownModelError("x", ["a", "b"], provider="p")
    assert str(few) == "unknown model 'x' for provider 'p'; valid models: a, b"
