"""The real ``openai`` SDK (sync and async, streaming and not) against the server."""

from __future__ import annotations

import base64

import openai
import pytest
from tests.server import scripted
from tests.server.scripted import HOLD, PNG

import llmrelay


@pytest.fixture
def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=20)


@pytest.fixture
def async_sdk(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=20)


MESSAGES = [
    {"role": "developer", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Say "}, {"type": "text", "text": "hi"}]},
]


def test_sync_not_streaming(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="alpha:m", messages=MESSAGES, max_completion_tokens=50, stop=["\n\n"], seed=3
    )
    assert completion.choices[0].message.content == "Hello, world!"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 3)
    request = scripted.LOG["alpha"].requests[-1]
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.messages[1].content == "Say hi"
    assert request.max_tokens == 50
    assert request.stop == ("\n\n",)
    assert request.seed == 3


def test_sync_streaming_with_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="alpha:m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.5,
        max_tokens=20,
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert pieces == ["Hello", ", world", "!"]
    assert finish == "stop"
    assert usage is not None
    assert usage.total_tokens == 8
    request = scripted.LOG["alpha"].requests[-1]
    assert (request.temperature, request.max_tokens) == (0.5, 20)


def test_streaming_without_include_usage_has_no_usage_chunk(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="alpha:m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_async_streaming_and_not(async_sdk: openai.AsyncOpenAI) -> None:
    async with async_sdk:
        completion = await async_sdk.chat.completions.create(
            model="beta:m", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content == "Hello, world!"
        stream = await async_sdk.chat.completions.create(
            model="beta:m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Hello, world!"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


def _err(cls: type[llmrelay.ProviderError], **kw: object) -> llmrelay.ProviderError:
    return cls("scripted failure", provider="alpha", model="m", **kw)  # type: ignore[arg-type]


ERRORS = [
    (_err(llmrelay.RateLimitError, status_code=429, retry_after=7.2), 429, openai.RateLimitError),
    (_err(llmrelay.ProviderUnavailable, status_code=503), 503, openai.InternalServerError),
    (_err(llmrelay.ProviderTimeout), 504, openai.InternalServerError),
    (_err(llmrelay.ModelNotFoundError, status_code=404), 404, openai.NotFoundError),
    (_err(llmrelay.InvalidRequestError, status_code=400), 400, openai.BadRequestError),
    (_err(llmrelay.InvalidRequestError, status_code=422), 422, openai.UnprocessableEntityError),
    (_err(llmrelay.ProtocolError), 502, openai.InternalServerError),
    (_err(llmrelay.TransportError), 502, openai.InternalServerError),
    (_err(llmrelay.AuthenticationError, status_code=401), 502, openai.InternalServerError),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("error", "status", "sdk_class"), ERRORS, ids=lambda v: str(v)[:30])
def test_error_before_content_is_a_status(
    sdk: openai.OpenAI,
    error: llmrelay.ProviderError,
    status: int,
    sdk_class: type[openai.APIStatusError],
    stream: bool,
) -> None:
    scripted.SCRIPTS["alpha"] = [error]
    with pytest.raises(sdk_class) as info:
        sdk.chat.completions.create(
            model="alpha:m", messages=[{"role": "user", "content": "hi"}], stream=stream
        )
    assert info.value.status_code == status
    body = info.value.body
    assert isinstance(body, dict)
    assert set(body) >= {"message", "type", "param", "code"}
    assert "scripted failure" in body["message"]
    if status == 429:
        assert info.value.response.headers["retry-after"] == "8"


def test_unknown_model_is_404(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk.chat.completions.create(
            model="alpha:no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="nobody:m", messages=[{"role": "user", "content": "x"}])


def test_invalid_request_is_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(
            model="alpha:m", messages=[{"role": "user", "content": "hi"}], temperature=9
        )
    assert info.value.body["param"] == "temperature"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="alpha:m", messages=[{"role": "tool", "content": "x"}])  # type: ignore[list-item,misc]
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="alpha:m", messages=[])


def test_failure_after_text_is_one_error_frame(sdk: openai.OpenAI) -> None:
    scripted.SCRIPTS["alpha"] = [
        "partial ",
        "answer",
        llmrelay.ProviderUnavailable("went away", provider="alpha", model="m"),
    ]
    stream = sdk.chat.completions.create(
        model="alpha:m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    pieces = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            pieces.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(pieces) == "partial answer"
    assert "went away" in info.value.message


def test_models_list_and_retrieve(sdk: openai.OpenAI) -> None:
    models = {m.id: m for m in sdk.models.list()}
    assert models["alpha:m"].owned_by == "alpha"
    assert models["painter:canvas"].owned_by == "painter"
    assert "chain" in models  # an alias from the config file
    one = sdk.models.retrieve("beta:m")
    assert (one.id, one.owned_by) == ("beta:m", "beta")
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("nobody:nothing")


def test_images_generate(sdk: openai.OpenAI) -> None:
    result = sdk.images.generate(model="painter:canvas", prompt="a dot", size="1x1")
    assert result.data is not None
    assert base64.b64decode(result.data[0].b64_json or "") == PNG


def test_images_from_a_chat_only_provider_is_an_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        sdk.images.generate(model="alpha:m", prompt="a dot")
    assert 400 <= info.value.status_code < 600
    assert info.value.status_code != 500


def test_hf_spaces_through_the_server(sdk: openai.OpenAI, space: object) -> None:
    import inspect

    from tests.fakes.gradio_space import SpaceScript

    completion = sdk.chat.completions.create(
        model="hf_spaces:qwen-2-72b", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == inspect.cleandoc("".join(SpaceScript().chunks))
    text = "".join(
        c.choices[0].delta.content or ""
        for c in sdk.chat.completions.create(
            model="hf_spaces:qwen-2-72b", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        if c.choices
    )
    assert text == completion.choices[0].message.content


def test_held_stream_is_closed_when_sdk_closes(sdk: openai.OpenAI) -> None:
    scripted.SCRIPTS["alpha"] = ["tick", HOLD]
    stream = sdk.chat.completions.create(
        model="alpha:m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    first = next(iter(stream))
    assert first.choices[0].delta.content in ("tick", None, "")
    stream.close()
    assert scripted.LOG["alpha"].wait_closed(5), "the provider's stream stayed open"
