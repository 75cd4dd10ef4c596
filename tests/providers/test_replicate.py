"""replicate provider against the wire-level fake Replicate (every recorded shape of https://replicate.com/docs/topics/predictions/streaming)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay import errors
from llmrelay.providers import BUILTIN, _replicate_images
from llmrelay.providers.replicate import Replicate
from llmrelay.types import ChatRequest, FinishReason, ImageRequest, Message, Queued
from tests.fakes._server import serve
from tests.fakes.replicate import (
    DEFAULT_TOKENS,
    PNG_1X1,
    FakeReplicate,
    ReplicateScript,
    nchan_message,
)

pytestmark = pytest.mark.anyio
MODEL = "meta/meta-llama-3-8b-instruct"
IMAGE_MODEL = "black-forest-labs/flux-schnell"
KEY = "r8_test"
FULL = "".join(DEFAULT_TOKENS)
Fake = tuple[FakeReplicate, str]


@pytest.fixture(scope="module")
def _server() -> Iterator[Fake]:
    fake = FakeReplicate()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(_server: Fake) -> Iterator[Fake]:
    """The fake, reset to a normal run; yields ``(fake, "http://127.0.0.1:P")``."""
    fake, url = _server
    fake.reset()
    yield fake, url
    assert fake.wait_streams_closed(5), "a prediction stream was left open"


def request(messages: Any = "Hi", model: str = MODEL, **kwargs: Any) -> ChatRequest:
    if isinstance(messages, str):
        messages = (Message("user", messages),)
    return ChatRequest(messages=tuple(messages), model=model, **kwargs)


async def run(url: str, req: ChatRequest | None = None, **http_kwargs: Any) -> list[Any]:
    async with httpx.AsyncClient(**http_kwargs) as http:
        provider = Replicate(http, endpoints={"base_url": f"{url}/v1"}, api_key=KEY)
        # progress (a starting prediction, its setup logs) has its own test
        return [e async for e in provider.stream(req or request()) if type(e) is not Queued]


async def run_until_error(
    url: str, req: ChatRequest | None = None, **kw: Any
) -> tuple[list[Any], BaseException]:
    """Events yielded before the error, and the error."""
    seen: list[Any] = []
    async with httpx.AsyncClient(**kw) as http:
        provider = Replicate(http, endpoints={"base_url": f"{url}/v1"}, api_key=KEY)
        try:
            async for event in provider.stream(req or request()):
                if type(event) is not Queued:
                    seen.append(event)
        except errors.LLMRelayError as exc:
            return seen, exc
    raise AssertionError(f"no error; got {seen!r}")


def texts(events: list[Any]) -> list[str]:
    return [e for e in events if isinstance(e, str)]


# -- attributes and credentials ---------------------------------------------------------


def test_declared_attributes() -> None:
    assert Replicate.name == "replicate"
    assert Replicate.endpoints["base_url"] == "https://api.replicate.com/v1"
    assert Replicate.auth.env_var == "REPLICATE_API_TOKEN"
    assert Replicate.auth.mode.value == "required"
    assert Replicate.open_catalogue
    assert Replicate.parameters == {"temperature", "max_tokens", "top_p", "stop", "seed"}
    assert {"top_k", "extra_input", "system_in_prompt"} <= set(Replicate.options)
    assert Replicate.default_model in Replicate.models
    assert Replicate.resolve_model("llama-3-70b") == "meta/meta-llama-3-70b-instruct"
    assert Replicate.resolve_model("someone/anything") == "someone/anything"
    assert "images" in {c.value for c in Replicate.capabilities}


async def test_missing_key_raises_before_any_request(fake: Fake) -> None:
    server, url = fake
    async with httpx.AsyncClient() as http:
        with pytest.raises(errors.MissingCredentialsError) as info:
            Replicate(http, endpoints={"base_url": f"{url}/v1"}, api_key=None)
    assert info.value.env_var == "REPLICATE_API_TOKEN"
    assert "REPLICATE_API_TOKEN" in str(info.value)
    assert server.requests == []


# -- streaming: every documented form -----------------------------------------------------


@pytest.mark.parametrize("shape", ["2024", "2025"])
@pytest.mark.parametrize("status", [201, 202])
@pytest.mark.parametrize("done_form", ["json", "no_data"])
async def test_stream_forms_give_exact_text(
    fake: Fake, shape: Any, status: int, done_form: Any
) -> None:
    """201/202 creation bodies of 2023/2024/2025; done with ``data: {}`` or no data line."""
    server, url = fake
    server.script = ReplicateScript(shape=shape, create_status=status, done_form=done_form)
    events = await run(url)
    assert texts(events) == [t for t in DEFAULT_TOKENS if t]  # "" carries no text
    assert "".join(texts(events)) == FULL
    assert events[-1] == FinishReason("stop")
    assert sum(isinstance(e, FinishReason) for e in events) == 1
    assert server.cancels == []  # a finished prediction is not cancelled


async def test_a_2023_service_without_the_stream_flag_lists_no_stream_url(fake: Fake) -> None:
    """The deprecated flag is never sent; a 2023-shaped service then names no urls.stream."""
    server, url = fake
    server.script = ReplicateScript(shape="2023")
    with pytest.raises(errors.ProtocolError, match=r"no urls\.stream"):
        await run(url)
    (create,) = server.creations()
    assert "stream" not in create.json


async def test_logs_events_and_comments_are_not_text(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(tokens=["a", "b", "c", "d"], logs=True, keepalive=True)
    assert texts(await run(url)) == ["a", "b", "c", "d"]


async def test_stream_is_read_from_the_other_host_with_sse_headers(fake: Fake) -> None:
    server, url = fake
    await run(url)
    create, stream = server.requests
    assert create.host == url.removeprefix("http://")
    assert stream.host.startswith("localhost:")  # urls.stream named another host
    assert stream.headers["accept"] == "text/event-stream"
    assert stream.headers["cache-control"] == "no-store"
    assert stream.headers["authorization"] == f"Bearer {KEY}"


async def test_each_instance_sends_its_own_key(fake: Fake) -> None:
    """No shared mutable defaults: one caller's key never reaches another's request."""
    server, url = fake
    async with httpx.AsyncClient() as http:
        first = Replicate(http, endpoints={"base_url": f"{url}/v1"}, api_key="r8_first")
        second = Replicate(http, endpoints={"base_url": f"{url}/v1"}, api_key="r8_second")
        for provider in (first, second, first):
            assert [e async for e in provider.stream(request())][-1] == FinishReason("stop")
    keys = [r.headers["authorization"] for r in server.creations()]
    assert keys == ["Bearer r8_first", "Bearer r8_second", "Bearer r8_first"]
    assert "authorization" not in http.headers


# -- the request ----------------------------------------------------------------------------


async def test_input_mapping(fake: Fake) -> None:
    server, url = fake
    messages = [Message("system", "Be brief."), Message("user", "Hi")]
    req = request(
        messages,
        temperature=0.5,
        max_tokens=64,
        top_p=0.9,
        stop=("<end>", "###"),
        seed=7,
        options={"top_k": 40},
    )
    await run(url, req)
    (create,) = server.creations()
    assert create.path == f"/v1/models/{MODEL}/predictions"
    assert create.headers["authorization"] == f"Bearer {KEY}"
    assert create.json == {
        "input": {
            "prompt": "Hi",
            "system_prompt": "Be brief.",
            "max_new_tokens": 64,
            "temperature": 0.5,
            "top_p": 0.9,
            "seed": 7,
            "stop_sequences": "<end>,###",
            "top_k": 40,
        },
    }  # no "stream" flag: deprecated (streaming is always available)


async def test_system_text_is_sent_once(fake: Fake) -> None:
    server, url = fake
    messages = [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hello!"),
        Message("user", "How are you?"),
    ]
    await run(url, request(messages))
    sent = server.creations()[-1].json["input"]
    assert sent["system_prompt"] == "Be brief."
    assert sent["prompt"] == "User: Hi\nAssistant: Hello!\nUser: How are you?\nAssistant:"
    assert "Be brief." not in sent["prompt"]

    await run(url, request(messages, options={"system_in_prompt": True}))
    sent = server.creations()[-1].json["input"]
    assert "system_prompt" not in sent
    assert sent["prompt"].count("Be brief.") == 1
    assert sent["prompt"].startswith("System: Be brief.\nUser: Hi")


async def test_extra_input_passes_through_and_wins(fake: Fake) -> None:
    server, url = fake
    extra = {"prompt_template": "{prompt}", "min_tokens": 2, "temperature": 0.1}
    await run(url, request(temperature=0.9, options={"extra_input": extra}))
    sent = server.creations()[0].json["input"]
    assert sent["prompt_template"] == "{prompt}"
    assert sent["min_tokens"] == 2
    assert sent["temperature"] == 0.1


async def test_versioned_model_uses_the_predictions_route(fake: Fake) -> None:
    server, url = fake
    version = "a" * 64
    events = await run(url, request(model=f"{MODEL}:{version}"))
    assert "".join(texts(events)) == FULL
    (create,) = server.creations()
    assert create.path == "/v1/predictions"
    assert create.json["version"] == version
    assert "stream" not in create.json


@pytest.mark.parametrize(
    "model", ["noslash", "a/b/c", "../x/y", "own er/name", "a/b:", "/b", "a/b\n", "ü/b", "a/b?x=1"]
)
async def test_bad_model_id_is_refused_before_sending(fake: Fake, model: str) -> None:
    server, url = fake
    with pytest.raises(errors.ConfigError, match="owner/name"):
        await run(url, request(model=model))
    assert server.requests == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stop": ("a,b",)}, "comma"),
        ({"options": {"extra_input": ["x"]}}, "extra_input"),
        ({"options": {"top_k": "40"}}, "top_k"),
    ],
)
async def test_unsendable_requests_are_refused(fake: Fake, kwargs: Any, match: str) -> None:
    server, url = fake
    with pytest.raises(errors.InvalidRequestError, match=match):
        await run(url, request(**kwargs))
    assert server.requests == []


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "text"),
    [
        (401, errors.AuthenticationError, "You did not pass a valid authentication token"),
        (404, errors.ModelNotFoundError, "does not exist"),
        (422, errors.InvalidRequestError, "Input validation failed: input: prompt is required"),
        (429, errors.RateLimitError, "throttled"),
        (500, errors.ProviderUnavailable, "Internal server error"),
        (502, errors.ProviderUnavailable, "Bad gateway"),
        (503, errors.ProviderUnavailable, "Service unavailable"),
    ],
)
async def test_problem_json_errors(fake: Fake, status: int, error_type: type, text: str) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="http_error", error_status=status, retry_after="7")
    seen, exc = await run_until_error(url)
    assert type(exc) is error_type
    assert isinstance(exc, errors.ProviderError)
    assert exc.status_code == status
    assert text in str(exc)
    assert seen == []
    if status == 429:
        assert isinstance(exc, errors.RateLimitError)
        assert exc.retry_after == 7.0
    assert exc.retryable == (status == 429 or status >= 500)
    assert KEY not in str(exc) + repr(exc) + (exc.body or "")


async def test_recorded_422_additional_property_lists_the_field(fake: Fake) -> None:
    server, url = fake
    body = {
        "detail": "- Additional property model is not allowed\n",
        "status": 422,
        "title": "Input validation failed",
        "invalid_fields": [
            {
                "type": "additional_property_not_allowed",
                "field": "",
                "description": "Additional property model is not allowed",
            }
        ],
    }
    server.script = ReplicateScript(mode="http_error", error_status=422, error_body=body)
    _, exc = await run_until_error(url)
    assert isinstance(exc, errors.InvalidRequestError)
    assert "Additional property model is not allowed" in str(exc)


async def test_problem_without_title_or_json(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(
        mode="http_error", error_status=404, error_body={"detail": "nope", "status": 404}
    )
    _, exc = await run_until_error(url)
    assert isinstance(exc, errors.ModelNotFoundError)
    assert "nope" in str(exc)


@pytest.mark.parametrize(
    ("mode", "match"),
    [("malformed", "not valid JSON"), ("no_id", "no id"), ("no_stream", "urls.stream")],
)
async def test_bad_creation_bodies(fake: Fake, mode: Any, match: str) -> None:
    server, url = fake
    server.script = ReplicateScript(mode=mode)
    _, exc = await run_until_error(url)
    assert isinstance(exc, errors.ProtocolError)
    assert match in str(exc)


async def test_error_event_after_text(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="error_event", fail_after=3)
    seen, exc = await run_until_error(url)
    assert seen == [t for t in DEFAULT_TOKENS[:3] if t]
    assert type(exc) is errors.ProviderError
    assert "CUDA out of memory" in str(exc)
    assert server.cancels == []  # the prediction already failed


async def test_plain_text_error_event(fake: Fake) -> None:
    """replicate-javascript's vector: ``event: error`` with plain-text data."""
    body = (
        b"event: output\nid: EVENT_1\ndata: hello world\n\n"
        b"event: error\nid: EVENT_2\ndata: An unexpected error occurred\n\n"
    )
    seen, exc = await run_mock(body)
    assert seen == ["hello world"]
    assert "An unexpected error occurred" in str(exc)


