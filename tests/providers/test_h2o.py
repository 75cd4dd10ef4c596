"""h2o against the wire-level chat-ui fake, provider-direct."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest

from llmrelay import errors
from llmrelay.providers.h2o import MODELS, PREAMBLE, H2o, h2o_prompt
from llmrelay.types import ChatRequest, ConversationState, FinishReason, Message
from tests.fakes._server import serve
from tests.fakes.h2o import BAD_UTF8, COOKIE_NAME, DEFAULT_TOKENS, FakeH2o, H2oScript

pytestmark = pytest.mark.anyio
REPLY = "".join(DEFAULT_TOKENS)


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[FakeH2o, str]]:
    fake = FakeH2o()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def h2o(_server: tuple[FakeH2o, str]) -> Iterator[tuple[FakeH2o, str]]:
    fake, url = _server
    fake.reset()
    yield fake, url
    assert fake.wait_closed(5), "a stream was left open"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def request(*messages: Any, model: str = "falcon-40b", **kwargs: Any) -> ChatRequest:
    msgs = tuple(m if isinstance(m, Message) else Message("user", m) for m in (messages or ("Hi",)))
    return ChatRequest(messages=msgs, model=model, **kwargs)


async def run(url: str, http: httpx.AsyncClient, req: ChatRequest) -> list[Any]:
    provider = H2o(http, endpoints={"base_url": url})
    return [event async for event in provider.stream(req)]


def texts(events: list[Any]) -> list[str]:
    return [e for e in events if isinstance(e, str)]


def cookie_of(headers: dict[str, str]) -> str | None:
    for pair in headers.get("cookie", "").split(";"):
        name, _, value = pair.strip().partition("=")
        if name == COOKIE_NAME:
            return value
    return None


async def test_session_flow_with_the_chosen_model(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    events = await run(url, http, request("Hello there", model="falcon-7b"))
    assert texts(events) == list(DEFAULT_TOKENS)
    flow = [(r.method, r.path.split("/")[1] if r.path != "/" else "/") for r in fake.received]
    assert flow == [
        ("GET", "/"),
        ("POST", "settings"),
        ("POST", "conversation"),
        ("POST", "conversation"),
    ]  # the 303 was not followed, the conversation kept (no DELETE)
    root, settings, create, message = fake.received
    assert root.session is None
    session = settings.session
    assert session
    assert create.session == message.session == session
    assert settings.form == {
        "ethicsModalAccepted": "true",
        "shareConversationsWithModelAuthors": "true",
        "ethicsModalAcceptedAt": "",
        "activeModel": "h2oai/h2ogpt-gm-oasst1-en-2048-falcon-7b-v3",
        "searchEnabled": "true",
    }
    assert settings.status == 303
    assert create.json == {"model": "h2oai/h2ogpt-gm-oasst1-en-2048-falcon-7b-v3"}
    cid = message.path.removeprefix("/conversation/")
    assert fake.conversations[cid].model == MODELS["falcon-7b"]
    body = message.json
    assert body["inputs"] == PREAMBLE + "user: Hello there\nassistant:"
    assert body["parameters"] == {
        "temperature": 0.4,
        "truncate": 2048,
        "max_new_tokens": 1024,
        "do_sample": True,
        "repetition_penalty": 1.2,
        "return_full_text": False,
    }
    assert body["stream"] is True
    assert set(body["options"]) == {"id", "response_id", "is_retry", "use_cache", "web_search_id"}
    assert events[-2:] == [
        ConversationState(
            "h2o",
            {"cookie": f"{COOKIE_NAME}={session}", "conversation_id": cid, "model": "falcon-7b"},
        ),
        FinishReason("stop"),
    ]


def test_prompt_preamble() -> None:
    history = [Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Yo")]
    assert h2o_prompt([*history, Message("user", "And?")]) == (
        "instruction: this is a conversation between a user and an AI assistant, respond to "
        "the latest message, referring to the conversation if needed\n"
        "system: Be brief.\nuser: Hi\nassistant: Yo\nuser: And?\nassistant:"
    )


async def test_request_parameters_override_the_defaults(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    await run(url, http, request(temperature=0.9, max_tokens=50, top_p=0.8, stop=("\nuser:",)))
    parameters = fake.of("POST", "/conversation/")[0].json["parameters"]
    assert parameters == {
        "temperature": 0.9,
        "truncate": 2048,
        "max_new_tokens": 50,
        "do_sample": True,
        "repetition_penalty": 1.2,
        "return_full_text": False,
        "top_p": 0.8,
        "stop": ["\nuser:"],
    }


async def test_temperature_zero_is_greedy(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    await run(url, http, request(temperature=0.0))
    parameters = fake.of("POST", "/conversation/")[0].json["parameters"]
    assert "temperature" not in parameters
    assert parameters["do_sample"] is False


@pytest.mark.parametrize(
    ("script", "finish"),
    [
        (H2oScript(end="special"), "stop"),
        (H2oScript(end="endoftext_text"), "stop"),
        (H2oScript(end="length"), "length"),
        (H2oScript(end="special", details=True), "stop"),
        (H2oScript(end="length", details=True), "length"),
        (H2oScript(space_after_data=True), "stop"),
        (H2oScript(format="ndjson"), "stop"),
    ],
    ids=[
        "special",
        "endoftext-text",
        "length",
        "details-eos",
        "details-length",
        "data-space",
        "ndjson",
    ],
)
async def test_both_formats_stream_token_by_token(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient, script: H2oScript, finish: str
) -> None:
    fake, url = h2o
    fake.script = script
    events = await run(url, http, request())
    assert texts(events) == list(DEFAULT_TOKENS)  # one event per token, "<|endoftext|>" dropped
    assert events[-1] == FinishReason(finish)
    assert sum(isinstance(e, FinishReason) for e in events) == 1


async def test_endoftext_inside_a_token_ends_the_text(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    fake.script = H2oScript(tokens=["Hi", " there<|endoftext|>junk", " more"], end="length")
    events = await run(url, http, request())
    assert texts(events) == ["Hi", " there"]
    assert events[-1] == FinishReason("stop")


@pytest.mark.parametrize(
    ("script", "error_type", "words"),
    [
        (
            H2oScript(mode="error_payload", error_type="overloaded"),
            errors.ProviderUnavailable,
            "overloaded",
        ),
        (
            H2oScript(
                mode="error_payload",
                error_type="validation",
                error_message="Input validation error: too long",
            ),
            errors.InvalidRequestError,
            "Input validation error",
        ),
        (
            H2oScript(mode="error_payload", error_type="generation", error_message="CUDA OOM"),
            errors.ProviderError,
            "CUDA OOM",
        ),
        (
            H2oScript(format="ndjson", mode="error_payload", error_message="boom"),
            errors.ProviderError,
            "boom",
        ),
    ],
    ids=["tgi-overloaded", "tgi-validation", "tgi-generation", "ndjson-status-error"],
)
async def test_error_payloads_are_typed_and_the_conversation_is_deleted(
    h2o: tuple[FakeH2o, str],
    http: httpx.AsyncClient,
    script: H2oScript,
    error_type: type[errors.ProviderError],
    words: str,
) -> None:
    fake, url = h2o
    fake.script = script
    seen: list[Any] = []
    with pytest.raises(error_type) as info:
        async for event in H2o(http, endpoints={"base_url": url}).stream(request()):
            seen.append(event)
    assert type(info.value) is error_type
    assert words in str(info.value)
    assert texts(seen) == list(DEFAULT_TOKENS[:3])
    cid = fake.of("POST", "/conversation/")[0].path.removeprefix("/conversation/")
    assert fake.deleted == [cid]
    delete = fake.of("DELETE", "/conversation/")[0]
    assert delete.session == fake.of("POST", "/conversation/")[0].session


@pytest.mark.parametrize(
    "script",
    [
        H2oScript(mode="malformed"),
        H2oScript(mode="no_final"),
        H2oScript(format="ndjson", mode="malformed"),
        H2oScript(format="ndjson", mode="no_final"),
    ],
    ids=["tgi-malformed", "tgi-no-final", "ndjson-malformed", "ndjson-no-final"],
)
async def test_broken_streams_are_protocol_errors(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient, script: H2oScript
) -> None:
    fake, url = h2o
    fake.script = script
    with pytest.raises(errors.ProtocolError):
        await run(url, http, request())
    assert fake.wait_deleted(5)


async def test_disconnect_is_a_transport_error(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    fake.script = H2oScript(mode="disconnect")
    with pytest.raises(errors.TransportError):
        await run(url, http, request())
    assert fake.wait_deleted(5)


@pytest.mark.parametrize(
    ("step", "status", "error_type"),
    [
        ("root", 500, errors.ProviderUnavailable),
        ("root", 403, errors.AuthenticationError),
        ("settings", 500, errors.ProviderUnavailable),
        ("conversation", 429, errors.RateLimitError),
        ("conversation", 405, errors.ProviderError),
        ("message", 404, errors.ProviderError),
        ("message", 405, errors.ProviderError),
        ("message", 410, errors.ModelNotFoundError),
        ("message", 503, errors.ProviderUnavailable),
    ],
)
async def test_http_errors_at_each_step(
    h2o: tuple[FakeH2o, str],
    http: httpx.AsyncClient,
    step: str,
    status: int,
    error_type: type[errors.ProviderError],
) -> None:
    fake, url = h2o
    fake.script = H2oScript(
        mode="http_error", step=step, status=status, error_body={"message": f"scripted {status}"}
    )  # type: ignore[arg-type]
    with pytest.raises(error_type) as info:
        await run(url, http, request())
    assert type(info.value) is error_type
    assert info.value.status_code == status
    assert f"scripted {status}" in str(info.value)


async def test_chat_ui_404_410_and_405_from_the_service_itself(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    fake.script = H2oScript(removed_models={MODELS["llama-13b"]})
    with pytest.raises(errors.ModelNotFoundError, match="Model not available anymore"):
        await run(url, http, request(model="llama-13b"))
    fake.script = H2oScript(set_cookie=False)
    with pytest.raises(errors.ProtocolError, match="no session cookie"):
        await run(url, http, request())


async def test_no_cookie_means_405_like_chat_ui(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    _, url = h2o
    response = await http.post(f"{url}/conversation", json={"model": MODELS["falcon-7b"]})
    assert response.status_code == 405
    assert response.json() == {"error": "You need to accept the welcome modal first"}


async def test_three_turns_reuse_the_session_and_send_only_the_new_message(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    history: list[Message] = []
    state: ConversationState | None = None
    for text in ["first", "second", "third"]:
        history.append(Message("user", text))
        events = await run(url, http, request(*history, state=state))
        history.append(Message("assistant", "".join(texts(events))))
        state = next(e for e in events if isinstance(e, ConversationState))
    posts = fake.of("POST", "/conversation/")
    assert len(fake.of("GET", "/")) == 1
    assert len(fake.of("POST", "/settings")) == 1
    assert len(fake.of("POST", "/conversation")) == 4  # one creation, three messages
    assert len({p.path for p in posts}) == 1
    assert len({p.session for p in posts}) == 1
    assert [p.json["inputs"] for p in posts] == [h2o_prompt(history[:1]), "second", "third"]
    cid = posts[0].path.removeprefix("/conversation/")
    assert fake.conversations[cid].messages == [
        {"from": "user", "content": h2o_prompt(history[:1])},
        {"from": "assistant", "content": REPLY},
        {"from": "user", "content": "second"},
        {"from": "assistant", "content": REPLY},
        {"from": "user", "content": "third"},
        {"from": "assistant", "content": REPLY},
    ]
    assert fake.deleted == []


async def test_a_lost_conversation_starts_over_with_the_history(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    events = await run(url, http, request("first"))
    state = next(e for e in events if isinstance(e, ConversationState))
    del fake.conversations[state.data["conversation_id"]]
    fake.reset()
    history = [Message("user", "first"), Message("assistant", REPLY), Message("user", "second")]
    events = await run(url, http, request(*history, state=state))
    assert texts(events) == list(DEFAULT_TOKENS)
    first, *rest = fake.received
    assert first.path == f"/conversation/{state.data['conversation_id']}"
    assert first.status == 404
    assert [r.method for r in rest[:2]] == ["GET", "POST"]
    assert fake.of("POST", "/conversation/")[-1].json["inputs"] == h2o_prompt(history)
    new = next(e for e in events if isinstance(e, ConversationState))
    assert new.data["conversation_id"] != state.data["conversation_id"]


async def test_state_of_another_model_opens_a_new_session(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    events = await run(url, http, request("first", model="falcon-7b"))
    state = next(e for e in events if isinstance(e, ConversationState))
    fake.reset()
    await run(url, http, request("first", "again", model="llama-13b", state=state))
    assert fake.received[0].method == "GET"
    assert fake.of("POST", "/settings")[0].form["activeModel"] == MODELS["llama-13b"]  # type: ignore[index]


async def test_two_concurrent_chats_on_different_models_never_share_a_session(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    fake.script = H2oScript(first_byte_delay=0.2)
    a, b = await asyncio.gather(
        run(url, http, request("a", model="falcon-7b")),
        run(url, http, request("b", model="llama-13b")),
    )
    states = [next(e for e in ev if isinstance(e, ConversationState)) for ev in (a, b)]
    assert states[0].data["cookie"] != states[1].data["cookie"]
    for state, model in zip(states, ["falcon-7b", "llama-13b"], strict=True):
        session = str(state.data["cookie"]).partition("=")[2]
        assert fake.settings[session]["activeModel"] == MODELS[model]
        conversation = fake.conversations[str(state.data["conversation_id"])]
        assert conversation.session == session
        assert conversation.model == MODELS[model]
    for message in fake.of("POST", "/conversation/"):
        cid = message.path.removeprefix("/conversation/")
        assert fake.conversations[cid].session == message.session


async def test_keep_conversation_false_deletes_it_and_gives_no_state(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    events = await run(url, http, request(options={"keep_conversation": False}))
    assert not any(isinstance(e, ConversationState) for e in events)
    assert events[-1] == FinishReason("stop")
    cid = fake.of("POST", "/conversation/")[0].path.removeprefix("/conversation/")
    assert fake.deleted == [cid]
    assert (
        cookie_of(fake.of("DELETE", "/")[0].headers) == fake.of("POST", "/conversation/")[0].session
    )


async def test_closing_early_deletes_the_conversation_and_closes_the_stream(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    fake.script = H2oScript(mode="hold_open", fault_after=3)
    stream = H2o(http, endpoints={"base_url": url}).stream(request())
    assert await anext(stream) == DEFAULT_TOKENS[0]
    await stream.aclose()
    assert fake.wait_closed(5)
    assert fake.wait_deleted(5)


async def test_cancelled_consumer_still_deletes(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    fake.script = H2oScript(mode="hold_open", fault_after=3)
    # anyio cancellation is level-triggered: the delete must be shielded to happen at all
    with anyio.CancelScope() as scope:
        async for _ in H2o(http, endpoints={"base_url": url}).stream(request()):
            scope.cancel()
    assert scope.cancelled_caught
    assert fake.wait_deleted(5)


async def test_read_timeout_on_a_slow_first_byte(h2o: tuple[FakeH2o, str]) -> None:
    fake, url = h2o
    fake.script = H2oScript(first_byte_delay=1.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=0.2)) as slow:
        with pytest.raises(errors.ProviderTimeout):
            await run(url, slow, request())


@pytest.mark.parametrize(
    "data",
    [
        {"cookie": "hf-chat=ü", "conversation_id": "a" * 24, "model": "falcon-40b"},
        {"cookie": "hf-chat=x\r\nx-evil: 1", "conversation_id": "a" * 24, "model": "falcon-40b"},
        {"cookie": "hf-chat=x", "conversation_id": "../settings", "model": "falcon-40b"},
        {"cookie": 5, "conversation_id": "a" * 24, "model": "falcon-40b"},
    ],
)
async def test_unusable_state_opens_a_new_session(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient, data: dict[str, Any]
) -> None:
    fake, url = h2o
    events = await run(url, http, request("hi", state=ConversationState("h2o", data)))
    assert events[-1] == FinishReason("stop")
    assert fake.received[0].method == "GET"


async def test_an_expired_session_gets_405_and_starts_over(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    events = await run(url, http, request("first"))
    state = next(e for e in events if isinstance(e, ConversationState))
    fake.settings.clear()  # the service forgot the session: its POSTs are refused with 405
    fake.reset()
    history = [Message("user", "first"), Message("assistant", REPLY), Message("user", "second")]
    events = await run(url, http, request(*history, state=state))
    assert fake.received[0].status == 405
    assert fake.received[0].session == str(state.data["cookie"]).partition("=")[2]
    assert [r.method for r in fake.received[1:3]] == ["GET", "POST"]
    assert fake.of("POST", "/conversation/")[-1].json["inputs"] == h2o_prompt(history)
    assert events[-1] == FinishReason("stop")


@pytest.mark.parametrize("fmt", ["tgi", "ndjson"])
async def test_invalid_utf8_is_replaced_not_fatal(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient, fmt: str
) -> None:
    fake, url = h2o
    fake.script = H2oScript(format=fmt, mode="invalid_utf8", fault_after=2)  # type: ignore[arg-type]
    events = await run(url, http, request())
    assert BAD_UTF8 in texts(events)
    assert events[-1] == FinishReason("stop")
    assert "".join(texts(events)) == "".join(DEFAULT_TOKENS[:2]) + BAD_UTF8 + "".join(
        DEFAULT_TOKENS[2:]
    )


@pytest.mark.parametrize(
    ("step", "status"), [("root", 302), ("conversation", 307), ("message", 301)]
)
async def test_a_redirect_is_a_typed_error_never_an_empty_answer(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient, step: str, status: int
) -> None:
    fake, url = h2o
    fake.script = H2oScript(mode="http_error", step=step, status=status, error_body="")  # type: ignore[arg-type]
    with pytest.raises(errors.ProtocolError, match=f"redirect \\(HTTP {status}\\)"):
        await run(url, http, request())


async def test_the_settings_303_is_chat_ui_accepting_the_form(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    events = await run(url, http, request())
    settings = [r for r in fake.received if r.path == "/settings"]
    assert settings
    assert events[-1] == FinishReason("stop")


async def test_a_service_error_page_is_described_not_quoted(
    h2o: tuple[FakeH2o, str], http: httpx.AsyncClient
) -> None:
    fake, url = h2o
    page = "<!DOCTYPE html><html><body>Error 410 octocat@example.org</body></html>"
    fake.script = H2oScript(mode="http_error", step="message", status=410, error_body=page)  # type: ignore[arg-type]
    with pytest.raises(errors.ModelNotFoundError) as info:
        await run(url, http, request())
    assert "octocat" not in str(info.value)
    assert "an HTML page (70 bytes)" in str(info.value)


@pytest.mark.parametrize("fmt", ["tgi", "ndjson"])
async def test_a_malformed_event_keeps_at_most_4000_bytes_in_the_error(fmt: str) -> None:
    from llmrelay.providers._chatui import read_answer

    data = '{"token": ' + ("{}" if fmt == "tgi" else '"x", "type": 3') + ', "pad": "'
    data += "é" * 5000 + '"}'  # 10000+ bytes
    body = f"data:{data}\n\n" if fmt == "tgi" else f"{data}\n"
    kind = "text/event-stream" if fmt == "tgi" else "application/jsonl"
    response = httpx.Response(200, headers={"content-type": kind}, content=body.encode())
    with pytest.raises(errors.ProtocolError, match=r"malformed (token event|update)") as caught:
        async for _ in read_answer(response, provider="h2o", model="m"):
            pass
    # described from its first 4000 bytes (as every malformed upstream body), never quoted
    assert "(4000 bytes)" in str(caught.value)
    assert "é" not in str(caught.value)
    assert caught.value.body == data[:2000]
