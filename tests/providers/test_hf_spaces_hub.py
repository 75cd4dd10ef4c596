"""hf_spaces finds a Space's host and runtime stage on the (fake) Hub (huggingface_hub ``HfApi.space_info``, @gradio/client ``helpers/spaces.ts``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmrelay import (
    AsyncClient,
    FinishReason,
    Message,
    ModelNotFoundError,
    ProtocolError,
    ProviderUnavailable,
)
from llmrelay.providers import _space_hosts
from llmrelay.providers._space_hosts import parse_space_info
from llmrelay.providers.hf_spaces import HFSpaces
from llmrelay.types import ChatRequest
from tests.fakes._server import serve
from tests.fakes.gradio_space import FakeSpace, SpaceScript
from tests.fakes.hub_spaces import FakeHub, HubSpace

pytestmark = pytest.mark.anyio
Space = tuple[FakeSpace, str]
SPACE_ID = "someone/chat-space"


@pytest.fixture(scope="module")
def _hub_server() -> Iterator[tuple[FakeHub, str]]:
    hub = FakeHub()
    with serve(hub.app) as url:
        yield hub, url


@pytest.fixture
def hub(_hub_server: tuple[FakeHub, str]) -> tuple[FakeHub, str]:
    fake, url = _hub_server
    fake.spaces.clear()
    fake.requests.clear()
    return fake, url


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_space_hosts, "POLL_INTERVAL", 0.05)


async def run(
    hub_url: str,
    model: str = SPACE_ID,
    *,
    provider: HFSpaces | None = None,
    api_key: str | None = None,
    deadline: float | None = None,
    times: int = 1,
) -> list[Any]:
    events: list[Any] = []
    async with httpx.AsyncClient(timeout=10) as http:
        provider = provider or HFSpaces(http, endpoints={"hub_url": hub_url}, api_key=api_key)
        for _ in range(times):
            request = ChatRequest((Message("user", "Hi"),), model=model, deadline=deadline)
            events = [event async for event in provider.stream(request)]
    return events


def text(events: list[Any]) -> str:
    assert events[-1] == FinishReason("stop")
    return "".join(e for e in events if isinstance(e, str))


async def test_host_comes_from_the_hub_and_is_cached(
    hub: tuple[FakeHub, str], space: Space
) -> None:
    fake_hub, hub_url = hub
    fake, url = space
    fake_hub.spaces[SPACE_ID] = HubSpace(host=url)
    assert text(await run(hub_url, times=2)).startswith("Hello, world world!")
    assert fake_hub.requests == [(f"/api/spaces/{SPACE_ID}", None)]  # once: cached
    assert len(fake.joins) == 2


async def test_sleeping_space_is_woken_then_used(hub: tuple[FakeHub, str], space: Space) -> None:
    fake_hub, hub_url = hub
    fake, url = space
    fake_hub.spaces[SPACE_ID] = HubSpace(
        host=url, stages=["SLEEPING"], woken=lambda: len(fake.requests) > 0
    )
    assert text(await run(hub_url, deadline=time.monotonic() + 5)).startswith("Hello")
    assert fake_hub.spaces[SPACE_ID].lookups >= 2
    assert fake.requests[0].path == "/config"  # the wake-up request came first
    assert len(fake.joins) == 1


async def test_building_space_is_waited_for(hub: tuple[FakeHub, str], space: Space) -> None:
    fake_hub, hub_url = hub
    fake, url = space
    fake_hub.spaces[SPACE_ID] = HubSpace(host=url, stages=["BUILDING", "BUILDING", "RUNNING"])
    assert text(await run(hub_url, deadline=time.monotonic() + 5)).startswith("Hello")
    assert fake_hub.spaces[SPACE_ID].lookups == 3
    assert len(fake.joins) == 1


async def test_waiting_ends_at_the_deadline_retryable(
    hub: tuple[FakeHub, str], space: Space
) -> None:
    fake_hub, hub_url = hub
    fake, url = space
    fake_hub.spaces[SPACE_ID] = HubSpace(host=url, stages=["BUILDING"])
    start = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="still building") as info:
        await run(hub_url, deadline=start + 0.3)
    assert info.value.retryable
    assert time.monotonic() - start < 2
    assert fake.joins == []


@pytest.mark.parametrize(
    ("stage", "fragment"),
    [("PAUSED", "paused by its author"), ("RUNTIME_ERROR", "RUNTIME_ERROR"),
     ("BUILD_ERROR", "BUILD_ERROR"), ("NO_APP_FILE", "NO_APP_FILE")],
)  # fmt: skip
async def test_paused_or_broken_space(
    hub: tuple[FakeHub, str], space: Space, stage: str, fragment: str
) -> None:
    fake_hub, hub_url = hub
    fake, url = space
    fake_hub.spaces[SPACE_ID] = HubSpace(host=url, stages=[stage])
    with pytest.raises(ProviderUnavailable, match=fragment) as info:
        await run(hub_url)
    assert info.value.retryable is False
    assert fake.requests == []


async def test_unknown_space(hub: tuple[FakeHub, str]) -> None:
    _, hub_url = hub
    with pytest.raises(ModelNotFoundError, match="Hub lookup of Space"):
        await run(hub_url, "nobody/nothing")


async def test_private_space_needs_the_token_which_goes_to_hub_and_space_only(
    hub: tuple[FakeHub, str], space: Space
) -> None:
    fake_hub, hub_url = hub
    fake, url = space
    fake_hub.spaces[SPACE_ID] = HubSpace(host=url, private=True, token="hf_secret")
    with pytest.raises(ModelNotFoundError):
        await run(hub_url)
    assert fake.requests == []
    assert text(await run(hub_url, api_key="hf_secret")).startswith("Hello")
    assert {auth for _, auth in fake_hub.requests} == {None, "Bearer hf_secret"}
    # the Hub gets Authorization, the Space X-HF-Authorization (as gradio_client sends it)
    assert {r.headers.get("x-hf-authorization") for r in fake.requests} == {"Bearer hf_secret"}
    assert {r.headers.get("authorization") for r in fake.requests} == {None}


async def test_base_url_override_skips_the_hub(hub: tuple[FakeHub, str], space: Space) -> None:
    fake_hub, hub_url = hub
    _, url = space
    async with httpx.AsyncClient(timeout=10) as http:
        provider = HFSpaces(http, endpoints={"hub_url": hub_url, "base_url": url})
        assert text(await run(hub_url, provider=provider)).startswith("Hello")
    assert fake_hub.requests == []


async def test_hub_is_asked_again_after_the_space_failed(
    hub: tuple[FakeHub, str], space: Space
) -> None:
    fake_hub, hub_url = hub
    fake, url = space
    fake_hub.spaces[SPACE_ID] = HubSpace(host=url)
    fake.script = SpaceScript(join_status=503)
    async with httpx.AsyncClient(timeout=10) as http:
        provider = HFSpaces(http, endpoints={"hub_url": hub_url})
        with pytest.raises(ProviderUnavailable):
            await run(hub_url, provider=provider)
        fake.script = SpaceScript()
        assert text(await run(hub_url, provider=provider)).startswith("Hello")
    assert len(fake_hub.requests) == 2


async def test_unusable_hub_answer(hub: tuple[FakeHub, str]) -> None:
    fake_hub, hub_url = hub
    fake_hub.spaces[SPACE_ID] = HubSpace(host="http://user:pw@127.0.0.1:1", subdomain="-bad-")
    with pytest.raises(ProtocolError, match="no usable host"):
        await run(hub_url)


@pytest.mark.parametrize(
    ("payload", "host"),
    [
        ({"host": "https://qwen-qwen2-72b-instruct.hf.space"}, "https://qwen-qwen2-72b-instruct.hf.space"),
        ({"subdomain": "qwen-qwen2-72b-instruct"}, "https://qwen-qwen2-72b-instruct.hf.space"),
        ({"host": "https://evil.example/path", "subdomain": "ok"}, "https://ok.hf.space"),
        ({"host": "https://tok@evil.example", "subdomain": "ok"}, "https://ok.hf.space"),
        ({"host": "ftp://x.hf.space", "subdomain": "ok"}, "https://ok.hf.space"),
        ({"host": "http://127.0.0.1:7860/"}, "http://127.0.0.1:7860"),
    ],
)  # fmt: skip
def test_parse_space_info(payload: dict[str, Any], host: str) -> None:
    info = parse_space_info({**payload, "runtime": {"stage": "RUNNING"}})
    assert (info.host, info.stage) == (host, "RUNNING")


@pytest.mark.parametrize(
    "payload", [[], None, {"subdomain": "a.b"}, {"subdomain": "evil.example/x"}, {"host": 3}]
)
def test_parse_space_info_rejects(payload: Any) -> None:
    with pytest.raises(ValueError, match="Hub"):
        parse_space_info(payload)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"host": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        b"{",
        b"[]",
    ],
)
async def test_hostile_hub_answers_are_protocol_errors(
    hub: tuple[FakeHub, str], space: Space, body: bytes
) -> None:
    fake_hub, hub_url = hub
    fake, _ = space
    fake_hub.spaces[SPACE_ID] = HubSpace(host=None, raw_body=body)
    with pytest.raises(ProtocolError, match="Hub lookup"):
        await run(hub_url)
    assert fake.requests == []


async def test_hub_url_through_the_client(hub: tuple[FakeHub, str], space: Space) -> None:
    fake_hub, hub_url = hub
    _, url = space
    fake_hub.spaces[SPACE_ID] = HubSpace(host=url)
    async with AsyncClient(endpoints={"hf_spaces": {"hub_url": hub_url}}) as client:
        completion = await client.complete("Hi", model=f"hf_spaces:{SPACE_ID}")
    assert completion.text.startswith("Hello, world world!")
    assert (completion.provider, completion.model) == ("hf_spaces", SPACE_ID)
    assert fake_hub.requests == [(f"/api/spaces/{SPACE_ID}", None)]


async def test_hub_url_from_the_environment(
    hub: tuple[FakeHub, str], space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub, hub_url = hub
    _, url = space
    fake_hub.spaces[SPACE_ID] = HubSpace(host=url, stages=["PAUSED"])
    monkeypatch.setenv("LLMRELAY_HF_SPACES_HUB_URL", hub_url)
    async with AsyncClient() as client:
        with pytest.raises(ProviderUnavailable, match="paused"):
            await client.complete("Hi", model=f"hf_spaces:{SPACE_ID}")
    assert len(fake_hub.requests) == 1
