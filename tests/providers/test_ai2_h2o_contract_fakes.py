"""The ai2 and h2o ContractFakes drive their providers as the contract suite expects."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from llmrelay import errors
from llmrelay.providers.ai2 import Ai2
from llmrelay.providers.h2o import H2o
from llmrelay.types import ChatRequest, ConversationState, FinishReason, Message
from tests.contract.fake_ai2 import Ai2ContractFake
from tests.contract.fake_h2o import H2oContractFake
from tests.fakes._server import serve

pytestmark = pytest.mark.anyio
PROVIDERS: dict[str, tuple[type[Any], type[Any]]] = {
    "ai2": (Ai2, Ai2ContractFake),
    "h2o": (H2o, H2oContractFake),
}


@pytest.fixture(scope="module", params=sorted(PROVIDERS))
def _served(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, str]]:
    fake = PROVIDERS[request.param][1]()
    with serve(fake.app) as url:
        yield request.param, fake, url


@pytest.fixture
def served(_served: tuple[str, Any, str]) -> Iterator[tuple[Any, Any]]:
    name, fake, url = _served
    fake.ok()
    assert fake.prepare_client_kwargs(url) == {"base_urls": {name: url}}
    yield fake, lambda http: PROVIDERS[name][0](http, endpoints={"base_url": url})
    assert fake.wait_closed(5)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=1)) as client:
        yield client


def req(provider: Any, *texts: str, state: ConversationState | None = None) -> ChatRequest:
    msgs = tuple(Message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts))
    return ChatRequest(messages=msgs, model=provider.default_model, state=state)


async def collect(provider: Any, request: ChatRequest) -> list[Any]:
    return [e async for e in provider.stream(request)]


async def test_ok_then_state_seen(served: tuple[Any, Any], http: httpx.AsyncClient) -> None:
    fake, make = served
    provider = make(http)
    events = await collect(provider, req(provider, "hi"))
    assert "".join(e for e in events if isinstance(e, str)) == fake.expected_text
    assert events[-1] == FinishReason("stop")
    assert fake.state_seen() is None
    state = next(e for e in events if isinstance(e, ConversationState))
    await collect(provider, req(provider, "hi", fake.expected_text, "more", state=state))
    seen = fake.state_seen()
    assert seen is not None
    assert seen == state.data.get("parent", state.data.get("conversation_id"))


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, errors.AuthenticationError),
        (429, errors.RateLimitError),
        (503, errors.ProviderUnavailable),
    ],
)
async def test_http_error_with_retry_after(
    served: tuple[Any, Any], http: httpx.AsyncClient, status: int, error_type: type[Exception]
) -> None:
    fake, make = served
    fake.http_error(status, retry_after=7)
    provider = make(http)
    with pytest.raises(error_type) as info:
        await collect(provider, req(provider, "hi"))
    if status == 429:
        assert info.value.retry_after == 7  # type: ignore[attr-defined]


async def test_malformed_disconnect_hold_open_slow(
    served: tuple[Any, Any], http: httpx.AsyncClient
) -> None:
    fake, make = served
    provider = make(http)
    fake.malformed()
    with pytest.raises(errors.ProtocolError):
        await collect(provider, req(provider, "hi"))
    fake.disconnect()
    seen: list[Any] = []
    with pytest.raises(errors.TransportError):
        async for event in provider.stream(req(provider, "hi")):
            seen.append(event)
    assert any(isinstance(e, str) and e for e in seen)
    fake.hold_open()
    with pytest.raises(errors.ProviderTimeout):  # the read (idle) timeout of 1 s
        await collect(provider, req(provider, "hi"))
    fake.slow_first_byte(0.3)
    events = await collect(provider, req(provider, "hi"))
    assert events[-1] == FinishReason("stop")
