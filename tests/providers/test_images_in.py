"""Images in: ``image_url`` parts reach vision-capable providers in their own terms.

* OpenAI-compatible rows (``vision = true`` or a list) and the Hugging Face router (its
  catalogue's ``input_modalities``): the parts in OpenAI's shape, in order, ``detail``
  kept, URLs unfetched; a model without vision is refused before anything is sent.
* A Gradio Space whose chat input is a ``MultimodalTextbox`` (the fake, Gradio 4 and 6
  shapes): a data URL is uploaded through the Space's upload route and sent as
  ``FileData``; the fake's function receives the bytes. An http(s) URL goes as a URL
  ``FileData``; fetched here only for a Space of unknown version, under the policy.
* Elsewhere: ``InvalidRequestError`` naming ``messages[i]`` and the provider.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from llmrelay import (
    AsyncClient,
    FinishReason,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
)
from llmrelay.errors import ConfigError
from llmrelay.providers._image_input import ImageFetchPolicy
from llmrelay.providers._openai_compat import OpenAICompatible
from llmrelay.providers.hf_spaces import HFSpaces
from llmrelay.providers.huggingface import HuggingFace
from llmrelay.types import ChatRequest, normalize_messages
from tests.fakes._server import serve
from tests.fakes._streaming import combine
from tests.fakes.gradio_space import (
    FakeSpace,
    SpaceScript,
    api_prefix,
    build_chatinterface_config,
    file_note,
)
from tests.fakes.hf_router import FakeHFRouter, RouterScript
from tests.fakes.hub import FakeHub
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.tgi import FakeTGI
from tests.images_server import DOT, ImageServer, png, serve_images

pytestmark = pytest.mark.anyio
Space = tuple[FakeSpace, str]
VL = "Qwen/Qwen2.5-VL-7B-Instruct"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
LOOPBACK = ipaddress.ip_address("127.0.0.1")
TEST_ONLY = ImageFetchPolicy(address_allowed=lambda address: address == LOOPBACK)
"""Loopback allowed: the image server's address, for these tests only."""


def data_url(data: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


def parts(*items: Any) -> list[dict[str, Any]]:
    """Content parts: ``str`` -> text part, ``("url", detail)`` or a URL -> image part."""
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str) and not item.startswith(("data:", "http")):
            out.append({"type": "text", "text": item})
            continue
        url, detail = item if isinstance(item, tuple) else (item, None)
        image: dict[str, Any] = {"url": url}
        if detail is not None:
            image["detail"] = detail
        out.append({"type": "image_url", "image_url": image})
    return out


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    with serve_images() as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        yield client


# -- OpenAI-compatible rows ----------------------------------------------------------------


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        yield fake, url


def row(url: str, vision: Any = None) -> type[Any]:
    table: dict[str, Any] = {
        "kind": "openai",
        "base_url": f"{url}/v1",
        "models": ["llava", "llama"],
    }
    if vision is not None:
        table["vision"] = vision
    return OpenAICompatible.from_config("local", table)


CONTENT = parts("Compare ", ("https://example.com/a.png", "high"), " and ", data_url(DOT), ".")


async def test_openai_compatible_vision_models_get_the_parts_as_given(
    openai_fake: tuple[FakeOpenAI, str],
) -> None:
    fake, url = openai_fake
    fake.recorder.requests.clear()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": CONTENT}]
    async with AsyncClient(providers=[row(url, ["llava"])]) as client:
        result = await client.complete(messages, model="local:llava")
        assert result.text == fake.expected_text
        (sent,) = fake.requests
        assert sent.json["messages"] == messages  # order, detail, URL and data unchanged
        assert client.providers()[-1].capabilities.count("vision") == 1
        with pytest.raises(InvalidRequestError) as refused:
            await client.complete(messages, model="local:llama")
    assert refused.value.param == "messages[1]"
    assert "content[1]" in str(refused.value)
    assert "'llama' is not declared to take images" in str(refused.value)
    assert refused.value.provider == "local"
    assert len(fake.requests) == 1  # nothing sent for the refused one


