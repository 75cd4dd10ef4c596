"""Real agent clients against the server: the ``openai`` SDK's helpers and LangChain.

The upstream (the OpenAI-compatible fake) replays OpenAI's own recorded streams; the
clients must get from llmrelay exactly what they get from OpenAI: the SDK's
``chat.completions.stream()`` helper assembles and parses the tool calls, ``parse()``
fills a pydantic model, LangChain's ``bind_tools`` sees the calls and
``with_structured_output`` the model, and a tool round trip (call, ``role: "tool"``
result, final answer) reaches the upstream in OpenAI's shape.
"""

from __future__ import annotations

import json
from typing import Literal

import openai
import pytest
from pydantic import BaseModel

from tests.corpus.tool_streams import entries_of, recorded
from tests.fakes.openai_server import FakeOpenAI

MODEL = "local:fake-model"


class GetWeatherArgs(BaseModel):
    city: str
    country: str
    units: Literal["c", "f"] = "c"


class Location(BaseModel):
    city: str
    temperature: float
    units: Literal["c", "f"]


STOCK_TOOL: openai.types.chat.ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_stock_price",
        "parameters": {
            "type": "object",
            "properties": {
                "ticker": {"type": "string"},
                "exchange": {"type": "string"},
            },
            "required": ["ticker", "exchange"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


@pytest.fixture
def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=20)


def test_sdk_stream_helper_assembles_and_parses_parallel_calls(
    sdk: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.script.raw = recorded("oai-stream-parallel-tools.sse")
    tools = [openai.pydantic_function_tool(GetWeatherArgs), STOCK_TOOL]
    deltas: list[str] = []
    with sdk.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Edinburgh, and AAPL?"}],
        tools=tools,
    ) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.delta":
                deltas.append(event.arguments_delta)
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["GetWeatherArgs", "get_stock_price"]
    weather = calls[0].function.parsed_arguments
    assert weather == GetWeatherArgs(city="Edinburgh", country="GB", units="c")
    assert calls[1].function.parsed_arguments == {"ticker": "AAPL", "exchange": "NASDAQ"}
    assert final.choices[0].finish_reason == "tool_calls"
    # each recorded argument fragment (the first ones empty), as its own event
    recorded_entries = entries_of(recorded("oai-stream-parallel-tools.sse"))
    assert deltas == [json.loads(e)["function"]["arguments"] for e in recorded_entries]
    sent = upstream.requests[-1].json
    assert [t["function"]["name"] for t in sent["tools"]] == ["GetWeatherArgs", "get_stock_price"]
    assert sent["tools"][0]["function"]["strict"] is True


def test_sdk_parse_fills_a_pydantic_model(sdk: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script.raw = recorded("oai-stream-structured.sse")
    completion = sdk.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "What's the weather like in SF?"}],
        response_format=Location,
    )
    assert completion.choices[0].message.parsed == Location(
        city="San Francisco", temperature=61, units="f"
    )
    sent = upstream.requests[-1].json["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "Location"
    assert sent["json_schema"]["strict"] is True
    assert set(sent["json_schema"]["schema"]["properties"]) == {"city", "temperature", "units"}


def test_sdk_tool_round_trip(sdk: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script.raw = recorded("oai-stream-pydantic-tool.sse")
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "What's the weather like in Edinburgh?"}
    ]
    tools = [openai.pydantic_function_tool(GetWeatherArgs)]
    first = sdk.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    (call,) = message.tool_calls or []
    assert json.loads(call.function.arguments) == {
        "city": "Edinburgh",
        "country": "UK",
        "units": "c",
    }
    messages.append(message.model_dump(exclude_none=True))  # type: ignore[arg-type]
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "12°C, light rain"})
    upstream.script.raw = None
    upstream.script.chunks = ["It is 12°C", " with light rain in Edinburgh."]
    final = sdk.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    assert final.choices[0].message.content == "It is 12°C with light rain in Edinburgh."
    assert final.choices[0].finish_reason == "stop"
    sent = upstream.requests[-1].json["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "GetWeatherArgs", "arguments": call.function.arguments},
            }
        ],
    }
    assert sent[2] == {"role": "tool", "content": "12°C, light rain", "tool_call_id": call.id}


def test_langchain_bind_tools_and_structured_output(base_url: str, upstream: FakeOpenAI) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    model = langchain_openai.ChatOpenAI(
        model=MODEL, base_url=base_url, api_key="unused", max_retries=0, timeout=20
    )
    upstream.script.raw = recorded("oai-stream-parallel-tools.sse")
    answer = model.bind_tools([GetWeatherArgs, STOCK_TOOL]).invoke(
        "Weather in Edinburgh, and AAPL?"
    )
    assert [(c["name"], c["args"]) for c in answer.tool_calls] == [
        ("GetWeatherArgs", {"city": "Edinburgh", "country": "GB", "units": "c"}),
        ("get_stock_price", {"ticker": "AAPL", "exchange": "NASDAQ"}),
    ]
    assert [c["id"] for c in answer.tool_calls] == [
        "call_JMW1whyEaYG438VE1OIflxA2",
        "call_DNYTawLBoN8fj3KN6qU9N1Ou",
    ]
    # streamed, LangChain joins the chunks itself: the same calls
    upstream.script.raw = recorded("oai-stream-parallel-tools.sse")
    joined = None
    for chunk in model.bind_tools([GetWeatherArgs, STOCK_TOOL]).stream("Again"):
        joined = chunk if joined is None else joined + chunk
    assert joined is not None
    assert [c["args"] for c in joined.tool_calls] == [c["args"] for c in answer.tool_calls]

    upstream.script.raw = recorded("oai-stream-structured.sse")
    structured = model.with_structured_output(Location).invoke("What's the weather like in SF?")
    assert structured == Location(city="San Francisco", temperature=61, units="f")
    assert upstream.requests[-1].json["response_format"]["json_schema"]["name"] == "Location"
