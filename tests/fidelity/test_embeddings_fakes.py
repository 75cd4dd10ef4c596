"""Are the embedding fakes faithful?  The official clients consume them.

``huggingface_hub.InferenceClient.feature_extraction`` against the feature-extraction
fake (the model given as the fake's URL), and the ``openai`` SDK's ``embeddings.create``
(``float``, explicit ``base64``, and its default: ``base64`` on the wire, decoded by the
SDK) against the OpenAI-compatible fake. Each must get the vectors llmrelay's provider
gets, and llmrelay must send the body the official client sends for the same call.
(The product never imports either client.)
"""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from llmrelay.providers._openai_compat import OpenAICompatible
from llmrelay.providers.huggingface import HuggingFace
from llmrelay.types import EmbeddingRequest
from tests.fakes._server import serve
from tests.fakes._streaming import combine
from tests.fakes.embeddings import f32
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript
from tests.fakes.tgi import FakeTGI, TGIScript

hub = pytest.importorskip("huggingface_hub")
openai = pytest.importorskip("openai")
pytestmark = pytest.mark.anyio
BGE = "BAAI/bge-small-en-v1.5"
SMALL = "text-embedding-3-small"


@dataclass
class Served:
    tgi: FakeTGI
    tgi_url: str
    oai: FakeOpenAI
    oai_url: str


@pytest.fixture(scope="module")
def _served() -> Iterator[Served]:
    tgi, oai = FakeTGI(), FakeOpenAI()
    with serve(combine(tgi)) as t, serve(oai.app) as o:
        yield Served(tgi, t, oai, o + "/v1")


@pytest.fixture
def served(_served: Served) -> Served:
    _served.tgi.script = TGIScript()
    _served.tgi.recorder.requests.clear()
    _served.oai.script = OpenAIScript()
    _served.oai.recorder.requests.clear()
    return _served


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def f32s(vectors: Any) -> list[list[float]]:
    return [[f32(float(x)) for x in v] for v in vectors]


# -- huggingface_hub -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("Hello, world", {}),
        (["one", "two words", "Ура 🚀"], {}),
        ("query text", {"normalize": False, "prompt_name": "query"}),
        (["a", "b"], {"truncate": True, "truncation_direction": "left"}),
    ],
)
@pytest.mark.parametrize("flat", [False, True], ids=["tei", "flat-single"])
async def test_feature_extraction_same_body_and_vectors(
    served: Served, http: httpx.AsyncClient, text: Any, options: dict[str, Any], flat: bool
) -> None:
    served.tgi.script = TGIScript(flat_single=flat)
    url = f"{served.tgi_url}/models/{BGE}/pipeline/feature-extraction"
    theirs = hub.InferenceClient(timeout=10).feature_extraction(text, model=url, **options)
    their_body = served.tgi.requests[-1].json
    provider = HuggingFace(http, endpoints={"base_url": served.tgi_url})
    value = text if isinstance(text, str) else tuple(text)
    ours = await provider.embed(EmbeddingRequest(value, BGE, options=options))
    assert served.tgi.requests[-1].json == their_body
    assert served.tgi.requests[-1].path == served.tgi.requests[-2].path
    their_vectors = theirs.tolist()
    if isinstance(text, str) and flat:
        their_vectors = [their_vectors]  # the flat answer: one vector, as a 1-D array
    assert f32s(ours.vectors) == their_vectors


async def test_token_level_features_are_3d_for_huggingface_hub(served: Served) -> None:
    url = f"{served.tgi_url}/models/google-bert/bert-base-uncased/pipeline/feature-extraction"
    theirs = hub.InferenceClient(timeout=10).feature_extraction(["a", "b"], model=url)
    assert theirs.ndim == 3  # what llmrelay refuses as token-level features


# -- openai ---------------------------------------------------------------------------------


def sdk(served: Served) -> Any:
    return openai.OpenAI(base_url=served.oai_url, api_key="sk-x", max_retries=0, timeout=10)


def local(http: httpx.AsyncClient, served: Served) -> OpenAICompatible:
    cls = OpenAICompatible.from_config("local", {"kind": "openai", "base_url": served.oai_url})
    provider = cls(http, api_key="sk-x")
    assert isinstance(provider, OpenAICompatible)
    return provider


@pytest.mark.parametrize(
    "value",
    ["one text", ["a", "b c"], [1, 2, 3], [[1, 2], [3]]],
    ids=["text", "texts", "tokens", "token-arrays"],
)
@pytest.mark.parametrize("encoding", ["float", "base64", None])
async def test_openai_same_body_and_vectors(
    served: Served, http: httpx.AsyncClient, value: Any, encoding: str | None
) -> None:
    extra = {"encoding_format": encoding} if encoding else {}
    theirs = sdk(served).embeddings.create(
        model=SMALL, input=value, dimensions=6, user="u-9", **extra
    )
    their_body = dict(served.oai.requests[-1].json)
    assert their_body.pop("encoding_format") == (encoding or "base64")  # the SDK's default
    if encoding == "base64":
        their_vectors = [
            list(struct.unpack("<6f", base64.b64decode(item.embedding))) for item in theirs.data
        ]
    else:
        their_vectors = [item.embedding for item in theirs.data]
    tokens = not isinstance(value, str) and not isinstance(value[0], str)
    given: Any = value
    if not isinstance(value, str):
        given = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    ours = await local(http, served).embed(EmbeddingRequest(given, SMALL, dimensions=6, user="u-9"))
    assert served.oai.requests[-1].json == their_body  # llmrelay sends no encoding_format
    assert f32s(ours.vectors) == f32s(their_vectors)
    assert ours.usage is not None
    assert theirs.usage.prompt_tokens == ours.usage.prompt_tokens
    assert len(ours.vectors) == (1 if tokens and isinstance(value[0], int) else len(theirs.data))


def test_openai_sdk_on_the_router_fake() -> None:
    from tests.fakes.hf_router import CATALOGUE, FakeHFRouter, RouterScript, _model, _offer

    model = "Qwen/Qwen3-Embedding-8B"
    router = FakeHFRouter(
        RouterScript(catalogue=[*CATALOGUE, _model(model, [_offer("nebius", None, None, False)])])
    )
    with serve(router.app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="hf_x", max_retries=0, timeout=10)
        answer = client.embeddings.create(model=f"{model}:nebius", input=["a", "b"])
        with pytest.raises(openai.BadRequestError) as refused:
            client.embeddings.create(model="nobody/serves-this", input="a")
    assert [len(d.embedding) for d in answer.data] == [12, 12]
    assert router.routed == ["nebius"]
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "model_not_supported"
