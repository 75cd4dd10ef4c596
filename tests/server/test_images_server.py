"""Images in through ``llmrelay serve``: parts passed as given, vision per model in
``/v1/models``, refusals as OpenAI 400s naming ``messages[i]``, and the fetch policy
behind ``--allow-image-fetch`` (never fetched without it; a private address refused with
it), with the openai SDK as the client where it matters."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner
from tests.fakes._server import serve
from tests.fakes.gradio_space import (
    FakeSpace,
    SpaceScript,
    build_chatinterface_config,
    file_note,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.images_server import DOT, ImageServer, serve_images

from llmrelay.cli import cli
from llmrelay.providers._openai_compat import OpenAICompatible

SPACE = "hf_spaces:someone/multimodal-chat"


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    with serve_images() as served:
        yield served


@pytest.fixture
def vision_server(
    openai_fake: tuple[FakeOpenAI, str], make_server: Any, base_config: Any
) -> tuple[FakeOpenAI, str]:
    fake, url = openai_fake
    fake.recorder.requests.clear()
    local = OpenAICompatible.from_config(
        "local",
        {
            "kind": "openai",
            "base_url": f"{url}/v1",
            "models": ["llava", "llama"],
            "vision": ["llava"],
        },
    )
    kwargs = {**base_config.client_kwargs}
    kwargs["providers"] = [*kwargs["providers"], local]
    return fake, make_server(client_kwargs=kwargs)


def data_url(data: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


CONTENT: list[dict[str, Any]] = [
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
    {"type": "text", "text": "What is this, and"},
    {"type": "image_url", "image_url": {"url": data_url(DOT), "detail": "high"}},
    {"type": "text", "text": " this?"},
]


def test_the_parts_reach_a_vision_model_as_sent(vision_server: tuple[FakeOpenAI, str]) -> None:
    fake, url = vision_server
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    messages: Any = [{"role": "user", "content": CONTENT}]
    answer = sdk.chat.completions.create(model="local:llava", messages=messages)
    assert answer.choices[0].message.content == fake.expected_text
    (sent,) = fake.requests
    assert sent.json["messages"] == messages  # order, detail, the URL unfetched


def test_a_model_without_vision_is_an_openai_400_naming_the_message(
    vision_server: tuple[FakeOpenAI, str],
) -> None:
    fake, url = vision_server
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    messages: Any = [{"role": "system", "content": "S"}, {"role": "user", "content": CONTENT}]
    for model in ("local:llama", "alpha:m"):
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.chat.completions.create(model=model, messages=messages)
        error = refused.value.body
        assert isinstance(error, dict)
        assert error["param"] == "messages[1]", error
        assert "content[0]" in error["message"]
        assert model.partition(":")[0] in error["message"]
    assert fake.requests == []


def test_models_say_vision_per_model(vision_server: tuple[FakeOpenAI, str]) -> None:
    _, url = vision_server
    models = {m["id"]: m for m in httpx.get(f"{url}/v1/models").json()["data"]}
    assert models["local:llava"]["vision"] is True
    assert models["local:llama"]["vision"] is False
    assert models["alpha:m"]["vision"] is False
    assert models["hf_spaces:Qwen/Qwen2-72B-Instruct"]["vision"] is False  # its textbox
    assert models["huggingface:Qwen/Qwen2-72B-Instruct"]["vision"] is None  # router not asked
    assert httpx.get(f"{url}/v1/models/local:llava").json()["vision"] is True


# -- a Space, and the fetch policy -------------------------------------------------------------


def unknown_version(space: FakeSpace) -> None:
    config = build_chatinterface_config("6", multimodal=True)
    del config["version"]  # a Space whose version is unknown: it may not take a URL
    space.script = SpaceScript(version="6", app="multimodal", chunks=["Seen."], config_body=config)
    space.uploads.clear()
    space.received.clear()


def ask(url: str, content: Any) -> httpx.Response:
    body = {"model": SPACE, "messages": [{"role": "user", "content": content}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def test_a_space_receives_an_uploaded_image_through_the_server(
    server_url: str, space: FakeSpace
) -> None:
    space.script = SpaceScript(version="6", app="multimodal", chunks=["Seen."])
    space.uploads.clear()
    space.received.clear()
    reply = ask(server_url, [{"type": "text", "text": "Hm?"}, CONTENT[2]])
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "Seen." + file_note(DOT)
    assert space.received == [[DOT]]


def test_an_image_url_is_never_fetched_without_the_flag(
    make_server: Any, space: FakeSpace, images: ImageServer
) -> None:
    unknown_version(space)
    reply = ask(
        make_server(), [{"type": "image_url", "image_url": {"url": f"{images.url}/dot.png"}}]
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "messages[0]"
    assert "fetching image URLs is off" in error["message"]
    assert images.hits["/dot.png"] == 0
    assert space.joins == []


def test_with_the_flag_a_private_address_is_still_refused(
    make_server: Any, base_config: Any, space: FakeSpace, images: ImageServer
) -> None:
    unknown_version(space)
    url = make_server(client_kwargs={**base_config.client_kwargs, "allow_image_fetch": True})
    reply = ask(url, [{"type": "image_url", "image_url": {"url": f"{images.url}/dot.png"}}])
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "messages[0].content[0]"
    assert "non-public address (127.0.0.1)" in error["message"]
    assert images.hits["/dot.png"] == 0
    assert space.joins == []


def test_serve_allow_image_fetch_reaches_the_client(monkeypatch: Any, tmp_path: Path) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(app=app))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert CliRunner().invoke(cli, ["serve", "--port", "1"]).exit_code == 0
    assert "allow_image_fetch" not in seen["app"].state.llmrelay.config.client_kwargs
    result = CliRunner().invoke(cli, ["serve", "--port", "1", "--allow-image-fetch"])
    assert result.exit_code == 0, result.output
    assert seen["app"].state.llmrelay.config.client_kwargs["allow_image_fetch"] is True
