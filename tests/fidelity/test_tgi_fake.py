"""Is the TGI / hub fake faithful?  ``huggingface_hub`` (the official client) consumes it.

``InferenceClient.text_generation`` and ``text_to_image`` with the fake's URL as the
model, ``HfApi.model_info`` / ``list_models`` with the fake as the endpoint: the official
client must accept every variant the fake sends, and get the same answers as llmrelay's
provider. (The product never imports huggingface_hub.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from llmrelay import errors
from llmrelay.providers.huggingface import HuggingFace
from llmrelay.types import ChatRequest, FinishReason, ImageRequest, Message
from tests.fakes._server import serve
from tests.fakes._streaming import Fault, combine
from tests.fakes.hub import FakeHub, HubScript
from tests.fakes.tgi import FakeTGI, TGIScript

hub_inference = pytest.importorskip("huggingface_hub")
hub_errors = pytest.importorskip("huggingface_hub.errors")

pytestmark = pytest.mark.anyio
QWEN = "Qwen/Qwen2-72B-Instruct"
FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


@dataclass
class Served:
    tgi: FakeTGI
    hub: FakeHub
    url: str


@pytest.fixture(scope="module")
def _served() -> Iterator[Served]:
    tgi, hub = FakeTGI(), FakeHub()
    with serve(combine(tgi, hub)) as url:
        yield Served(tgi, hub, url)


@pytest.fixture
def served(_served: Served) -> Iterator[Served]:
    _served.tgi.script = TGIScript()
    _served.hub.script = HubScript()
    yield _served
    assert _served.tgi.wait_closed(5)


@pytest.fixture
async def provider(served: Served) -> AsyncIterator[HuggingFace]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield HuggingFace(http, endpoints={"base_url": served.url, "hub_url": served.url})


def official(served: Served, model: str = QWEN) -> Any:
    return hub_inference.InferenceClient(model=f"{served.url}/models/{model}", timeout=10)


async def ours(provider: HuggingFace, **kwargs: Any) -> tuple[str, str]:
    request = ChatRequest(messages=(Message("user", "hi"),), model=QWEN, **kwargs)
    events = [e async for e in provider.stream(request)]
    finish = events[-1]
    assert isinstance(finish, FinishReason)
    return "".join(e for e in events if isinstance(e, str)), finish.reason


@pytest.mark.parametrize(
    "script",
    [
        TGIScript(space=False, index=False, input_length=False),
        TGIScript(space=False, index=True),
        TGIScript(space=True, index=True),
        TGIScript(top_tokens=True),
        TGIScript(comment=True),
        TGIScript(end="length"),
        TGIScript(end="stop_sequence"),
    ],
    ids=["2023", "2024-06", "2025", "top_tokens", "comment", "length", "stop_sequence"],
)
async def test_stream_same_answer(served: Served, provider: HuggingFace, script: TGIScript) -> None:
    served.tgi.script = script
    client = official(served)  # kept referenced: its session closes when it is collected
    outputs = list(client.text_generation("hi", stream=True, details=True, stop=["END"]))
    their_text = "".join(o.token.text for o in outputs if not o.token.special)
    their_finish = FINISH[outputs[-1].details.finish_reason]
    assert outputs[-1].generated_text == their_text
    assert await ours(provider, stop=("END",)) == (their_text, their_finish)


async def test_non_streaming_same_answer(served: Served, provider: HuggingFace) -> None:
    answer = official(served).text_generation("hi", details=True)
    assert await ours(provider, options={"stream": False}) == (
        answer.generated_text,
        FINISH[answer.details.finish_reason],
    )


@pytest.mark.parametrize(
    ("error_type", "theirs", "mine"),
    [
        ("validation", "ValidationError", errors.InvalidRequestError),
        ("generation", "GenerationError", errors.ProviderError),
        ("overloaded", "OverloadedError", errors.ProviderUnavailable),
        ("incomplete_generation", "IncompleteGenerationError", errors.ProviderUnavailable),
    ],
)
async def test_in_stream_errors_are_errors_for_both(
    served: Served, provider: HuggingFace, error_type: str, theirs: str, mine: type[Exception]
) -> None:
    body = {"error": f"scripted {error_type}", "error_type": error_type}
    served.tgi.script = TGIScript(fault=Fault("inband_error", body=body, after=1))
    client = official(served)
    with pytest.raises(getattr(hub_errors, theirs), match=f"scripted {error_type}"):
        list(client.text_generation("hi", stream=True))
    with pytest.raises(mine, match=f"scripted {error_type}"):
        await ours(provider)


@pytest.mark.parametrize("status", [400, 401, 404, 422, 429, 500, 503])
async def test_http_errors_have_the_same_status(
    served: Served, provider: HuggingFace, status: int
) -> None:
    served.tgi.script = TGIScript(fault=Fault("http_error", status=status))
    with pytest.raises((hub_errors.HfHubHTTPError, hub_errors.TextGenerationError)) as theirs:
        official(served).text_generation("hi", details=True)
    response = getattr(theirs.value, "response", None) or theirs.value.__cause__.response
    with pytest.raises(errors.ProviderError) as mine:
        await ours(provider)
    assert response.status_code == mine.value.status_code == status


async def test_text_to_image_same_picture(served: Served, provider: HuggingFace) -> None:
    model = "CompVis/stable-diffusion-v1-4"
    picture = official(served, model).text_to_image("a fox", width=64, height=32)
    theirs_body = served.tgi.requests[-1].json
    image = await provider.generate_image(ImageRequest("a fox", model, width=64, height=32))
    assert served.tgi.requests[-1].json == theirs_body
    assert picture.size == (image.width, image.height)
    assert f"image/{picture.format.lower()}" == image.mime_type
    assert picture.size == (3, 2)


def test_model_info_and_rename_read_by_hfapi(served: Served) -> None:
    api = hub_inference.HfApi(endpoint=served.url)
    info = api.model_info(QWEN)
    assert info.id == QWEN
    assert info.pipeline_tag == "text-generation"
    assert info.config["model_type"] == "qwen2"
    assert info.config["tokenizer_config"]["eos_token"] == "<|im_end|>"
    renamed = api.model_info("bert-base-uncased")
    assert renamed.id == "google-bert/bert-base-uncased"
    with pytest.raises(hub_errors.RepositoryNotFoundError):
        api.model_info("nobody/no-such-model")


async def test_trending_listing_read_by_hfapi(served: Served, provider: HuggingFace) -> None:
    api = hub_inference.HfApi(endpoint=served.url)
    listed = list(api.list_models(pipeline_tag="text-generation", sort="trending_score", limit=100))
    theirs = [m.id for m in listed if (m.trending_score or 0) >= 10]
    ours_models = list(await provider.list_models())
    assert theirs
    assert all(model in ours_models for model in theirs)
    assert all(m.id not in ours_models for m in listed if (m.trending_score or 0) < 10)
