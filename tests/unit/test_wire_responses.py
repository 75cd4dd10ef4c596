"""The Responses translator: request fields in, the documented event sequence out.

Every event and the final ``response`` object are validated with the Open Responses
specification's own models (``openresponses-types``, generated from its OpenAPI schema)
and openai-python's types; the byte fast path equals the general encoder.
"""

from __future__ import annotations

import json
from typing import Any

import openresponses_types as spec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

import llmrelay
from llmrelay._wire import responses as wire
from llmrelay._wire._common import sse_event
from llmrelay.types import FinishReason, ProviderInfo, Reasoning, ToolCallDelta, Usage

OPENAI_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)

# the Open Responses model of each streaming event type
SPEC_EVENTS: dict[str, type[Any]] = {
    "response.created": spec.ResponseCreatedStreamingEvent,
    "response.in_progress": spec.ResponseInProgressStreamingEvent,
    "response.completed": spec.ResponseCompletedStreamingEvent,
    "response.incomplete": spec.ResponseIncompleteStreamingEvent,
    "response.failed": spec.ResponseFailedStreamingEvent,
    "response.output_item.added": spec.ResponseOutputItemAddedStreamingEvent,
    "response.output_item.done": spec.ResponseOutputItemDoneStreamingEvent,
    "response.content_part.added": spec.ResponseContentPartAddedStreamingEvent,
    "response.content_part.done": spec.ResponseContentPartDoneStreamingEvent,
    "response.output_text.delta": spec.ResponseOutputTextDeltaStreamingEvent,
    "response.output_text.done": spec.ResponseOutputTextDoneStreamingEvent,
    "response.function_call_arguments.delta": spec.ResponseFunctionCallArgumentsDeltaStreamingEvent,
    "response.function_call_arguments.done": spec.ResponseFunctionCallArgumentsDoneStreamingEvent,
}
# OpenAI's names for raw reasoning text (the Open Responses spec says response.reasoning.*)
OPENAI_ONLY = {"response.reasoning_text.delta", "response.reasoning_text.done"}


def run(
    events: list[Any], body: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    request = wire.parse_request(body or {"input": "hi"})
    builder = wire.ResponseEvents(
        wire.base_response(request, id="resp_1", created_at=1, model="alpha:m")
    )
    out = builder.start()
    for event in events:
        out += builder.event(event)
    return out, builder.response


def check_sequence(out: list[dict[str, Any]]) -> None:
    """The invariants of a Responses stream, as the specification and SDKs read it."""
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    assert out[0]["type"] == "response.created"
    assert out[1]["type"] == "response.in_progress"
    assert out[-1]["type"] in ("response.completed", "response.incomplete", "response.failed")
    added: dict[int, str] = {}
    done: set[int] = set()
    for event in out:
        kind = event["type"]
        if kind == "response.output_item.added":
            index = event["output_index"]
            assert index == len(added), "output indexes are 0, 1, 2 ... in order"
            assert event["item"]["id"] not in added.values(), "one id per item"
            added[index] = event["item"]["id"]
        elif kind == "response.output_item.done":
            assert added[event["output_index"]] == event["item"]["id"]
            done.add(event["output_index"])
        elif "item_id" in event:
            assert added[event["output_index"]] == event["item_id"]
            assert event["output_index"] not in done, "no event for an item after its done"
        OPENAI_EVENT.validate_python(event)
        if kind not in OPENAI_ONLY:
            SPEC_EVENTS[kind].model_validate(event)
    assert done == set(added), "every item is done before the end"
    final = out[-1]["response"]
    spec.ResponseResource.model_validate(final)
    OpenAIResponse.model_validate(final)
    assert [item["id"] for item in final["output"]] == [added[i] for i in sorted(added)]


def test_a_text_answer_is_one_message_item() -> None:
    out, response = run(
        [ProviderInfo("alpha", "m"), "Hel", "lo", Usage(5, 2, 7), FinishReason("stop")]
    )
    check_sequence(out)
    assert [e["type"] for e in out] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert response["status"] == "completed"
    assert response["completed_at"] is not None
    [message] = response["output"]
    assert message["content"][0]["text"] == "Hello"
    assert response["usage"]["input_tokens"] == 5
    assert response["usage"]["output_tokens"] == 2
    assert response["usage"]["total_tokens"] == 7


def test_reasoning_then_text_then_calls_are_separate_items() -> None:
    out, response = run(
        [
            Reasoning("hmm"),
            Reasoning(" ok"),
            "Calling.",
            ToolCallDelta(0, "call_a", "f", '{"x"'),
            ToolCallDelta(1, "call_b", "g", "{}"),
            ToolCallDelta(0, arguments=":1}"),
            FinishReason("tool_calls"),
        ]
    )
    check_sequence(out)
    kinds = [item["type"] for item in response["output"]]
    assert kinds == ["reasoning", "message", "function_call", "function_call"]
    reasoning, message, first, second = response["output"]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "hmm ok"}]
    assert message["content"][0]["text"] == "Calling."
    assert (first["call_id"], first["name"], first["arguments"]) == ("call_a", "f", '{"x":1}')
    assert (second["call_id"], second["arguments"]) == ("call_b", "{}")
    assert response["status"] == "completed"


