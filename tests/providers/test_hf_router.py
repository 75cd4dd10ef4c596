"""huggingface and the Hugging Face router: policy suffixes, the "not supported" refusal,
the live catalogue, and model-id validation (no path escapes a model id).

The fake router (``tests/fakes/hf_router.py``) is checked with ``huggingface_hub``'s
``InferenceClient``: the official client sends the same ids and sees the same refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

import llmrelay
from llmrelay import errors
from llmrelay.catalog import LiveModel, LiveOffer, openai_model_rows
from llmrelay.providers._hf_router import RouterCatalog, parse_model_id
from llmrelay.providers.huggingface import HuggingFace
from llmrelay.types import ChatRequest, FinishReason, ImageRequest, Message
from tests.fakes._server import serve
from tests.fakes._streaming import Fault, combine
from tests.fakes.hf_router import FakeHFRouter, RouterScript
from tests.fakes.hub import FakeHub, HubScript
from tests.fakes.tgi import FakeTGI, TGIScript

pytestmark = pytest.mark.anyio

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


@dataclass
class Fakes:
    tgi: FakeTGI
    hub: FakeHub
    router: FakeHFRouter
    url: str

    @property
    def endpoints(self) -> dict[str, str]:
        return {"base_url": self.url, "hub_url": self.url, "router_url": self.url + "/v1"}

    def upstream_requests(self) -> int:
        return len(self.tgi.requests) + len(self.hub.requests) + len(self.router.requests)


@pytest.fixture(scope="module")
def _served() -> Iterator[Fakes]:
    tgi, hub, router = FakeTGI(), FakeHub(), FakeHFRouter()
    with serve(combine(tgi, hub, router)) as url:
        yield Fakes(tgi, hub, router, url)


@pytest.fixture
def fakes(_served: Fakes) -> Iterator[Fakes]:
    _served.tgi.script = TGIScript()
    _served.hub.script = HubScript()
    _served.router.script = RouterScript()
    _served.router.routed.clear()
    for recorder in (_served.tgi.recorder, _served.hub.recorder, _served.router.recorder):
        recorder.requests.clear()
    yield _served
    assert _served.router.wait_closed(5), "a router stream was left open"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        yield client


@pytest.fixture
def provider(fakes: Fakes, http: httpx.AsyncClient) -> HuggingFace:
    return HuggingFace(http, endpoints=fakes.endpoints, api_key="hf_test_token_123")


def chat(model: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=(Message("user", "Hi"),), model=model, **kwargs)


async def collect(provider: HuggingFace, request: ChatRequest) -> list[Any]:
    return [event async for event in provider.stream(request)]


def text_of(events: list[Any]) -> str:
    return "".join(e for e in events if isinstance(e, str))


# -- policy suffixes pass through ------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "routed"),
    [
        ("fastest", "novita"),
        ("cheapest", "novita"),
        ("preferred", "cerebras"),
        ("cerebras", "cerebras"),
        ("featherless-ai", "featherless-ai"),
    ],
)
async def test_policy_suffixes_go_to_the_router_as_given(
    fakes: Fakes, provider: HuggingFace, suffix: str, routed: str
) -> None:
    fakes.router.script.enabled = ["cerebras", "novita", "featherless-ai"]
    model = f"{LLAMA}:{suffix}"
    assert HuggingFace.resolve_model(model) == model
    events = await collect(provider, chat(model))
    assert text_of(events) == fakes.router.expected_text
    assert events[-1] == FinishReason("stop")
    (sent,) = fakes.router.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == model  # the suffix is the router's to read
    assert fakes.router.routed == [routed]
    assert fakes.hub.requests == []  # no Hub lookup for a router id
    assert fakes.tgi.requests == []


async def test_a_suffix_with_the_inference_api_is_refused(
    fakes: Fakes, provider: HuggingFace
) -> None:
    with pytest.raises(errors.ConfigError, match="':cheapest' selects a provider of the router"):
        await collect(provider, chat(f"{LLAMA}:cheapest", options={"api": "inference"}))
    assert fakes.upstream_requests() == 0


async def test_a_suffix_for_images_is_refused(fakes: Fakes, provider: HuggingFace) -> None:
    with pytest.raises(errors.InvalidRequestError, match=":fastest"):
        await provider.generate_image(ImageRequest("a fox", f"{LLAMA}:fastest"))
    assert fakes.upstream_requests() == 0


# -- "not supported by any provider you have enabled" ------------------------------------------


@pytest.mark.parametrize("model", [LLAMA, f"{LLAMA}:sambanova", "acme/unserved:fastest"])
async def test_not_supported_is_model_not_found_saying_what_to_do(
    fakes: Fakes, provider: HuggingFace, model: str
) -> None:
    fakes.router.script.enabled = ["hyperbolic"]
    with pytest.raises(errors.ModelNotFoundError) as info:
        await collect(provider, chat(model, options={"api": "router"}))
    error = info.value
    assert type(error) is errors.ModelNotFoundError
    assert error.status_code == 400
    message = str(error)
    assert f"no inference provider you have enabled serves {model!r}" in message
    assert "https://huggingface.co/settings/inference-providers" in message
    assert "':<provider>' suffix" in message
    assert "llmrelay models huggingface --live" in message
    assert "model_not_supported" in (error.body or "")


async def test_other_router_refusals_keep_their_type(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.router.script.fault = Fault(
        "http_error", status=400, body={"error": {"message": "max_tokens too large"}}
    )
    with pytest.raises(errors.InvalidRequestError, match="max_tokens too large") as info:
        await collect(provider, chat(f"{LLAMA}:fastest"))
    assert type(info.value) is errors.InvalidRequestError


# -- the official client agrees with the fake router -------------------------------------------


def test_huggingface_hub_inference_client_on_the_fake(fakes: Fakes) -> None:
    hub = pytest.importorskip("huggingface_hub")
    client = hub.InferenceClient(base_url=f"{fakes.url}/v1", api_key="hf_test_token_123")
    fakes.router.script.enabled = ["cerebras", "novita"]
    stream = client.chat_completion(
        [{"role": "user", "content": "Hi"}], model=f"{LLAMA}:cheapest", stream=True
    )
    theirs = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert theirs == fakes.router.expected_text
    assert fakes.router.requests[-1].json["model"] == f"{LLAMA}:cheapest"
    assert fakes.router.routed == ["novita"]

    async def ours() -> str:
        async with httpx.AsyncClient() as client_http:
            provider = HuggingFace(client_http, endpoints=fakes.endpoints)
            return text_of(await collect(provider, chat(f"{LLAMA}:cheapest")))

    assert anyio.run(ours) == theirs

    fakes.router.script.enabled = ["hyperbolic"]
    with pytest.raises(Exception, match="not supported by any provider you have enabled") as info:
        client.chat_completion([{"role": "user", "content": "Hi"}], model=LLAMA)
    assert type(info.value).__name__ == "BadRequestError"


# -- the live catalogue -------------------------------------------------------------------------


async def test_live_models_read_the_router_catalogue(fakes: Fakes, provider: HuggingFace) -> None:
    models = await provider.live_models()
    by_id = {m.id: m for m in models}
    assert list(by_id) == [
        "meta-llama/Llama-3.1-8B-Instruct",
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "Qwen/Qwen2-72B-Instruct",
        "deepseek-ai/DeepSeek-R1",
    ]
    llama = by_id[LLAMA]
    assert llama.provider == "huggingface"
    assert llama.reference == f"huggingface:{LLAMA}"
    assert llama.offers[0] == LiveOffer("novita", "live", 16384, 0.02, 0.05, False, False)
    assert llama.offer("cerebras") == LiveOffer("cerebras", "live", 32768, 0.1, 0.1, True, True)
    assert llama.offer("featherless-ai") == LiveOffer(
        "featherless-ai", "live", 16384, None, None, False, False
    )
    assert llama.context_length == 16384  # the smallest: any offer may serve a request
    assert llama.supports_tools is True  # one offer takes tools
    assert llama.vision is False
    assert by_id["Qwen/Qwen2.5-VL-7B-Instruct"].vision is True
    assert by_id["Qwen/Qwen2.5-VL-7B-Instruct"].supports_tools is False
    assert by_id["Qwen/Qwen2-72B-Instruct"].context_length == 32768  # one without a length
    (sent,) = fakes.router.requests
    assert sent.path == "/v1/models"
    assert sent.headers["authorization"] == "Bearer hf_test_token_123"
    # capabilities for request checks, without another fetch, suffix or not
    assert provider.catalog.cached(f"{LLAMA}:cerebras") == llama
    assert provider.catalog.cached("nobody/nothing") is None


async def test_live_models_are_cached_and_refreshed(fakes: Fakes, http: httpx.AsyncClient) -> None:
    provider = HuggingFace(http, endpoints=fakes.endpoints)
    first = await provider.live_models()
    again = await provider.live_models()
    assert again == first
    assert len(fakes.router.requests) == 1
    await provider.live_models(refresh=True)
    assert len(fakes.router.requests) == 2
    expiring = RouterCatalog(http, fakes.url + "/v1", {}, "huggingface", ttl=0.0)
    await expiring.models()
    await expiring.models()
    assert len(fakes.router.requests) == 4


async def test_concurrent_callers_share_one_fetch(fakes: Fakes, provider: HuggingFace) -> None:
    results: list[Any] = []

    async def one() -> None:
        results.append(await provider.live_models())

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(one)
    assert len(fakes.router.requests) == 1
    assert all(r == results[0] for r in results)


async def test_malformed_catalogue_entries_are_skipped(fakes: Fakes, provider: HuggingFace) -> None:
    good = fakes.router.script.catalogue[0]
    fakes.router.script.models_body = {
        "object": "list",
        "data": [
            good,
            "not an object",
            {"id": 42},
            {"id": "a/../../api/whoami-v2", "providers": []},
            {
                "id": "org/odd",
                "providers": [
                    {"provider": "p1", "context_length": -5, "pricing": {"input": "free"}},
                    {"status": "live"},
                    "junk",
                    {"provider": "p2", "context_length": True, "supports_tools": "yes"},
                ],
                "architecture": "text",
            },
        ],
    }
    models = await provider.live_models()
    assert [m.id for m in models] == [LLAMA, "org/odd"]
    odd = models[1]
    assert odd.offers == (LiveOffer("p1"), LiveOffer("p2"))
    assert odd.context_length is None
    assert odd.supports_tools is False
    assert odd.input_modalities == ()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"object": "list"}, 200),
        ("<!DOCTYPE html><html>whoami octocat@example.org</html>", 200),
        ({"name": "octocat", "email": "octocat@example.org"}, 200),
        ("<!DOCTYPE html><html>octocat@example.org</html>", 502),
    ],
)
async def test_a_catalogue_that_is_not_one_is_an_error_that_quotes_nothing(
    fakes: Fakes, provider: HuggingFace, body: Any, status: int
) -> None:
    if status == 200:
        fakes.router.script.models_body = body if isinstance(body, dict) else None
        if isinstance(body, str):
            fakes.router.script.fault = Fault("http_error", status=200, body=body)
    else:
        fakes.router.script.fault = Fault("http_error", status=status, body=body)
    with pytest.raises(errors.ProviderError) as info:
        await provider.live_models()
    assert "octocat" not in str(info.value)


async def test_other_providers_have_no_live_catalogue(fakes: Fakes) -> None:
    async with llmrelay.AsyncClient(endpoints={"huggingface": fakes.endpoints}) as client:
        with pytest.raises(errors.ConfigError, match="ai2 has no live model catalogue"):
            await client.live_models("ai2")
        models = await client.live_models("huggingface")
    assert models[0].id == LLAMA
    rows = openai_model_rows(models)
    assert rows[0]["id"] == f"huggingface:{LLAMA}"
    assert rows[0]["owned_by"] == "huggingface"
    assert rows[0]["llmrelay"]["context_length"] == 16384
    assert rows[0]["llmrelay"]["offers"][1]["provider"] == "cerebras"


def test_live_model_derivations() -> None:
    model = LiveModel(
        "huggingface",
        "o/m",
        (LiveOffer("a", context_length=100), LiveOffer("b", context_length=50)),
        ("TEXT", "Image"),
    )
    assert model.context_length == 50
    assert model.vision is True
    assert model.supports_tools is False
    assert model.to_dict()["reference"] == "huggingface:o/m"


# -- model ids: validated like the other providers' --------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "a/../../api/whoami-v2",
        "../api/whoami-v2",
        "a/..",
        "a/b/c",
        "a//b",
        "/a/b",
        "a/b?x=1",
        "a/b#frag",
        "a/b%2e%2e",
        "a/b c",
        "a/b\n",
        ".a/b",
        "a-/b",
        "a/b.",
        "a--b/c",
        "ü/b",
        "a/b:",
        "a/b@",
        "a/b@main:fastest",
        "a/b:Fastest",
        "a/b:fast/est",
        "x" * 97,
    ],
)
def test_invalid_ids_are_refused_before_any_request(model: str) -> None:
    with pytest.raises(errors.ConfigError, match="Hub repository ids"):
        HuggingFace.resolve_model(model)
    with pytest.raises(errors.ConfigError):
        parse_model_id(model)


@pytest.mark.parametrize(
    ("model", "repo", "revision", "policy"),
    [
        ("gpt2", "gpt2", None, None),
        ("org/name", "org/name", None, None),
        ("Org-1/name.v1_2-x", "Org-1/name.v1_2-x", None, None),
        ("org/name@main", "org/name", "main", None),
        ("org/name@0123abc", "org/name", "0123abc", None),
        ("org/name:fastest", "org/name", None, "fastest"),
        ("org/name:fireworks-ai", "org/name", None, "fireworks-ai"),
    ],
)
def test_valid_ids(model: str, repo: str, revision: str | None, policy: str | None) -> None:
    hub_id = parse_model_id(model)
    assert (hub_id.repo, hub_id.revision, hub_id.policy) == (repo, revision, policy)
    assert HuggingFace.resolve_model(model) == model


async def test_a_path_walking_id_reaches_no_host(fakes: Fakes) -> None:
    """``huggingface:a/../../api/whoami-v2`` walked the Hub with the operator's token."""
    async with llmrelay.AsyncClient(
        endpoints={"huggingface": fakes.endpoints}, api_keys={"huggingface": "hf_operator_1234"}
    ) as client:
        with pytest.raises(llmrelay.LLMRelayError) as info:
            async for _ in client.stream("Hi", model="huggingface:a/../../api/whoami-v2"):
                pass
    assert "Hub repository ids" in str(info.value)
    assert fakes.upstream_requests() == 0


