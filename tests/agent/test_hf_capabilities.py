"""huggingface: tools and structured output, checked per model before anything is sent.

The router's catalogue (``GET /v1/models``: each model's offers with ``supports_tools``
and ``supports_structured_output``) decides: a model no offer serves tools for is refused
(``param`` named, no chat request sent); an offer pinned by a ``:<provider>`` suffix is
judged alone; a model the catalogue does not list is left to the router. Tools go to
the router natively; on the Inference API (``api="inference"``) they are refused and a
JSON ``response_format`` becomes TGI's ``grammar``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import llmrelay
from tests.fakes._server import serve
from tests.fakes._streaming import combine
from tests.fakes.hf_router import FakeHFRouter, RouterScript
from tests.fakes.hub import FakeHub, HubScript
from tests.fakes.tgi import FakeTGI, TGIScript

pytestmark = pytest.mark.anyio

TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "City", "schema": SCHEMA}}


@dataclass
class Fakes:
    tgi: FakeTGI
    hub: FakeHub
    router: FakeHFRouter
    url: str

    def chats(self) -> list[Any]:
        return [r for r in self.router.requests if r.path.endswith("/chat/completions")]


@pytest.fixture(scope="module")
def _served() -> Iterator[Fakes]:
    tgi, hub, router = FakeTGI(), FakeHub(), FakeHFRouter()
    with serve(combine(tgi, hub, router)) as url:
        yield Fakes(tgi, hub, router, url)


@pytest.fixture
def fakes(_served: Fakes) -> Iterator[Fakes]:
    _served.tgi.script = TGIScript()
    _served.hub.script = HubScript()
    _served.router.script = RouterScript()
    for recorder in (_served.tgi.recorder, _served.hub.recorder, _served.router.recorder):
        recorder.requests.clear()
    yield _served
    assert _served.router.wait_closed(5)


@pytest.fixture
async def client(fakes: Fakes) -> AsyncIterator[llmrelay.AsyncClient]:
    endpoints = {"base_url": fakes.url, "hub_url": fakes.url, "router_url": fakes.url + "/v1"}
    async with llmrelay.AsyncClient(endpoints={"huggingface": endpoints}) as aclient:
        yield aclient


@pytest.mark.parametrize(
    "model",
    [
        "meta-llama/Llama-3.1-8B-Instruct",  # cerebras serves tools
        "meta-llama/Llama-3.1-8B-Instruct:cerebras",
        "Qwen/Qwen2-72B-Instruct",
    ],
)
async def test_tools_go_to_the_router_when_an_offer_has_them(
    client: llmrelay.AsyncClient, fakes: Fakes, model: str
) -> None:
    completion = await client.complete(
        "weather?", model=f"huggingface:{model}", tools=[TOOL], tool_choice="required"
    )
    assert completion.text
    body = fakes.chats()[-1].json
    assert body["model"] == model
    assert body["tools"] == [TOOL]
    assert body["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("model", "arguments", "param"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct:novita", {"tools": [TOOL]}, "tools"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", {"tools": [TOOL]}, "tools"),
        (
            "Qwen/Qwen2.5-VL-7B-Instruct:fastest",
            {"response_format": JSON_SCHEMA},
            "response_format",
        ),
        (
            "meta-llama/Llama-3.1-8B-Instruct:novita",
            {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                ]
            },
            "messages",
        ),
    ],
    ids=["pinned-offer-without-tools", "no-offer-with-tools", "no-structured-output", "history"],
)
async def test_the_catalogue_refuses_what_the_model_lacks(
    client: llmrelay.AsyncClient, fakes: Fakes, model: str, arguments: dict[str, Any], param: str
) -> None:
    messages = arguments.pop("messages", "weather?")
    with pytest.raises(llmrelay.InvalidRequestError) as caught:
        await client.complete(messages, model=f"huggingface:{model}", **arguments)
    assert caught.value.param == param
    assert caught.value.provider == "huggingface"
    assert "catalogue" in str(caught.value)
    assert fakes.chats() == []  # nothing was sent


async def test_a_model_the_catalogue_does_not_list_is_left_to_the_router(
    client: llmrelay.AsyncClient, fakes: Fakes
) -> None:
    with pytest.raises(llmrelay.ProviderError) as caught:
        await client.complete("hi", model="huggingface:acme/unlisted:fastest", tools=[TOOL])
    # the router itself answered (it serves no such model): the request was sent
    assert "no inference provider you have enabled serves" in str(caught.value)
    assert fakes.chats()[-1].json["tools"] == [TOOL]


async def test_the_inference_api_refuses_tools_and_takes_a_grammar(
    client: llmrelay.AsyncClient, fakes: Fakes
) -> None:
    model = "huggingface:HuggingFaceH4/zephyr-7b-beta"
    with pytest.raises(llmrelay.InvalidRequestError) as caught:
        await client.complete("hi", model=model, tools=[TOOL], options={"api": "inference"})
    assert caught.value.param == "tools"
    assert "api='router'" in str(caught.value)
    assert fakes.tgi.requests == []
    await client.complete("a city?", model=model, response_format=JSON_SCHEMA)
    parameters = fakes.tgi.requests[-1].json["parameters"]
    assert parameters["grammar"] == {"type": "json", "value": SCHEMA}
    await client.complete("any JSON?", model=model, response_format={"type": "json_object"})
    assert fakes.tgi.requests[-1].json["parameters"]["grammar"] == {
        "type": "json",
        "value": {"type": "object"},
    }


async def test_tools_without_api_go_to_the_router(
    client: llmrelay.AsyncClient, fakes: Fakes
) -> None:
    await client.complete("hi", model="huggingface:Qwen/Qwen2-72B-Instruct", tools=[TOOL])
    assert fakes.tgi.requests == []
    assert fakes.chats()[-1].json["tools"] == [TOOL]
