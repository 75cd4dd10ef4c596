"""One typed parameter set per call (``llmrelay.ChatParams`` ...), the same in every layer.

The methods take ``**params: Unpack[...]``: a keyword they do not take must still be a
``TypeError`` (never silently ignored), their signatures must still list every keyword,
and the sync and async faces must take the same ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import llmrelay
from llmrelay.providers import Provider
from tests.unit.scripted_provider import scripted

pytestmark = pytest.mark.anyio


def _keywords(func: Callable[..., Any]) -> list[tuple[str, object]]:
    params = inspect.signature(func).parameters.values()
    return sorted((p.name, p.default) for p in params if p.kind is p.KEYWORD_ONLY)


CHAT = {
    "model",
    "system",
    "temperature",
    "max_tokens",
    "top_p",
    "stop",
    "seed",
    "options",
    "conversation",
    "state",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "frequency_penalty",
    "presence_penalty",
    "tool_emulation",
}


def test_the_chat_methods_list_the_chat_parameters() -> None:
    for cls in (llmrelay.AsyncClient, llmrelay.Client):
        for name in ("stream", "open", "complete"):
            method = getattr(cls, name)
            assert _keywords(method) == sorted((k, None) for k in CHAT), (cls, name)
    assert set(llmrelay.ChatParams.__annotations__) == CHAT


def test_the_sync_facade_takes_what_the_async_one_takes() -> None:
    from llmrelay._resources import AsyncChatCompletions, AsyncImages
    from llmrelay._sync import _Completions, _Images

    create = _keywords(AsyncChatCompletions.create)
    assert create == _keywords(_Completions.create)
    assert ("stream", False) in create
    assert ("max_completion_tokens", None) in create
    generate = _keywords(AsyncImages.generate)
    assert generate == _keywords(_Images.generate)
    assert ("prompt", inspect.Parameter.empty) in generate
    assert ("n", 1) in generate
    assert ("response_format", "b64_json") in generate


async def test_an_unknown_keyword_is_a_type_error_everywhere() -> None:
    first, script = scripted("first", ["a", llmrelay.FinishReason("stop")], images=True)
    providers: list[type[Provider]] = [first]
    async with llmrelay.AsyncClient(providers=providers) as client:
        with pytest.raises(TypeError, match="'temprature'"):
            client.stream("hi", temprature=0.5)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'temprature'"):
            await client.open("hi", temprature=0.5)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'temprature'"):
            await client.complete("hi", temprature=0.5)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'size'"):
            await client.generate_image("a cat", size="1x1")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'system'"):
            await client.chat.completions.create(messages="hi", system="x")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'width'"):
            await client.images.generate(prompt="a cat", width=1)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'prompt'"):
            await client.images.generate()  # type: ignore[call-arg]
    assert script.received == []  # nothing was sent
    assert script.images == []


def test_an_unknown_keyword_is_a_type_error_in_the_sync_client_too() -> None:
    first, script = scripted("first", ["a", llmrelay.FinishReason("stop")], images=True)
    with llmrelay.Client(providers=[first]) as client:
        with pytest.raises(TypeError, match="'temprature'"):
            client.stream("hi", temprature=0.5)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'temprature'"):
            client.open("hi", temprature=0.5)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'temprature'"):
            client.complete("hi", temprature=0.5)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'size'"):
            client.generate_image("a cat", size="1x1")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'system'"):
            client.chat.completions.create(messages="hi", system="x")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'width'"):
            client.images.generate(prompt="a cat", width=1)  # type: ignore[call-arg]
    assert script.received == []
    assert script.images == []


def test_every_chat_parameter_still_reaches_the_provider_from_both_clients() -> None:
    """Through ``complete`` and ``create`` of both faces: the request the provider got."""
    first, script = scripted(
        "first",
        ["a", llmrelay.FinishReason("stop")],
        parameters=("temperature", "max_tokens", "top_p", "stop", "seed"),
    )
    with llmrelay.Client(providers=[first]) as client:
        client.complete(
            "hi",
            model="first",
            system="be brief",
            temperature=0.25,
            max_tokens=7,
            top_p=0.5,
            stop=iter(["END"]),  # read in the caller's thread
            seed=3,
        )
        client.chat.completions.create(
            messages="hi", model="first", max_tokens=9, max_completion_tokens=8, stop="X", seed=4
        )
    one, two = script.received
    assert [m.role for m in one.messages] == ["system", "user"]
    assert (one.temperature, one.max_tokens, one.top_p, one.stop, one.seed) == (
        0.25,
        7,
        0.5,
        ("END",),
        3,
    )
    assert (two.max_tokens, two.stop, two.seed) == (8, ("X",), 4)


def test_every_image_parameter_reaches_the_provider_from_both_clients() -> None:
    first, script = scripted("first", images=True, options={})
    with llmrelay.Client(providers=[first]) as client:
        client.generate_image(
            "a cat",
            model="first",
            n=2,
            width=64,
            height=32,
            aspect_ratio="2:1",
            seed=5,
            negative_prompt="dogs",
        )
        response = client.images.generate(
            prompt="a dog", model="first", size="16x8", seed=6, negative_prompt="cats"
        )
    assert len(response.data) == 1
    one, two, three = script.images
    assert one == two
    assert (one.prompt, one.width, one.height, one.aspect_ratio, one.seed) == (
        "a cat",
        64,
        32,
        "2:1",
        5,
    )
    assert one.negative_prompt == "dogs"
    assert (three.prompt, three.width, three.height, three.seed, three.negative_prompt) == (
        "a dog",
        16,
        8,
        6,
        "cats",
    )


async def test_a_bare_stop_string_is_one_sequence_in_every_layer() -> None:
    """``stop="END"`` reaches the provider as ``("END",)``, never ``("E", "N", "D")``."""
    first, script = scripted("first", ["a", llmrelay.FinishReason("stop")], parameters=("stop",))
    async with llmrelay.AsyncClient(providers=[first]) as client:
        await client.complete("hi", model="first", stop="END")
        async with client.stream("hi", model="first", stop="END") as stream:
            await stream.collect()
    with llmrelay.Client(providers=[first]) as sync:
        sync.complete("hi", model="first", stop="END")
    assert [request.stop for request in script.received] == [("END",)] * 3


@pytest.mark.parametrize(
    ("stop", "message"),
    [
        (b"END", "not bytes"),
        (3, "not int"),
        (["END", 4], r"stop\[1\] must be a string"),
        ([""], r"stop\[0\] is empty"),
    ],
)
async def test_a_stop_that_is_not_strings_is_refused_naming_stop(stop: Any, message: str) -> None:
    first, script = scripted("first", ["a"], parameters=("stop",))
    async with llmrelay.AsyncClient(providers=[first]) as client:
        with pytest.raises(llmrelay.errors.ConfigError, match=message) as caught:
            await client.complete("hi", model="first", stop=stop)
    assert caught.value.param == "stop"
    assert script.received == []


# -- a parameter of the wrong type is a ConfigError naming it, never a bare exception ----

WRONG_CHAT = [
    ("model", 3),
    ("system", 3),
    ("temperature", "hot"),
    ("temperature", True),
    ("temperature", float("nan")),
    ("top_p", [1]),
    ("frequency_penalty", "x"),
    ("presence_penalty", float("inf")),
    ("max_tokens", 1.5),
    ("max_tokens", "9"),
    ("seed", "a"),
    ("options", "x"),
    ("options", {1: 2}),
    ("conversation", "c"),
    ("state", "s"),
]


@pytest.mark.parametrize(("name", "value"), WRONG_CHAT)
async def test_a_chat_parameter_of_the_wrong_type_is_refused_naming_it(
    name: str, value: Any
) -> None:
    first, script = scripted(
        "first", ["a"], parameters=("temperature", "max_tokens", "top_p", "seed")
    )
    async with llmrelay.AsyncClient(providers=[first]) as client:
        params: dict[str, Any] = {"model": "first", name: value}
        with pytest.raises(llmrelay.errors.ConfigError) as refused:
            await client.complete("hi", **params)
        assert refused.value.param == name
        if name in llmrelay.CompletionCreateParams.__annotations__:
            with pytest.raises(llmrelay.errors.ConfigError) as refused:
                await client.chat.completions.create(messages="hi", **params)
            assert refused.value.param == name
    assert script.received == []


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"messages": 5}, "messages"),
        ({"messages": b"hi"}, "messages"),
        ({"messages": "hi", "stream": "yes"}, "stream"),
    ],
)
async def test_create_refuses_messages_and_stream_of_the_wrong_type(
    params: dict[str, Any], param: str
) -> None:
    first, script = scripted("first", ["a"])
    async with llmrelay.AsyncClient(providers=[first]) as client:
        with pytest.raises(llmrelay.errors.ConfigError) as refused:
            await client.chat.completions.create(model="first", **params)
    assert refused.value.param == param
    assert script.received == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("model", 5),
        ("n", "2"),
        ("n", True),
        ("width", "64"),
        ("height", 0),
        ("seed", "x"),
        ("aspect_ratio", 3),
        ("negative_prompt", 4),
        ("options", "x"),
    ],
)
async def test_an_image_parameter_of_the_wrong_type_is_refused_naming_it(
    name: str, value: Any
) -> None:
    first, script = scripted("first", images=True, options={})
    async with llmrelay.AsyncClient(providers=[first]) as client:
        params: dict[str, Any] = {"model": "first", name: value}
        with pytest.raises(llmrelay.errors.ConfigError) as refused:
            await client.generate_image("a cat", **params)
    assert refused.value.param == name
    assert script.images == []


async def test_numpy_numbers_reach_the_provider_as_python_numbers() -> None:
    """``numbers.Real``/``Integral`` of other types (numpy's) are taken, as plain numbers
    (a provider's JSON encoder could not write them)."""
    np = pytest.importorskip("numpy")
    first, script = scripted(
        "first",
        ["a", llmrelay.FinishReason("stop")],
        parameters=("temperature", "max_tokens", "top_p", "seed"),
    )
    async with llmrelay.AsyncClient(providers=[first]) as client:
        await client.complete(
            "hi",
            model="first",
            temperature=np.float32(0.5),
            top_p=np.float64(0.25),
            max_tokens=np.int64(7),
            seed=np.int32(3),
        )
    [request] = script.received
    values = (request.temperature, request.top_p, request.max_tokens, request.seed)
    assert values == (0.5, 0.25, 7, 3)
    assert [type(v) for v in values] == [float, float, int, int]


async def test_numpy_integers_reach_an_image_provider_as_python_ints() -> None:
    """``n``, ``width``, ``height`` and ``seed`` of numpy's integer types are taken."""
    np = pytest.importorskip("numpy")
    first, script = scripted("first", images=True, options={})
    async with llmrelay.AsyncClient(providers=[first]) as client:
        result = await client.generate_image(
            "a cat",
            model="first",
            n=np.int64(2),
            width=np.int32(64),
            height=np.uint16(48),
            seed=np.int64(9),
        )
    assert len(script.images) == len(result) == 2  # n: one request per image
    request = script.images[0]
    values = (request.width, request.height, request.seed)
    assert values == (64, 48, 9)
    assert [type(v) for v in values] == [int, int, int]