@pytest.mark.parametrize(
    ("mode", "what"), [("done_canceled", "canceled"), ("done_error", "failed")]
)
async def test_done_with_a_reason_is_an_error(fake: Fake, mode: Any, what: str) -> None:
    server, url = fake
    server.script = ReplicateScript(mode=mode)
    seen, exc = await run_until_error(url)
    assert "".join(seen) == FULL
    assert type(exc) is errors.ProviderError
    assert what in str(exc)


async def test_end_without_done_while_running_is_an_error_never_a_silent_truncation(
    fake: Fake,
) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="end_without_done", end_status="processing")
    seen, exc = await run_until_error(url)
    assert "".join(seen) == FULL
    assert not any(isinstance(e, FinishReason) for e in seen)
    assert isinstance(exc, errors.ProtocolError)
    assert "without a done" in str(exc)
    assert "'processing'" in str(exc)
    assert server.wait_cancelled(5)  # it may still be running: stop paying for it
    gets = [r for r in server.requests if r.method == "GET" and "/v1/predictions/" in r.path]
    assert len(gets) == 1  # the prediction was read once


async def test_end_without_done_of_a_succeeded_prediction_is_complete(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="end_without_done", end_status="succeeded")
    events = await run(url)
    assert "".join(texts(events)) == FULL
    assert events[-1] == FinishReason("stop")
    assert sum(isinstance(e, FinishReason) for e in events) == 1
    gets = [r for r in server.requests if r.method == "GET" and "/v1/predictions/" in r.path]
    assert len(gets) == 1
    assert gets[0].headers["authorization"] == f"Bearer {KEY}"  # urls.get is the API's
    assert server.cancels == []


