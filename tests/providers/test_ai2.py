"""ai2 against the wire-level olmo-api fake, provider-direct."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from llmrelay import errors
from llmrelay._prompts import format_plain
from llmrelay.providers.ai2 import HOSTS, Ai2
from llmrelay.types import ChatRequest, ConversationState, FinishReason, Message
from tests.fakes._server import serve
from tests.fakes.ai2 import DEFAULT_CHUNKS, Ai2Script, FakeAi2

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[FakeAi2, str]]:
    fake = FakeAi2()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def ai2(_server: tuple[FakeAi2, str]) -> Iterator[tuple[FakeAi2, str]]:
    fake, url = _server
    fake.reset()
    yield fake, url
    assert fake.wait_closed(5), "a stream was left open"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def request(*messages: Any, model: str = "tulu3-405b", **kwargs: Any) -> ChatRequest:
    msgs = tuple(m if isinstance(m, Message) else Message("user", m) for m in (messages or ("Hi",)))
    return ChatRequest(messages=msgs, model=model, **kwargs)


async def run(url: str, http: httpx.AsyncClient, req: ChatRequest) -> list[Any]:
    provider = Ai2(http, endpoints={"base_url": url})
    return [event async for event in provider.stream(req)]


def texts(events: list[Any]) -> list[str]:
    return [e for e in events if isinstance(e, str)]


async def test_first_turn_streams_every_delta_then_state_then_finish(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    events = await run(url, http, request("Hello there"))
    assert texts(events) == list(DEFAULT_CHUNKS)  # "" and " " and "  " kept
    assert "".join(texts(events)) == "Hello wörld 🚀\n  done."
    got = fake.received[0]
    assert events[-2:] == [
        ConversationState(
            "ai2", {"anonymous_user_id": got.anonymous_user_id, "parent": got.reply_id}
        ),
        FinishReason("stop"),
    ]
    assert sum(isinstance(e, FinishReason) for e in events) == 1
    assert uuid.UUID(str(got.anonymous_user_id)).version == 4
    assert got.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert got.form == {
        "model": ["tulu3-405b"],
        "host": ["inferd"],
        "content": ["Hello there"],
        "private": ["true"],
    }


async def test_parameters_are_form_fields_and_stop_repeats(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    req = request(
        model="olmoe-0125", temperature=0.25, top_p=0.9, max_tokens=77, stop=("\n", "END")
    )
    await run(url, http, req)
    form = fake.received[0].form
    assert form["host"] == ["modal"]
    assert form["temperature"] == ["0.25"]
    assert form["top_p"] == ["0.9"]
    assert form["max_tokens"] == ["77"]
    assert form["stop"] == ["\n", "END"]
    assert "parent" not in form


@pytest.mark.parametrize("model", sorted(HOSTS))
async def test_each_model_goes_to_its_host(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient, model: str
) -> None:
    fake, url = ai2
    events = await run(url, http, request(model=model))
    assert events[-1] == FinishReason("stop")
    assert fake.received[0].field("host") == ("inferd" if model == "tulu3-405b" else "modal")


async def test_aliases_resolve() -> None:
    assert Ai2.resolve_model(None) == "tulu3-405b"
    assert Ai2.resolve_model("tulu-3-405b") == "tulu3-405b"
    assert Ai2.resolve_model("olmo-2-13b") == "OLMo-2-1124-13B-Instruct"
    assert Ai2.resolve_model("tulu-3-70b") == "Llama-3-1-Tulu-3-70B"
    assert Ai2.resolve_model("llama-3.1-8b") == "tulu-3-1-8b"
    assert Ai2.resolve_model("llama-3.1-70b") == "Llama-3-1-Tulu-3-70B"
    assert Ai2.resolve_model("llama-3.1-405b") == "tulu3-405b"
    with pytest.raises(errors.UnknownModelError):
        Ai2.resolve_model("gpt-4")


async def test_without_state_the_history_is_flattened(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    history = (
        Message("system", "Be brief."),
        Message("user", "One?"),
        Message("assistant", "Two."),
        Message("user", "Three?"),
    )
    await run(url, http, request(*history))
    got = fake.received[0]
    assert got.field("content") == format_plain(history)
    assert (
        got.field("content")
        == "System: Be brief.\nUser: One?\nAssistant: Two.\nUser: Three?\nAssistant:"
    )
    assert got.parent is None


async def test_three_turns_send_parent_and_the_same_anonymous_id(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    history: list[Message] = []
    state: ConversationState | None = None
    for turn, text in enumerate(["first", "second", "third"]):
        history.append(Message("user", text))
        events = await run(url, http, request(*history, state=state))
        history.append(Message("assistant", "".join(texts(events))))
        state = next(e for e in events if isinstance(e, ConversationState))
        got = fake.received[turn]
        assert state.data["parent"] == got.reply_id
    first, second, third = fake.received
    assert first.parent is None
    assert first.field("content") == "first"
    assert second.parent == first.reply_id
    assert second.field("content") == "second"
    assert third.parent == second.reply_id
    assert third.field("content") == "third"
    assert first.anonymous_user_id == second.anonymous_user_id == third.anonymous_user_id
    # one thread on the service: reply 3 -> user 3 -> reply 2 -> user 2 -> reply 1 -> user 1
    chain, node = [], fake.messages[str(third.reply_id)]
    while node is not None:
        chain.append((node["role"], node["content"]))
        node = fake.messages.get(node["parent"]) if node["parent"] else None
    reply = "".join(DEFAULT_CHUNKS)
    assert chain == [
        ("assistant", reply),
        ("user", "third"),
        ("assistant", reply),
        ("user", "second"),
        ("assistant", reply),
        ("user", "first"),
    ]


async def test_state_of_another_user_is_refused(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    _fake, url = ai2
    events = await run(url, http, request("hi"))
    state = next(e for e in events if isinstance(e, ConversationState))
    stolen = ConversationState("ai2", {**state.data, "anonymous_user_id": str(uuid.uuid4())})
    with pytest.raises(errors.AuthenticationError) as info:
        await run(url, http, request("hi", "again", state=stolen))
    assert info.value.status_code == 403


async def test_unusable_state_starts_a_new_thread(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    bad = ConversationState("ai2", {"anonymous_user_id": 5, "parent": ["x"]})
    await run(url, http, request("a", state=bad))
    assert fake.received[0].parent is None


@pytest.mark.parametrize("ensure_ascii", [True, False])
async def test_non_ascii_escaped_or_raw(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient, ensure_ascii: bool
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(chunks=["Ура", " ", "🚀", "é"], ensure_ascii=ensure_ascii)
    events = await run(url, http, request())
    assert texts(events) == ["Ура", " ", "🚀", "é"]


async def test_system_message_root_tree(ai2: tuple[FakeAi2, str], http: httpx.AsyncClient) -> None:
    fake, url = ai2
    fake.script = Ai2Script(system_root=True)
    events = await run(url, http, request())
    state = next(e for e in events if isinstance(e, ConversationState))
    assert state.data["parent"] == fake.received[0].reply_id
    assert "".join(texts(events)) == "".join(DEFAULT_CHUNKS)


async def test_final_reply_longer_than_the_chunks_is_completed(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(chunks=["Hel", "lo"], final_content="Hello, world")
    events = await run(url, http, request())
    assert texts(events) == ["Hel", "lo", ", world"]


async def test_finish_reason_length(ai2: tuple[FakeAi2, str], http: httpx.AsyncClient) -> None:
    fake, url = ai2
    fake.script = Ai2Script(finish_reason="length")
    events = await run(url, http, request())
    assert events[-1] == FinishReason("length")


@pytest.mark.parametrize(
    ("reason", "error_type", "retryable", "words"),
    [
        ("model overloaded", errors.ProviderUnavailable, True, "overloaded"),
        ("length", errors.InvalidRequestError, False, "too long"),
        ("grpc inference failed", errors.ProviderError, False, "grpc inference failed"),
        ("finalization failure", errors.ProviderError, False, "finalization failure"),
    ],
)
async def test_stream_error_lines_are_typed(
    ai2: tuple[FakeAi2, str],
    http: httpx.AsyncClient,
    reason: str,
    error_type: type[errors.ProviderError],
    retryable: bool,
    words: str,
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="error_line", reason=reason, fault_after=0)
    with pytest.raises(error_type) as info:
        await run(url, http, request())
    assert type(info.value) is error_type
    assert info.value.retryable is retryable
    assert words in str(info.value)


async def test_error_line_after_text_still_raises(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="error_line", reason="aborted", fault_after=4)
    seen: list[Any] = []
    with pytest.raises(errors.ProviderError, match="aborted"):
        async for event in Ai2(http, endpoints={"base_url": url}).stream(request()):
            seen.append(event)
    assert texts(seen) == list(DEFAULT_CHUNKS[:4])
    assert not any(isinstance(e, FinishReason | ConversationState) for e in seen)


@pytest.mark.parametrize("mode", ["no_final", "malformed", "bad_chunk", "no_children", "deep_tree"])
async def test_broken_streams_are_protocol_errors(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient, mode: str
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode=mode)  # type: ignore[arg-type]
    seen: list[Any] = []
    with pytest.raises(errors.ProtocolError):
        async for event in Ai2(http, endpoints={"base_url": url}).stream(request()):
            seen.append(event)
    assert not any(isinstance(e, FinishReason) for e in seen)


async def test_disconnect_mid_stream_is_a_transport_error(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="disconnect", fault_after=3)
    seen: list[Any] = []
    with pytest.raises(errors.TransportError):
        async for event in Ai2(http, endpoints={"base_url": url}).stream(request()):
            seen.append(event)
    assert texts(seen) == list(DEFAULT_CHUNKS[:3])


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, errors.InvalidRequestError),
        (401, errors.AuthenticationError),
        (403, errors.AuthenticationError),
        (429, errors.RateLimitError),
        (500, errors.ProviderUnavailable),
        (503, errors.ProviderUnavailable),
    ],
)
async def test_http_errors_are_mapped_by_code(
    ai2: tuple[FakeAi2, str],
    http: httpx.AsyncClient,
    status: int,
    error_type: type[errors.ProviderError],
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="http_error", status=status, error_message="inappropriate_prompt")
    with pytest.raises(error_type) as info:
        await run(url, http, request())
    assert info.value.status_code == status
    assert "inappropriate_prompt" in str(info.value)


async def test_validation_error_from_the_service(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    _, url = ai2
    with pytest.raises(errors.InvalidRequestError, match="Validation error"):
        await run(url, http, request(""))


async def test_closing_early_closes_the_connection(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="hold_open", fault_after=3)
    stream = Ai2(http, endpoints={"base_url": url}).stream(request())
    assert await anext(stream) == ""
    await stream.aclose()
    assert fake.wait_closed(5)


async def test_read_timeout_on_a_slow_first_byte(ai2: tuple[FakeAi2, str]) -> None:
    fake, url = ai2
    fake.script = Ai2Script(first_byte_delay=1.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=0.2)) as slow:
        with pytest.raises(errors.ProviderTimeout):
            await run(url, slow, request())


async def test_garbage_after_the_final_tree_is_ignored(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(trailing=b"not json\n")
    events = await run(url, http, request())
    assert events[-1] == FinishReason("stop")
    assert "".join(texts(events)) == "".join(DEFAULT_CHUNKS)
