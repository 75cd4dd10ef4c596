"""The provider contract, for every registered provider against its fake."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from typing import Any

import pytest

from llmrelay import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConversationState,
    FinishReason,
    ProtocolError,
    ProviderError,
    ProviderInfo,
    ProviderUnavailable,
    RateLimitError,
    StreamInterrupted,
    TransportError,
)
from llmrelay.providers import BUILTIN, Capability, provider_class
from tests.contract.conftest import FAKES, Served

pytestmark = pytest.mark.anyio


def client_for(served: Served) -> AsyncClient:
    return AsyncClient(base_urls={served.name: served.url}, api_keys={served.name: "test-key"})


async def events_of(served: Served) -> list[Any]:
    async with client_for(served) as client:
        return [e async for e in client.stream("Hello", model=served.name)]


def test_every_provider_has_a_fake() -> None:
    assert set(FAKES) == set(BUILTIN)


@pytest.mark.parametrize("name", sorted(FAKES))
def test_declared_attributes(name: str) -> None:
    cls = provider_class(name)
    assert cls.name == name == cls.__module__.rsplit(".", 1)[-1]
    assert cls.label
    assert cls.docs_url.startswith("https://")
    assert cls.endpoints["base_url"].startswith("https://")
    assert Capability.CHAT in cls.capabilities
    assert cls.default_model in cls.models or cls.open_catalogue
    assert set(cls.aliases.values()) <= set(cls.models)
    assert cls.auth.mode.value in {"none", "optional", "required"}
    assert cls.__doc__
    # the module docstring describes the wire protocol and links its public source
    module_doc = importlib.import_module(cls.__module__).__doc__ or ""
    assert "https://" in module_doc


async def test_text_then_exactly_one_finish(served: Served) -> None:
    events = await events_of(served)
    assert isinstance(events[0], ProviderInfo)
    assert events[0].provider == served.name
    assert isinstance(events[-1], FinishReason)
    assert sum(isinstance(e, FinishReason) for e in events) == 1
    assert "".join(e for e in events if isinstance(e, str)) == served.fake.expected_text


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (401, AuthenticationError, False),
        (429, RateLimitError, True),
        (500, ProviderUnavailable, True),
        (503, ProviderUnavailable, True),
    ],
)
async def test_http_errors_are_mapped(
    served: Served, status: int, cls: type[ProviderError], retryable: bool
) -> None:
    served.fake.http_error(status)
    with pytest.raises(cls) as info:
        await events_of(served)
    assert info.value.status_code == status
    assert info.value.retryable is retryable
    assert info.value.provider == served.name
    assert "test-key" not in str(info.value)
    assert "test-key" not in repr(info.value)


async def test_malformed_frame_is_a_protocol_error(served: Served) -> None:
    served.fake.malformed()
    with pytest.raises(ProtocolError):
        await events_of(served)


async def test_disconnect_is_an_error_never_a_silent_truncation(served: Served) -> None:
    served.fake.disconnect()
    with pytest.raises(StreamInterrupted) as info:
        await events_of(served)
    assert isinstance(info.value.cause, TransportError)
    assert info.value.text
    assert served.fake.expected_text.startswith(info.value.text)


async def test_early_break_closes_the_connection(served: Served) -> None:
    served.fake.hold_open()
    async with client_for(served) as client:
        stream = client.stream("Hello", model=served.name)
        async for event in stream:
            if isinstance(event, str):
                break
        await stream.aclose()
        assert served.fake.wait_closed(5)


class RecordingEnviron(dict[str, str]):
    """``os.environ`` stand-in that records every read."""

    reads: list[str]

    def __getitem__(self, key: str) -> str:
        self.reads.append(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.reads.append(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.reads.append(str(key))
        return super().__contains__(key)


async def test_provider_reads_no_environment(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_for(served) as client:
        recorder = RecordingEnviron(os.environ)
        recorder.reads = []
        monkeypatch.setattr(os, "environ", recorder)
        events = [e async for e in client.stream("Hello", model=served.name)]
        monkeypatch.undo()
    assert isinstance(events[-1], FinishReason)
    assert recorder.reads == []


async def test_conversation_state_round_trips(served: Served) -> None:
    events = await events_of(served)
    states = [e for e in events if isinstance(e, ConversationState)]
    cls = provider_class(served.name)
    if Capability.SERVER_STATE not in cls.capabilities:
        assert states == []
        return
    (state,) = states
    data: Mapping[str, Any] = json.loads(json.dumps(dict(state.data)))
    async with client_for(served) as client:
        follow_up = [e async for e in client.stream("More", model=served.name, state=data)]
    assert isinstance(follow_up[-1], FinishReason)


def test_sync_client_gives_the_same_events(served: Served) -> None:
    with Client(base_urls={served.name: served.url}, api_keys={served.name: "k"}) as client:
        sync_events = list(client.stream("Hello", model=served.name))
    import anyio

    async_events = anyio.run(events_of, served)
    assert sync_events == async_events
