"""``Provider.embed`` of huggingface (feature extraction, the router) and the OpenAI kind,
against the fakes: what reaches the wire, what is refused before anything is sent, what
comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from llmrelay import errors
from llmrelay.providers._openai_compat import OpenAICompatible
from llmrelay.providers.huggingface import HuggingFace
from llmrelay.types import EmbeddingRequest, Usage
from tests.fakes._server import serve
from tests.fakes._streaming import Fault, combine
from tests.fakes.embeddings import f32, vector_for
from tests.fakes.hf_router import CATALOGUE, FakeHFRouter, RouterScript, _model, _offer
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript
from tests.fakes.tgi import FakeTGI, TGIScript

pytestmark = pytest.mark.anyio
BGE = "BAAI/bge-small-en-v1.5"
QWEN_EMB = "Qwen/Qwen3-Embedding-8B"


@dataclass
class Fakes:
    tgi: FakeTGI
    tgi_url: str
    router: FakeHFRouter
    router_url: str
    openai: FakeOpenAI
    openai_url: str


@pytest.fixture(scope="module")
def _fakes() -> Iterator[Fakes]:
    tgi, router, oai = FakeTGI(), FakeHFRouter(), FakeOpenAI()
    with serve(combine(tgi)) as t, serve(router.app) as r, serve(oai.app) as o:
        yield Fakes(tgi, t, router, r + "/v1", oai, o + "/v1")


@pytest.fixture
def fakes(_fakes: Fakes) -> Fakes:
    _fakes.tgi.script = TGIScript()
    _fakes.tgi.recorder.requests.clear()
    catalogue = [*CATALOGUE, _model(QWEN_EMB, [_offer("nebius", 32768, (0.01, 0.0), False)])]
    _fakes.router.script = RouterScript(catalogue=catalogue)
    _fakes.router.recorder.requests.clear()
    _fakes.router.routed.clear()
    _fakes.openai.script = OpenAIScript()
    _fakes.openai.recorder.requests.clear()
    return _fakes


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def hf(http: httpx.AsyncClient, fakes: Fakes) -> HuggingFace:
    return HuggingFace(
        http,
        endpoints={"base_url": fakes.tgi_url, "router_url": fakes.router_url},
        api_key="hf_test",
    )


def local(http: httpx.AsyncClient, fakes: Fakes) -> OpenAICompatible:
    cls = OpenAICompatible.from_config("local", {"kind": "openai", "base_url": fakes.openai_url})
    provider = cls(http, api_key="sk-local")
    assert isinstance(provider, OpenAICompatible)
    return provider


def f32s(vectors: Any) -> tuple[tuple[float, ...], ...]:
    """The vectors as float32 values (JSON carries the shortest decimal of each)."""
    return tuple(tuple(f32(x) for x in v) for v in vectors)


def req(input: Any, model: str = BGE, **kwargs: Any) -> EmbeddingRequest:
    return EmbeddingRequest(input=input, model=model, **kwargs)


# -- Hugging Face feature extraction ------------------------------------------------------


async def test_feature_extraction_sends_the_texts_and_options(
    http: httpx.AsyncClient, fakes: Fakes
) -> None:
    options = {"normalize": False, "truncate": True, "truncation_direction": "left"}
    result = await hf(http, fakes).embed(req(("a b", "c"), options=options))
    sent = fakes.tgi.requests[-1]
    assert sent.path == f"/models/{BGE}/pipeline/feature-extraction"
    assert sent.json == {"inputs": ["a b", "c"], **options}
    assert sent.headers["authorization"] == "Bearer hf_test"
    assert f32s(result.vectors) == tuple(
        tuple(vector_for(BGE, t, 8, normalize=False)) for t in ("a b", "c")
    )
    assert (result.provider, result.model) == ("huggingface", BGE)
    assert result.usage == Usage(prompt_tokens=7, total_tokens=7)  # x-compute-tokens


async def test_a_single_text_stays_a_string(http: httpx.AsyncClient, fakes: Fakes) -> None:
    result = await hf(http, fakes).embed(req("hello", options={"prompt_name": "query"}))
    assert fakes.tgi.requests[-1].json == {"inputs": "hello", "prompt_name": "query"}
    assert f32s(result.vectors) == (tuple(vector_for(BGE, "query: hello", 8)),)


async def test_flat_answer_for_one_text_and_no_usage_header(
    http: httpx.AsyncClient, fakes: Fakes
) -> None:
    fakes.tgi.script = TGIScript(flat_single=True, compute_tokens=False)
    result = await hf(http, fakes).embed(req("hello"))
    assert f32s(result.vectors) == (tuple(vector_for(BGE, "hello", 8)),)
    assert result.usage is None


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("input", {"input": (1, 2, 3)}),
        ("input", {"input": ((1, 2), (3,))}),
        ("dimensions", {"input": "x", "dimensions": 4}),
        ("user", {"input": "x", "user": "u-1"}),
        ("truncation_direction", {"input": "x", "options": {"truncation_direction": "up"}}),
    ],
)
async def test_feature_extraction_refuses_what_it_cannot_honour(
    http: httpx.AsyncClient, fakes: Fakes, field: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        await hf(http, fakes).embed(EmbeddingRequest(model=BGE, **kwargs))
    assert caught.value.param == field
    assert "huggingface" in str(caught.value)
    assert fakes.tgi.requests == []  # refused before anything was sent


async def test_token_level_features_are_refused(http: httpx.AsyncClient, fakes: Fakes) -> None:
    with pytest.raises(errors.InvalidRequestError, match="token-level") as caught:
        await hf(http, fakes).embed(req("x", model="google-bert/bert-base-uncased"))
    assert caught.value.param == "model"


async def test_a_loading_model_is_waited_for(http: httpx.AsyncClient, fakes: Fakes) -> None:
    fakes.tgi.script = TGIScript(loading=1, estimated_time=0.05)
    result = await hf(http, fakes).embed(req("x"))
    assert len(result.vectors) == 1
    assert fakes.tgi.requests[-1].headers.get("x-wait-for-model") == "1"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, errors.InvalidRequestError),
        (404, errors.ModelNotFoundError),
        (429, errors.RateLimitError),
        (500, errors.ProviderUnavailable),
    ],
)
async def test_feature_extraction_errors_are_typed(
    http: httpx.AsyncClient, fakes: Fakes, status: int, kind: type[Exception]
) -> None:
    fakes.tgi.script = TGIScript(fault=Fault("http_error", status=status))
    with pytest.raises(kind):
        await hf(http, fakes).embed(req("x"))


async def test_revision_is_refused(http: httpx.AsyncClient, fakes: Fakes) -> None:
    with pytest.raises(errors.InvalidRequestError, match="main revision"):
        await hf(http, fakes).embed(req("x", model=f"{BGE}@v2"))
    assert fakes.tgi.requests == []


# -- the Hugging Face router ----------------------------------------------------------------


async def test_router_suffix_goes_to_the_router(http: httpx.AsyncClient, fakes: Fakes) -> None:
    model = f"{QWEN_EMB}:nebius"
    result = await hf(http, fakes).embed(req(("a", "b"), model=model, user="u-7"))
    sent = fakes.router.requests[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.json == {"model": model, "input": ["a", "b"], "user": "u-7"}
    assert fakes.router.routed == ["nebius"]
    assert f32s(result.vectors) == tuple(tuple(vector_for(model, t, 12)) for t in ("a", "b"))
    assert result.usage == Usage(prompt_tokens=2, total_tokens=2)
    assert fakes.tgi.requests == []


async def test_router_unsupported_model_is_model_not_found(
    http: httpx.AsyncClient, fakes: Fakes
) -> None:
    with pytest.raises(errors.ModelNotFoundError, match="no inference provider"):
        await hf(http, fakes).embed(req("a", options={"api": "router"}))


async def test_router_refuses_feature_extraction_options(
    http: httpx.AsyncClient, fakes: Fakes
) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        await hf(http, fakes).embed(req("a", model=f"{QWEN_EMB}:nebius", options={"normalize": 0}))
    assert caught.value.param == "normalize"
    assert fakes.router.requests == []


# -- OpenAI-compatible --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "wire"),
    [
        ("hi there", "hi there"),
        (("a", "b"), ["a", "b"]),
        ((5, 6, 7), [5, 6, 7]),
        (((5, 6), (7,)), [[5, 6], [7]]),
    ],
)
async def test_openai_sends_every_input_form_as_given(
    http: httpx.AsyncClient, fakes: Fakes, given: Any, wire: Any
) -> None:
    result = await local(http, fakes).embed(req(given, model="text-embedding-3-small"))
    sent = fakes.openai.requests[-1]
    assert sent.json == {"model": "text-embedding-3-small", "input": wire}
    assert sent.headers["authorization"] == "Bearer sk-local"
    items = [wire] if isinstance(wire, str) else wire
    if isinstance(wire[0], int):
        items = [wire]
    expected = tuple(tuple(vector_for("text-embedding-3-small", i, 12)) for i in items)
    assert f32s(result.vectors) == expected


async def test_openai_dimensions_and_user_are_sent(http: httpx.AsyncClient, fakes: Fakes) -> None:
    result = await local(http, fakes).embed(
        req("x", model="text-embedding-3-small", dimensions=5, user="u-1")
    )
    assert fakes.openai.requests[-1].json == {
        "model": "text-embedding-3-small",
        "input": "x",
        "dimensions": 5,
        "user": "u-1",
    }
    assert result.dimensions == 5


async def test_openai_dimensions_ignored_by_the_server_are_refused(
    http: httpx.AsyncClient, fakes: Fakes
) -> None:
    fakes.openai.script = OpenAIScript(ignores_dimensions=True)
    with pytest.raises(errors.InvalidRequestError, match="does not honour") as caught:
        await local(http, fakes).embed(req("x", model="some-model", dimensions=5))
    assert caught.value.param == "dimensions"


async def test_openai_refusal_keeps_the_server_param(http: httpx.AsyncClient, fakes: Fakes) -> None:
    body = {"error": {"message": "bad", "type": "invalid_request_error", "param": "input"}}
    fakes.openai.script = OpenAIScript(fault=Fault("http_error", status=400, body=body))
    with pytest.raises(errors.InvalidRequestError) as caught:
        await local(http, fakes).embed(req("x", model="m"))
    assert caught.value.param == "input"
    assert caught.value.status_code == 400


async def test_openai_answers_in_any_order_without_usage(
    http: httpx.AsyncClient, fakes: Fakes
) -> None:
    fakes.openai.script = OpenAIScript(reverse_data=True, omit_usage=True)
    result = await local(http, fakes).embed(req(("a", "b", "c"), model="m"))
    assert f32s(result.vectors) == tuple(tuple(vector_for("m", t, 12)) for t in "abc")
    assert result.usage is None


async def test_openai_base64_answers_are_decoded(http: httpx.AsyncClient) -> None:
    vector = vector_for("m", "a", 4)
    answer = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": _b64(vector)}],
        "model": "m",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as mocked:
        cls = OpenAICompatible.from_config("local", {"kind": "openai", "base_url": "http://x/v1"})
        result = await cls(mocked).embed(req("a", model="m"))
    assert result.vectors == (tuple(vector),)


def _b64(vector: list[float]) -> str:
    from tests.fakes.embeddings import b64

    return b64(vector)


@pytest.mark.parametrize(
    "answer",
    [
        {"data": "nope"},
        {"data": [{"index": 0}]},
        {"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}]},
        {"data": [{"index": 0, "embedding": [1.0, "x"]}]},
        {"data": [{"index": 0, "embedding": [1.0, True]}]},
        {"data": [{"index": 0, "embedding": "not base64!"}]},
        {"data": [{"index": 0, "embedding": "AAAAAAA="}]},
        {"data": [{"index": 1, "embedding": [1.0]}]},
        {"data": [{"index": 0, "embedding": []}]},
        {"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}]},
        {"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [2.0]}]},
    ],
    ids=[
        "no-list",
        "no-vector",
        "repeated-index",
        "text",
        "bool",
        "bad-base64",
        "partial-float",
        "gap",
        "empty",
        "ragged",
        "too-many",
    ],
)
async def test_openai_malformed_answers_are_protocol_errors(answer: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as mocked:
        cls = OpenAICompatible.from_config("local", {"kind": "openai", "base_url": "http://x/v1"})
        with pytest.raises(errors.ProtocolError):
            await cls(mocked).embed(req("a", model="m"))


async def test_non_finite_values_are_protocol_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = b'{"data":[{"index":0,"embedding":[1.0,NaN]}]}'
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as mocked:
        cls = OpenAICompatible.from_config("local", {"kind": "openai", "base_url": "http://x/v1"})
        with pytest.raises(errors.ProtocolError, match="not finite"):
            await cls(mocked).embed(req("a", model="m"))


async def test_a_key_echoed_in_an_error_is_redacted(fakes: Fakes, tmp_path: Any) -> None:
    import llmrelay

    key = "sk-embed-secret-4242"
    body = {"error": {"message": f"bad key {key}", "type": "invalid_request_error"}}
    fakes.openai.script = OpenAIScript(fault=Fault("http_error", status=400, body=body))
    config = tmp_path / "config.toml"
    config.write_text(f'[providers.local]\nkind = "openai"\nbase_url = "{fakes.openai_url}"\n')
    async with llmrelay.AsyncClient(config_path=str(config), api_keys={"local": key}) as client:
        with pytest.raises(errors.InvalidRequestError) as caught:
            await client.embed("x", model="local:m")
    assert fakes.openai.requests[-1].headers["authorization"] == f"Bearer {key}"
    for text in (str(caught.value), repr(caught.value), caught.value.body or ""):
        assert key not in text
