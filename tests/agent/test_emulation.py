"""Tool emulation through the library, against a scripted provider without native tools.

``alpha`` (``tests/server/scripted.py``) declares chat and streaming only, no system
prompt: the emulation's instructions go before the newest user message. Each test scripts
the model's whole answer and checks what the provider received and what the caller got.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmrelay
from llmrelay import FinishReason, ToolCallDelta
from llmrelay._emulation import CALL_FORMAT
from tests.server import scripted

pytestmark = pytest.mark.anyio

MODEL = "alpha:m"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
PERSON = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
    },
}


def block(*calls: dict[str, Any]) -> str:
    return "```json\n" + json.dumps({"tool_calls": list(calls)}) + "\n```"


PARIS = {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}


@pytest.fixture(autouse=True)
def _scripts() -> Iterator[None]:
    scripted.reset()
    yield
    scripted.reset()


def answer(*pieces: str) -> None:
    scripted.SCRIPTS["alpha"] = scripted.ok_script(*pieces, usage=False)


def sent() -> llmrelay.ChatRequest:
    return scripted.LOG["alpha"].requests[-1]


def client(**kwargs: Any) -> llmrelay.AsyncClient:
    return llmrelay.AsyncClient(providers=list(scripted.ALL), cooldown=0, **kwargs)


async def events_of(**params: Any) -> list[Any]:
    async with client() as aclient:
        return [e async for e in aclient.stream("Weather in Paris?", model=MODEL, **params)]


async def test_without_the_opt_in_tools_are_refused_naming_the_provider() -> None:
    answer(block(PARIS))
    with pytest.raises(llmrelay.InvalidRequestError) as raised:
        await events_of(tools=[WEATHER])
    assert raised.value.param == "tools"
    assert raised.value.provider == "alpha"
    assert "tool_emulation" in str(raised.value)
    assert scripted.LOG["alpha"].requests == []  # nothing was sent
    with pytest.raises(llmrelay.InvalidRequestError, match="response_format"):
        await events_of(response_format=PERSON, tool_emulation=False)


async def test_a_call_in_the_answer_becomes_tool_call_events() -> None:
    answer("Let me look.\n", block(PARIS)[:20], block(PARIS)[20:])
    events = await events_of(tools=[WEATHER], tool_emulation=True)
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(calls) == 1
    assert (calls[0].index, calls[0].name) == (0, "get_weather")
    assert calls[0].id is not None
    assert calls[0].id.startswith("call_")
    assert json.loads(calls[0].arguments) == {"city": "Paris", "days": 2}
    assert [e for e in events if isinstance(e, str)] == ["Let me look."]
    assert events[-1] == FinishReason("tool_calls")
    # what the provider got: no tools, their description before the user's text
    request = sent()
    assert request.tools == ()
    assert request.tool_choice is None
    user = request.messages[-1]
    assert user.role == "user"
    assert user.content.endswith("\n\nWeather in Paris?")
    assert '"name": "get_weather"' in user.content
    assert '"required": ["city"]' in user.content
    assert CALL_FORMAT in user.content


async def test_complete_assembles_the_call_and_a_conversation_keeps_it() -> None:
    answer(block(PARIS))
    conversation = llmrelay.Conversation()
    async with client() as aclient:
        first = await aclient.complete(
            "Weather in Paris?",
            model=MODEL,
            tools=[WEATHER],
            tool_emulation=True,
            conversation=conversation,
        )
        [call] = first.tool_calls
        assert first.finish_reason == "tool_calls"
        answer("It is sunny.")
        final = await aclient.complete(
            llmrelay.Message("tool", '{"sky": "sunny"}', tool_call_id=call.id),
            model=MODEL,
            tools=[WEATHER],
            tool_emulation=True,
            conversation=conversation,
        )
    assert final.text == "It is sunny."
    assert final.finish_reason == "stop"
    # the history reached the provider as text in the emulation's own format
    messages = sent().messages
    assert all(m.role in ("user", "assistant") and not m.tool_calls for m in messages)
    assistant = next(m for m in messages if m.role == "assistant")
    assert json.loads(assistant.content.strip("`\njson"))["tool_calls"][0]["id"] == call.id
    assert messages[-1].content.endswith(
        f'Result of tool call {call.id} (get_weather):\n{{"sky": "sunny"}}'
    )


@pytest.mark.parametrize(
    ("text", "params", "match"),
    [
        (block({"name": "get_weather", "arguments": {"city": 7}}), {}, "/city"),
        (block({"name": "get_weather", "arguments": {"town": "x"}}), {}, "city"),
        (block({"name": "launch_rockets", "arguments": {}}), {}, "not a tool offered"),
        ('```json\n{"tool_calls": [{"name": "get_weather",}]}\n```', {}, "not JSON"),
        (block(PARIS) + "\n" + block(PARIS), {}, "several tool-call blocks"),
        (
            block(PARIS, {"name": "get_time", "arguments": {}}),
            {"parallel_tool_calls": False},
            "parallel_tool_calls",
        ),
        ("I will not call anything.", {"tool_choice": "required"}, "no tool-call block"),
        (
            block({"name": "get_time", "arguments": {}}),
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            "tool_choice asks for 'get_weather'",
        ),
        ('{"tool_calls": "soon"', {}, "not JSON"),
    ],
    ids=[
        "wrong-type",
        "missing-required",
        "unknown-tool",
        "bad-json",
        "two-blocks",
        "parallel-false",
        "required-without-call",
        "other-function",
        "unfenced-broken",
    ],
)
async def test_an_invalid_call_is_a_typed_error_never_text(
    text: str, params: dict[str, Any], match: str
) -> None:
    answer(text)
    with pytest.raises(llmrelay.InvalidOutputError, match=match) as raised:
        await events_of(tools=[WEATHER, TIME], tool_emulation=True, **params)
    assert raised.value.param == "tool_calls"
    assert raised.value.provider == "alpha"
    assert raised.value.body == text  # the answer, to inspect
    assert not raised.value.retryable


async def test_auto_lets_a_text_answer_through_and_none_streams_it() -> None:
    answer("No need for tools: ", "it is late.")
    events = await events_of(tools=[WEATHER], tool_emulation=True)
    assert [e for e in events if isinstance(e, str)] == ["No need for tools: it is late."]
    assert events[-1] == FinishReason("stop")
    answer("Streamed ", "as is.")
    events = await events_of(tools=[WEATHER], tool_choice="none", tool_emulation=True)
    assert [e for e in events if isinstance(e, str)] == ["Streamed ", "as is."]
    assert "Do not call any tool now" in sent().messages[-1].content


async def test_a_json_schema_answer_is_validated() -> None:
    answer('```json\n{"name": "Ada", ', '"age": 36}\n```')
    events = await events_of(response_format=PERSON, tool_emulation=True)
    text = "".join(e for e in events if isinstance(e, str))
    assert json.loads(text) == {"name": "Ada", "age": 36}
    assert events[-1] == FinishReason("stop")
    assert '"required": ["age", "name"]' not in sent().messages[-1].content  # as given
    assert '"required": ["name", "age"]' in sent().messages[-1].content
    answer('{"name": "Ada", "age": "old"}')
    with pytest.raises(llmrelay.InvalidOutputError, match="/age") as raised:
        await events_of(response_format=PERSON, tool_emulation=True)
    assert raised.value.param == "response_format"
    answer("Ada, 36")
    with pytest.raises(llmrelay.InvalidOutputError, match="not JSON"):
        await events_of(response_format=PERSON, tool_emulation=True)


async def test_json_object_needs_an_object() -> None:
    answer("[1, 2]")
    with pytest.raises(llmrelay.InvalidOutputError, match="not a JSON object"):
        await events_of(response_format={"type": "json_object"}, tool_emulation=True)
    answer(' {"a": 1} ')
    events = await events_of(response_format={"type": "json_object"}, tool_emulation=True)
    assert "".join(e for e in events if isinstance(e, str)) == '{"a": 1}'


async def test_a_cut_answer_says_so() -> None:
    scripted.SCRIPTS["alpha"] = ['{"name": "Ad', FinishReason("length")]
    with pytest.raises(llmrelay.InvalidOutputError, match="cut at max_tokens"):
        await events_of(response_format=PERSON, tool_emulation=True)


async def test_an_invalid_schema_is_refused_before_sending() -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}
    with pytest.raises(llmrelay.InvalidRequestError) as raised:
        await events_of(tools=[bad], tool_emulation=True)
    assert raised.value.param == "tools[0].function.parameters"
    assert scripted.LOG["alpha"].requests == []


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


async def test_the_config_file_opts_in_per_provider_or_alias(tmp_path: Path) -> None:
    answer(block(PARIS))
    per_provider = _config(tmp_path, "[providers.alpha]\ntool_emulation = true\n")
    async with client(config_path=per_provider) as aclient:
        done = await aclient.complete("Weather?", model=MODEL, tools=[WEATHER])
        assert [c.name for c in done.tool_calls] == ["get_weather"]
        with pytest.raises(llmrelay.InvalidRequestError):  # the call's False wins
            await aclient.complete("Weather?", model=MODEL, tools=[WEATHER], tool_emulation=False)
    per_alias = _config(tmp_path, 'tool_emulation = ["agent"]\n[aliases]\nagent = "alpha:m"\n')
    async with client(config_path=per_alias) as aclient:
        done = await aclient.complete("Weather?", model="agent", tools=[WEATHER])
        assert done.finish_reason == "tool_calls"
        with pytest.raises(llmrelay.InvalidRequestError):  # not through the alias
            await aclient.complete("Weather?", model=MODEL, tools=[WEATHER])


def test_the_setting_reads_names_and_switches() -> None:
    from llmrelay._settings import ProviderSettingsSpec, Settings

    specs = {"alpha": ProviderSettingsSpec()}
    env = {"LLMRELAY_TOOL_EMULATION": "alpha, fast"}
    settings = Settings.load(providers=specs, env=env)
    assert settings.tool_emulation == {"alpha", "fast"}
    assert settings.emulates("beta", "fast")
    assert not settings.emulates("beta", "beta")
    everywhere = Settings.load(providers=specs, env={"LLMRELAY_TOOL_EMULATION": "1"})
    assert everywhere.emulates("anything", None)
    assert (
        Settings.load(providers=specs, config={"tool_emulation": False}, env={}).tool_emulation
        == set()
    )
    with pytest.raises(llmrelay.ConfigError, match="tool_emulation"):
        Settings.load(providers=specs, config={"tool_emulation": "yes"}, env={})
    with pytest.raises(llmrelay.ConfigError, match=r"\[providers.alpha\] tool_emulation"):
        Settings.load(
            providers=specs, config={"providers": {"alpha": {"tool_emulation": 1}}}, env={}
        )


def test_the_server_gives_openai_shapes_for_emulated_calls(tmp_path: Path) -> None:
    import httpx

    from llmrelay.server import ServerConfig, create_app
    from tests.server.conftest import run_app

    config = _config(tmp_path, 'tool_emulation = ["alpha"]\n')
    kwargs = {"providers": list(scripted.ALL), "config_path": config, "cooldown": 0}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Weather?"}]}
    with run_app(create_app(config=ServerConfig(client_kwargs=kwargs))) as url:
        answer("Checking.", block(PARIS))
        reply = httpx.post(f"{url}/v1/chat/completions", json={**body, "tools": [WEATHER]})
        assert reply.status_code == 200, reply.text
        choice = reply.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        [call] = choice["message"]["tool_calls"]
        assert call["type"] == "function"
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "days": 2}
        assert choice["message"]["content"] == "Checking."
        answer(block(PARIS))
        streamed = httpx.post(
            f"{url}/v1/chat/completions", json={**body, "tools": [WEATHER], "stream": True}
        )
        chunks = [
            json.loads(line[6:])
            for line in streamed.text.splitlines()
            if line.startswith("data: {")
        ]
        deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
        [first] = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
        assert (first["index"], first["type"], first["function"]["name"]) == (
            0,
            "function",
            "get_weather",
        )
        assert first["id"].startswith("call_")
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
        answer("not a call, not JSON")
        refused = httpx.post(
            f"{url}/v1/chat/completions",
            json={**body, "tools": [WEATHER], "tool_choice": "required"},
        )
        assert refused.status_code == 502
        assert refused.headers["x-should-retry"] == "false"
        assert "emulated tool_calls" in refused.json()["error"]["message"]


def test_the_instructions_keep_a_message_s_image_parts_in_place() -> None:
    from llmrelay._emulation import _with_instructions
    from llmrelay.types import ImagePart, Message

    image = ImagePart("data:image/png;base64,iVBORw0KGgo=")
    user = Message("user", "", parts=("What is ", image, " this?"))
    [first] = _with_instructions([user], "TOOLS", system_prompt=False)
    assert first.parts == ("TOOLS\n\n", "What is ", image, " this?")
    assert first.content == "TOOLS\n\nWhat is  this?"
    assert first.images == (image.url,)
    system, second = _with_instructions(
        [Message("system", "Be brief."), user], "TOOLS", system_prompt=True
    )
    assert system.content == "Be brief.\n\nTOOLS"
    assert second == user
