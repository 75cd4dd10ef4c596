"""Embeddings through the engine: input forms, the fallback policy, the checks on what a
provider returns, the OpenAI-shaped response (``float`` and ``base64``), both clients."""

from __future__ import annotations

import array
import base64
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
import httpx
import pytest

import llmrelay
from llmrelay import errors
from llmrelay._embeddings import MAX_INPUTS, normalize_input
from llmrelay._openai_embeddings import encode_base64, to_embedding_response
from llmrelay.providers import Auth, AuthMode, Capability, Option, Provider
from llmrelay.types import ChatRequest, EmbeddingRequest, EmbeddingResult, Usage

pytestmark = pytest.mark.anyio


class Behaviour:
    """What one scripted provider does per ``embed`` call (first item first)."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.received: list[EmbeddingRequest] = []


def embedder(
    name: str,
    behaviour: Behaviour,
    *,
    capable: bool = True,
    key_required: bool = False,
    options: Mapping[str, Option] | None = None,
) -> type[Provider]:
    """A provider whose ``embed`` follows ``behaviour`` (an exception, a sleep, a size)."""

    class Embedder(Provider):
        async def stream(self, request: ChatRequest) -> Any:  # pragma: no cover - unused
            raise NotImplementedError

        async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
            behaviour.received.append(request)
            step = behaviour.steps.pop(0) if behaviour.steps else None
            if isinstance(step, BaseException):
                raise step
            if isinstance(step, float):
                await anyio.sleep(step)
            size = step if isinstance(step, int) else (request.dimensions or 3)
            count = step.get("count") if isinstance(step, dict) else request.count
            vectors = tuple(tuple(float(i + j) for j in range(size)) for i in range(count))
            return EmbeddingResult(vectors, self.name, request.model, Usage(4, None, 4))

    caps = {Capability.CHAT, Capability.STREAM}
    if capable:
        caps.add(Capability.EMBEDDINGS)
    attrs: dict[str, Any] = {
        "name": name,
        "label": name,
        "endpoints": MappingProxyType({"base_url": f"https://{name}.invalid"}),
        "default_model": "m",
        "models": ("m",),
        "auth": Auth(AuthMode.REQUIRED, f"{name.upper()}_TOKEN") if key_required else Auth(),
        "capabilities": frozenset(caps),
        "embedding_options": MappingProxyType(dict(options or {})),
    }
    for key, value in attrs.items():
        setattr(Embedder, key, value)
    Embedder.__name__ = Embedder.__qualname__ = f"Embedder_{name}"
    return Embedder


def client(tmp_path: Path, *providers: type[Provider], **kwargs: Any) -> llmrelay.AsyncClient:
    names = [p.name for p in providers]
    config = tmp_path / "config.toml"
    config.write_text(f"[aliases]\nchain = {[f'{n}:m' for n in names]!r}\n".replace("'", '"'))
    return llmrelay.AsyncClient(providers=list(providers), config_path=str(config), **kwargs)


def unavailable(name: str) -> errors.ProviderUnavailable:
    return errors.ProviderUnavailable("busy", provider=name, model="m", status_code=503)


# -- input forms --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("text", "text"),
        (["a", "b"], ("a", "b")),
        (("a",), ("a",)),
        ([0, 5, 9], (0, 5, 9)),
        ([[1, 2], (3,)], ((1, 2), (3,))),
        (iter(["x"]), ("x",)),
    ],
)
def test_input_forms(given: Any, normal: Any) -> None:
    assert normalize_input(given) == normal


def test_numpy_token_ids_become_python_ints() -> None:
    np = pytest.importorskip("numpy")
    flat = normalize_input(np.array([3, 0, 7], dtype=np.int64))
    nested = normalize_input(np.array([[1, 2], [3, 4]], dtype=np.int32))
    assert flat == (3, 0, 7)
    assert {type(i) for i in flat} == {int}
    assert nested == ((1, 2), (3, 4))
    assert {type(i) for ids in nested for i in ids} == {int}
    with pytest.raises(errors.ConfigError, match=r"input\[0\]"):
        normalize_input(np.array([[1, -2]]))
    with pytest.raises(errors.ConfigError, match="input"):
        normalize_input(np.array([1.5, 2.0]))


@pytest.mark.parametrize(
    "given",
    [
        "",
        [],
        [""],
        ["a", ""],
        ["a", 1],
        [1, -2],
        [True, 2],
        [[1], []],
        [[1], ["x"]],
        [[1.5]],
        [["ab"]],
        [[1], "ab"],
        [[1], b"ab"],
        [[1], {"a": 1}],
        b"bytes",
        {"a": 1},
        5,
        None,
        ["x"] * (MAX_INPUTS + 1),
    ],
)
def test_bad_inputs_are_config_errors(given: Any) -> None:
    with pytest.raises(errors.ConfigError, match="input") as refused:
        normalize_input(given)
    assert refused.value.param is not None
    assert refused.value.param.startswith("input")


def test_request_counts_and_kinds() -> None:
    assert EmbeddingRequest("a", "m").count == 1
    assert EmbeddingRequest((1, 2), "m").count == 1
    assert EmbeddingRequest((1, 2), "m").tokens
    assert EmbeddingRequest(((1,), (2,)), "m").count == 2
    assert EmbeddingRequest(("a", "b"), "m").count == 2
    assert not EmbeddingRequest(("a", "b"), "m").tokens


# -- the OpenAI shape -------------------------------------------------------------------------


def test_base64_is_little_endian_float32_as_the_sdk_decodes_it() -> None:
    vector = (0.5, -1.25, 2.0**-25, 1234.5)  # exact float32 values
    encoded = encode_base64(vector)
    assert base64.b64decode(encoded)[:8] == bytes.fromhex("0000003f0000a0bf")  # 0.5, -1.25 LE
    decoded = array.array("f", base64.b64decode(encoded))  # openai's path without numpy
    assert decoded.tolist() == list(vector)
    np = pytest.importorskip("numpy")
    assert np.frombuffer(base64.b64decode(encoded), dtype="<f4").tolist() == list(vector)


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_response_shape_validates_with_the_openai_types(encoding: Any) -> None:
    types = pytest.importorskip("openai.types")
    result = EmbeddingResult(((0.25, 0.5), (1.0, -2.0)), "p", "m", Usage(3, None, 3))
    response = to_embedding_response(result, encoding)
    text = response.model_dump_json()
    if encoding == "float":
        theirs = types.CreateEmbeddingResponse.model_validate_json(text)
    else:  # the SDK constructs answers without validating (a base64 string is no list)
        theirs = types.CreateEmbeddingResponse.construct(**json.loads(text))
    assert theirs.model == "p:m"
    assert (theirs.usage.prompt_tokens, theirs.usage.total_tokens) == (3, 3)
    assert [d.index for d in theirs.data] == [0, 1]
    if encoding == "float":
        assert theirs.data[1].embedding == [1.0, -2.0]
    else:
        raw = base64.b64decode(theirs.data[1].embedding)  # type: ignore[arg-type]
        assert array.array("f", raw).tolist() == [1.0, -2.0]


def test_unreported_usage_is_zero_in_the_openai_shape() -> None:
    response = to_embedding_response(EmbeddingResult(((1.0,),), "p", "m", None))
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (0, 0)


# -- the engine ----------------------------------------------------------------------------------


async def test_fallback_moves_on_after_a_retryable_error_and_cools_down(tmp_path: Path) -> None:
    first, second = Behaviour(unavailable("first")), Behaviour()
    chain = (embedder("first", first), embedder("second", second))
    async with client(tmp_path, *chain, retries=0) as c:
        result = await c.embed(["a", "b"], model="chain")
        assert (result.provider, result.model) == ("second", "m")
        assert [(a.provider, a.outcome) for a in result.attempts] == [
            ("first", "failed"),
            ("second", "ok"),
        ]
        assert result.vectors == ((0.0, 1.0, 2.0), (1.0, 2.0, 3.0))
        again = await c.embed("a", model="chain")  # first is cooling down: tried last
    assert again.provider == "second"
    assert len(first.received) == 1
    assert first.received[0].input == ("a", "b") == second.received[0].input


async def test_a_transient_failure_is_retried_on_the_same_candidate(tmp_path: Path) -> None:
    limited = errors.RateLimitError(
        "slow down", provider="first", model="m", status_code=429, retry_after=0
    )
    first, second = Behaviour(limited), Behaviour()
    async with client(tmp_path, embedder("first", first), embedder("second", second)) as c:
        result = await c.embed("a", model="chain")
    assert result.provider == "first"
    assert [(a.provider, a.outcome) for a in result.attempts] == [
        ("first", "failed"),
        ("first", "ok"),
    ]
    assert len(first.received) == 2
    assert second.received == []


async def test_a_refusal_ends_the_chain(tmp_path: Path) -> None:
    refusal = errors.InvalidRequestError(
        "first cannot honour 'dimensions'", provider="first", model="m", param="dimensions"
    )
    first, second = Behaviour(refusal), Behaviour()
    async with client(tmp_path, embedder("first", first), embedder("second", second)) as c:
        with pytest.raises(errors.InvalidRequestError) as caught:
            await c.embed("a", model="chain", dimensions=2)
    assert caught.value.param == "dimensions"
    assert second.received == []


async def test_every_candidate_failing_lists_the_attempts(tmp_path: Path) -> None:
    first, second = Behaviour(unavailable("first")), Behaviour(unavailable("second"))
    chain = (embedder("first", first), embedder("second", second))
    async with client(tmp_path, *chain, retries=0) as c:
        with pytest.raises(errors.AllProvidersFailed) as caught:
            await c.embed("a", model="chain")
    assert [a.provider for a in caught.value.attempts] == ["first", "second"]


async def test_a_missing_key_skips_the_candidate(tmp_path: Path) -> None:
    first, second = Behaviour(), Behaviour()
    keyed = embedder("first", first, key_required=True)
    async with client(tmp_path, keyed, embedder("second", second)) as c:
        result = await c.embed("a", model="chain")
    assert [a.outcome for a in result.attempts] == ["skipped", "ok"]
    assert first.received == []


async def test_a_provider_without_embeddings_refuses(tmp_path: Path) -> None:
    behaviour = Behaviour()
    async with client(tmp_path, embedder("chatonly", behaviour, capable=False)) as c:
        with pytest.raises(errors.InvalidRequestError, match="chatonly cannot create") as caught:
            await c.embed("a", model="chatonly:m")
    assert caught.value.param == "model"
    assert behaviour.received == []


async def test_undeclared_options_are_refused_whatever_strict_says(tmp_path: Path) -> None:
    behaviour = Behaviour()
    provider = embedder("p", behaviour, options={"normalize": Option(bool)})
    async with client(tmp_path, provider, strict=False) as c:
        with pytest.raises(errors.InvalidRequestError) as caught:
            await c.embed("a", model="p:m", options={"normalize": False, "pooling": "cls"})
        assert caught.value.param == "options.pooling"
        assert behaviour.received == []
        await c.embed("a", model="p:m", options={"normalize": False})
    assert behaviour.received[0].options == {"normalize": False}


async def test_fields_reach_the_provider(tmp_path: Path) -> None:
    behaviour = Behaviour()
    async with client(tmp_path, embedder("p", behaviour)) as c:
        await c.embed([[1, 2], [3]], model="p:m", dimensions=4, user="u-1")
    request = behaviour.received[0]
    assert (request.input, request.dimensions, request.user) == (((1, 2), (3,)), 4, "u-1")


@pytest.mark.parametrize(
    ("step", "error", "param"),
    [
        (5, errors.InvalidRequestError, "dimensions"),  # dimensions=2 asked, 5 returned
        ({"count": 3}, errors.ProtocolError, None),  # 3 vectors for 1 input
        (ValueError("boom"), errors.ProtocolError, None),  # a provider bug, mapped
    ],
)
async def test_what_a_provider_returns_is_checked(
    tmp_path: Path, step: Any, error: type[Exception], param: str | None
) -> None:
    async with client(tmp_path, embedder("p", Behaviour(step))) as c:
        with pytest.raises(error) as caught:
            await c.embed("a", model="p:m", dimensions=2)
    assert getattr(caught.value, "param", None) == param


async def test_the_total_timeout_bounds_an_attempt(tmp_path: Path) -> None:
    timeouts = llmrelay.Timeouts(total=0.2)
    first, second = Behaviour(30.0), Behaviour()
    providers = (embedder("first", first), embedder("second", second))
    async with client(tmp_path, *providers, timeouts=timeouts) as c:
        with anyio.fail_after(10):
            with pytest.raises(errors.AllProvidersFailed) as caught:
                await c.embed("a", model="chain")
    for attempt in caught.value.attempts:
        assert isinstance(attempt.error, errors.ProviderTimeout)
        assert attempt.error.kind == "total"
    assert second.received == []  # the time was up before it was its turn


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dimensions": 0},
        {"dimensions": True},
        {"user": 5},
        {"options": ["x"]},
        {"model": 3},
    ],
)
async def test_bad_fields_are_config_errors(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    async with client(tmp_path, embedder("p", Behaviour())) as c:
        with pytest.raises(errors.ConfigError) as refused:
            await c.embed("a", **{"model": "p:m", **kwargs})
    assert refused.value.param == next(iter(kwargs))


async def test_embeddings_create(tmp_path: Path) -> None:
    async with client(tmp_path, embedder("p", Behaviour())) as c:
        response = await c.embeddings.create(input=["a"], model="p:m", encoding_format="base64")
        with pytest.raises(errors.ConfigError, match="encoding_format"):
            await c.embeddings.create(input="a", model="p:m", encoding_format="hex")  # type: ignore[arg-type]
    assert isinstance(response, llmrelay.CreateEmbeddingResponse)
    assert response.model == "p:m"
    raw = base64.b64decode(response.data[0].embedding)  # type: ignore[arg-type]
    assert array.array("f", raw).tolist() == [0.0, 1.0, 2.0]


def test_sync_client(tmp_path: Path) -> None:
    behaviour = Behaviour()
    config = tmp_path / "config.toml"
    config.write_text("")
    provider = embedder("p", behaviour)
    with llmrelay.Client(providers=[provider], config_path=str(config)) as c:
        result = c.embed("a", model="p:m", dimensions=2)
        response = c.embeddings.create(input=["a", "b"], model="p:m")
    assert result.vectors == ((0.0, 1.0),)
    assert [d.embedding for d in response.data] == [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]]


async def test_closed_client_refuses(tmp_path: Path) -> None:
    c = client(tmp_path, embedder("p", Behaviour()))
    await c.aclose()
    with pytest.raises(errors.ClientClosed):
        await c.embed("a", model="p:m")


async def test_built_in_providers_embed_only_when_they_declare_it() -> None:
    from llmrelay.providers import BUILTIN, KINDS, load_class

    for target in [*BUILTIN.values(), *KINDS.values()]:
        cls = load_class(target)
        declared = Capability.EMBEDDINGS in cls.capabilities
        assert (cls.embed is not Provider.embed) == declared, cls.name
        if not declared:
            assert not cls.embedding_options, cls.name
            http = httpx.AsyncClient()
            try:
                provider = cls(http, api_key="k")
                with pytest.raises(errors.InvalidRequestError) as caught:
                    await provider.embed(EmbeddingRequest("a", "m"))
            finally:
                await http.aclose()
            assert caught.value.param == "model"
            assert cls.name in str(caught.value)


def test_from_result_is_the_resource_conversion() -> None:
    result = EmbeddingResult(((0.5, 1.0),), "p", "m", Usage(2, None, 2))
    for encoding in ("float", "base64"):
        made = llmrelay.CreateEmbeddingResponse.from_result(result, encoding)  # type: ignore[arg-type]
        assert made == to_embedding_response(result, encoding)  # type: ignore[arg-type]


async def test_a_numpy_integer_dimensions_reaches_the_provider_as_an_int(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    behaviour = Behaviour()
    async with client(tmp_path, embedder("p", behaviour)) as c:
        await c.embed("a", model="p:m", dimensions=np.int64(4))
    dimensions = behaviour.received[0].dimensions
    assert (dimensions, type(dimensions)) == (4, int)