async def test_vision_true_and_no_vision(openai_fake: tuple[FakeOpenAI, str]) -> None:
    fake, url = openai_fake
    fake.recorder.requests.clear()
    message = [{"role": "user", "content": CONTENT}]
    async with AsyncClient(providers=[row(url, True)]) as client:
        await client.complete(message, model="local:llama")
    async with AsyncClient(providers=[row(url)]) as client:
        assert "vision" not in client.providers()[-1].capabilities
        with pytest.raises(InvalidRequestError, match="local cannot take images") as refused:
            await client.complete(message, model="local:llava")
    assert refused.value.param == "messages[0]"
    assert len(fake.requests) == 1
    with pytest.raises(ConfigError, match="vision: expected true, false or a list"):
        row(url, "llava")


# -- the Hugging Face router -----------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_fakes() -> Iterator[tuple[FakeHFRouter, FakeHub, FakeTGI, str]]:
    tgi, hub, router = FakeTGI(), FakeHub(), FakeHFRouter()
    with serve(combine(tgi, hub, router)) as url:
        yield router, hub, tgi, url


@pytest.fixture
def hf(
    hf_fakes: tuple[FakeHFRouter, FakeHub, FakeTGI, str], http: httpx.AsyncClient
) -> tuple[HuggingFace, FakeHFRouter]:
    router, hub, tgi, url = hf_fakes
    router.script = RouterScript()
    for recorder in (router.recorder, hub.recorder, tgi.recorder):
        recorder.requests.clear()
    endpoints = {"base_url": url, "hub_url": url, "router_url": f"{url}/v1"}
    return HuggingFace(http, endpoints=endpoints, api_key="hf_test"), router


