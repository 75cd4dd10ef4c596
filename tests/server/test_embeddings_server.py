"""``POST /v1/embeddings`` on ``llmrelay serve``'s app, with the real ``openai`` SDK.

Behind the server: the huggingface provider on the feature-extraction fake and an
OpenAI-compatible provider (``[providers.local] kind = "openai"``) on the OpenAI fake,
with an alias ``emb`` chaining them for fallback.
"""

from __future__ import annotations

import array
import base64
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from tests.fakes._server import serve
from tests.fakes._streaming import Fault, combine
from tests.fakes.embeddings import f32, vector_for
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript
from tests.fakes.tgi import FakeTGI, TGIScript
from tests.server.conftest import run_app

from llmrelay.server import ServerConfig, create_app

BGE = "BAAI/bge-small-en-v1.5"
SMALL = "text-embedding-3-small"


@dataclass
class Upstream:
    tgi: FakeTGI
    oai: FakeOpenAI
    config: ServerConfig


@pytest.fixture(scope="module")
def _upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    tgi, oai = FakeTGI(), FakeOpenAI()
    with serve(combine(tgi)) as t, serve(oai.app) as o:
        path: Path = tmp_path_factory.mktemp("embeddings-server") / "config.toml"
        path.write_text(
            f'[providers.local]\nkind = "openai"\nbase_url = "{o}/v1"\n\n'
            f'[aliases]\nemb = ["local:{SMALL}", "huggingface:{BGE}"]\n'
        )
        config = ServerConfig(
            client_kwargs={
                "base_urls": {"huggingface": t},
                "config_path": str(path),
                "cooldown": 0,
                "retries": 0,  # the fallback itself; same-candidate retries: test_embeddings
            }
        )
        yield Upstream(tgi, oai, config)


@pytest.fixture
def upstream(_upstream: Upstream) -> Upstream:
    _upstream.tgi.script = TGIScript()
    _upstream.tgi.recorder.requests.clear()
    _upstream.oai.script = OpenAIScript()
    _upstream.oai.recorder.requests.clear()
    return _upstream


@pytest.fixture(scope="module")
def _url(_upstream: Upstream) -> Iterator[str]:
    with run_app(create_app(config=_upstream.config)) as url:
        yield url


@pytest.fixture
def url(_url: str, upstream: Upstream) -> str:
    return _url


@pytest.fixture
def make(upstream: Upstream) -> Iterator[Any]:
    stack = contextlib.ExitStack()

    def make(**changes: Any) -> str:
        return stack.enter_context(run_app(create_app(config=replace(upstream.config, **changes))))

    with stack:
        yield make


def sdk(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=20)


def expected(model: str, items: list[Any], dims: int, **kwargs: Any) -> list[list[float]]:
    return [vector_for(model, item, dims, **kwargs) for item in items]


def f32s(vectors: Any) -> list[list[float]]:
    return [[f32(float(x)) for x in v] for v in vectors]


def test_sdk_default_encoding_base64_decoded_by_the_sdk(url: str, upstream: Upstream) -> None:
    response = sdk(url).embeddings.create(model=f"huggingface:{BGE}", input=["a b", "Ура 🚀"])
    assert response.model == f"huggingface:{BGE}"
    assert [d.index for d in response.data] == [0, 1]
    assert f32s(d.embedding for d in response.data) == expected(BGE, ["a b", "Ура 🚀"], 8)
    assert upstream.tgi.requests[-1].json == {"inputs": ["a b", "Ура 🚀"]}
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (8, 8)


def test_float_and_explicit_base64_agree(url: str) -> None:
    client = sdk(url)
    floats = client.embeddings.create(
        model=f"huggingface:{BGE}", input="x", encoding_format="float"
    )
    packed = client.embeddings.create(
        model=f"huggingface:{BGE}", input="x", encoding_format="base64"
    )
    raw = base64.b64decode(packed.data[0].embedding)  # type: ignore[arg-type]
    assert array.array("f", raw).tolist() == f32s([floats.data[0].embedding])[0]
    assert f32s([floats.data[0].embedding]) == expected(BGE, ["x"], 8)