async def test_direct_callers_are_checked_too(fakes: Fakes, provider: HuggingFace) -> None:
    with pytest.raises(errors.ConfigError):
        await collect(provider, chat("a/../../api/whoami-v2"))
    with pytest.raises(errors.ConfigError):
        await provider.generate_image(ImageRequest("x", "a/../b"))
    assert fakes.upstream_requests() == 0


async def test_a_revision_is_refused_not_dropped(fakes: Fakes, provider: HuggingFace) -> None:
    with pytest.raises(errors.InvalidRequestError, match="'@v2' cannot be honoured"):
        await collect(provider, chat("Qwen/Qwen2-72B-Instruct@v2"))
    assert fakes.upstream_requests() == 0


def test_the_sync_client_reads_the_live_catalogue(fakes: Fakes) -> None:
    with llmrelay.Client(endpoints={"huggingface": fakes.endpoints}) as client:
        models = client.live_models()
        again = client.live_models("huggingface")
    assert models == again
    assert models[0].reference == f"huggingface:{LLAMA}"
    assert len(fakes.router.requests) == 1  # the second call was served from the cache


async def test_a_router_error_is_not_its_own_cause(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.router.script.fault = Fault("http_error", status=400, body={"error": {"message": "no"}})
    with pytest.raises(errors.InvalidRequestError) as info:
        await collect(provider, chat(f"{LLAMA}:fastest"))
    assert info.value.__cause__ is not info.value
