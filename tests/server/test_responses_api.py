"""``/v1/responses`` against the real ``openai`` SDK (``responses.create/stream/parse``).

The server runs the scripted providers (``tests/server/scripted.py``) and, for
``previous_response_id``, the wire-level Ai2 fake (olmo-api's threads API): a
continuation must reach Ai2 as the ``parent`` message of the previous answer, through
the server's memory or, with a log database, through another server (another worker).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel
from tests.contract.fake_ai2 import Ai2ContractFake
from tests.fakes._server import serve
from tests.server import scripted
from tests.server.conftest import run_app

from llmrelay.providers import Capability
from llmrelay.server import ServerConfig, create_app
from llmrelay.types import FinishReason, Reasoning, ToolCallDelta, Usage

TOOLS_ENGINE = hasattr(Capability, "TOOLS")
"""The engine forwards tools and response formats (the agent branch's engine)."""
needs_tools_engine = pytest.mark.skipif(
    not TOOLS_ENGINE, reason="tools reach a provider with the tool-calling engine (agent branch)"
)


@pytest.fixture
def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=20)


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_create_sends_every_field_and_stores_the_response(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(
        model="alpha:m",
        instructions="Be brief.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Say hi"}]},
        ],
        temperature=0.5,
        top_p=0.9,
        max_output_tokens=40,
        metadata={"ticket": "7"},
        user="someone",
    )
    assert response.output_text == "Hello, world!"
    assert response.status == "completed"
    assert response.model == "alpha:m"
    assert (response.temperature, response.top_p, response.max_output_tokens) == (0.5, 0.9, 40)
    assert response.metadata == {"ticket": "7"}
    assert response.instructions == "Be brief."
    assert response.usage is not None
    assert response.usage.output_tokens == 3
    request = scripted.LOG["alpha"].requests[-1]
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "Say hi"),
    ]
    assert (request.temperature, request.top_p, request.max_tokens) == (0.5, 0.9, 40)

    assert sdk.responses.retrieve(response.id).output_text == "Hello, world!"
    items = sdk.responses.input_items.list(response.id)
    assert [item.type for item in items.data] == ["message"]
    sdk.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


def test_store_false_keeps_nothing(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model="alpha:m", input="hi", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="alpha:m", input="more", previous_response_id=response.id)
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_previous_response_id_sends_the_history(sdk: openai.OpenAI) -> None:
    first = sdk.responses.create(model="alpha:m", input="My name is Ann.", instructions="Rhyme.")
    sdk.responses.create(model="alpha:m", input="Who am I?", previous_response_id=first.id)
    request = scripted.LOG["alpha"].requests[-1]
    # the history, without the first request's instructions (OpenAI: not inherited)
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "My name is Ann."),
        ("assistant", "Hello, world!"),
        ("user", "Who am I?"),
    ]