def test_openai_compatible_with_dimensions_user_and_tokens(url: str, upstream: Upstream) -> None:
    response = sdk(url).embeddings.create(
        model=f"local:{SMALL}", input=[[1, 2], [3]], dimensions=5, user="u-3"
    )
    assert upstream.oai.requests[-1].json == {
        "model": SMALL,
        "input": [[1, 2], [3]],
        "dimensions": 5,
        "user": "u-3",
    }
    assert f32s(d.embedding for d in response.data) == expected(SMALL, [[1, 2], [3]], 5)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"input": [1, 2, 3]}, "input"),
        ({"input": "x", "dimensions": 4}, "dimensions"),
        ({"input": "x", "user": "u-1"}, "user"),
        ({"input": "x", "extra_body": {"options": {"pooling": "cls"}}}, "options.pooling"),
    ],
)
def test_fields_the_provider_cannot_honour_are_400_with_param(
    url: str, upstream: Upstream, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(url).embeddings.create(model=f"huggingface:{BGE}", **kwargs)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == param
    assert "huggingface" in error["message"]
    assert upstream.tgi.requests == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "huggingface:x", "input": "a", "encodingformat": "float"}, "encodingformat"),
        ({"input": "a"}, "model"),
        ({"model": "huggingface:x", "input": []}, "input"),
        ({"model": "huggingface:x", "input": ["a", 1]}, "input"),
        ({"model": "huggingface:x", "input": "a", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "huggingface:x", "input": "a", "dimensions": "4"}, "dimensions"),
    ],
)
def test_malformed_bodies_are_400_naming_the_field(
    url: str, upstream: Upstream, body: dict[str, Any], param: str
) -> None:
    reply = httpx.post(url + "/v1/embeddings", json=body, timeout=20)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == param
    assert upstream.tgi.requests == []


def test_fallback_to_the_next_candidate(url: str, upstream: Upstream) -> None:
    upstream.oai.script = OpenAIScript(fault=Fault("http_error", status=503, times=1))
    raw = sdk(url).embeddings.with_raw_response.create(
        model="emb", input="x", encoding_format="float"
    )
    response = raw.parse()
    assert response.model == f"huggingface:{BGE}"
    tried = json.loads(raw.headers["x-llmrelay-attempts"])
    assert [(a["provider"], a["outcome"]) for a in tried] == [
        ("local", "failed"),
        ("huggingface", "ok"),
    ]
    assert len(upstream.oai.requests) == 1
    assert f32s([response.data[0].embedding]) == expected(BGE, ["x"], 8)


def test_every_candidate_failing_is_502_with_attempts(url: str, upstream: Upstream) -> None:
    upstream.oai.script = OpenAIScript(fault=Fault("http_error", status=503))
    upstream.tgi.script = TGIScript(fault=Fault("http_error", status=503))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(url).embeddings.create(model="emb", input="x")
    assert caught.value.status_code == 502
    body = caught.value.body
    assert isinstance(body, dict)
    assert [a["provider"] for a in body["attempts"]] == ["local", "huggingface"]


def test_server_key_rate_limit_shared_with_chat_and_metrics(make: Any) -> None:
    url = make(api_key="sekrit", rate_limit=2, rate_window=1e6)
    with pytest.raises(openai.AuthenticationError):
        sdk(url).embeddings.create(model=f"huggingface:{BGE}", input="x")
    client = sdk(url, "sekrit")
    client.embeddings.create(model=f"huggingface:{BGE}", input="x")
    with pytest.raises(openai.NotFoundError):  # counted: the budget is the chat route's too
        client.chat.completions.create(model="nope:x", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=f"huggingface:{BGE}", input="x")
    metrics = httpx.get(url + "/metrics", headers={"authorization": "Bearer sekrit"}).text
    line = (
        'llmrelay_server_requests_total{endpoint="embeddings",model="BAAI/bge-small-en-v1.5",'
        'provider="huggingface",status="200"} 1.0'
    )
    assert line in metrics
    assert 'endpoint="embeddings",model="",provider="",status="429"} 1.0' in metrics