def request(content: Any, model: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(normalize_messages([{"role": "user", "content": content}]), model, **kwargs)


async def test_the_router_gets_the_parts_for_a_vision_model(
    hf: tuple[HuggingFace, FakeHFRouter],
) -> None:
    provider, router = hf
    assert provider.vision(VL) is None  # unknown until the catalogue is read
    events = [e async for e in provider.stream(request(CONTENT, VL))]
    assert events[-1] == FinishReason("stop")
    chats = [r for r in router.requests if r.path == "/v1/chat/completions"]
    assert [c.json["messages"] for c in chats] == [[{"role": "user", "content": CONTENT}]]
    assert (provider.vision(VL), provider.vision(LLAMA)) == (True, False)


async def test_the_router_catalogue_refuses_a_text_model_before_sending(
    hf: tuple[HuggingFace, FakeHFRouter],
) -> None:
    provider, router = hf
    with pytest.raises(
        InvalidRequestError, match=r"lists meta-llama/Llama-3\.1-8B-Instruct without"
    ):
        _ = [e async for e in provider.stream(request(CONTENT, f"{LLAMA}:cerebras"))]
    assert [r.path for r in router.requests] == ["/v1/models"]


async def test_the_inference_route_takes_no_images(hf: tuple[HuggingFace, FakeHFRouter]) -> None:
    provider, router = hf
    with pytest.raises(InvalidRequestError, match="api='inference'") as refused:
        _ = [e async for e in provider.stream(request(CONTENT, VL, options={"api": "inference"}))]
    assert refused.value.param == "messages[0]"
    assert router.requests == []


async def test_a_model_the_catalogue_does_not_list_is_left_to_the_router(
    hf: tuple[HuggingFace, FakeHFRouter],
) -> None:
    provider, router = hf
    with pytest.raises(ModelNotFoundError):  # the router's own answer: it judged
        _ = [e async for e in provider.stream(request(CONTENT, "someone/new-vl-model"))]
    chats = [r for r in router.requests if r.path == "/v1/chat/completions"]
    assert [c.json["messages"][0]["content"] for c in chats] == [CONTENT]


# -- Gradio Spaces: the fake -------------------------------------------------------------------

MULTIMODAL = "someone/multimodal-chat"


def use(fake: FakeSpace, version: str, **script: Any) -> None:
    fake.script = SpaceScript(version=version, app="multimodal", chunks=["I see."], **script)  # type: ignore[arg-type]


async def space_complete(url: str, messages: Any, **kwargs: Any) -> Any:
    names = ("strict", "allow_image_fetch", "transport")
    client_kwargs = {k: kwargs.pop(k) for k in names if k in kwargs}
    async with AsyncClient(base_urls={"hf_spaces": url}, **client_kwargs) as client:
        return await client.complete(messages, model=f"hf_spaces:{MULTIMODAL}", **kwargs)


def joined_message(fake: FakeSpace) -> Any:
    (join,) = fake.joins
    return join.json["data"][0]


@pytest.mark.parametrize(
    ("version", "transport"), [("4", "httpx"), ("6", "httpx"), ("6", "aiohttp")]
)
async def test_a_data_url_is_uploaded_and_the_space_receives_it(
    space: Space, version: str, transport: str
) -> None:
    fake, url = space
    use(fake, version)
    image = png(5, 4)
    result = await space_complete(
        url,
        [{"role": "user", "content": parts("What is it?", data_url(image))}],
        transport=transport,  # llmrelay serve's default is aiohttp (a multipart upload)
    )
    assert result.text == "I see." + file_note(image)
    assert fake.received == [[image]]
    (upload,) = [r for r in fake.requests if r.path.endswith("/upload")]
    assert upload.path == f"{api_prefix(version)}/upload"
    (path,) = fake.uploads
    assert joined_message(fake) == {
        "text": "What is it?",
        "files": [{"path": path, "orig_name": "image.png", "meta": {"_type": "gradio.FileData"}}],
    }


async def test_several_images_in_order(space: Space) -> None:
    fake, url = space
    use(fake, "6")
    first, second = png(1, 1), png(2, 2)
    content = parts(data_url(first), data_url(second), "Which is bigger?")
    result = await space_complete(url, [{"role": "user", "content": content}])
    assert fake.received == [[first, second]]
    assert result.text == "I see." + file_note(first) + file_note(second)
    assert joined_message(fake)["text"] == "Which is bigger?"


async def test_an_http_url_goes_as_url_file_data(space: Space, images: ImageServer) -> None:
    fake, url = space
    use(fake, "4")  # Gradio 4 downloads any URL itself
    image_url = f"{images.url}/dot.png"
    result = await space_complete(url, [{"role": "user", "content": parts("Hm?", image_url)}])
    assert fake.received == [[DOT]]
    assert result.text == "I see." + file_note(DOT)
    assert joined_message(fake)["files"] == [
        {"path": image_url, "orig_name": "dot.png", "meta": {"_type": "gradio.FileData"}}
    ]
    assert fake.uploads == {}  # not fetched, not uploaded by llmrelay


async def test_a_space_that_cannot_download_a_url_fails_typed(
    space: Space, images: ImageServer
) -> None:
    fake, url = space
    use(fake, "6")  # Gradio 6 downloads public addresses only: loopback fails the event
    with pytest.raises(ProviderError, match="without an error message"):
        await space_complete(
            url, [{"role": "user", "content": parts("Hm?", f"{images.url}/dot.png")}]
        )
    assert fake.received == []


def unknown_version(fake: FakeSpace) -> None:
    config = build_chatinterface_config("6", multimodal=True)
    del config["version"]
    use(fake, "6", config_body=config)


async def test_a_url_for_a_space_of_unknown_version_is_not_fetched_unless_allowed(
    space: Space, images: ImageServer
) -> None:
    fake, url = space
    unknown_version(fake)
    before = images.hits["/dot.png"]
    messages = [{"role": "user", "content": parts("Hm?", f"{images.url}/dot.png")}]
    with pytest.raises(InvalidRequestError, match="fetching image URLs is off") as refused:
        await space_complete(url, messages)
    assert refused.value.param == "messages[0]"
    # allowed: the default policy still refuses a loopback address
    with pytest.raises(InvalidRequestError, match="non-public address") as refused:
        await space_complete(url, messages, allow_image_fetch=True)
    assert refused.value.param == "messages[0].content[1]"
    assert images.hits["/dot.png"] == before
    assert fake.joins == []


async def test_a_url_fetched_under_the_policy_is_uploaded(
    space: Space, images: ImageServer, http: httpx.AsyncClient
) -> None:
    fake, url = space
    unknown_version(fake)
    provider = HFSpaces(http, endpoints={"base_url": url})
    req = request(parts("Hm?", f"{images.url}/dot.png"), MULTIMODAL, image_fetch=TEST_ONLY)
    events = [e async for e in provider.stream(req)]
    assert "".join(e for e in events if isinstance(e, str)) == "I see." + file_note(DOT)
    assert fake.received == [[DOT]]
    assert list(fake.uploads.values()) == [DOT]
    assert joined_message(fake)["files"][0]["orig_name"] == "dot.png"


async def test_a_space_with_a_plain_textbox_takes_no_images(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(version="6", app="chatinterface")
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": CONTENT}]
    with pytest.raises(InvalidRequestError, match="message input is a textbox") as refused:
        await space_complete(url, messages)
    assert (refused.value.param, refused.value.provider) == ("messages[1]", "hf_spaces")
    assert "content[1]" in str(refused.value)
    assert fake.joins == []
    assert not any(r.path.endswith("/upload") for r in fake.requests)


async def test_an_image_of_an_earlier_message_goes_with_the_last_one(
    space: Space, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = space
    use(fake, "6")
    later = png(6, 6)
    messages = [
        {"role": "user", "content": parts("Look", data_url(DOT))},
        {"role": "assistant", "content": "A dot."},
        {"role": "user", "content": parts("And this?", data_url(later))},
    ]
    with pytest.raises(InvalidRequestError, match="strict mode") as refused:
        await space_complete(url, messages, strict=True)
    assert refused.value.param == "messages[0]"
    assert "history holds text only" in str(refused.value)
    assert fake.joins == []
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        await space_complete(url, messages)
    assert "messages[0]: its images go with the last message's files" in caplog.text
    assert fake.received == [[DOT, later]]  # in conversation order


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (parts("a", data_url(DOT), "b"), "interleaved"),
        (parts("a", (data_url(DOT), "low")), "detail ('low')"),
    ],
)
async def test_what_a_multimodal_textbox_cannot_keep_is_a_warning_or_strict_error(
    space: Space, caplog: pytest.LogCaptureFixture, content: Any, problem: str
) -> None:
    fake, url = space
    use(fake, "6")
    with pytest.raises(InvalidRequestError, match="strict mode") as refused:
        await space_complete(url, [{"role": "user", "content": content}], strict=True)
    assert problem in str(refused.value)
    assert refused.value.param == "messages[0]"
    assert fake.joins == []
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        await space_complete(url, [{"role": "user", "content": content}])
    assert problem in caplog.text
    assert fake.received == [[DOT]]


async def test_text_then_images_or_images_then_text_is_no_warning(
    space: Space, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = space
    use(fake, "6")
    for content in (parts(data_url(DOT), "after"), parts("before", (data_url(DOT), "auto"))):
        await space_complete(url, [{"role": "user", "content": content}], strict=True)
    assert caplog.text == ""


async def test_a_bad_data_url_names_the_part(space: Space) -> None:
    fake, url = space
    use(fake, "6")
    content = parts("x", "data:image/png;base64,bm90IGEgcG5n")
    with pytest.raises(InvalidRequestError, match="bytes are of no image type") as refused:
        await space_complete(url, [{"role": "user", "content": content}])
    assert refused.value.param == "messages[0].content[1]"
    assert fake.uploads == {}


async def test_vision_is_known_once_the_space_is_discovered(
    space: Space, http: httpx.AsyncClient
) -> None:
    fake, url = space
    use(fake, "6")
    provider = HFSpaces(http, endpoints={"base_url": url})
    assert provider.vision(MULTIMODAL) is None
    assert provider.vision("qwen-2-72b") is False  # the known row: a textbox
    assert (await provider.describe_model(MULTIMODAL))["vision"] is True
    assert provider.vision(MULTIMODAL) is True


# -- elsewhere: refused, naming the message and the provider -----------------------------------


@pytest.mark.parametrize("model", ["replicate:llama-3-70b", "ai2:tulu3-405b", "h2o"])
async def test_providers_without_vision_refuse_before_sending(model: str) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": parts("Look:", data_url(DOT))},
    ]
    provider = model.partition(":")[0]
    async with AsyncClient(api_keys={"replicate": "r8_test"}) as client:
        assert client.model_vision(model) is False
        with pytest.raises(InvalidRequestError) as refused:
            await client.complete(messages, model=model)
    assert refused.value.param == "messages[2]"
    assert refused.value.provider == provider
    assert f"{provider} cannot take images" in str(refused.value)
    assert "content[1]" in str(refused.value)
