"""``client.responses`` and ``client.messages`` in the library (async and sync clients).

They run one chat turn through ``AsyncClient.stream``: the provider receives the
translated request, a stored response continues with the provider's state, and the
sync ``Client`` gives the same objects.
"""

from __future__ import annotations

from typing import Any

import pytest

import llmrelay
from llmrelay.providers import Capability
from llmrelay.types import ConversationState, FinishReason, Reasoning, ToolCallDelta, Usage
from tests.unit.scripted_provider import scripted

pytestmark = pytest.mark.anyio


def stateful_script(turn: int) -> list[Any]:
    return [
        ConversationState("first", {"turn": turn}),
        f"answer {turn}",
        Usage(1, 2, 3),
        FinishReason("stop"),
    ]


async def test_a_stored_response_continues_with_the_providers_state() -> None:
    cls, script = scripted("first", stateful_script(1))
    async with llmrelay.AsyncClient(providers=[cls]) as client:
        first = await client.responses.create(
            model="first:shared-model", input="one", instructions="Sys."
        )
        assert first.output_text == "answer 1"
        assert script.received[-1].state is None
        script.events = stateful_script(2)
        stream = await client.responses.create(
            model="first:shared-model", input="two", previous_response_id=first.id, stream=True
        )
        kinds = [event.type async for event in stream]
        assert kinds[-1] == "response.completed"
        request = script.received[-1]
        assert request.state is not None
        assert request.state.data == {"turn": 1}
        assert [(m.role, m.content) for m in request.messages] == [
            ("user", "one"),
            ("assistant", "answer 1"),
            ("user", "two"),
        ]
        second = stream.response
        script.events = stateful_script(3)
        await client.responses.create(
            model="first:shared-model", input="three", previous_response_id=second.id
        )
        assert script.received[-1].state.data == {"turn": 2}  # type: ignore[union-attr]
        deleted = await client.responses.delete(first.id)
        assert deleted == {"id": first.id, "object": "response", "deleted": True}
        with pytest.raises(llmrelay.ConfigError) as gone:
            await client.responses.retrieve(first.id)
        assert gone.value.param == "response_id"


async def test_messages_with_a_conversation_send_only_the_new_turn() -> None:
    cls, script = scripted("first", stateful_script(1))
    async with llmrelay.AsyncClient(providers=[cls]) as client:
        conversation = llmrelay.Conversation()
        body: dict[str, Any] = {
            "model": "first:shared-model",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "one"}],
        }
        first = await client.messages.create(conversation=conversation, **body)
        assert first.text == "answer 1"
        script.events = stateful_script(2)
        body["messages"] += [
            {"role": "assistant", "content": "answer 1"},
            {"role": "user", "content": "two"},
        ]
        await client.messages.create(conversation=conversation, **body)
        assert script.received[-1].state is not None
        with pytest.raises(llmrelay.ConfigError) as wrong:
            await client.messages.create(
                conversation=conversation,
                **{**body, "messages": [{"role": "user", "content": "other"}] * 5},
            )
        assert wrong.value.param == "conversation"


def test_the_sync_client_has_both_shapes() -> None:
    cls, script = scripted("first", [Reasoning("r"), "hi", FinishReason("stop")])
    with llmrelay.Client(providers=[cls]) as client:
        response = client.responses.create(model="first:shared-model", input="x")
        assert isinstance(response, llmrelay.Response)
        assert [item["type"] for item in response.output] == ["reasoning", "message"]
        assert client.responses.retrieve(response.id).output_text == "hi"
        script.events = ["hi", FinishReason("stop")]
        with client.messages.create(
            model="first:shared-model",
            max_tokens=5,
            stream=True,
            messages=[{"role": "user", "content": "x"}],
        ) as stream:
            kinds = [event.type for event in stream]
        assert kinds[0] == "message_start"
        assert kinds[-1] == "message_stop"
        assert stream.message.text == "hi"
        assert client.messages.count_tokens(
            model="first:shared-model", messages=[{"role": "user", "content": "abcd"}]
        ) == {"input_tokens": 1}


