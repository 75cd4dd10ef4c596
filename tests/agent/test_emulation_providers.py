"""Tool emulation against the wire fakes of Replicate, Ai2 and h2o and a real Gradio Space.

Each service streams a scripted answer holding a call block; the caller gets
``ToolCallDelta`` events and ``FinishReason("tool_calls")``, and the service received the
tools described in its own terms (Replicate's ``system_prompt``, the Space's system input,
Ai2's and h2o's user text). An invalid call is an ``InvalidOutputError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import llmrelay
from llmrelay import FinishReason, ToolCallDelta
from llmrelay.providers.ai2 import Ai2
from llmrelay.providers.h2o import H2o
from llmrelay.providers.replicate import Replicate
from tests.fakes._server import serve
from tests.fakes.ai2 import Ai2Script, FakeAi2
from tests.fakes.h2o import FakeH2o, H2oScript
from tests.fakes.replicate import FakeReplicate, ReplicateScript

pytestmark = pytest.mark.anyio

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CALL = '```json\n{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}\n```'
WRONG = '```json\n{"tool_calls": [{"name": "get_weather", "arguments": {"city": 47}}]}\n```'


def pieces(text: str, size: int = 7) -> list[str]:
    """``text`` in small deltas, as a model streams it."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def check_call(events: list[Any]) -> None:
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(c.index, c.name, json.loads(c.arguments)) for c in calls] == [
        (0, "get_weather", {"city": "Oslo"})
    ]
    assert events[-1] == FinishReason("tool_calls")
    assert not [e for e in events if isinstance(e, str) and e.strip()]


async def ask(client: llmrelay.AsyncClient, model: str, **params: Any) -> list[Any]:
    return [
        e
        async for e in client.stream(
            "Weather in Oslo?", model=model, tools=[WEATHER], tool_emulation=True, **params
        )
    ]


@pytest.fixture(scope="module")
def replicate() -> Iterator[tuple[FakeReplicate, str]]:
    fake = FakeReplicate()
    with serve(fake.app) as url:
        yield fake, url


async def test_replicate_gets_the_tools_in_its_system_prompt(
    replicate: tuple[FakeReplicate, str],
) -> None:
    fake, url = replicate
    fake.reset(ReplicateScript(tokens=pieces(CALL)))
    async with llmrelay.AsyncClient(
        providers=[Replicate], base_urls={"replicate": f"{url}/v1"}, api_keys={"replicate": "r8"}
    ) as client:
        events = await ask(client, "replicate:meta/meta-llama-3-8b-instruct", system="Be brief.")
        check_call(events)
        sent = fake.creations()[-1].json["input"]
        assert sent["system_prompt"].startswith("Be brief.\n\nYou can call the following tools.")
        assert '"name": "get_weather"' in sent["system_prompt"]
        assert "tool_calls" not in sent["prompt"]
        fake.reset(ReplicateScript(tokens=pieces(WRONG)))
        with pytest.raises(llmrelay.InvalidOutputError, match="/city") as raised:
            await ask(client, "replicate:meta/meta-llama-3-8b-instruct")
        assert raised.value.provider == "replicate"
    assert fake.wait_streams_closed(5)


async def test_ai2_gets_the_tools_before_the_user_text() -> None:
    fake = FakeAi2()
    with serve(fake.app) as url:
        fake.script = Ai2Script(chunks=pieces(CALL))
        async with llmrelay.AsyncClient(providers=[Ai2], base_urls={"ai2": url}) as client:
            check_call(await ask(client, "ai2"))
        content = fake.received[-1].field("content")
        assert content is not None
        assert content.startswith("You can call the following tools.")
        assert content.endswith("\n\nWeather in Oslo?")
        assert fake.wait_closed(5)


async def test_h2o_gets_the_tools_and_a_wrong_call_is_refused() -> None:
    fake = FakeH2o()
    with serve(fake.app) as url:
        fake.script = H2oScript(tokens=pieces(CALL))
        async with llmrelay.AsyncClient(providers=[H2o], base_urls={"h2o": url}) as client:
            check_call(await ask(client, "h2o:falcon-7b"))
            inputs = fake.of("POST", "/conversation/")[-1].json["inputs"]
            assert "You can call the following tools." in inputs
            fake.script = H2oScript(tokens=pieces(WRONG))
            with pytest.raises(llmrelay.InvalidOutputError, match="invalid arguments"):
                await ask(client, "h2o:falcon-7b")
        assert fake.wait_closed(5)


# -- the real Gradio demo Space -------------------------------------------------------------


@pytest.fixture(scope="module")
def space() -> Iterator[tuple[str, ModuleType]]:
    pytest.importorskip("gradio")
    from tests.gradio_servers import launch_current

    with launch_current() as served:
        yield served


@pytest.mark.gradio
async def test_a_real_gradio_space_answers_with_a_call(
    space: tuple[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, demo = space
    received: list[str] = []
    scripted = {"answer": CALL}

    def answer_chunks(query: str, system: str, history: Any = None) -> list[str]:
        received.append(system)
        return pieces(scripted["answer"])

    monkeypatch.setattr(demo, "answer_chunks", answer_chunks)  # the Space's model, scripted
    async with llmrelay.AsyncClient(base_urls={"hf_spaces": url}) as client:
        check_call(await ask(client, "hf_spaces:qwen-2-72b"))
        assert received[-1].startswith("You can call the following tools.")
        assert '"required": ["city"]' in received[-1]
        scripted["answer"] = WRONG
        with pytest.raises(llmrelay.InvalidOutputError) as raised:
            await ask(client, "hf_spaces:qwen-2-72b")
        assert raised.value.param == "tool_calls"
        assert raised.value.provider == "hf_spaces"
        scripted["answer"] = '{"city": "Oslo", "sky": "grey"}'
        done = await client.complete(
            "Weather in Oslo as JSON",
            model="hf_spaces:qwen-2-72b",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": {"required": ["city", "sky"]}},
            },
            tool_emulation=True,
        )
        assert json.loads(done.text) == {"city": "Oslo", "sky": "grey"}
