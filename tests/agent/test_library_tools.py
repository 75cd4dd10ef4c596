"""Tools through the library: a conversation carries calls and results across turns.

``complete()``/``collect()`` give the assembled calls; a ``Conversation`` records the
assistant's calls, the next turn answers them with ``role: "tool"`` messages, and the
provider receives the whole exchange in OpenAI's shape. The sync client is the same.
"""

from __future__ import annotations

from typing import Any

import pytest

import llmrelay
from llmrelay import Conversation, Message, Tool, ToolCall, ToolChoice
from tests.corpus.tool_streams import recorded
from tests.fakes.openai_server import FakeOpenAI
from tests.server.scripted import ALL

pytestmark = pytest.mark.anyio

MODEL = "local:fake-model"
WEATHER = Tool(
    "GetWeatherArgs",
    "The weather of a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "country": {"type": "string"},
            "units": {"type": "string", "enum": ["c", "f"]},
        },
        "required": ["city", "country", "units"],
        "additionalProperties": False,
    },
    strict=True,
)
EDINBURGH = ToolCall(
    "call_c91SqDXlYFuETYv8mUHzz6pp",
    "GetWeatherArgs",
    '{"city":"Edinburgh","country":"UK","units":"c"}',
)


async def test_a_conversation_carries_calls_and_results(
    client: llmrelay.AsyncClient, upstream: FakeOpenAI
) -> None:
    upstream.script.raw = recorded("oai-stream-pydantic-tool.sse")
    conversation = Conversation()
    first = await client.complete(
        "What's the weather like in Edinburgh?",
        model=MODEL,
        tools=[WEATHER],
        tool_choice=ToolChoice("function", "GetWeatherArgs"),
        parallel_tool_calls=False,
        conversation=conversation,
    )
    assert first.tool_calls == (EDINBURGH,)
    assert first.finish_reason == "tool_calls"
    sent = upstream.requests[-1].json
    assert sent["tools"] == [WEATHER.to_openai()]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "GetWeatherArgs"}}
    assert sent["parallel_tool_calls"] is False
    assert conversation.messages[-1] == Message("assistant", "", tool_calls=(EDINBURGH,))

    upstream.script.raw = None
    upstream.script.chunks = ["12°C and raining."]
    final = await client.complete(
        Message("tool", '{"temperature": 12, "rain": true}', tool_call_id=EDINBURGH.id),
        model=MODEL,
        tools=[WEATHER],
        conversation=conversation,
    )
    assert final.text == "12°C and raining."
    assert final.tool_calls == ()
    messages = upstream.requests[-1].json["messages"]
    assert messages == [
        {"role": "user", "content": "What's the weather like in Edinburgh?"},
        {"role": "assistant", "content": None, "tool_calls": [EDINBURGH.to_openai()]},
        {
            "role": "tool",
            "content": '{"temperature": 12, "rain": true}',
            "tool_call_id": EDINBURGH.id,
        },
    ]
    again = Conversation.from_dict(conversation.to_dict())
    assert again.messages == conversation.messages
    assert [m.role for m in again.messages] == ["user", "assistant", "tool", "assistant"]


async def test_events_stream_each_delta_and_the_finish_names_tool_calls(
    client: llmrelay.AsyncClient, upstream: FakeOpenAI
) -> None:
    upstream.script.raw = recorded("oai-stream-pydantic-tool.sse")
    events = [e async for e in client.stream("weather?", model=MODEL, tools=[WEATHER])]
    deltas = [e for e in events if isinstance(e, llmrelay.ToolCallDelta)]
    assert deltas[0] == llmrelay.ToolCallDelta(0, EDINBURGH.id, "GetWeatherArgs", "")
    assert all(d.id is None and d.name is None for d in deltas[1:])
    assert "".join(d.arguments for d in deltas) == EDINBURGH.arguments
    assert events[-1] == llmrelay.FinishReason("tool_calls")
    assert llmrelay.event_to_dict(deltas[1]) == {
        "type": "tool_call",
        "index": 0,
        "id": None,
        "name": None,
        "arguments": deltas[1].arguments,
    }


def test_the_sync_client_gives_the_same_calls(
    client_kwargs: dict[str, Any], upstream: FakeOpenAI
) -> None:
    upstream.script.raw = recorded("oai-stream-pydantic-tool.sse")
    with llmrelay.Client(**client_kwargs) as client:
        completion = client.complete("weather?", model=MODEL, tools=[WEATHER.to_openai()])
        upstream.script.raw = recorded("oai-stream-pydantic-tool.sse")
        chat = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER.to_openai()],
        )
    assert completion.tool_calls == (EDINBURGH,)
    calls = chat.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        (EDINBURGH.id, EDINBURGH.name, EDINBURGH.arguments)
    ]


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0]"),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        ({"tools": "get_weather"}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"tools": [WEATHER], "tool_choice": "any"}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
        ({"tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ],
)
async def test_malformed_agent_arguments_name_the_field(
    client: llmrelay.AsyncClient, upstream: FakeOpenAI, arguments: dict[str, Any], param: str
) -> None:
    with pytest.raises(llmrelay.ConfigError) as caught:
        await client.complete("hi", model=MODEL, **arguments)
    assert caught.value.param == param
    assert upstream.requests == []


@pytest.mark.parametrize("provider", [cls.name for cls in ALL])
async def test_providers_without_tools_refuse_them_by_name(
    client: llmrelay.AsyncClient, upstream: FakeOpenAI, provider: str
) -> None:
    with pytest.raises(llmrelay.InvalidRequestError) as caught:
        await client.complete("hi", model=f"{provider}:m", tools=[WEATHER])
    assert caught.value.param == "tools"
    assert f"{provider} cannot honour tools" in str(caught.value)


async def test_tool_choice_none_without_tools_asks_for_nothing(
    client: llmrelay.AsyncClient, upstream: FakeOpenAI
) -> None:
    await client.complete("hi", model=MODEL, tool_choice="none", parallel_tool_calls=True)
    sent = upstream.requests[-1].json
    assert "tool_choice" not in sent
    assert "parallel_tool_calls" not in sent


async def test_a_provider_without_tools_refuses_a_history_with_calls(
    client: llmrelay.AsyncClient, upstream: FakeOpenAI
) -> None:
    history = [
        Message("user", "weather?"),
        Message("assistant", "", tool_calls=(EDINBURGH,)),
        Message("tool", "sunny", tool_call_id=EDINBURGH.id),
    ]
    with pytest.raises(llmrelay.InvalidRequestError) as caught:
        await client.complete(history, model="alpha:m")
    assert caught.value.param == "messages[1]"
    assert "alpha cannot honour tool calls and tool results" in str(caught.value)