def test_the_sync_client_continues_both_shapes_with_the_providers_state() -> None:
    cls, script = scripted("first", stateful_script(1))
    with llmrelay.Client(providers=[cls]) as client:
        first = client.responses.create(model="first:shared-model", input="one")
        assert isinstance(first, llmrelay.Response)
        script.events = stateful_script(2)
        stream = client.responses.create(
            model="first:shared-model", input="two", previous_response_id=first.id, stream=True
        )
        assert isinstance(stream, llmrelay.ResponseStream)
        with stream:
            kinds = [event.type for event in stream]
        assert (kinds[0], kinds[-1]) == ("response.created", "response.completed")
        request = script.received[-1]
        assert request.state is not None
        assert request.state.data == {"turn": 1}
        assert [(m.role, m.content) for m in request.messages] == [
            ("user", "one"),
            ("assistant", "answer 1"),
            ("user", "two"),
        ]
        second = stream.response
        assert (second.previous_response_id, second.output_text) == (first.id, "answer 2")
        assert client.responses.retrieve(second.id).output_text == "answer 2"
        listed = client.responses.input_items.list(second.id)
        assert [item["content"][0]["text"] for item in listed["data"]] == ["two"]

        conversation = llmrelay.Conversation()
        body: dict[str, Any] = {
            "model": "first:shared-model",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "three"}],
        }
        script.events = stateful_script(3)
        answer = client.messages.create(conversation=conversation, **body)
        assert isinstance(answer, llmrelay.AnthropicMessage)
        assert script.received[-1].state is None  # a new conversation
        body["messages"] += [
            {"role": "assistant", "content": [{"type": "text", "text": "answer 3"}]},
            {"role": "user", "content": [{"type": "text", "text": "four"}]},
        ]
        script.events = stateful_script(4)
        streamed = client.messages.create(conversation=conversation, stream=True, **body)
        assert isinstance(streamed, llmrelay.MessageStream)
        with streamed:
            kinds = [event.type for event in streamed]
        assert (kinds[0], kinds[-1]) == ("message_start", "message_stop")
        request = script.received[-1]
        assert request.state is not None
        assert request.state.data == {"turn": 3}
        assert [(m.role, m.content) for m in request.messages] == [
            ("user", "three"),
            ("assistant", "answer 3"),
            ("user", "four"),
        ]
        assert streamed.message.text == "answer 4"
        assert [m.content for m in conversation.messages] == [
            "three",
            "answer 3",
            "four",
            "answer 4",
        ]


TOOLS = [
    {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}
    for name in ("get_weather", "get_time")
]


async def test_tool_calls_reach_both_shapes_as_items_and_blocks() -> None:
    calls = [
        "Looking.",
        ToolCallDelta(0, "call_a", "get_weather", '{"city":'),
        ToolCallDelta(1, "call_b", "get_time", "{}"),
        ToolCallDelta(0, arguments='"Paris"}'),
        FinishReason("tool_calls"),
    ]
    cls, script = scripted("first", calls)
    # the tool-calling engine's capabilities, where it has them (the agent branch's engine
    # checks them; without it the tools are translated and not sent)
    cls.capabilities = cls.capabilities | {c for c in Capability if c.value == "tools"}
    async with llmrelay.AsyncClient(providers=[cls]) as client:
        stream = await client.responses.create(
            model="first:shared-model", input="Weather?", tools=TOOLS, stream=True
        )
        events = [event async for event in stream]
        kinds = [event.type for event in events]
        assert kinds.count("response.function_call_arguments.done") == 2
        assert kinds[-1] == "response.completed"
        done = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert {e.arguments for e in done} == {'{"city":"Paris"}', "{}"}
        response = stream.response
        assert [item["type"] for item in response.output] == [
            "message",
            "function_call",
            "function_call",
        ]
        first_call = response.output[1]
        assert (first_call["call_id"], first_call["name"], first_call["arguments"]) == (
            "call_a",
            "get_weather",
            '{"city":"Paris"}',
        )
        script.events = ["Sunny.", FinishReason("stop")]
        await client.responses.create(
            model="first:shared-model",
            previous_response_id=response.id,
            tools=TOOLS,
            input=[
                {"type": "function_call_output", "call_id": "call_a", "output": "22 C"},
                {"type": "function_call_output", "call_id": "call_b", "output": "noon"},
            ],
        )
        if hasattr(Capability, "TOOLS"):  # the tool-calling engine sends them on
            assert [tool.name for tool in script.received[-1].tools] == ["get_weather", "get_time"]
        sent = script.received[-1].messages
        assert [m.role for m in sent] == ["user", "assistant", "tool", "tool"]
        assert [call.id for call in sent[1].tool_calls] == ["call_a", "call_b"]
        assert [(m.tool_call_id, m.content) for m in sent[2:]] == [
            ("call_a", "22 C"),
            ("call_b", "noon"),
        ]

        script.events = calls
        message = await client.messages.create(
            model="first:shared-model",
            max_tokens=50,
            tools=[{"name": t["name"], "input_schema": t["parameters"]} for t in TOOLS],
            messages=[{"role": "user", "content": "Weather?"}],
        )
        assert isinstance(message, llmrelay.AnthropicMessage)
        assert message.stop_reason == "tool_use"
        assert [block["type"] for block in message.content] == ["text", "tool_use", "tool_use"]
        assert message.content[1]["input"] == {"city": "Paris"}
        assert message.content[2]["id"] == "call_b"