def test_streaming_events_as_the_sdk_accumulates_them(sdk: openai.OpenAI) -> None:
    scripted.SCRIPTS["alpha"] = [
        Reasoning("Thinking."),
        "Hel",
        "lo",
        Usage(2, 2, 4),
        FinishReason("stop"),
    ]
    with sdk.responses.stream(model="alpha:m", input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "response.reasoning_text.delta" in kinds
    assert final.output_text == "Hello"
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.usage is not None
    assert final.usage.total_tokens == 4


def test_a_length_finish_is_incomplete(sdk: openai.OpenAI) -> None:
    scripted.SCRIPTS["alpha"] = ["Cut", FinishReason("length")]
    response = sdk.responses.create(model="alpha:m", input="hi", max_output_tokens=1)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_a_stream_with_a_tool_call(sdk: openai.OpenAI) -> None:
    scripted.SCRIPTS["alpha"] = [
        ToolCallDelta(0, "call_1", "get_weather", '{"city"'),
        ToolCallDelta(0, arguments=':"Paris"}'),
        Usage(9, 5, 14),
        FinishReason("tool_calls"),
    ]
    with sdk.responses.stream(
        model="alpha:m", input="Weather in Paris?", tools=[WEATHER]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    [call] = final.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )


@needs_tools_engine
def test_a_tool_round_trip_reaches_the_provider(sdk: openai.OpenAI) -> None:
    scripted.SCRIPTS["alpha"] = [
        ToolCallDelta(0, "call_1", "get_weather", '{"city":"Paris"}'),
        FinishReason("tool_calls"),
    ]
    first = sdk.responses.create(
        model="alpha:m", input="Weather?", tools=[WEATHER], tool_choice="required"
    )
    request = scripted.LOG["alpha"].requests[-1]
    assert [tool.name for tool in request.tools] == ["get_weather"]
    assert request.tool_choice is not None
    assert request.tool_choice.mode == "required"
    scripted.SCRIPTS["alpha"] = scripted.ok_script("Sunny.")
    second = sdk.responses.create(
        model="alpha:m",
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": "call_1", "output": "22 C"}],
    )
    assert second.output_text == "Sunny."
    request = scripted.LOG["alpha"].requests[-1]
    assert [m.role for m in request.messages] == ["user", "assistant", "tool"]
    assert request.messages[1].tool_calls[0].id == "call_1"
    assert (request.messages[2].tool_call_id, request.messages[2].content) == ("call_1", "22 C")


class Weather(BaseModel):
    city: str
    celsius: int


@needs_tools_engine
def test_parse_with_a_json_schema(sdk: openai.OpenAI) -> None:
    scripted.SCRIPTS["alpha"] = scripted.ok_script('{"city": "Paris", ', '"celsius": 22}')
    parsed = sdk.responses.parse(model="alpha:m", input="Weather?", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", celsius=22)
    request = scripted.LOG["alpha"].requests[-1]
    assert request.response_format is not None
    assert request.response_format.type == "json_schema"


def test_a_field_that_cannot_be_honoured_is_400_with_param(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="alpha:m", input="hi", reasoning={"effort": "high"})
    assert caught.value.body["param"] == "reasoning.effort"  # type: ignore[index]
    assert scripted.LOG["alpha"].requests == []  # nothing was sent


def test_errors_before_and_after_the_first_event(sdk: openai.OpenAI, base_url: str) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model="nope:m", input="hi")
    scripted.SCRIPTS["alpha"] = ["partial ", scripted.Pause(0.05), RuntimeError("cut")]
    with httpx.stream(
        "POST", f"{base_url}/responses", json={"model": "alpha:m", "input": "hi", "stream": True}
    ) as reply:
        assert reply.status_code == 200
        body = reply.read().decode()
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert events[-1]["response"]["status"] == "failed"


def test_the_bodies_validate_against_the_open_responses_schema(base_url: str) -> None:
    """The checks of the Open Responses compliance suite, on loopback (its six cases)."""
    import openresponses_types as spec

    cases = {
        "basic-response": {"input": [{"type": "message", "role": "user", "content": "Say hello."}]},
        "system-prompt": {
            "input": [
                {"type": "message", "role": "system", "content": "You are a pirate."},
                {"type": "message", "role": "user", "content": "Say hello."},
            ]
        },
        "multi-turn": {
            "input": [
                {"type": "message", "role": "user", "content": "My name is Alice."},
                {"type": "message", "role": "assistant", "content": "Hello Alice!"},
                {"type": "message", "role": "user", "content": "What is my name?"},
            ]
        },
    }
    for name, body in cases.items():
        reply = httpx.post(f"{base_url}/responses", json={"model": "alpha:m", **body})
        assert reply.status_code == 200, name
        resource = spec.ResponseResource.model_validate(reply.json())
        assert resource.status == "completed", name
        assert resource.output, name
    with httpx.stream(
        "POST",
        f"{base_url}/responses",
        json={
            "model": "alpha:m",
            "stream": True,
            "input": [{"type": "message", "role": "user", "content": "Count."}],
        },
    ) as reply:
        lines = [line for line in reply.iter_lines() if line.startswith("data: ")]
    events = [json.loads(line[6:]) for line in lines]
    spec.ResponseCompletedStreamingEvent.model_validate(events[-1])
    spec.ResponseResource.model_validate(events[-1]["response"])
    # tool-calling-streaming: the function_call item and its argument events
    scripted.SCRIPTS["alpha"] = [
        ToolCallDelta(0, "call_1", "get_weather", '{"city":'),
        ToolCallDelta(0, arguments='"SF"}'),
        FinishReason("tool_calls"),
    ]
    with httpx.stream(
        "POST",
        f"{base_url}/responses",
        json={"model": "alpha:m", "stream": True, "input": "Weather?", "tools": [WEATHER]},
    ) as reply:
        events = [json.loads(line[6:]) for line in reply.iter_lines() if line.startswith("data: ")]
    models = {
        "response.created": spec.ResponseCreatedStreamingEvent,
        "response.in_progress": spec.ResponseInProgressStreamingEvent,
        "response.output_item.added": spec.ResponseOutputItemAddedStreamingEvent,
        "response.function_call_arguments.delta": spec.ResponseFunctionCallArgumentsDeltaStreamingEvent,
        "response.function_call_arguments.done": spec.ResponseFunctionCallArgumentsDoneStreamingEvent,
        "response.output_item.done": spec.ResponseOutputItemDoneStreamingEvent,
        "response.completed": spec.ResponseCompletedStreamingEvent,
    }
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    for event in events:
        models[event["type"]].model_validate(event)
    assert events[2]["item"]["type"] == "function_call"


# -- previous_response_id continues the provider's own conversation -------------------


@pytest.fixture
def ai2() -> Iterator[tuple[Ai2ContractFake, dict[str, Any]]]:
    fake = Ai2ContractFake()
    with serve(fake.app) as upstream:
        fake.ok()
        yield fake, fake.prepare_client_kwargs(upstream)


def test_a_continuation_reaches_ai2_as_its_parent_message(
    ai2: tuple[Ai2ContractFake, dict[str, Any]],
) -> None:
    fake, kwargs = ai2
    with run_app(create_app(config=ServerConfig(client_kwargs=kwargs))) as url:
        sdk = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
        first = sdk.responses.create(model="ai2", input="Hello")
        assert fake.fake.received[-1].parent is None  # a new thread
        with sdk.responses.stream(
            model="ai2", input="More", previous_response_id=first.id
        ) as stream:
            for _ in stream:
                pass
            second = stream.get_final_response()
        received = fake.fake.received
        assert received[-2].reply_id is not None
        assert received[-1].parent == received[-2].reply_id  # Ai2's own thread continued
        assert received[-1].field("content") == "More"  # only the new turn was sent
        sdk.responses.create(model="ai2", input="Again", previous_response_id=second.id)
        assert fake.fake.received[-1].parent == fake.fake.received[-2].reply_id
    assert fake.wait_closed(5)


def test_workers_sharing_the_log_database_continue_each_others_responses(
    ai2: tuple[Ai2ContractFake, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, kwargs = ai2
    monkeypatch.setenv("LLMRELAY_DATABASE_URL", f"sqlite:///{tmp_path / 'log.db'}")
    config = ServerConfig(client_kwargs=kwargs)
    with run_app(create_app(config=config)) as one, run_app(create_app(config=config)) as two:
        first_worker = openai.OpenAI(base_url=one + "/v1", api_key="x", max_retries=0, timeout=20)
        second_worker = openai.OpenAI(base_url=two + "/v1", api_key="x", max_retries=0, timeout=20)
        first = first_worker.responses.create(model="ai2", input="Hello")
        second_worker.responses.create(model="ai2", input="More", previous_response_id=first.id)
        received = fake.fake.received
        assert received[-1].parent == received[-2].reply_id
        assert second_worker.responses.retrieve(first.id).output_text == first.output_text
