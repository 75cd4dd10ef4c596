"""ai2 against the wire-level olmo-api fake (``POST /v4/threads/``), provider-direct."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay import errors
from llmrelay._prompts import format_plain
from llmrelay.providers._base import Capability, Provider
from llmrelay.providers.ai2 import MODELS, Ai2
from llmrelay.types import ChatRequest, ConversationState, FinishReason, Message, Reasoning
from tests.fakes._server import serve
from tests.fakes.ai2 import DEFAULT_CHUNKS, Ai2Script, FakeAi2

pytestmark = pytest.mark.anyio
REPLY = "".join(DEFAULT_CHUNKS)
MARKER = "octocat@example.org"


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


async def run_until_error(
    url: str, http: httpx.AsyncClient, req: ChatRequest
) -> tuple[list[Any], Exception]:
    seen: list[Any] = []
    with pytest.raises(errors.LLMRelayError) as info:
        async for event in Ai2(http, endpoints={"base_url": url}).stream(req):
            seen.append(event)
    return seen, info.value


def texts(events: list[Any]) -> list[str]:
    return [e for e in events if isinstance(e, str)]


# -- the request ------------------------------------------------------------------------------


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
    assert got.form == {"content": ["Hello there"], "model": ["tulu3-405b"], "private": ["true"]}
    assert "host" not in got.form  # deprecated at olmo-api HEAD


async def test_parameters_are_camel_case_form_fields_and_stop_repeats(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    req = request(
        model="olmoe-0125", temperature=0.25, top_p=0.9, max_tokens=77, stop=("\n", "END")
    )
    await run(url, http, req)
    form = fake.received[0].form
    assert form["temperature"] == ["0.25"]
    assert form["topP"] == ["0.9"]
    assert form["maxTokens"] == ["77"]
    assert form["stop"] == ["\n", "END"]  # a list field is read by its alias only
    assert "parent" not in form
    reply = fake.messages[str(fake.received[0].reply_id)]
    assert reply["opts"] == {
        "maxTokens": 77,
        "temperature": 0.25,
        "n": 1,
        "topP": 0.9,
        "logprobs": None,
        "stop": ["\n", "END"],
    }


@pytest.mark.parametrize("model", MODELS)
async def test_each_model(ai2: tuple[FakeAi2, str], http: httpx.AsyncClient, model: str) -> None:
    fake, url = ai2
    events = await run(url, http, request(model=model))
    assert events[-1] == FinishReason("stop")
    assert fake.received[0].field("model") == model


async def test_a_model_with_a_system_prompt_starts_the_thread_with_it(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    events = await run(url, http, request(model="olmo-2-0325-32b-instruct"))
    state = next(e for e in events if isinstance(e, ConversationState))
    assert state.data["parent"] == fake.received[0].reply_id
    roles = [m["role"] for m in reversed(fake.chain(state.data["parent"]))]
    assert roles == ["system", "user", "assistant"]
    assert "".join(texts(events)) == REPLY


def test_aliases_resolve() -> None:
    assert Ai2.resolve_model(None) == "tulu3-405b"
    assert Ai2.resolve_model("tulu-3-405b") == "tulu3-405b"
    assert Ai2.resolve_model("olmo-2-13b") == "OLMo-2-1124-13B-Instruct"
    assert Ai2.resolve_model("olmo-2-32b") == "olmo-2-0325-32b-instruct"
    assert Ai2.resolve_model("tulu-3-70b") == "Llama-3-1-Tulu-3-70B"
    assert Ai2.resolve_model("llama-3.1-8b") == "tulu-3-1-8b"
    with pytest.raises(errors.UnknownModelError):
        Ai2.resolve_model("gpt-4")


async def test_the_bare_route_redirects_and_the_provider_never_needs_it(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    _fake, url = ai2
    response = await http.post(f"{url}/v4/threads", files={"content": (None, "x")})
    assert response.status_code == 308
    assert response.headers["location"].endswith("/v4/threads/")


# -- the thread across turns ------------------------------------------------------------------


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
        assert state.data["parent"] == fake.received[turn].reply_id
    first, second, third = fake.received
    assert first.parent is None
    assert first.field("content") == "first"
    assert second.parent == first.reply_id
    assert second.field("content") == "second"
    assert third.parent == second.reply_id
    assert third.field("content") == "third"
    assert first.anonymous_user_id == second.anonymous_user_id == third.anonymous_user_id
    # one thread on the service: reply 3 -> user 3 -> reply 2 -> user 2 -> reply 1 -> user 1
    chain = [(m["role"], m["content"]) for m in fake.chain(str(third.reply_id))]
    assert chain == [
        ("assistant", REPLY),
        ("user", "third"),
        ("assistant", REPLY),
        ("user", "second"),
        ("assistant", REPLY),
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
    assert type(info.value) is errors.AuthenticationError


async def test_an_expired_thread_starts_a_new_one_with_the_whole_history(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    events = await run(url, http, request("one"))
    state = next(e for e in events if isinstance(e, ConversationState))
    fake.expire()  # anonymous messages expire after a day
    history = (Message("user", "one"), Message("assistant", REPLY), Message("user", "two"))
    events = await run(url, http, request(*history, state=state))
    assert events[-1] == FinishReason("stop")
    gone, fresh = fake.received[1:]
    assert gone.parent == state.data["parent"]
    assert fresh.parent is None
    assert fresh.field("content") == format_plain(history)
    assert fresh.anonymous_user_id != state.data["anonymous_user_id"]


async def test_unusable_state_starts_a_new_thread(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    bad = ConversationState("ai2", {"anonymous_user_id": 5, "parent": ["x"]})
    await run(url, http, request("a", state=bad))
    assert fake.received[0].parent is None


# -- the stream -------------------------------------------------------------------------------


@pytest.mark.parametrize("ensure_ascii", [True, False])
async def test_non_ascii_escaped_or_raw(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient, ensure_ascii: bool
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(chunks=["Ура", " ", "🚀", "é"], ensure_ascii=ensure_ascii)
    events = await run(url, http, request())
    assert texts(events) == ["Ура", " ", "🚀", "é"]


async def test_invalid_utf8_is_replaced_not_fatal(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="invalid_utf8", fault_after=2)
    events = await run(url, http, request())
    assert "caf\ufffd au lait" in texts(events)
    assert events[-1] == FinishReason("stop")
    assert "".join(texts(events)).encode("utf-8")  # encodable: no lone surrogates


async def test_thinking_chunks_are_reasoning_not_text(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(thinking=["Let me ", "think."])
    events = await run(url, http, request())
    assert [e for e in events if isinstance(e, Reasoning)] == [
        Reasoning("Let me "),
        Reasoning("think."),
    ]
    assert "".join(texts(events)) == REPLY


async def test_final_reply_longer_than_the_chunks_is_completed(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(chunks=["Hel", "lo"], final_content="Hello, world")
    events = await run(url, http, request())
    assert texts(events) == ["Hel", "lo", ", world"]


@pytest.mark.parametrize(
    ("reason", "finish"), [("length", "length"), ("stop", "stop"), (None, "stop")]
)
async def test_finish_reason(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient, reason: str | None, finish: str
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(finish_reason=reason)
    events = await run(url, http, request())
    assert events[-1] == FinishReason(finish)  # type: ignore[arg-type]


@given(chunks=st.lists(st.text(max_size=8), max_size=12))
@settings(max_examples=25, deadline=None)
def test_any_chunks_arrive_exactly(chunks: list[str]) -> None:
    """Whatever the deltas (empty, whitespace, any unicode): the same text, one finish."""
    import anyio

    fake = FakeAi2(Ai2Script(chunks=[c for c in chunks if c < "\ud800" or c > "\udfff"]))
    sent = fake.script.chunks

    async def main(url: str) -> list[Any]:
        async with httpx.AsyncClient(timeout=10) as client:
            return await run(url, client, request())

    with serve(fake.app) as url:
        events = anyio.run(main, url)
    assert texts(events) == sent
    assert events[-1] == FinishReason("stop")


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "error_type", "retryable", "words"),
    [
        ("model overloaded", errors.ProviderUnavailable, True, "overloaded"),
        ("length", errors.InvalidRequestError, False, "too long"),
        ("Model http error", errors.ProviderError, False, "Model http error"),
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
    seen, exc = await run_until_error(url, http, request())
    assert "aborted" in str(exc)
    assert texts(seen) == list(DEFAULT_CHUNKS[:4])
    assert not any(isinstance(e, FinishReason | ConversationState) for e in seen)


async def test_an_error_chunk_fails_the_stream(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="error_chunk", fault_after=2)
    seen, exc = await run_until_error(url, http, request())
    assert type(exc) is errors.ProviderError
    assert "toolCallError" in str(exc)
    assert not any(isinstance(e, FinishReason) for e in seen)


async def test_a_warning_chunk_is_not_a_failure(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="error_chunk", error_severity="warning", fault_after=2)
    events = await run(url, http, request())
    assert events[-1] == FinishReason("stop")
    assert texts(events) == list(DEFAULT_CHUNKS[:2])


@pytest.mark.parametrize("mode", ["no_final", "malformed", "bad_chunk", "no_reply"])
async def test_broken_streams_are_protocol_errors(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient, mode: str
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode=mode)  # type: ignore[arg-type]
    seen, exc = await run_until_error(url, http, request())
    assert isinstance(exc, errors.ProtocolError)
    assert not any(isinstance(e, FinishReason) for e in seen)
    assert fake.received[0].reply_id not in str(exc)  # the frame is described, not quoted


async def test_disconnect_mid_stream_is_a_transport_error(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="disconnect", fault_after=3)
    seen, exc = await run_until_error(url, http, request())
    assert isinstance(exc, errors.TransportError)
    assert texts(seen) == list(DEFAULT_CHUNKS[:3])


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, errors.InvalidRequestError),
        (401, errors.AuthenticationError),
        (403, errors.AuthenticationError),
        (408, errors.ProviderTimeout),
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
    fake.script = Ai2Script(
        mode="http_error", status=status, error_message="inappropriate_prompt_text"
    )
    with pytest.raises(error_type) as info:
        await run(url, http, request())
    assert type(info.value) is error_type
    assert info.value.status_code == status
    assert "inappropriate_prompt_text" in str(info.value)


@pytest.mark.parametrize("status", [302, 307, 308])
async def test_a_redirect_is_a_typed_error_never_an_empty_answer(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient, status: int
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="http_error", status=status, error_body="")
    with pytest.raises(errors.ProtocolError, match=f"redirect \\(HTTP {status}\\)"):
        await run(url, http, request())


@pytest.mark.parametrize(
    "body",
    [
        f"<!DOCTYPE html><html><body>502 Bad Gateway {MARKER}</body></html>",
        {"name": "octocat", "email": MARKER},
    ],
)
async def test_an_unexpected_error_body_is_never_quoted(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient, body: Any
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="http_error", status=502, error_body=body)
    with pytest.raises(errors.ProviderUnavailable) as info:
        await run(url, http, request())
    assert MARKER not in str(info.value)
    assert MARKER in (info.value.body or "")


async def test_validation_error_from_the_service(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    _, url = ai2
    with pytest.raises(
        errors.InvalidRequestError, match="One of content or inputParts is required"
    ):
        await run(url, http, request(""))


async def test_an_inappropriate_prompt_is_an_invalid_request(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(inappropriate=True)
    with pytest.raises(errors.InvalidRequestError, match="inappropriate_prompt_text") as info:
        await run(url, http, request())
    assert type(info.value) is errors.InvalidRequestError


# -- reCAPTCHA --------------------------------------------------------------------------------


async def test_a_deployment_that_requires_recaptcha_is_captcha_required(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(require_recaptcha=True)
    with pytest.raises(errors.CaptchaRequired) as info:
        await run(url, http, request())
    error = info.value
    assert isinstance(error, errors.AuthenticationError)
    assert error.retryable is True  # fallback moves on
    assert error.status_code == 400
    assert "reCAPTCHA token (captchaToken)" in str(error)
    assert "use another provider" in str(error)
    assert "captchaToken" not in fake.received[0].form  # llmrelay cannot make one


@pytest.mark.parametrize("message", ["invalid_captcha", "failed_captcha_assessment"])
async def test_a_refused_captcha_is_captcha_required(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient, message: str
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="http_error", status=400, error_message=message)
    with pytest.raises(errors.CaptchaRequired):
        await run(url, http, request())


async def test_fallback_moves_on_past_a_captcha(ai2: tuple[FakeAi2, str], tmp_path: Path) -> None:
    fake, url = ai2
    fake.script = Ai2Script(require_recaptcha=True)

    class Echo(Provider):
        name = "echo"
        label = "Echo"
        endpoints = MappingProxyType({"base_url": "http://127.0.0.1:9"})
        capabilities = frozenset({Capability.CHAT, Capability.STREAM})
        default_model = "m"
        models = ("m",)

        async def stream(self, request: ChatRequest) -> Any:
            yield "answered elsewhere"
            yield FinishReason("stop")

    config = tmp_path / "config.toml"
    config.write_text('[aliases]\nplayground = ["ai2:tulu3-405b", "echo:m"]\n')
    async with llmrelay.AsyncClient(
        base_urls={"ai2": url}, providers=[Echo], config_path=str(config)
    ) as client:
        events = [e async for e in client.stream("Hi", model="playground")]
    assert "".join(e for e in events if isinstance(e, str)) == "answered elsewhere"
    assert len(fake.received) == 1


# -- connection handling ----------------------------------------------------------------------


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


async def test_garbage_after_the_final_thread_is_ignored(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(trailing=b"not json\n")
    events = await run(url, http, request())
    assert events[-1] == FinishReason("stop")
    assert "".join(texts(events)) == REPLY


async def test_a_mapped_http_error_is_not_its_own_cause(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="http_error", status=500)
    with pytest.raises(errors.ProviderUnavailable) as info:
        await run(url, http, request())
    assert info.value.__cause__ is not info.value  # a cause cycle hangs traceback walkers


async def test_the_answer_is_complete_at_the_final_thread(
    ai2: tuple[FakeAi2, str], http: httpx.AsyncClient
) -> None:
    """The final thread completes the answer: no waiting for what follows it."""
    import anyio

    fake, url = ai2
    fake.script = Ai2Script(hold_after_final=True)
    events: list[Any] = []
    stream = Ai2(http, endpoints={"base_url": url}).stream(request())
    with anyio.fail_after(10):  # a bound, not a speed goal: the end chunk never comes
        async for event in stream:
            events.append(event)
            if isinstance(event, FinishReason):
                break
    await stream.aclose()
    assert events[-1] == FinishReason("stop")
    assert "".join(texts(events)) == REPLY