def test_a_client_loads_the_shape_modules_only_when_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmrelay; c = llmrelay.AsyncClient(); "
        "shapes = ('llmrelay._responses', 'llmrelay._messages', 'llmrelay._response_store'); "
        "print(sorted(m for m in shapes if m in sys.modules)); c.responses; c.messages; "
        "print(sorted(m for m in shapes if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    before, after = result.stdout.split("\n")[:2]
    assert before == "[]"
    assert after == "['llmrelay._messages', 'llmrelay._response_store', 'llmrelay._responses']"


# -- a refusal names the part as the client's request does --------------------------------

_DOT = "data:image/png;base64,iVBORw0KGgo="  # a provider without vision refuses before sending


async def test_an_image_refused_is_named_by_the_callers_own_index_not_the_history() -> None:
    """``system=`` and a conversation come before the caller's messages in the request."""
    cls, script = scripted("first", ["ok", FinishReason("stop")])
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _DOT}}]}
    async with llmrelay.AsyncClient(providers=[cls]) as client:
        with pytest.raises(llmrelay.errors.InvalidRequestError) as refused:
            await client.complete(
                [{"role": "user", "content": "hi"}, image], model="first", system="Sys."
            )
        assert refused.value.param == "messages[1]"
        assert "messages[1] has an image_url part (content[0])" in str(refused.value)
        held = llmrelay.Conversation(
            [
                {"role": "user", "content": [{"type": "text", "text": "look"}, *image["content"]]},
                {"role": "assistant", "content": "a dot"},
            ]
        )
        with pytest.raises(llmrelay.errors.InvalidRequestError) as refused:
            await client.complete("and now?", model="first", conversation=held)
        assert refused.value.param == "conversation"
        assert "the conversation's message 0 has an image_url part (content[1])" in str(
            refused.value
        )
    assert script.received == []


async def test_a_responses_refusal_names_the_input_item_and_its_part() -> None:
    cls, script = scripted("first", ["ok", FinishReason("stop")])
    async with llmrelay.AsyncClient(providers=[cls]) as client:
        with pytest.raises(llmrelay.errors.InvalidRequestError) as refused:
            await client.responses.create(
                model="first:shared-model",
                instructions="Sys.",
                input=[
                    {"role": "user", "content": "hi"},
                    {"type": "reasoning", "id": "rs_1", "summary": []},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c1", "output": "1"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "look"},
                            {"type": "input_image", "image_url": _DOT},
                        ],
                    },
                ],
            )
    assert refused.value.param == "input[4]"
    assert "input[4] has an image_url part (input[4].content[1])" in str(refused.value)
    assert "first cannot take images" in str(refused.value)
    assert script.received == []


async def test_a_messages_refusal_names_the_anthropic_message_and_its_block() -> None:
    cls, script = scripted("first", ["ok", FinishReason("stop")])
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    async with llmrelay.AsyncClient(providers=[cls]) as client:
        with pytest.raises(llmrelay.errors.InvalidRequestError) as refused:
            await client.messages.create(
                model="first:shared-model",
                max_tokens=10,
                system="Sys.",
                messages=[
                    {"role": "user", "content": "call f"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t1", "content": "1"},
                            {"type": "text", "text": "and this?"},
                            image,
                        ],
                    },
                ],
            )
    assert refused.value.param == "messages[2]"
    assert "messages[2] has an image_url part (messages[2].content[2])" in str(refused.value)
    assert script.received == []
