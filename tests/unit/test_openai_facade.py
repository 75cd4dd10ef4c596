"""client.chat.completions / images / models, validated with the real openai types."""

from __future__ import annotations

import base64

import pytest
from openai.types import ImagesResponse as OpenAIImagesResponse
from openai.types import Model as OpenAIModel
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChatCompletionChunk

from llmrelay import (
    AsyncClient,
    Client,
    FinishReason,
    InvalidRequestError,
    ProviderUnavailable,
    Reasoning,
    StreamInterrupted,
    Usage,
)
from llmrelay.providers import Option
from tests.unit.scripted_provider import HANG, scripted

pytestmark = pytest.mark.anyio

MESSAGES = [
    {"role": "developer", "content": "be brief"},
    {"role": "user", "content": [{"type": "text", "text": "say "}, {"type": "text", "text": "hi"}]},
]


async def test_create_returns_a_chat_completion_openai_accepts() -> None:
    first, script = scripted(
        "first",
        ["Hel", "lo", Usage(3, 2, 5), FinishReason("length")],
        parameters=("max_tokens", "seed", "stop"),
    )
    async with AsyncClient(providers=[first]) as client:
        completion = await client.chat.completions.create(
            model="first",
            messages=MESSAGES,
            max_completion_tokens=7,
            max_tokens=99,
            seed=4,
            stop="x",
        )
    checked = OpenAIChatCompletion.model_validate(completion.model_dump())
    assert checked.choices[0].message.content == "Hello"
    assert checked.choices[0].finish_reason == "length"
    assert checked.usage is not None
    assert (checked.usage.prompt_tokens, checked.usage.completion_tokens) == (3, 2)
    assert checked.model == "first:shared-model"
    request = script.received[0]
    assert request.max_tokens == 7  # max_completion_tokens wins
    assert (request.seed, request.stop) == (4, ("x",))
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "be brief"),
        ("user", "say hi"),
    ]


async def test_every_chat_parameter_create_takes_reaches_the_provider() -> None:
    """``create`` hands its chat parameters to the turn by name: none is dropped."""
    first, script = scripted(
        "first",
        ["ok", FinishReason("stop")],
        parameters=(
            "temperature",
            "top_p",
            "max_tokens",
            "stop",
            "seed",
            "frequency_penalty",
            "presence_penalty",
        ),
        options={"mode": Option(str)},
    )
    async with AsyncClient(providers=[first]) as client:
        stream = await client.chat.completions.create(
            model="first",
            messages=MESSAGES,
            stream=True,
            temperature=0.5,
            top_p=0.9,
            max_tokens=11,
            stop=["a", "b"],
            seed=3,
            frequency_penalty=0.25,
            presence_penalty=-0.5,
            options={"mode": "fast"},
        )
        async with stream:
            chunks = [chunk async for chunk in stream]
    assert chunks
    request = script.received[0]
    assert (request.temperature, request.top_p, request.max_tokens) == (0.5, 0.9, 11)
    assert (request.stop, request.seed) == (("a", "b"), 3)
    assert (request.frequency_penalty, request.presence_penalty) == (0.25, -0.5)
    assert dict(request.options) == {"mode": "fast"}


def test_create_passes_each_shared_chat_parameter_by_its_name() -> None:
    """A parameter both ``create`` and ``stream`` take goes through ``_SAME_NAME`` (or is
    mapped: ``max_tokens``, ``stop``); one added to both without it would be dropped."""
    from llmrelay._params import ChatParams, CompletionCreateParams
    from llmrelay._resources import _SAME_NAME

    shared = set(ChatParams.__annotations__) & set(CompletionCreateParams.__annotations__)
    assert shared - {"max_tokens", "stop"} == _SAME_NAME


async def test_streamed_chunks_have_openais_shape() -> None:
    first, _ = scripted(
        "first", [Reasoning("think"), "a", "b", Usage(1, 2, 3), FinishReason("stop")]
    )
    async with AsyncClient(providers=[first]) as client:
        stream = await client.chat.completions.create(
            model="first", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [OpenAIChatCompletionChunk.model_validate(c.model_dump()) async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:-1])
    assert [c.choices[0].delta.content for c in chunks[1:3]] == ["a", "b"]
    assert chunks[0].model_dump()["choices"][0]["delta"]["reasoning_content"] == "think"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 3
    assert len({c.id for c in chunks}) == 1


