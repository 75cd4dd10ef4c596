"""Discovery from ``/config`` against the fake Space: any chat Space by its id (issue 7)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llmrelay import (
    AsyncClient,
    FinishReason,
    InvalidRequestError,
    Message,
    ProtocolError,
    UnknownModelError,
)
from llmrelay.providers.hf_spaces import HFSpaces
from llmrelay.types import ChatRequest
from tests.fakes.gradio_space import (
    CI_API_FN,
    CI_SYSTEM_DEFAULT,
    FakeSpace,
    SpaceScript,
    api_prefix,
    build_config,
)

pytestmark = pytest.mark.anyio
Space = tuple[FakeSpace, str]
CHUNKS = ["Echo", ": ", "hi", "\n", " la", " la", " 🚀"]


async def complete(url: str, model: str, messages: Any = "hi", **kwargs: Any) -> str:
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        return (await client.complete(messages, model=f"hf_spaces:{model}", **kwargs)).text


@pytest.mark.parametrize("version", ["4", "6"])
async def test_chatinterface_found_without_a_row(space: Space, version: str) -> None:
    fake, url = space
    fake.script = SpaceScript(version=version, app="chatinterface", chunks=CHUNKS)  # type: ignore[arg-type]
    assert await complete(url, "someone/any-chat") == "".join(CHUNKS)
    (join,) = fake.joins
    assert join.path == f"{api_prefix(version)}/queue/join"
    assert join.json["fn_index"] == CI_API_FN[version]
    assert join.json["trigger_id"] == 14  # the hidden "Fake API" button
    # message, history (flattened: []), the system textbox's own default, the slider's value
    assert join.json["data"] == ["hi", [], CI_SYSTEM_DEFAULT, 0.7]


async def test_chatinterface_system_prompt_replaces_the_default(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(version="6", app="chatinterface", chunks=CHUNKS)
    await complete(url, "someone/any-chat", system="Be terse.")
    assert fake.joins[0].json["data"] == ["hi", [], "Be terse.", 0.7]


@pytest.mark.parametrize("version", ["4", "5", "6"])
async def test_known_space_keeps_its_own_system_default(space: Space, version: str) -> None:
    fake, url = space
    fake.script = SpaceScript(version=version)  # type: ignore[arg-type]
    await complete(url, "qwen-2-72b")
    assert fake.joins[0].json["data"] == ["hi", [], "You are a helpful assistant."]


async def test_empty_system_prompt_is_sent_as_given(space: Space) -> None:
    fake, url = space
    messages = [Message("system", ""), Message("user", "hi")]
    await complete(url, "qwen-2-72b", messages)
    assert fake.joins[0].json["data"] == ["hi", [], ""]


@pytest.mark.parametrize("version", ["4", "5", "6"])
async def test_blocks_chatbot_found_without_a_row(space: Space, version: str) -> None:
    fake, url = space
    fake.script = SpaceScript(version=version)  # type: ignore[arg-type]
    text = await complete(url, "someone/qwen-copy", system="S")
    assert text.startswith("Hello, world world!")
    (join,) = fake.joins
    assert (join.json["fn_index"], join.json["trigger_id"]) == (0, 11)
    assert join.json["data"] == ["hi", [], "S"]


async def test_row_stands_in_when_config_describes_no_components(space: Space) -> None:
    fake, url = space
    config = build_config("5")
    del config["components"]  # the row's roles are taken on trust
    fake.script = SpaceScript(config_body=config)
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:  # one provider instance
        text = (await client.complete("hi", model="hf_spaces:qwen-2-72b", system="S")).text
        assert text.startswith("Hello")
        assert fake.joins[0].json["data"] == ["hi", [], "S"]
        fake.requests.clear()
        # the row's layout is not used for another Space on the same host
        with pytest.raises(ProtocolError, match="not a Gradio chat Space"):
            await client.complete("hi", model="hf_spaces:someone/unknown-layout")
    assert fake.joins == []


async def test_row_on_a_dependency_of_another_layout_is_a_protocol_error(space: Space) -> None:
    fake, url = space
    config = build_config("5")
    for component in config["components"]:
        component["type"] = "html"  # model_chat's inputs are not what the row says
    fake.script = SpaceScript(config_body=config)
    with pytest.raises(ProtocolError) as info:
        await complete(url, "qwen-2-72b")
    assert "not laid out like Qwen/Qwen2-72B-Instruct" in str(info.value)
    assert "-m hf_spaces:<owner>/<space>" in str(info.value)
    assert fake.joins == []


@pytest.mark.parametrize("version", ["4", "6"])
async def test_default_model_forced_onto_a_chatinterface_is_a_protocol_error(
    space: Space, version: str
) -> None:
    """Seen: the default model pointed at a self-hosted ``gr.ChatInterface`` ran its
    ``fn_index`` 0 (``_clear_and_save_textbox``) and answered an empty text, rc 0."""
    fake, url = space
    fake.script = SpaceScript(version=version, app="chatinterface")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="not laid out like Qwen/Qwen2-72B-Instruct"):
        await complete(url, "qwen-2-72b")
    assert fake.joins == []
    # named by its own id, discovery finds its chat function
    assert await complete(url, "someone/chat") == "".join(SpaceScript().chunks)


async def test_private_dependencies_are_never_chosen(space: Space) -> None:
    fake, url = space
    config = build_config("6")
    for dep in config["dependencies"][:2]:  # model_chat and the Send button's model_chat_1
        dep["api_visibility"] = "private"
    fake.script = SpaceScript(version="6", config_body=config)
    with pytest.raises(ProtocolError, match="not a Gradio chat Space"):
        await complete(url, "someone/private-api")
    with pytest.raises(ProtocolError, match="'model_chat' is private"):
        await complete(url, "qwen-2-72b")
    assert fake.joins == []


@pytest.mark.parametrize(
    ("version", "hide"),
    [("6", {"api_visibility": "undocumented"}), ("4", {"show_api": False})],
)
async def test_a_public_dependency_is_preferred_to_an_undocumented_one(
    space: Space, version: str, hide: dict[str, Any]
) -> None:
    fake, url = space
    config = build_config(version)
    config["dependencies"][0].update(hide)  # model_chat undocumented, model_chat_1 public
    fake.script = SpaceScript(version=version, config_body=config)  # type: ignore[arg-type]
    await complete(url, "someone/blocks")
    assert fake.joins[0].json["fn_index"] == 1
    config["dependencies"][1].update(hide)  # both undocumented: still callable
    fake.requests.clear()
    await complete(url, "someone/other-blocks")
    assert fake.joins[0].json["fn_index"] == 0


async def test_trailing_slash_prefix_is_accepted(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(config_body={**build_config("5"), "api_prefix": "/gradio_api/"})
    assert (await complete(url, "someone/x")).startswith("Hello")
    assert fake.joins[0].path == "/gradio_api/queue/join"


@pytest.mark.parametrize("model", ["../etc", "a/b/c", "noslash", "a/..", "a /b", "a/b?c", "/a"])
async def test_space_ids_are_checked_before_any_request(space: Space, model: str) -> None:
    fake, url = space
    async with httpx.AsyncClient() as http:
        provider = HFSpaces(http, endpoints={"base_url": url})
        with pytest.raises(UnknownModelError, match="owner"):
            async for _ in provider.stream(ChatRequest((Message("user", "x"),), model=model)):
                pass
    assert fake.requests == []


def test_declared_surface() -> None:
    assert HFSpaces.parameters == frozenset()
    assert HFSpaces.open_catalogue
    assert HFSpaces.resolve_model("qwen-2-72b") == "Qwen/Qwen2-72B-Instruct"
    assert HFSpaces.resolve_model("Owner/Any-Space") == "Owner/Any-Space"
    assert set(HFSpaces.endpoints) == {"base_url", "hub_url"}


async def test_one_finish_from_the_provider_itself(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(version="6", app="chatinterface", chunks=CHUNKS)
    async with httpx.AsyncClient() as http:
        provider = HFSpaces(http, endpoints={"base_url": url})
        request = ChatRequest((Message("user", "hi"),), model="o/s")
        events = [event async for event in provider.stream(request)]
    assert events[-1] == FinishReason("stop")
    assert [e for e in events if isinstance(e, FinishReason)] == [FinishReason("stop")]
    assert "".join(e for e in events if isinstance(e, str)) == "".join(CHUNKS)


async def stream_direct(url: str, model: str, options: dict[str, Any]) -> list[Any]:
    async with httpx.AsyncClient() as http:
        provider = HFSpaces(http, endpoints={"base_url": url})
        request = ChatRequest((Message("user", "hi"),), model=model, options=options)
        return [event async for event in provider.stream(request)]


@pytest.mark.parametrize("label", ["Temperature", "temperature"])
async def test_inputs_option_sets_other_inputs_by_label(space: Space, label: str) -> None:
    fake, url = space
    fake.script = SpaceScript(version="6", app="chatinterface", chunks=CHUNKS)
    events = await stream_direct(url, "someone/any-chat", {"inputs": {label: 0.2}})
    assert events[-1] == FinishReason("stop")
    assert fake.joins[0].json["data"] == ["hi", [], CI_SYSTEM_DEFAULT, 0.2]


@pytest.mark.parametrize("inputs", [{"Top-k": 3}, ["Temperature"], {1: 2}])
async def test_inputs_option_rejects_unknown_labels(space: Space, inputs: Any) -> None:
    fake, url = space
    fake.script = SpaceScript(version="6", app="chatinterface", chunks=CHUNKS)
    with pytest.raises(InvalidRequestError, match=r"Temperature|labels"):
        await stream_direct(url, "someone/any-chat", {"inputs": inputs})
    assert fake.joins == []