@pytest.mark.parametrize(
    ("end_status", "words"), [("failed", "CUDA out of memory"), ("canceled", "canceled")]
)
async def test_end_without_done_of_a_failed_prediction_is_its_error(
    fake: Fake, end_status: Any, words: str
) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="end_without_done", end_status=end_status)
    seen, exc = await run_until_error(url)
    assert "".join(seen) == FULL
    assert type(exc) is errors.ProviderError
    assert words in str(exc)
    assert server.cancels == []  # it has ended: nothing to cancel


async def test_disconnect_mid_stream(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="disconnect", fail_after=5)
    seen, exc = await run_until_error(url)
    assert seen == [t for t in DEFAULT_TOKENS[:5] if t]
    assert isinstance(exc, errors.TransportError)
    assert server.wait_cancelled(5)


@pytest.mark.parametrize(
    ("status", "error_type"), [(500, errors.ProviderUnavailable), (401, errors.AuthenticationError)]
)
async def test_http_error_on_the_stream_url(fake: Fake, status: int, error_type: type) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="stream_http_error", error_status=status)
    _, exc = await run_until_error(url)
    assert type(exc) is error_type
    assert exc.status_code == status  # type: ignore[attr-defined]
    assert server.wait_cancelled(5)


async def test_stream_with_the_wrong_content_type(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="wrong_content_type")
    _, exc = await run_until_error(url)
    assert isinstance(exc, errors.ProtocolError)
    assert "text/event-stream" in str(exc)


