"""The OpenAI-compatible provider base against the fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import errors
from llmrelay._sse import SSEDecoder
from llmrelay.providers._openai_compat import OpenAICompatible
from llmrelay.providers._openai_stream import ChunkParser, stream_chat
from llmrelay.types import ChatRequest, FinishReason, Message, Reasoning, Usage
from tests.fakes._server import serve
from tests.fakes._streaming import Fault
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(_server: tuple[FakeOpenAI, str]) -> Iterator[FakeOpenAI]:
    fake, _ = _server
    fake.script = OpenAIScript()
    fake.recorder.requests.clear()
    yield fake
    assert fake.wait_closed(5), "a stream was left open"


@pytest.fixture
def base_url(_server: tuple[FakeOpenAI, str]) -> str:
    return _server[1] + "/v1"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        yield client


def local(http: httpx.AsyncClient, base_url: str, **table: Any) -> OpenAICompatible:
    cls = OpenAICompatible.from_config("local", {"kind": "openai", "base_url": base_url, **table})
    provider = cls(http)
    assert isinstance(provider, OpenAICompatible)
    return provider


def request(model: str = "fake-model", **kwargs: Any) -> ChatRequest:
    messages = (Message("system", "Be brief."), Message("user", "Hi"))
    return ChatRequest(messages=messages, model=model, **kwargs)


async def collect(provider: OpenAICompatible, req: ChatRequest) -> list[Any]:
    return [event async for event in provider.stream(req)]


def text_of(events: list[Any]) -> str:
    return "".join(e for e in events if isinstance(e, str))


async def test_stream_text_usage_and_one_finish_last(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    events = await collect(local(http, base_url), request())
    assert text_of(events) == fake.expected_text
    assert [e for e in events if isinstance(e, Usage)] == [Usage(7, 9, 16)]
    assert events[-1] == FinishReason("stop")
    assert sum(isinstance(e, FinishReason) for e in events) == 1


async def test_request_body_is_an_openai_chat_request(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    req = request(temperature=0.5, max_tokens=20, top_p=0.9, stop=("END",), seed=7)
    await collect(local(http, base_url), req)
    (sent,) = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {
        "model": "fake-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.5,
        "max_tokens": 20,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
    }
    assert "authorization" not in sent.headers


@pytest.mark.parametrize("space", [True, False])
async def test_data_with_and_without_space(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str, space: bool
) -> None:
    fake.script = OpenAIScript(space=space)
    events = await collect(local(http, base_url), request())
    assert text_of(events) == fake.expected_text
    assert events[-1] == FinishReason("stop")


async def test_2024_text_completion_chunks_without_done(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    fake.script = OpenAIScript(flavor="2024-03")
    events = await collect(local(http, base_url), request())
    # the eos delta "</s>" is not text; finish_reason eos_token means stop
    assert text_of(events) == fake.expected_text
    assert events[-1] == FinishReason("stop")


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
async def test_reasoning_deltas(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str, key: str
) -> None:
    fake.script = OpenAIScript(reasoning=["Let me", " think.\n"], reasoning_key=key)
    events = await collect(local(http, base_url), request())
    thoughts = [e for e in events if isinstance(e, Reasoning)]
    assert "".join(t.text for t in thoughts) == "Let me think.\n"
    first_text = next(i for i, e in enumerate(events) if isinstance(e, str))
    assert events.index(thoughts[-1]) < first_text
    assert text_of(events) == fake.expected_text


async def test_finish_reason_length(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    fake.script = OpenAIScript(finish="length")
    events = await collect(local(http, base_url), request())
    assert events[-1] == FinishReason("length")


async def test_end_without_done_or_finish_is_a_protocol_error(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    fake.script = OpenAIScript(finish="", send_done=False)
    seen: list[Any] = []
    with pytest.raises(errors.ProtocolError, match=r"without \[DONE\]"):
        async for event in local(http, base_url).stream(request()):
            seen.append(event)
    assert text_of(seen) == fake.expected_text


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.InvalidRequestError),
        (401, errors.AuthenticationError),
        (404, errors.ModelNotFoundError),
        (422, errors.InvalidRequestError),
        (500, errors.ProviderUnavailable),
        (503, errors.ProviderUnavailable),
    ],
)
async def test_http_errors_map_to_the_error_tree(
    fake: FakeOpenAI,
    http: httpx.AsyncClient,
    base_url: str,
    status: int,
    cls: type[errors.ProviderError],
) -> None:
    fake.script = OpenAIScript(fault=Fault("http_error", status=status))
    with pytest.raises(cls) as caught:
        await collect(local(http, base_url), request())
    assert type(caught.value) is cls
    assert caught.value.status_code == status
    assert f"scripted error {status}" in str(caught.value)


async def test_429_carries_retry_after(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    fake.script = OpenAIScript(fault=Fault("http_error", status=429, retry_after="12"))
    with pytest.raises(errors.RateLimitError) as caught:
        await collect(local(http, base_url), request())
    assert caught.value.retry_after == 12.0
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("body", "cls"),
    [
        (FakeOpenAI.error_body(429, "slow down"), errors.RateLimitError),
        (FakeOpenAI.error_body(400, "too long"), errors.InvalidRequestError),
        (FakeOpenAI.error_body(500, "boom"), errors.ProviderUnavailable),
        (
            {"error": "Input validation error", "error_type": "validation"},
            errors.InvalidRequestError,
        ),
        ({"error": "overloaded", "error_type": "overloaded"}, errors.ProviderUnavailable),
        (
            {"error": {"message": "vllm says no", "type": "BadRequestError", "code": 400}},
            errors.InvalidRequestError,
        ),
        ({"error": {"message": "odd", "type": "weird"}}, errors.ProviderError),
    ],
)
async def test_error_chunk_inside_a_200_stream(
    fake: FakeOpenAI,
    http: httpx.AsyncClient,
    base_url: str,
    body: Any,
    cls: type[errors.ProviderError],
) -> None:
    fake.script = OpenAIScript(fault=Fault("inband_error", body=body, after=2))
    seen: list[Any] = []
    with pytest.raises(cls) as caught:
        async for event in local(http, base_url).stream(request()):
            seen.append(event)
    assert type(caught.value) is cls
    assert text_of(seen) == "".join(fake.script.chunks[:2])


async def test_malformed_chunk_is_a_protocol_error_when_strict_else_skipped(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    fake.script = OpenAIScript(fault=Fault("malformed"))
    strict = ChatRequest(messages=request().messages, model=request().model, strict=True)
    with pytest.raises(errors.ProtocolError, match="not valid JSON"):
        await collect(local(http, base_url), strict)
    # not strict: the bad chunk is skipped (issue 19, S10); this fake then ends the
    # stream, which is still an error (no finish), not a truncated success
    with pytest.raises(errors.ProtocolError, match="without \\[DONE\\]"):
        await collect(local(http, base_url), request())


async def test_disconnect_mid_stream_is_an_error_not_a_truncation(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    fake.script = OpenAIScript(fault=Fault("disconnect", after=3))
    with pytest.raises((errors.TransportError, errors.ProtocolError)):
        await collect(local(http, base_url), request())


async def test_disconnect_mid_stream_is_mapped_with_the_transport_error_as_cause(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    # the transport's error leaves the stream as an llmrelay error naming the provider
    # and model, the httpx exception as its cause (on both paths: model given, listed)
    fake.script = OpenAIScript(fault=Fault("disconnect", after=3))
    for model in ("fake-model", ""):
        stream = local(http, base_url).stream(request(model=model))
        events: list[Any] = []
        with pytest.raises(errors.ProviderError) as caught:
            async for event in stream:
                events.append(event)
        assert text_of(events)
        assert fake.expected_text.startswith(text_of(events))
        assert caught.value.provider == "local"
        assert caught.value.model == "fake-model"
        assert isinstance(caught.value.__cause__, httpx.TransportError)


async def test_stream_hands_on_the_reader_itself(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    # one generator step per event: with the model known, ``stream`` returns
    # ``stream_chat``'s generator (counted by its code, not timed)
    stream = local(http, base_url).stream(request())
    assert stream.ag_code is stream_chat.__code__  # type: ignore[attr-defined]
    assert text_of([event async for event in stream]) == fake.expected_text


async def test_stream_checks_fail_at_the_first_step_not_at_the_call(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    image = "https://example.com/a.png"
    req = ChatRequest(messages=(Message("user", "Look", images=(image,)),), model="fake-model")
    stream = local(http, base_url).stream(req)  # nothing raised yet, nothing sent
    with pytest.raises(errors.InvalidRequestError, match="not declared to take images"):
        await stream.__anext__()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    assert fake.requests == []


async def test_early_close_closes_the_connection(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    fake.script = OpenAIScript(fault=Fault("hold_open", after=2))
    stream = local(http, base_url).stream(request())
    assert await stream.__anext__() == "Hello"
    assert fake.recorder.open_streams == 1
    await stream.aclose()
    assert fake.wait_closed(5)


async def test_slow_first_byte_hits_the_read_timeout(fake: FakeOpenAI, base_url: str) -> None:
    fake.script = OpenAIScript(fault=Fault(first_byte_delay=1.0))
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.2)) as http:
        with pytest.raises(errors.ProviderTimeout):
            await collect(local(http, base_url), request())


async def test_models_listed_by_the_server_and_cached(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    provider = local(http, base_url)
    assert list(await provider.list_models()) == ["fake-model", "fake-model-2"]
    assert list(await provider.list_models()) == ["fake-model", "fake-model-2"]
    assert [r.path for r in fake.requests] == ["/v1/models"]


async def test_configured_models_are_not_fetched(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    provider = local(http, base_url, models=["a", "b"])
    assert list(await provider.list_models()) == ["a", "b"]
    assert fake.requests == []


async def test_no_model_uses_the_first_listed(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    await collect(local(http, base_url), request(model=""))
    assert [r.path for r in fake.requests] == ["/v1/models", "/v1/chat/completions"]
    assert fake.requests[1].json["model"] == "fake-model"


async def test_model_list_error_is_typed(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    fake.script = OpenAIScript(fault=Fault("http_error", status=401))
    with pytest.raises(errors.AuthenticationError):
        await local(http, base_url).list_models()


async def test_configured_key_is_sent_as_bearer(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    fake.script = OpenAIScript(api_key="sk-local")
    events = await collect(local(http, base_url, api_key="sk-local"), request())
    assert events[-1] == FinishReason("stop")
    assert fake.requests[0].headers["authorization"] == "Bearer sk-local"
    with pytest.raises(errors.AuthenticationError, match="Incorrect API key"):
        await collect(local(http, base_url, api_key="wrong"), request())


async def test_client_key_wins_over_the_configured_one(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    cls = OpenAICompatible.from_config("local", {"base_url": base_url, "api_key": "from-config"})
    await collect(cls(http, api_key="from-client"), request())  # type: ignore[arg-type]
    assert fake.requests[0].headers["authorization"] == "Bearer from-client"


async def test_extra_body_option_is_merged(
    fake: FakeOpenAI, http: httpx.AsyncClient, base_url: str
) -> None:
    extra = {"top_k": 5, "stream_options": None, "stream": False, "model": "other"}
    events = await collect(local(http, base_url), request(options={"extra_body": extra}))
    sent = fake.requests[0].json
    assert (sent["top_k"], sent["stream_options"], sent["stream"], sent["model"]) == (
        5,
        None,
        True,
        "fake-model",
    )
    assert events[-1] == FinishReason("stop")


# -- from_config --------------------------------------------------------------------------


def test_from_config_builds_a_configured_subclass() -> None:
    cls = OpenAICompatible.from_config(
        "local",
        {
            "kind": "openai",
            "base_url": "http://127.0.0.1:11434/v1/",
            "models": ["llama3.2", "qwen2.5"],
            "aliases": {"llama": "llama3.2"},
            "label": "Ollama",
        },
    )
    assert issubclass(cls, OpenAICompatible)
    assert cls.name == "local"
    assert cls.label == "Ollama"
    assert cls.endpoints["base_url"] == "http://127.0.0.1:11434/v1"
    assert cls.models == ("llama3.2", "qwen2.5")
    assert cls.default_model == "llama3.2"
    assert not cls.open_catalogue
    assert cls.resolve_model("llama") == "llama3.2"
    with pytest.raises(errors.UnknownModelError):
        cls.resolve_model("gpt-4")
    # the base class is untouched
    assert OpenAICompatible.name == "openai"
    assert OpenAICompatible.models == ()


def test_from_config_without_models_is_an_open_catalogue() -> None:
    cls = OpenAICompatible.from_config("vllm", {"base_url": "https://example.test/v1"})
    assert cls.open_catalogue
    assert cls.resolve_model("any/model") == "any/model"


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"base_url": "http://x/v1", "modles": []}, "unknown key 'modles'"),
        ({"base_url": "http://x/v1", "headers": {}}, "unknown key 'headers'"),
        ({}, "base_url is required"),
        ({"base_url": "ftp://x/v1"}, "must be an http"),
        ({"base_url": "file:///etc/passwd"}, "must be an http"),
        ({"base_url": "http://"}, "must be an http"),
        ({"base_url": 5}, "base_url is required"),
        ({"base_url": "http://x", "models": "llama"}, "list of model ids"),
        ({"base_url": "http://x", "models": [1]}, "expected a string"),
        ({"base_url": "http://x", "kind": "gradio"}, "kind must be 'openai'"),
        ({"base_url": "http://x", "models": ["a"], "aliases": {"b": "c"}}, "not in 'models'"),
        ({"base_url": "http://x", "api_key": 123}, "api_key"),
    ],
)
def test_from_config_validation(table: dict[str, Any], match: str) -> None:
    with pytest.raises(errors.ConfigError, match=match):
        OpenAICompatible.from_config("local", table)


def test_from_config_rejects_a_bad_name() -> None:
    with pytest.raises(errors.ConfigError, match="provider name"):
        OpenAICompatible.from_config("Bad Name", {"base_url": "http://x"})


# -- parser property ----------------------------------------------------------------------


def _sse_bytes(pieces: list[str], space: bool) -> bytes:
    import json

    sep = " " if space else ""
    frames = [
        f"data:{sep}"
        + json.dumps({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
        for p in pieces
    ]
    frames.append(
        f"data:{sep}"
        + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    )
    frames.append(f"data:{sep}[DONE]")
    return ("\n\n".join(frames) + "\n\n").encode()


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.text(), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
    space=st.booleans(),
)
def test_any_tokens_under_any_chunking_come_out_exactly(
    pieces: list[str], cuts: list[int], space: bool
) -> None:
    data = _sse_bytes(pieces, space)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    decoder = SSEDecoder()
    parser = ChunkParser("local", "m")
    out: list[Any] = []
    for chunk in chunks:
        for sse in decoder.feed(chunk):
            out += parser.feed(sse.data)
    out += parser.end()
    assert "".join(e for e in out if isinstance(e, str)) == "".join(pieces)
    assert out[-1] == FinishReason("stop")
    assert parser.done


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "choices",
                    "delta",
                    "content",
                    "reasoning_content",
                    "finish_reason",
                    "usage",
                    "error",
                    "message",
                    "type",
                    "code",
                    "prompt_tokens",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_any_json_chunk_gives_events_or_a_typed_error(value: Any) -> None:
    import json

    parser = ChunkParser("local", "m")
    try:
        parser.feed(json.dumps(value))
        parser.end()
    except errors.ProviderError:
        pass