@pytest.mark.parametrize(
    ("reason", "status", "detail"),
    [
        ("length", "incomplete", "max_output_tokens"),
        ("content_filter", "incomplete", "content_filter"),
    ],
)
def test_a_cut_answer_is_incomplete(reason: str, status: str, detail: str) -> None:
    out, response = run(["partial", FinishReason(reason)])
    check_sequence(out)
    assert out[-1]["type"] == f"response.{status}"
    assert response["incomplete_details"] == {"reason": detail}
    assert response["output"][0]["status"] == "incomplete"
    assert response["usage"] is None  # nothing reported, nothing invented


def test_a_failure_ends_with_response_failed() -> None:
    request = wire.parse_request({"input": "hi"})
    builder = wire.ResponseEvents(wire.base_response(request, id="r", created_at=1, model="m"))
    out = builder.start() + builder.text("par") + builder.fail("server_error", "upstream cut")
    check_sequence(out)
    assert out[-1]["response"]["error"] == {"code": "server_error", "message": "upstream cut"}
    assert out[-1]["response"]["status"] == "failed"
    assert builder.fail("server_error", "again") == []  # one terminal event only


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=8),
            st.builds(Reasoning, st.text(max_size=5)),
            st.builds(
                ToolCallDelta,
                st.integers(0, 2),
                st.none(),
                st.none(),
                st.text(max_size=4),
            ),
        ),
        max_size=12,
    ),
    st.sampled_from(["stop", "length", "tool_calls"]),
)
def test_any_event_sequence_keeps_the_invariants(events: list[Any], reason: str) -> None:
    out, _ = run([*events, FinishReason(reason)])
    check_sequence(out)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=6))
def test_the_text_fast_path_writes_what_the_encoder_writes(deltas: list[str]) -> None:
    request = wire.parse_request({"input": "hi"})
    ids = iter(["msg_same", "msg_same"])
    original = wire.new_id
    wire.new_id = lambda prefix: next(ids)  # type: ignore[assignment]
    try:
        fast = wire.ResponseEvents(wire.base_response(request, id="r", created_at=1, model="m"))
        slow = wire.ResponseEvents(wire.base_response(request, id="r", created_at=1, model="m"))
        fast.start(), slow.start()
        fast.text(deltas[0]), slow.text(deltas[0])
    finally:
        wire.new_id = original  # type: ignore[assignment]
    for delta in deltas[1:]:
        [event] = slow.text(delta)
        assert fast.text_frame(delta) == sse_event(event["type"], event)
    assert fast.response == slow.response


def test_the_frames_and_the_event_objects_agree() -> None:
    request = wire.parse_request({"input": "hi"})
    builder = wire.ResponseEvents(wire.base_response(request, id="r", created_at=1, model="m"))
    frames = wire.ResponseFrames(builder)
    body = b"".join(
        frame
        for frame in (
            frames.event(ProviderInfo("alpha", "m")),
            frames.text("a\u2028b"),
            frames.text("c"),
            frames.event(Usage(1, 2, 3)),
            frames.event(FinishReason("stop")),
        )
        if frame
    )
    events = []
    for block in body.decode().split("\n\n")[:-1]:
        name, data = block.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}"
        events.append(payload)
    check_sequence(events)
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "a\u2028bc"
    assert frames.finish_reason == "completed"
    assert b"\\u2028" in body  # kept on one line