async def test_usage_is_counted_and_marked_when_the_provider_reports_none() -> None:
    first, _ = scripted("first", ["a" * 40, FinishReason("stop")])
    async with AsyncClient(providers=[first]) as client:
        completion = await client.chat.completions.create(model="first", messages=MESSAGES)
        stream = await client.chat.completions.create(
            model="first", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        plain = await client.chat.completions.create(model="first", messages=MESSAGES, stream=True)
        plain_chunks = [c async for c in plain]
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 10  # 40 bytes / 4
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 10
    assert completion.usage_estimated
    assert chunks[-1].choices == []
    assert chunks[-1].usage == completion.usage
    assert stream.usage_estimated
    assert not stream.reports_usage
    assert chunks[-2].choices[0].finish_reason == "stop"
    # without include_usage a stream reports none
    assert all(c.usage is None for c in plain_chunks)
    assert not plain.usage_estimated


async def test_errors_before_content_raise_from_create_and_after_from_iteration() -> None:
    down, _ = scripted("first", [ProviderUnavailable("down", provider="first")])
    async with AsyncClient(providers=[down], retries=0) as client:
        with pytest.raises(ProviderUnavailable):
            await client.chat.completions.create(model="first", messages=MESSAGES, stream=True)
    cut, script = scripted("first", ["partial", ProviderUnavailable("cut", provider="first")])
    async with AsyncClient(providers=[cut], rescue=False) as client:
        stream = await client.chat.completions.create(model="first", messages=MESSAGES, stream=True)
        with pytest.raises(StreamInterrupted):
            async for _ in stream:
                pass
    assert script.closed == 1


async def test_closing_a_chunk_stream_closes_the_provider() -> None:
    first, script = scripted("first", ["a", HANG])
    async with AsyncClient(providers=[first]) as client:
        async with await client.chat.completions.create(
            model="first", messages=MESSAGES, stream=True
        ) as stream:
            await stream.__anext__()
    assert script.closed == 1


async def test_an_image_part_is_refused_naming_the_part() -> None:
    first, _ = scripted("first", ["a", FinishReason("stop")])
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}
    ]
    async with AsyncClient(providers=[first]) as client:
        with pytest.raises(InvalidRequestError, match=r"messages\[0\]"):
            await client.chat.completions.create(model="first", messages=messages)


async def test_images_generate_and_models_list() -> None:
    painter, script = scripted("painter", [], images=True, models=("paint-1",))
    writer, _ = scripted("writer", [])
    async with AsyncClient(providers=[painter, writer]) as client:
        response = await client.images.generate(
            model="painter", prompt="a cat", n=2, size="64x32", seed=7
        )
        checked = OpenAIImagesResponse.model_validate(response.model_dump())
        assert [base64.b64decode(i.b64_json or "")[:4] for i in checked.data] == [b"\x89PNG"] * 2
        assert (script.images[0].width, script.images[0].height, script.images[0].seed) == (
            64,
            32,
            7,
        )
        with pytest.raises(InvalidRequestError, match="cannot generate images"):
            await client.images.generate(model="writer", prompt="a cat")
        models = await client.models.list()
    ids = {m.id: m.owned_by for m in models.data}
    assert ids["painter:paint-1"] == "painter"
    assert ids["qwen-2-72b"] == "hf_spaces"
    for model in models.data:
        OpenAIModel.model_validate(model.model_dump())


def test_the_sync_client_has_the_same_resources() -> None:
    first, _ = scripted("first", ["x", "y", FinishReason("stop")])
    with Client(providers=[first]) as client:
        completion = client.chat.completions.create(model="first", messages=MESSAGES)
        with client.chat.completions.create(
            model="first", messages=MESSAGES, stream=True
        ) as chunks:
            texts = [c.choices[0].delta.content for c in chunks if c.choices]
        models = client.models.list()
    assert completion.choices[0].message.content == "xy"
    assert texts == ["x", "y", None]
    assert any(m.id == "first:shared-model" for m in models.data)
