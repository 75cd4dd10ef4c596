"""The provider contract, for every registered provider against its fake, on both HTTP
transports (``tests/transports.py``) — and each run twice:

* provider-direct: a provider instance on llmrelay's ``httpx.AsyncClient``: what the
  provider itself yields and raises (exactly one finish, nothing after it, typed errors,
  the state the fake received on the next turn, ``retry_after``, timeouts);
* through the client: what users see (``ProviderInfo`` first, the open phase, errors,
  early stop closing the connection, no environment reads, the sync client).
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import httpx
import pytest

from llmrelay import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConversationState,
    FinishReason,
    Message,
    ProtocolError,
    ProviderError,
    ProviderInfo,
    ProviderTimeout,
    ProviderUnavailable,
    Queued,
    RateLimitError,
    StreamInterrupted,
    TransportError,
)
from llmrelay.providers import BUILTIN, PARAMETERS, Capability, Provider, provider_class
from llmrelay.types import ChatRequest, Event
from tests.contract.conftest import FAKES, Served
from tests.transports import http_client

pytestmark = pytest.mark.anyio

SECRET = "test-key"


def test_every_provider_has_a_fake() -> None:
    assert set(FAKES) == set(BUILTIN)


@pytest.mark.parametrize("name", sorted(FAKES))
def test_declared_attributes(name: str) -> None:
    cls = provider_class(name)
    assert cls.name == name == cls.__module__.rsplit(".", 1)[-1]
    assert cls.label
    assert cls.docs_url.startswith("https://")
    assert cls.endpoints["base_url"].startswith("https://")
    assert all(url.startswith("https://") for url in cls.endpoints.values())
    assert Capability.CHAT in cls.capabilities
    assert cls.default_model in cls.models or cls.open_catalogue
    assert set(cls.aliases.values()) <= set(cls.models) or cls.open_catalogue
    assert cls.auth.mode.value in {"none", "optional", "required"}
    assert cls.parameters <= PARAMETERS
    assert cls.__doc__
    # the module docstring describes the wire protocol and links its public source
    module_doc = importlib.import_module(cls.__module__).__doc__ or ""
    assert "https://" in module_doc


# -- provider-direct ----------------------------------------------------------------------


def direct(served: Served, http: httpx.AsyncClient) -> Provider:
    kwargs = served.client_kwargs()
    endpoints = dict(kwargs.get("endpoints", {}).get(served.name, {}))
    if served.name in kwargs.get("base_urls", {}):
        endpoints["base_url"] = kwargs["base_urls"][served.name]
    key = kwargs.get("api_keys", {}).get(served.name)
    return provider_class(served.name)(http, endpoints=endpoints, api_key=key)


def request(
    served: Served, *messages: Message, state: ConversationState | None = None
) -> ChatRequest:
    cls = provider_class(served.name)
    return ChatRequest(
        messages=messages or (Message("user", "Hello"),),
        model=cls.default_model,
        state=state,
    )


def bare_http(timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
    """llmrelay's HTTP client on this run's transport, for a provider used directly."""
    return http_client(os.environ["LLMRELAY_TRANSPORT"], timeout)


async def provider_events(
    served: Served, req: ChatRequest | None = None, http_timeout: httpx.Timeout | None = None
) -> list[Event]:
    async with bare_http(http_timeout) as client:
        provider = direct(served, client)
        return [e async for e in provider.stream(req or request(served))]


async def test_provider_yields_text_then_exactly_one_finish_and_nothing_after(
    served: Served,
) -> None:
    events = await provider_events(served)
    finishes = [i for i, e in enumerate(events) if isinstance(e, FinishReason)]
    assert len(finishes) == 1
    assert finishes[0] == len(events) - 1, "nothing may follow the provider's finish"
    assert "".join(e for e in events if isinstance(e, str)) == served.fake.expected_text
    assert not any(isinstance(e, ProviderInfo) for e in events)  # that is the engine's


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (401, AuthenticationError, False),
        (429, RateLimitError, True),
        (500, ProviderUnavailable, True),
        (503, ProviderUnavailable, True),
    ],
)
async def test_provider_maps_http_errors(
    served: Served, status: int, cls: type[ProviderError], retryable: bool
) -> None:
    served.fake.http_error(status, retry_after=7 if status == 429 else None)
    with pytest.raises(cls) as info:
        await provider_events(served)
    assert info.value.status_code == status
    assert info.value.retryable is retryable
    assert info.value.provider == served.name
    if status == 429:
        assert info.value.retry_after == 7  # type: ignore[attr-defined]
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


async def test_provider_turns_a_malformed_frame_into_a_protocol_error(served: Served) -> None:
    served.fake.malformed()
    with pytest.raises(ProtocolError):
        await provider_events(served)


async def test_provider_raises_on_a_disconnect_never_finishes_silently(served: Served) -> None:
    served.fake.disconnect()
    events: list[Event] = []
    with pytest.raises(ProviderError):
        async with bare_http() as client:
            async for event in direct(served, client).stream(request(served)):
                events.append(event)
    assert not any(isinstance(e, FinishReason) for e in events)


async def test_provider_slow_first_byte_is_a_timeout(served: Served) -> None:
    served.fake.slow_first_byte(3.0)
    with pytest.raises(ProviderTimeout):
        await provider_events(served, http_timeout=httpx.Timeout(5.0, read=0.3))


async def test_provider_closes_its_connection_when_closed_early(served: Served) -> None:
    served.fake.hold_open()
    async with bare_http() as client:
        stream = direct(served, client).stream(request(served))
        async for event in stream:
            if isinstance(event, str) and event:
                break
        await stream.aclose()
        assert served.fake.wait_closed(5)


async def test_provider_receives_its_state_on_the_next_turn(served: Served) -> None:
    first = await provider_events(served)
    states = [e for e in first if isinstance(e, ConversationState)]
    if Capability.SERVER_STATE not in provider_class(served.name).capabilities:
        assert states == []
        assert served.fake.state_seen() is None
        return
    (state,) = states
    assert state.provider == served.name
    data = json.loads(json.dumps(dict(state.data)))  # JSON round trip
    reply = "".join(e for e in first if isinstance(e, str))
    follow_up = request(
        served,
        Message("user", "Hello"),
        Message("assistant", reply),
        Message("user", "More"),
        state=ConversationState(served.name, data),
    )
    events = await provider_events(served, follow_up)
    assert isinstance(events[-1], FinishReason)
    seen = served.fake.state_seen()
    assert seen is not None
    assert str(seen) in json.dumps(data)


# -- through the client -------------------------------------------------------------------


def client_for(served: Served, **extra: Any) -> AsyncClient:
    return AsyncClient(**served.client_kwargs(**extra))


async def events_of(served: Served) -> list[Any]:
    async with client_for(served) as client:
        return [e async for e in client.stream("Hello", model=served.name)]


async def test_text_then_exactly_one_finish(served: Served) -> None:
    events = await events_of(served)
    # progress reports of the open phase may come first; ProviderInfo begins the answer
    events = events[next(i for i, e in enumerate(events) if not isinstance(e, Queued)) :]
    assert isinstance(events[0], ProviderInfo)
    assert events[0].provider == served.name
    assert isinstance(events[-1], FinishReason)
    assert sum(isinstance(e, FinishReason) for e in events) == 1
    assert "".join(e for e in events if isinstance(e, str)) == served.fake.expected_text


async def test_open_phase_reports_the_provider_before_iteration(served: Served) -> None:
    async with client_for(served) as client:
        stream = await client.open("Hello", model=served.name)
        assert stream.provider == served.name
        completion = await stream.collect()
    assert completion.text == served.fake.expected_text
    assert [a.outcome for a in completion.attempts] == ["ok"]


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthenticationError), (429, RateLimitError), (503, ProviderUnavailable)],
)
async def test_http_errors_are_mapped(
    served: Served, status: int, cls: type[ProviderError]
) -> None:
    served.fake.http_error(status)
    async with client_for(served) as client:
        stream = client.stream("Hello", model=served.name)
        with pytest.raises(cls) as info:
            await stream.start()
    assert info.value.status_code == status
    assert SECRET not in str(info.value)


async def test_malformed_frame_is_a_protocol_error(served: Served) -> None:
    served.fake.malformed()
    with pytest.raises((ProtocolError, StreamInterrupted)) as info:
        await events_of(served)
    if isinstance(info.value, StreamInterrupted):
        assert isinstance(info.value.cause, ProtocolError)


async def test_disconnect_is_an_error_never_a_silent_truncation(served: Served) -> None:
    served.fake.disconnect()
    with pytest.raises(StreamInterrupted) as info:
        await events_of(served)
    assert isinstance(info.value.cause, TransportError | ProtocolError)
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


def test_sync_client_gives_the_same_events(served: Served) -> None:
    with Client(**served.client_kwargs()) as client:
        sync_events = list(client.stream("Hello", model=served.name))
    import anyio

    async_events = anyio.run(events_of, served)

    def shape(events: list[Any]) -> list[Any]:  # state data is per session (ids, cookies)
        return [
            (type(e), sorted(e.data)) if isinstance(e, ConversationState) else e for e in events
        ]

    assert shape(sync_events) == shape(async_events)