# -- the request --------------------------------------------------------------------


def test_items_become_chat_messages() -> None:
    request = wire.parse_request(
        {
            "model": "alpha:m",
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "dev"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Look: "},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                    ],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "ok"}],
                },
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "[]"},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "two"}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
            ],
            "temperature": 0.2,
            "top_p": 0.5,
            "max_output_tokens": 33,
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "parallel_tool_calls": False,
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "out",
                    "schema": {"type": "object"},
                    "strict": True,
                }
            },
        }
    )
    assert request.instructions == "Be brief."
    assert wire.to_messages(request.entries, {}) == [
        {"role": "developer", "content": "dev"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look: "},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "ok"}],
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "[]"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]
    assert request.chat == {
        "temperature": 0.2,
        "top_p": 0.5,
        "max_tokens": 33,
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
        },
    }
    assert len(request.input_items) == 8
    assert llmrelay.types.normalize_messages(wire.to_messages(request.entries, {}))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "frobnicate": 1}, "frobnicate"),
        ({"input": "x", "reasoning": {"effort": "high"}}, "reasoning.effort"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "include": ["reasoning.encrypted_content"]}, "include"),
        ({"input": "x", "top_logprobs": 3}, "top_logprobs"),
        ({"input": "x", "truncation": "auto"}, "truncation"),
        ({"input": "x", "presence_penalty": 0.5}, "presence_penalty"),
        ({"input": "x", "max_tool_calls": 2}, "max_tool_calls"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x", "temperature": 3}, "temperature"),
        ({"input": "x", "text": {"verbosity": "low"}}, "text.verbosity"),
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": "x", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name"),
        ({"input": "x", "metadata": {"k": 1}}, "metadata.k"),
        (
            {"input": "x", "stream_options": {"include_obfuscation": True}, "stream": True},
            "stream_options.include_obfuscation",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_image", "image_url": "data:,", "detail": "max"}
                        ],
                    }
                ]
            },
            "input[0].content[0].detail",
        ),
        ({"input": [{"type": "item_reference"}]}, "input[0].id"),
        ({"input": [{"type": "computer_call_output"}]}, "input[0].type"),
        ({"input": []}, "input"),
    ],
)
def test_a_field_llmrelay_cannot_honour_is_refused_by_name(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(llmrelay.ConfigError) as caught:
        wire.parse_request(body)
    assert caught.value.param == param


def test_defaults_are_accepted_and_echoed() -> None:
    request = wire.parse_request(
        {
            "input": "x",
            "background": False,
            "truncation": "disabled",
            "service_tier": "auto",
            "include": [],
            "top_logprobs": 0,
            "store": False,
            "metadata": {"k": "v"},
            "user": "u1",
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
        }
    )
    response = wire.base_response(request, id="r", created_at=1, model="m")
    assert response["store"] is False
    assert response["metadata"] == {"k": "v"}
    assert response["user"] == "u1"
    assert "response_format" not in request.chat


def test_an_item_reference_stands_for_a_stored_output_item() -> None:
    _, response = run(["Hi!", ToolCallDelta(0, "call_1", "f", "{}"), FinishReason("tool_calls")])
    message, call = response["output"]
    assert wire.item_location(message["id"]) == ("resp_1", 0)
    assert wire.item_location(call["id"]) == ("resp_1", 1)
    assert wire.item_location("msg_made_elsewhere") is None
    request = wire.parse_request(
        {
            "input": [
                {"role": "user", "content": "Hello"},
                {"type": "item_reference", "id": message["id"]},
                {"type": "item_reference", "id": call["id"]},
                {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
            ]
        }
    )
    assert request.references == [message["id"], call["id"]]
    found = {message["id"]: message, call["id"]: call}
    assert wire.to_messages(request.entries, found) == [
        {"role": "user", "content": "Hello"},
        {
            "role": "assistant",
            "content": "Hi!",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]
    with pytest.raises(llmrelay.ConfigError) as missing:
        wire.to_messages(request.entries, {})
    assert missing.value.param == "input[1].id"
