"""hf_spaces against the wire-level fake Space, for each Gradio version's message forms."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from llmrelay import (
    AsyncClient,
    Client,
    FinishReason,
    InvalidRequestError,
    Message,
    ModelNotFoundError,
    ProtocolError,
    ProviderError,
    ProviderInfo,
    ProviderTimeout,
    ProviderUnavailable,
    Queued,
    StreamInterrupted,
    Timeouts,
    TransportError,
)
from tests.fakes.gradio_space import DEFAULT_CHUNKS, FakeSpace, SpaceScript, api_prefix

pytestmark = pytest.mark.anyio
Space = tuple[FakeSpace, str]
VERSIONS = ["4", "5", "6"]


def shown(chunks: Any) -> str:
    """The reply as the Space shows it after these chunks: Gradio's Chatbot runs each
    message through ``inspect.cleandoc`` (trailing newlines wait for the next chunk)."""
    return inspect.cleandoc("".join(chunks))


def expected_deltas(chunks: Any) -> list[str]:
    """What a true-delta stream yields: the growth of the shown reply at each step."""
    out, sent = [], ""
    for i in range(1, len(chunks) + 1):
        now = shown(chunks[:i])
        if len(now) > len(sent):
            assert now.startswith(sent)
            out.append(now[len(sent) :])
            sent = now
    return out


FULL = shown(DEFAULT_CHUNKS)


def client_for(url: str, **kwargs: Any) -> AsyncClient:
    return AsyncClient(base_urls={"hf_spaces": url}, **kwargs)


async def collect(url: str, messages: Any = "Hi", **kwargs: Any) -> list[Any]:
    client_kwargs = {k: kwargs.pop(k) for k in ("timeouts", "api_keys") if k in kwargs}
    async with client_for(url, **client_kwargs) as client:
        return [e async for e in client.stream(messages, model="hf_spaces:qwen-2-72b", **kwargs)]


@pytest.mark.parametrize("version", VERSIONS)
async def test_streams_true_deltas(space: Space, version: str) -> None:
    fake, url = space
    fake.script = SpaceScript(version=version)  # type: ignore[arg-type]
    events = await collect(url, "Hello there")
    # the queue's estimation (progress) comes before the answer, which ProviderInfo begins
    assert isinstance(events[0], Queued)
    events = [e for e in events if not isinstance(e, Queued)]
    assert events[0] == ProviderInfo("hf_spaces", "Qwen/Qwen2-72B-Instruct", events[0].label)
    assert events[-1] == FinishReason("stop")
    assert sum(isinstance(e, FinishReason) for e in events) == 1
    texts = [e for e in events if isinstance(e, str)]
    # one delta per visible change: repeated " world" kept, the empty chunk sends nothing
    assert texts == expected_deltas(DEFAULT_CHUNKS)
    assert texts.count(" world") == 2
    assert "".join(texts) == FULL


@pytest.mark.parametrize("version", VERSIONS)
async def test_join_request_matches_the_space(space: Space, version: str) -> None:
    fake, url = space
    fake.script = SpaceScript(version=version)  # type: ignore[arg-type]
    await collect(url, "What is 2+2?", system="Be terse.")
    (join,) = fake.joins
    assert join.path == f"{api_prefix(version)}/queue/join"
    assert join.json["data"] == ["What is 2+2?", [], "Be terse."]
    assert join.json["fn_index"] == 0
    assert join.json["trigger_id"] == 11
    assert join.json["event_data"] is None
    data_request = next(r for r in fake.requests if r.path.endswith("/queue/data"))
    assert data_request.query["session_hash"] == join.json["session_hash"]
    assert "authorization" not in join.headers


HISTORY_SENT = {
    "4": [["Hi", "Hello!"]],
    "5": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    "6": [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
    ],
}


@pytest.mark.parametrize("version", VERSIONS)
async def test_history_goes_to_the_chatbot_and_system_to_its_input(
    space: Space, version: str
) -> None:
    fake, url = space
    fake.script = SpaceScript(version=version)  # type: ignore[arg-type]
    messages = [
        Message("system", "You are kind."),
        Message("user", "Hi"),
        Message("assistant", "Hello!"),
        Message("user", "And now?"),
    ]
    events = await collect(url, messages)
    # the last user message is the message, the earlier turns the chatbot's value in
    # this Gradio's own format, the system prompt the hidden system_state box
    assert fake.joins[0].json["data"] == ["And now?", HISTORY_SENT[version], "You are kind."]
    # the reply is the chat function's new turn, never an earlier message of the history
    assert "".join(e for e in events if isinstance(e, str)) == FULL


async def test_config_is_discovered_once_per_client(space: Space) -> None:
    fake, url = space
    async with client_for(url) as client:
        for _ in range(2):
            await client.complete("x", model="hf_spaces")
    assert [r.path for r in fake.requests].count("/config") == 1


async def test_without_config_falls_back_to_the_space_defaults(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(version="4", config_status=404)
    events = await collect(url)
    assert "".join(e for e in events if isinstance(e, str)) == FULL
    assert fake.joins[0].path == "/queue/join"
    assert (fake.joins[0].json["fn_index"], fake.joins[0].json["trigger_id"]) == (0, 11)


async def test_token_is_sent_to_the_space_as_x_hf_authorization(space: Space) -> None:
    fake, url = space
    await collect(url, api_keys={"hf_spaces": "hf_test_token"})
    assert fake.requests
    # gradio_client's header for the Space; the app's own Authorization is left alone
    for request in fake.requests:
        assert request.headers.get("x-hf-authorization") == "Bearer hf_test_token"
        assert "authorization" not in request.headers


async def test_other_sessions_events_are_ignored(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(other_session_events=True)
    events = await collect(url)
    assert "".join(e for e in events if isinstance(e, str)) == FULL


@pytest.mark.parametrize(
    ("status", "cls"),
    [(404, ModelNotFoundError), (422, InvalidRequestError), (503, ProviderUnavailable)],
)
async def test_join_errors(space: Space, status: int, cls: type[ProviderError]) -> None:
    fake, url = space
    fake.script = SpaceScript(join_status=status)
    with pytest.raises(cls) as info:
        await collect(url)
    assert info.value.status_code == status
    assert info.value.provider == "hf_spaces"
    assert info.value.body
    assert "queue/join" in str(info.value)


async def test_queue_full_at_join_names_the_cause(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(join_status=503)
    with pytest.raises(ProviderUnavailable, match="Queue is full") as info:
        await collect(url)
    assert info.value.retryable


@pytest.mark.parametrize("version", VERSIONS)
async def test_space_error_carries_the_spaces_message(space: Space, version: str) -> None:
    fake, url = space
    fake.script = SpaceScript(version=version, mode="fail", fail_after=0)  # type: ignore[arg-type]
    with pytest.raises(ProviderError) as info:
        await collect(url)
    assert "the Space reported an error: This Space is overloaded 🙁" in str(info.value)
    assert "'This Space" not in str(info.value)  # Gradio 4's quotes are removed
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("mode", "fail_after", "cause", "fragment"),
    [
        ("fail", 3, ProviderError, "overloaded"),
        ("malformed", 2, ProtocolError, "malformed queue message"),
        ("disconnect", 4, TransportError, "RemoteProtocolError"),
    ],
)
async def test_failure_after_text_is_a_stream_interruption_never_silent(
    space: Space, mode: str, fail_after: int, cause: type[ProviderError], fragment: str
) -> None:
    fake, url = space
    fake.script = SpaceScript(mode=mode, fail_after=fail_after)  # type: ignore[arg-type]
    with pytest.raises(StreamInterrupted) as info:
        await collect(url)
    assert type(info.value.cause) is cause
    assert fragment in str(info.value.cause)
    # exactly the text shown before the failure was delivered, nothing more
    assert info.value.text == shown(DEFAULT_CHUNKS[:fail_after])


async def test_hidden_space_error(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(mode="fail_hidden", fail_after=0)
    with pytest.raises(ProviderError, match="without an error message"):
        await collect(url)


async def test_malformed_message_before_text_is_a_protocol_error(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(mode="malformed", fail_after=0)
    with pytest.raises(ProtocolError, match="malformed queue message"):
        await collect(url)


async def test_close_stream_before_completion(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(mode="close_early", fail_after=0)
    with pytest.raises(ProtocolError, match="closed before process_completed"):
        await collect(url)


@pytest.mark.parametrize(("version", "cls"), [("4", ProviderError), ("6", ProviderUnavailable)])
async def test_unexpected_error(space: Space, version: str, cls: type[ProviderError]) -> None:
    fake, url = space
    fake.script = SpaceScript(version=version, mode="unexpected_error", fail_after=0)  # type: ignore[arg-type]
    with pytest.raises(cls, match="404") as info:
        await collect(url)
    assert type(info.value) is cls


async def test_queue_full_message(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(mode="queue_full_msg", fail_after=0)
    with pytest.raises(ProviderUnavailable, match="queue is full") as info:
        await collect(url)
    assert info.value.retryable


async def test_read_timeout(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(first_event_delay=1.0)
    with pytest.raises(ProviderTimeout, match="read timeout"):
        await collect(url, timeouts=Timeouts(read=0.3))


async def test_total_timeout_cuts_a_long_stream(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(chunk_delay=0.1)
    with pytest.raises(StreamInterrupted) as info:
        await collect(url, timeouts=Timeouts(read=5, total=0.45))
    assert isinstance(info.value.cause, ProviderTimeout)
    assert "total timeout" in str(info.value.cause)


async def test_early_break_closes_the_connection(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(hold_open=True)
    async with client_for(url) as client:
        stream = client.stream("Hi", model="hf_spaces")
        async for event in stream:
            if isinstance(event, str):
                break
        await stream.aclose()
        assert fake.wait_streams_closed(5)


async def test_cancellation_closes_the_connection(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(hold_open=True)
    got_text = asyncio.Event()

    async def consume(client: AsyncClient) -> None:
        async for event in client.stream("Hi", model="hf_spaces"):
            if isinstance(event, str):
                got_text.set()

    async with client_for(url) as client:
        task = asyncio.create_task(consume(client))
        await asyncio.wait_for(got_text.wait(), 5)
        assert fake.open_streams == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fake.wait_streams_closed(5)


def test_sync_client_gives_the_same_events(space: Space) -> None:
    _fake, url = space
    with Client(base_urls={"hf_spaces": url}) as client:
        events = list(client.stream("Hello", model="hf_spaces:qwen-2-72b", system="s"))
        events = [e for e in events if not isinstance(e, Queued)]
        completion = client.complete("Hello", model="qwen-2-72b")
    assert events[0].provider == "hf_spaces"  # type: ignore[union-attr]
    assert [e for e in events if isinstance(e, str)] == expected_deltas(DEFAULT_CHUNKS)
    assert events[-1] == FinishReason("stop")
    assert completion.text == FULL
    assert (completion.provider, completion.model, completion.finish_reason) == (
        "hf_spaces",
        "Qwen/Qwen2-72B-Instruct",
        "stop",
    )


def test_sync_stream_closed_early_closes_the_connection(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(hold_open=True)
    with Client(base_urls={"hf_spaces": url}) as client:
        stream = client.stream("Hi", model="hf_spaces")
        for event in stream:
            if isinstance(event, str):
                break
        assert fake.open_streams == 1
        stream.close()
        assert fake.wait_streams_closed(5)


async def test_connection_is_reused_after_a_completed_stream(space: Space) -> None:
    fake, url = space
    async with client_for(url) as client:
        for _ in range(3):
            assert (await client.complete("Hi", model="hf_spaces")).text == FULL
    ports = {r.client_port for r in fake.requests}
    # /config, then three joins and three data streams, all on one pooled connection
    assert len(fake.requests) == 7
    assert len(ports) == 1


async def test_a_queue_sending_only_heartbeats_ends_at_the_first_token_timeout(
    space: Space,
) -> None:
    # the heartbeats keep the idle (read) timeout from firing; the first-token one ends it
    fake, url = space
    fake.script = SpaceScript(mode="heartbeats_only", heartbeat_interval=0.05)
    timeouts = Timeouts(read=5, first_token=0.5)
    async with client_for(url, timeouts=timeouts) as client:
        stream = client.stream("Hi", model="hf_spaces")
        with pytest.raises(ProviderTimeout) as info:
            await stream.start()
    assert info.value.kind == "first_token"
    assert fake.wait_streams_closed(5)