# -- the key never leaves the hosts Replicate named -----------------------------------------


async def test_key_only_to_api_and_stream_hosts_never_to_a_redirect_target(fake: Fake) -> None:
    server, url = fake
    with serve(server.app) as other:
        server.script = ReplicateScript(mode="redirect", redirect_to=other)
        events = await run(url)
        assert "".join(texts(events)) == FULL
        other_host = other.removeprefix("http://")
        redirected = [r for r in server.requests if r.host == other_host]
        assert [r.method for r in redirected] == ["GET"]
        assert "authorization" not in redirected[0].headers
        api_host = url.removeprefix("http://")
        assert server.hosts_with_key() == {api_host, f"localhost:{api_host.split(':')[1]}"}


async def test_redirect_loop_is_a_protocol_error() -> None:
    hops: list[str] = []

    async def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "POST":
            return httpx.Response(
                201, json={"id": "p", "urls": {"stream": "https://stream.example/s/0"}}
            )
        hops.append(str(req.url))
        return httpx.Response(302, headers={"location": f"/s/{len(hops)}"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = Replicate(http, endpoints={"base_url": "https://api.example/v1"}, api_key=KEY)
        with pytest.raises(errors.ProtocolError, match="more than 5 redirects"):
            async for _ in provider.stream(request()):
                pass
    assert len(hops) == 6


async def test_redirect_to_a_non_http_scheme_is_refused() -> None:
    async def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "POST":
            return httpx.Response(
                201, json={"id": "p", "urls": {"stream": "https://stream.example/s"}}
            )
        return httpx.Response(307, headers={"location": "file:///etc/passwd"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = Replicate(http, endpoints={"base_url": "https://api.example/v1"}, api_key=KEY)
        with pytest.raises(errors.ProtocolError, match="redirect"):
            async for _ in provider.stream(request()):
                pass


# -- stopping early and timeouts --------------------------------------------------------------


async def test_early_close_cancels_the_prediction(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="hold_open", fail_after=3)
    async with httpx.AsyncClient() as http:
        provider = Replicate(http, endpoints={"base_url": f"{url}/v1"}, api_key=KEY)
        agen = provider.stream(request())
        first = await agen.__anext__()
        while type(first) is Queued:  # the prediction is starting, its setup logs
            first = await agen.__anext__()
        assert first == DEFAULT_TOKENS[0]
        await agen.aclose()
    assert server.wait_cancelled(5)
    (pid,) = server.cancels
    cancel = next(r for r in server.requests if r.path.endswith("/cancel"))
    assert cancel.path == f"/v1/predictions/{pid}/cancel"
    assert cancel.headers["authorization"] == f"Bearer {KEY}"
    assert server.wait_streams_closed(5)


async def test_task_cancellation_still_cancels_the_prediction(fake: Fake) -> None:
    """The cancel POST is shielded: it runs although the consuming task is cancelled."""
    server, url = fake
    server.script = ReplicateScript(mode="hold_open", fail_after=2)
    got: list[Any] = []
    async with httpx.AsyncClient() as http:
        provider = Replicate(http, endpoints={"base_url": f"{url}/v1"}, api_key=KEY)
        with anyio.move_on_after(0.5):
            async for event in provider.stream(request()):
                if type(event) is not Queued:
                    got.append(event)
    assert got == list(DEFAULT_TOKENS[:2])
    assert server.cancels, "the cancel request did not run"


async def test_idle_timeout_between_events(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(first_byte_delay=1.0)
    _, exc = await run_until_error(url, timeout=httpx.Timeout(5.0, read=0.2))
    assert isinstance(exc, errors.ProviderTimeout)
    assert "read timeout" in str(exc)


async def test_long_generation_is_not_cut(fake: Fake) -> None:
    """Only silence is timed: 30 tokens 50 ms apart outlast a 0.5 s read timeout."""
    server, url = fake
    tokens = [f"t{i} " for i in range(30)]
    server.script = ReplicateScript(tokens=tokens, token_delay=0.05)
    started = time.monotonic()
    events = await run(url, timeout=httpx.Timeout(5.0, read=0.5))
    assert time.monotonic() - started > 1.0
    assert "".join(texts(events)) == "".join(tokens)


# -- byte-exact SSE vectors (replicate-javascript / replicate-go test vectors) ----------------


async def run_mock(body: bytes, chunks: list[int] | None = None) -> tuple[list[Any], Any]:
    """Run the provider over an ``httpx.MockTransport`` streaming ``body`` in pieces."""

    async def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "POST" and req.url.path.endswith("/predictions"):
            return httpx.Response(
                201,
                json={
                    "id": "p1",
                    "status": "starting",
                    "urls": {
                        "stream": "https://stream.example/v1/streams/p1",
                        "cancel": "https://api.example/v1/predictions/p1/cancel",
                        "get": "https://api.example/v1/predictions/p1",
                    },
                },
            )
        if req.url.host == "stream.example":
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream; charset=utf-8"},
                content=_pieces(body, chunks or []),
            )
        return httpx.Response(200, json={"status": "canceled"})

    seen: list[Any] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = Replicate(http, endpoints={"base_url": "https://api.example/v1"}, api_key=KEY)
        try:
            async for event in provider.stream(request()):
                if type(event) is not Queued:  # progress of a starting prediction
                    seen.append(event)
        except errors.LLMRelayError as exc:
            return seen, exc
    return seen, None


async def _pieces(body: bytes, cuts: list[int]) -> Any:
    start = 0
    for cut in sorted(set(cuts)):
        if 0 < cut < len(body):
            yield body[start:cut]
            start = cut
    yield body[start:]


JS_MULTILINE = (
    b"\n: hi\n\nevent: output\nid: EVENT_1\ndata: hello,\ndata: this is a new line,\n"
    b"data: and this is a new line too\n\nevent: done\nid: EVENT_2\ndata: {}\n\n"
)


async def test_js_vector_multiline_data_in_any_chunking() -> None:
    for cuts in ([], [1, 5, 20, 21, 40], list(range(len(JS_MULTILINE)))):
        seen, exc = await run_mock(JS_MULTILINE, cuts)
        assert exc is None
        assert seen == [
            "hello,\nthis is a new line,\nand this is a new line too",
            FinishReason("stop"),
        ]


async def test_go_vector_done_without_data_and_no_ids() -> None:
    seen, exc = await run_mock(b": hi\n\nevent: output\ndata: foo\n\nevent: done\n\n")
    assert exc is None
    assert seen == ["foo", FinishReason("stop")]


async def test_docs_vector_data_without_space_and_crlf() -> None:
    body = b"retry: 3000\r\n\r\nevent: output\r\nid: 1690212292:0\r\ndata:Once upon a time...\r\n\r\nevent: done\r\nid: 1690212292:1\r\ndata: {}\r\n\r\n"
    seen, exc = await run_mock(body)
    assert exc is None
    assert seen == ["Once upon a time...", FinishReason("stop")]


async def test_malformed_done_is_a_protocol_error() -> None:
    seen, exc = await run_mock(
        b"event: output\nid: 1\ndata: x\n\nevent: done\nid: 2\ndata: {oops\n\n"
    )
    assert seen == ["x"]
    assert isinstance(exc, errors.ProtocolError)


async def test_oversized_event_line_is_a_protocol_error() -> None:
    big = b"event: output\nid: 1\ndata: " + b"x" * (2 * 1024 * 1024) + b"\n\n"
    _, exc = await run_mock(big)
    assert isinstance(exc, errors.ProtocolError)


async def test_relative_or_non_http_stream_url_is_a_protocol_error() -> None:
    async def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"id": "p", "urls": {"stream": "file:///etc/passwd"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = Replicate(http, endpoints={"base_url": "https://api.example/v1"}, api_key=KEY)
        with pytest.raises(errors.ProtocolError, match=r"urls\.stream"):
            async for _ in provider.stream(request()):
                pass


async def test_https_api_never_sends_the_key_to_a_plain_http_stream() -> None:
    seen_auth: dict[str, str | None] = {}

    async def handler(req: httpx.Request) -> httpx.Response:
        seen_auth[str(req.url.host)] = req.headers.get("authorization")
        if req.method == "POST" and req.url.path.endswith("/predictions"):
            return httpx.Response(
                201, json={"id": "p", "urls": {"stream": "http://stream.example/s"}}
            )
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=b"event: done\nid: 1\ndata: {}\n\n",
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = Replicate(http, endpoints={"base_url": "https://api.example/v1"}, api_key=KEY)
        events = [e async for e in provider.stream(request()) if type(e) is not Queued]
        assert events == [FinishReason("stop")]
    assert seen_auth == {"api.example": f"Bearer {KEY}", "stream.example": None}


# -- property: any tokens, any chunking ----------------------------------------------------

TOKENS = st.lists(
    st.one_of(
        st.sampled_from(["", "\n", "a\n", "\n\n", " ", "\nb", "data: x", ": c", "é🦙"]),
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r"), max_size=8),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens=TOKENS, data=st.data())
def test_any_tokens_come_out_exactly_under_nchan_framing_and_any_chunking(
    tokens: list[str], data: st.DataObject
) -> None:
    """nchan frames each token (one ``data:`` line per ``\\n``-piece); llmrelay returns
    every non-empty token exactly, in order, whatever the byte chunking."""
    body = b": hi\n\n" + b"".join(
        nchan_message("output", f"1690212292:{i}", t) for i, t in enumerate(tokens)
    )
    body += nchan_message("done", "1690212292:999", "{}")
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    seen, exc = anyio.run(run_mock, body, cuts)
    assert exc is None
    assert seen == [*(t for t in tokens if t), FinishReason("stop")]


# -- images -------------------------------------------------------------------------------------


async def image(url: str, req: ImageRequest | None = None, **kw: Any) -> Any:
    async with httpx.AsyncClient() as http:
        provider = Replicate(http, endpoints={"base_url": f"{url}/v1"}, api_key=KEY)
        return await provider.generate_image(req or ImageRequest("a llama", IMAGE_MODEL, **kw))


@pytest.mark.parametrize("image_mode", ["wait", "wait_processing", "poll"])
@pytest.mark.parametrize("output", ["list", "string", "data_uri"])
async def test_image_generation(fake: Fake, image_mode: Any, output: Any) -> None:
    """Prefer: wait answered 201 (succeeded, or processing with output) or 202 + polling."""
    server, url = fake
    server.script = ReplicateScript(image_mode=image_mode, image_output=output)
    result = await image(url, seed=42, aspect_ratio="16:9", width=1024, height=576)
    assert result.data == PNG_1X1
    assert result.mime_type == "image/png"
    assert (result.width, result.height, result.seed) == (1, 1, 42)
    (create,) = server.creations()
    assert create.headers["prefer"].startswith("wait")
    assert create.json == {
        "input": {
            "prompt": "a llama",
            "aspect_ratio": "16:9",
            "width": 1024,
            "height": 576,
            "seed": 42,
        }
    }
    polls = [r for r in server.requests if r.method == "GET" and "/v1/predictions/" in r.path]
    assert len(polls) == (2 if image_mode == "poll" else 0)
    downloads = [r for r in server.requests if r.path.startswith("/files/")]
    assert len(downloads) == (0 if output == "data_uri" else 1)
    assert all("authorization" not in r.headers for r in downloads)  # a CDN: no key


async def test_image_failed_prediction(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(image_mode="fail", polls_before_done=1)
    with pytest.raises(errors.ProviderError, match="CUDA out of memory"):
        await image(url)


async def test_image_deadline_bounds_polling_and_cancels(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(image_mode="never")
    started = time.monotonic()
    req = ImageRequest("a llama", IMAGE_MODEL, deadline=time.monotonic() + 1.2)
    with pytest.raises(errors.ProviderTimeout, match="not ready") as info:
        await image(url, req)
    assert info.value.kind == "total"
    assert time.monotonic() - started < 3
    assert server.wait_cancelled(5)
    create = server.creations()[0]
    assert create.headers["prefer"] == "wait=1"


async def test_image_mime_type_comes_from_the_bytes(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(image_content_type="image/jpeg")
    result = await image(url)
    assert result.mime_type == "image/png"


async def test_image_that_is_not_an_image(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(
        image_bytes=b"<html>oops</html>", image_content_type="text/html"
    )
    with pytest.raises(errors.ProtocolError, match="expected image bytes"):
        await image(url)


async def test_image_size_is_bounded(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    server, url = fake
    monkeypatch.setattr(_replicate_images, "MAX_IMAGE_BYTES", 1000)
    server.script = ReplicateScript(image_bytes=PNG_1X1 + b"\0" * 5000)
    with pytest.raises(errors.ProtocolError, match=r"too large|larger than"):
        await image(url)


async def test_image_http_errors_are_typed(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="http_error", error_status=422)
    with pytest.raises(errors.InvalidRequestError, match="prompt is required"):
        await image(url)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"RIFF\0\0\0\0WEBPVP8X"
            + b"\0" * 8
            + (99).to_bytes(3, "little")
            + (49).to_bytes(3, "little"),
            (100, 50),
        ),
        (b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f" + ((9) | (19 << 14)).to_bytes(4, "little"), (10, 20)),
        (
            b"RIFF\0\0\0\0WEBPVP8 "
            + b"\0" * 7
            + b"\x9d\x01\x2a"
            + (640).to_bytes(2, "little")
            + (480).to_bytes(2, "little"),
            (640, 480),
        ),
        (b"RIFF\0\0\0\0WEBPVP8X", None),
    ],
)
def test_webp_size(data: bytes, expected: Any) -> None:
    assert _replicate_images.webp_size(data) == expected


async def test_webp_image_gets_its_size(fake: Fake) -> None:
    server, url = fake
    webp = b"RIFF\0\0\0\0WEBPVP8X" + b"\0" * 8 + (1023).to_bytes(3, "little") * 2
    server.script = ReplicateScript(image_bytes=webp, image_content_type="image/webp")
    result = await image(url)
    assert (result.mime_type, result.width, result.height) == ("image/webp", 1024, 1024)


# -- through the public client (once "replicate" is registered in the BUILTIN registry) ------

needs_registry = pytest.mark.skipif(
    "replicate" not in BUILTIN, reason="the lead registers replicate in providers.BUILTIN"
)


def client_for(url: str, **kwargs: Any) -> Any:
    return llmrelay.AsyncClient(
        base_urls={"replicate": f"{url}/v1"}, api_keys={"replicate": KEY}, **kwargs
    )


@needs_registry
async def test_client_stream(fake: Fake) -> None:
    _, url = fake
    async with client_for(url) as client:
        events = [e async for e in client.stream("Hi", model=f"replicate:{MODEL}")]
    # the prediction starts (progress before the answer), then the answer
    assert isinstance(events[0], llmrelay.Queued)
    events = [e for e in events if not isinstance(e, llmrelay.Queued)]
    assert isinstance(events[0], llmrelay.ProviderInfo)
    assert (events[0].provider, events[0].model) == ("replicate", MODEL)
    assert "".join(e for e in events if isinstance(e, str)) == FULL
    assert events[-1] == FinishReason("stop")


@needs_registry
async def test_client_alias_and_system(fake: Fake) -> None:
    server, url = fake
    async with client_for(url) as client:
        events = [
            e async for e in client.stream("Hi", model="replicate:llama-3-70b", system="Be brief.")
        ]
    assert events[-1] == FinishReason("stop")
    (create,) = server.creations()
    assert create.path == "/v1/models/meta/meta-llama-3-70b-instruct/predictions"
    assert create.json["input"]["system_prompt"] == "Be brief."
    assert create.json["input"]["prompt"] == "Hi"


@needs_registry
async def test_client_interruption_after_text(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="end_without_done")
    seen: list[Any] = []
    async with client_for(url) as client:
        with pytest.raises(llmrelay.StreamInterrupted) as info:
            async for event in client.stream("Hi", model=f"replicate:{MODEL}"):
                seen.append(event)
    assert isinstance(info.value.cause, errors.ProtocolError)
    assert info.value.text == FULL


@needs_registry
async def test_client_error_before_content(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="http_error", error_status=401)
    async with client_for(url) as client:
        with pytest.raises(llmrelay.LLMRelayError) as info:
            async for _ in client.stream("Hi", model=f"replicate:{MODEL}"):
                pass
    error = info.value
    causes = [error, *getattr(error, "errors", []), *[a for a in getattr(error, "attempts", [])]]
    assert any("authentication token" in str(c) for c in causes)


@needs_registry
async def test_client_missing_key(fake: Fake) -> None:
    server, url = fake
    async with llmrelay.AsyncClient(base_urls={"replicate": f"{url}/v1"}) as client:
        with pytest.raises(llmrelay.LLMRelayError, match="REPLICATE_API_TOKEN"):
            async for _ in client.stream("Hi", model=f"replicate:{MODEL}"):
                pass
    assert server.requests == []


@needs_registry
async def test_client_images_generate(fake: Fake) -> None:
    server, url = fake
    async with client_for(url) as client:
        response = await client.images.generate(
            model="replicate:flux-schnell", prompt="a llama", size="64x32", seed=3
        )
    assert [base64.b64decode(image.b64_json) for image in response.data] == [PNG_1X1]
    sent = server.creations()[0]
    assert sent.path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert sent.json["input"] == {"prompt": "a llama", "width": 64, "height": 32, "seed": 3}


@needs_registry
def test_sync_client_images_generate(fake: Fake) -> None:
    _, url = fake
    with llmrelay.Client(
        base_urls={"replicate": f"{url}/v1"}, api_keys={"replicate": KEY}
    ) as client:
        response = client.images.generate(model="replicate:flux-schnell", prompt="a llama")
    assert base64.b64decode(response.data[0].b64_json) == PNG_1X1


@needs_registry
async def test_client_early_break_cancels_the_prediction(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="hold_open", fail_after=3)
    async with client_for(url) as client:
        stream = client.stream("Hi", model=f"replicate:{MODEL}")
        async for event in stream:
            if isinstance(event, str):
                break
        await stream.aclose()
    assert server.wait_cancelled(5)
    assert server.wait_streams_closed(5)


@needs_registry
def test_sync_client_early_break_cancels_the_prediction(fake: Fake) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="hold_open", fail_after=3)
    with llmrelay.Client(
        base_urls={"replicate": f"{url}/v1"}, api_keys={"replicate": KEY}
    ) as client:
        with client.stream("Hi", model=f"replicate:{MODEL}") as stream:
            for event in stream:
                if isinstance(event, str):
                    break
    assert server.wait_cancelled(5)
    assert server.wait_streams_closed(5)


@pytest.mark.parametrize("status", [300, 301, 303, 304, 307])
async def test_a_3xx_creation_answer_is_a_typed_error_never_an_empty_success(status: int) -> None:
    async def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(status)  # no Location: httpx does not call it a redirect

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = Replicate(http, endpoints={"base_url": "https://api.example/v1"}, api_key=KEY)
        with pytest.raises(errors.ProtocolError, match=f"redirect \\(HTTP {status}\\)"):
            async for _ in provider.stream(request()):
                pass


async def test_a_redirected_stream_that_ends_in_a_404_is_not_model_not_found() -> None:
    async def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "POST" and req.url.path.endswith("/predictions"):
            return httpx.Response(
                201,
                json={
                    "id": "p",
                    "urls": {
                        "stream": "https://stream.example/s/0",
                        "cancel": "https://api.example/v1/predictions/p/cancel",
                    },
                },
            )
        if req.url.host == "stream.example":
            return httpx.Response(307, headers={"location": "https://elsewhere.example/gone"})
        if req.url.host == "elsewhere.example":
            return httpx.Response(404, text="<html>Not Found</html>")
        return httpx.Response(200, json={"id": "p", "status": "canceled"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = Replicate(http, endpoints={"base_url": "https://api.example/v1"}, api_key=KEY)
        with pytest.raises(errors.ProtocolError, match="404 after a redirect") as info:
            async for _ in provider.stream(request()):
                pass
    assert not isinstance(info.value, errors.ModelNotFoundError)
