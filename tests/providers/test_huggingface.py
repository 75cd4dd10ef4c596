"""The huggingface provider against the fake inference API, hub and router (one loopback app)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import errors
from llmrelay._sse import SSEDecoder
from llmrelay.providers import huggingface as hf_module
from llmrelay.providers._hf_hub import Hub
from llmrelay.providers._tgi import TokenStream
from llmrelay.providers.huggingface import HuggingFace
from llmrelay.types import ChatRequest, FinishReason, ImageRequest, ImageResult, Message
from tests.fakes._server import serve
from tests.fakes._streaming import Fault, combine
from tests.fakes.hub import FakeHub, HubScript
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript
from tests.fakes.tgi import ERROR_BODIES, TEXT_PLAIN_422, FakeTGI, TGIScript, jpeg_bytes, png_bytes

pytestmark = pytest.mark.anyio

QWEN = "Qwen/Qwen2-72B-Instruct"


@dataclass
class Fakes:
    tgi: FakeTGI
    hub: FakeHub
    router: FakeOpenAI
    url: str

    @property
    def endpoints(self) -> dict[str, str]:
        return {"base_url": self.url, "hub_url": self.url, "router_url": self.url + "/v1"}


@pytest.fixture(scope="module")
def _served() -> Iterator[Fakes]:
    tgi, hub, router = FakeTGI(), FakeHub(), FakeOpenAI()
    with serve(combine(tgi, hub, router)) as url:
        yield Fakes(tgi, hub, router, url)


@pytest.fixture
def fakes(_served: Fakes) -> Iterator[Fakes]:
    _served.tgi.script = TGIScript()
    _served.hub.script = HubScript()
    _served.router.script = OpenAIScript()
    for recorder in (_served.tgi.recorder, _served.hub.recorder, _served.router.recorder):
        recorder.requests.clear()
    yield _served
    assert _served.tgi.wait_closed(5), "an inference stream was left open"
    assert _served.router.wait_closed(5), "a router stream was left open"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        yield client


@pytest.fixture
def provider(fakes: Fakes, http: httpx.AsyncClient) -> HuggingFace:
    return HuggingFace(http, endpoints=fakes.endpoints)


CONVERSATION = (
    Message("system", "Be brief."),
    Message("user", "Hi"),
    Message("assistant", "Hello!"),
    Message("user", "Name a color."),
)


def chat(
    model: str = QWEN, messages: tuple[Message, ...] = CONVERSATION, **kwargs: Any
) -> ChatRequest:
    return ChatRequest(messages=messages, model=model, **kwargs)


async def collect(provider: HuggingFace, request: ChatRequest) -> list[Any]:
    return [event async for event in provider.stream(request)]


def text_of(events: list[Any]) -> str:
    return "".join(e for e in events if isinstance(e, str))


def inference_body(fakes: Fakes) -> dict[str, Any]:
    (sent,) = fakes.tgi.requests
    body: dict[str, Any] = sent.json
    return body


# -- attributes ---------------------------------------------------------------------------


def test_declared_attributes() -> None:
    assert HuggingFace.name == "huggingface"
    assert HuggingFace.endpoints == {
        "base_url": "https://api-inference.huggingface.co",
        "hub_url": "https://huggingface.co",
        "router_url": "https://router.huggingface.co/v1",
    }
    assert HuggingFace.auth.env_var == "HF_TOKEN"
    assert HuggingFace.auth.mode.value == "optional"
    assert HuggingFace.resolve_model("qwen-2-72b") == QWEN
    assert HuggingFace.resolve_model("someone/any-model") == "someone/any-model"
    assert set(HuggingFace.aliases.values()) <= set(HuggingFace.models)
    assert {"top_k", "repetition_penalty", "api"} <= set(HuggingFace.options)


# -- text generation ----------------------------------------------------------------------


async def test_stream_text_and_one_finish(fakes: Fakes, provider: HuggingFace) -> None:
    events = await collect(provider, chat())
    assert text_of(events) == fakes.tgi.expected_text
    assert "</s>" not in text_of(events)
    assert events[-1] == FinishReason("stop")
    assert sum(isinstance(e, FinishReason) for e in events) == 1


async def test_request_shape(fakes: Fakes, provider: HuggingFace) -> None:
    options = {"top_k": 40, "repetition_penalty": 1.1}
    request = chat(
        temperature=0.7, max_tokens=64, top_p=0.9, stop=("\n\n",), seed=3, options=options
    )
    await collect(provider, request)
    (info,) = fakes.hub.requests
    assert info.path == f"/api/models/{QWEN}"
    (sent,) = fakes.tgi.requests
    assert sent.path == f"/models/{QWEN}"
    assert sent.json == {
        "inputs": "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nName a color.<|im_end|>\n"
        "<|im_start|>assistant\n",
        "parameters": {
            "return_full_text": False,
            "details": True,
            "max_new_tokens": 64,
            "temperature": 0.7,
            "top_p": 0.9,
            "stop": ["\n\n"],
            "seed": 3,
            "top_k": 40,
            "repetition_penalty": 1.1,
        },
        "stream": True,
    }
    assert "authorization" not in sent.headers
    assert "authorization" not in info.headers


async def test_temperature_zero_means_greedy(fakes: Fakes, provider: HuggingFace) -> None:
    await collect(provider, chat(temperature=0.0))
    parameters = inference_body(fakes)["parameters"]
    assert parameters["do_sample"] is False
    assert "temperature" not in parameters


async def test_token_goes_to_inference_and_hub(fakes: Fakes, http: httpx.AsyncClient) -> None:
    provider = HuggingFace(http, endpoints=fakes.endpoints, api_key="hf_secret")
    await collect(provider, chat())
    assert fakes.tgi.requests[0].headers["authorization"] == "Bearer hf_secret"
    assert fakes.hub.requests[0].headers["authorization"] == "Bearer hf_secret"


@pytest.mark.parametrize(
    ("model", "start", "end"),
    [
        (
            "mistralai/Mistral-7B-Instruct-v0.3",
            "<s>[INST] Be brief.\n\nHi [/INST] Hello!</s>",
            "[INST] Name a color. [/INST]",
        ),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "<s>[INST] Be brief.", "Name a color. [/INST]"),
        (
            "HuggingFaceH4/zephyr-7b-beta",
            "<|system|>\nBe brief.</s>\n",
            "<|user|>\nName a color.</s>\n<|assistant|>\n",
        ),
        (
            "stabilityai/stablelm-zephyr-3b",
            "<|system|>\nBe brief.<|endoftext|>\n",
            "<|assistant|>\n",
        ),
        (
            "meta-llama/Meta-Llama-3-8B-Instruct",
            "<|begin_of_text|><|start_header_id|>system",
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        (
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi",
            "<｜User｜>Name a color.<｜Assistant｜>",
        ),
        (
            "openai-community/gpt2",
            "System: Be brief.\nUser: Hi\n",
            "User: Name a color.\nAssistant:",
        ),
    ],
)
async def test_template_follows_the_model_metadata(
    fakes: Fakes, provider: HuggingFace, model: str, start: str, end: str
) -> None:
    events = await collect(provider, chat(model))
    assert text_of(events) == fakes.tgi.expected_text
    inputs = inference_body(fakes)["inputs"]
    assert inputs.startswith(start)
    assert inputs.endswith(end)


async def test_continue_mode_leaves_the_assistant_turn_open(
    fakes: Fakes, provider: HuggingFace
) -> None:
    messages = (*CONVERSATION, Message("assistant", "Blue and"))
    await collect(provider, chat(messages=messages))
    assert inference_body(fakes)["inputs"].endswith("<|im_start|>assistant\nBlue and")


async def test_long_prompt_is_trimmed_keeping_system_and_newest(
    fakes: Fakes, provider: HuggingFace
) -> None:
    history: list[Message] = [Message("system", "Be brief.")]
    for i in range(30):
        history += [Message("user", f"old question {i}"), Message("assistant", f"old answer {i}")]
    history.append(Message("user", "newest"))
    await collect(provider, chat(messages=tuple(history), options={"max_prompt_chars": 500}))
    inputs = inference_body(fakes)["inputs"]
    assert len(inputs) <= 500
    assert inputs.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    assert "old question 0\n" not in inputs
    assert "old answer 29" in inputs
    assert inputs.endswith("<|im_start|>user\nnewest<|im_end|>\n<|im_start|>assistant\n")


# -- stream variants ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        TGIScript(space=False, index=False, input_length=False),  # 2023
        TGIScript(space=False, index=True),  # 2024-06
        TGIScript(space=True, index=True),  # 2024-08 on
        TGIScript(top_tokens=True),
        TGIScript(comment=True),
        TGIScript(details=False),  # no details: finish inferred from the special token
    ],
    ids=[
        "2023-nospace-noindex",
        "2024-06-index-nospace",
        "2025-space",
        "top_tokens",
        "comment",
        "no-details",
    ],
)
async def test_stream_variants(fakes: Fakes, provider: HuggingFace, script: TGIScript) -> None:
    fakes.tgi.script = script
    events = await collect(provider, chat())
    assert text_of(events) == fakes.tgi.expected_text
    assert events[-1] == FinishReason("stop")


@pytest.mark.parametrize(
    ("script", "stop", "max_tokens", "reason"),
    [
        (TGIScript(end="length"), (), None, "length"),
        (TGIScript(end="length", details=False), (), None, "length"),
        (TGIScript(end="stop_sequence"), ("END",), None, "stop"),
        # a stop sequence the client did not send (server-side): only details can tell
        (TGIScript(end="stop_sequence"), (), None, "stop"),
        (TGIScript(end="stop_sequence", details=False), ("END",), None, "stop"),
        (TGIScript(), (), 3, "length"),
        (TGIScript(details=False), (), 3, "length"),
    ],
)
async def test_finish_reasons(
    fakes: Fakes,
    provider: HuggingFace,
    script: TGIScript,
    stop: tuple[str, ...],
    max_tokens: int | None,
    reason: str,
) -> None:
    fakes.tgi.script = script
    events = await collect(provider, chat(stop=stop, max_tokens=max_tokens))
    assert events[-1] == FinishReason(reason)
    if max_tokens:
        assert text_of(events) == "".join(script.tokens[:max_tokens])


@pytest.mark.parametrize(
    ("error_type", "cls"),
    [
        ("validation", errors.InvalidRequestError),
        ("generation", errors.ProviderError),
        ("overloaded", errors.ProviderUnavailable),
        ("incomplete_generation", errors.ProviderUnavailable),
        ("template_error", errors.InvalidRequestError),
        ("something_new", errors.ProviderError),
    ],
)
async def test_error_event_inside_a_200_stream(
    fakes: Fakes, provider: HuggingFace, error_type: str, cls: type[errors.ProviderError]
) -> None:
    body = {"error": f"scripted {error_type} failure", "error_type": error_type}
    fakes.tgi.script = TGIScript(fault=Fault("inband_error", body=body, after=0))
    with pytest.raises(cls, match=f"scripted {error_type} failure") as caught:
        await collect(provider, chat())
    assert type(caught.value) is cls


async def test_error_event_after_some_text(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(fault=Fault("inband_error", after=3))
    seen: list[Any] = []
    with pytest.raises(errors.ProviderError, match="during generation"):
        async for event in provider.stream(chat()):
            seen.append(event)
    assert text_of(seen) == "".join(fakes.tgi.script.tokens[:3])


@pytest.mark.parametrize(
    ("status", "body", "cls", "quoted"),
    [
        (400, ERROR_BODIES[400], errors.InvalidRequestError, "field required"),
        (
            400,
            {
                "error": "The following `model_kwargs` are not used by the model: ['watermark']",
                "warnings": ["x"],
            },
            errors.InvalidRequestError,
            "model_kwargs",
        ),
        (401, None, errors.AuthenticationError, "Invalid credentials"),
        (404, None, errors.ModelNotFoundError, "does not exist"),
        # TGI's "`inputs` tokens + `max_new_tokens` must be <= 4096": the prompt does not fit
        (422, None, errors.ContextLengthExceeded, "Input validation error"),
        (
            422,
            {"error": "Template error: template not found", "error_type": "template_error"},
            errors.InvalidRequestError,
            "template not found",
        ),
        # a plain-text body is described, never quoted (it is in .body)
        (422, TEXT_PLAIN_422, errors.InvalidRequestError, "HTTP 422 with a text/plain body"),
        (424, None, errors.ProviderError, "CUDA out of memory"),
        (429, {"error": "Please log in or use a HF access token"}, errors.RateLimitError, "log in"),
        (500, None, errors.ProviderUnavailable, "unknown error"),
        (503, None, errors.ProviderUnavailable, "overloaded"),
    ],
)
async def test_http_errors(
    fakes: Fakes,
    provider: HuggingFace,
    status: int,
    body: Any,
    cls: type[errors.ProviderError],
    quoted: str,
) -> None:
    fakes.tgi.script = TGIScript(fault=Fault("http_error", status=status, body=body))
    with pytest.raises(cls, match=quoted) as caught:
        await collect(provider, chat())
    assert type(caught.value) is cls
    assert caught.value.status_code == status


async def test_429_retry_after(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(fault=Fault("http_error", status=429, retry_after="30"))
    with pytest.raises(errors.RateLimitError) as caught:
        await collect(provider, chat())
    assert caught.value.retry_after == 30.0


async def test_malformed_event_is_a_protocol_error(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(fault=Fault("malformed"))
    with pytest.raises(errors.ProtocolError):
        await collect(provider, chat())


async def test_stream_ending_before_the_last_token_is_an_error(
    fakes: Fakes, provider: HuggingFace
) -> None:
    fakes.tgi.script = TGIScript(fault=Fault("truncate", after=4))
    seen: list[Any] = []
    with pytest.raises(errors.ProtocolError, match="before the last token"):
        async for event in provider.stream(chat()):
            seen.append(event)
    assert not any(isinstance(e, FinishReason) for e in seen)


async def test_disconnect_mid_stream_is_an_error(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(fault=Fault("disconnect", after=3))
    with pytest.raises((errors.TransportError, errors.ProtocolError)):
        await collect(provider, chat())


async def test_early_close_closes_the_connection(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(fault=Fault("hold_open", after=2))
    stream = provider.stream(chat())
    assert await stream.__anext__() == "Hello"
    await stream.aclose()
    assert fakes.tgi.wait_closed(5)


async def test_slow_first_byte_hits_the_read_timeout(fakes: Fakes) -> None:
    fakes.tgi.script = TGIScript(fault=Fault(first_byte_delay=1.0))
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.2)) as http:
        with pytest.raises(errors.ProviderTimeout):
            await collect(HuggingFace(http, endpoints=fakes.endpoints), chat())


# -- non-streaming ------------------------------------------------------------------------


async def test_non_streaming_request(fakes: Fakes, provider: HuggingFace) -> None:
    events = await collect(provider, chat(options={"stream": False}))
    assert inference_body(fakes)["stream"] is False
    assert events == [fakes.tgi.expected_text, FinishReason("stop")]


async def test_json_answer_to_a_stream_request(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(json_only=True, end="length")
    events = await collect(provider, chat())
    assert events == [fakes.tgi.expected_text, FinishReason("length")]


# -- loading models -----------------------------------------------------------------------


async def test_loading_model_is_waited_for(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(loading=1, estimated_time=0.2)
    events = await collect(provider, chat(deadline=time.monotonic() + 10))
    assert text_of(events) == fakes.tgi.expected_text
    first, second = fakes.tgi.requests
    assert "x-wait-for-model" not in first.headers
    assert second.headers["x-wait-for-model"] == "1"


async def test_loading_longer_than_the_deadline_is_unavailable(
    fakes: Fakes, provider: HuggingFace
) -> None:
    fakes.tgi.script = TGIScript(loading=5, estimated_time=53.37)
    started = time.monotonic()
    with pytest.raises(errors.ProviderUnavailable, match="estimated 53 s") as caught:
        await collect(provider, chat(deadline=time.monotonic() + 2))
    assert time.monotonic() - started < 1.5
    assert caught.value.retryable
    assert len(fakes.tgi.requests) == 1


# -- hub metadata -------------------------------------------------------------------------


async def test_model_info_is_cached(fakes: Fakes, provider: HuggingFace) -> None:
    await collect(provider, chat())
    await collect(provider, chat())
    assert len(fakes.hub.requests) == 1
    assert len(fakes.tgi.requests) == 2


async def test_model_info_cache_is_bounded_and_expires(
    fakes: Fakes, http: httpx.AsyncClient
) -> None:
    hub = Hub(http, fakes.url, {}, "huggingface", size=2, ttl=60)
    for model in (QWEN, "openai-community/gpt2", "HuggingFaceH4/zephyr-7b-beta", QWEN):
        await hub.model_info(model)
    assert len(fakes.hub.requests) == 4  # QWEN was evicted by the third
    expiring = Hub(http, fakes.url, {}, "huggingface", ttl=0)
    await expiring.model_info(QWEN)
    await expiring.model_info(QWEN)
    assert len(fakes.hub.requests) == 6


async def test_unknown_model_is_model_not_found(fakes: Fakes, provider: HuggingFace) -> None:
    with pytest.raises(errors.ModelNotFoundError, match="does not know"):
        await collect(provider, chat("nobody/no-such-model"))
    assert fakes.tgi.requests == []


async def test_renamed_repo_is_followed(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.hub.script.renames["Qwen/Qwen2-72B-Old"] = QWEN
    events = await collect(provider, chat("Qwen/Qwen2-72B-Old"))
    assert text_of(events) == fakes.tgi.expected_text
    assert [r.path for r in fakes.hub.requests] == [
        "/api/models/Qwen/Qwen2-72B-Old",
        f"/api/models/{QWEN}",
    ]
    assert inference_body(fakes)["inputs"].startswith("<|im_start|>system")


async def test_redirect_to_another_host_is_not_followed(
    fakes: Fakes, http: httpx.AsyncClient
) -> None:
    fakes.hub.script.external["evil/model"] = "http://user:pw@127.0.0.2:9/api/models/evil/model"
    provider = HuggingFace(http, endpoints=fakes.endpoints, api_key="hf_secret")
    with pytest.raises(errors.ProtocolError, match="another host") as caught:
        await collect(provider, chat("evil/model"))
    assert fakes.tgi.requests == []
    # the host is named; the Location's userinfo is not quoted
    assert "'127.0.0.2'" in str(caught.value)
    assert "pw" not in str(caught.value)


async def test_redirect_loop_is_bounded(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.hub.script.renames.update({"a/one": "a/two", "a/two": "a/one"})
    with pytest.raises(errors.ProtocolError, match="redirects"):
        await collect(provider, chat("a/one"))
    assert len(fakes.hub.requests) == 4


async def test_hub_error_is_typed(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.hub.script.fault = Fault("http_error", status=500)
    with pytest.raises(errors.ProviderUnavailable):
        await collect(provider, chat())


# -- router -------------------------------------------------------------------------------


async def test_router_per_call(fakes: Fakes, provider: HuggingFace) -> None:
    events = await collect(provider, chat(options={"api": "router"}, max_tokens=10))
    assert text_of(events) == fakes.router.expected_text
    assert events[-1] == FinishReason("stop")
    (sent,) = fakes.router.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == QWEN
    assert sent.json["max_tokens"] == 10
    assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert fakes.hub.requests == []
    assert fakes.tgi.requests == []


async def test_router_gets_the_token(fakes: Fakes, http: httpx.AsyncClient) -> None:
    provider = HuggingFace(http, endpoints=fakes.endpoints, api_key="hf_secret")
    await collect(provider, chat(options={"api": "router"}))
    assert fakes.router.requests[0].headers["authorization"] == "Bearer hf_secret"


async def test_router_per_model(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.router.script = OpenAIScript(reasoning=["hmm"])
    events = await collect(provider, chat("deepseek-ai/DeepSeek-R1"))
    assert text_of(events) == fakes.router.expected_text
    assert fakes.router.requests[0].json["model"] == "deepseek-ai/DeepSeek-R1"
    # a call can still choose the inference API for it
    fakes.hub.script.models["deepseek-ai/DeepSeek-R1"] = fakes.hub.script.models[
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
    ]
    await collect(provider, chat("deepseek-ai/DeepSeek-R1", options={"api": "inference"}))
    assert len(fakes.tgi.requests) == 1


async def test_router_errors_are_typed(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.router.script = OpenAIScript(
        fault=Fault("http_error", status=402, body={"error": {"message": "credits"}})
    )
    with pytest.raises(errors.InvalidRequestError, match="credits"):
        await collect(provider, chat(options={"api": "router"}))


async def test_bad_api_option(provider: HuggingFace) -> None:
    with pytest.raises(errors.ConfigError, match="api"):
        await collect(provider, chat(options={"api": "grpc"}))


# -- images -------------------------------------------------------------------------------


async def test_text_to_image(fakes: Fakes, provider: HuggingFace) -> None:
    request = ImageRequest(
        "a red fox",
        "black-forest-labs/FLUX.1-schnell",
        width=512,
        height=256,
        seed=42,
        negative_prompt="blurry",
    )
    image = await provider.generate_image(request)
    assert image == ImageResult(png_bytes(), "image/png", 42, 3, 2)
    (sent,) = fakes.tgi.requests
    assert sent.path == "/models/black-forest-labs/FLUX.1-schnell"
    assert sent.json == {
        "inputs": "a red fox",
        "parameters": {"width": 512, "height": 256, "seed": 42, "negative_prompt": "blurry"},
    }


@pytest.mark.parametrize(
    ("ratio", "width", "height", "expected"),
    [
        ("1:1", None, None, (1024, 1024)),
        ("16:9", None, None, (1344, 768)),
        ("9:16", None, None, (768, 1344)),
        ("16:9", 640, None, (640, 360)),
        ("9:16", None, 640, (360, 640)),
        ("16:9", 300, 300, (300, 300)),
    ],
)
async def test_aspect_ratio(
    fakes: Fakes,
    provider: HuggingFace,
    ratio: str,
    width: int | None,
    height: int | None,
    expected: tuple[int, int],
) -> None:
    await provider.generate_image(
        ImageRequest("x", "stabilityai/stable-diffusion-xl-base-1.0", width, height, ratio)
    )
    parameters = fakes.tgi.requests[0].json["parameters"]
    assert (parameters["width"], parameters["height"]) == expected


async def test_bad_aspect_ratio(fakes: Fakes, provider: HuggingFace) -> None:
    with pytest.raises(errors.ConfigError, match="aspect_ratio"):
        await provider.generate_image(
            ImageRequest("x", "black-forest-labs/FLUX.1-schnell", aspect_ratio="4:3")
        )


async def test_jpeg_with_its_size(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(image=jpeg_bytes(16, 8), image_type="image/jpeg")
    image = await provider.generate_image(ImageRequest("x", "CompVis/stable-diffusion-v1-4"))
    assert (image.mime_type, image.width, image.height) == ("image/jpeg", 16, 8)


async def test_mime_type_comes_from_the_bytes(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(image=png_bytes(), image_type="image/jpeg")
    image = await provider.generate_image(ImageRequest("x", "CompVis/stable-diffusion-v1-4"))
    assert image.mime_type == "image/png"


async def test_non_image_bytes_are_a_protocol_error(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(image=b'{"error": "nope"}', image_type="application/json")
    with pytest.raises(errors.ProtocolError, match="expected image bytes"):
        await provider.generate_image(ImageRequest("x", "CompVis/stable-diffusion-v1-4"))


async def test_image_model_loading_is_waited_for(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(loading=1, estimated_time=0.1)
    image = await provider.generate_image(ImageRequest("x", "CompVis/stable-diffusion-v1-4"))
    assert image.data == png_bytes()
    assert len(fakes.tgi.requests) == 2


async def test_image_errors_are_typed(fakes: Fakes, provider: HuggingFace) -> None:
    fakes.tgi.script = TGIScript(fault=Fault("http_error", status=429))
    with pytest.raises(errors.RateLimitError):
        await provider.generate_image(ImageRequest("x", "CompVis/stable-diffusion-v1-4"))


async def test_not_a_text_to_image_model(fakes: Fakes, provider: HuggingFace) -> None:
    with pytest.raises(errors.InvalidRequestError, match="fill-mask"):
        await provider.generate_image(ImageRequest("x", "google-bert/bert-base-uncased"))
    assert fakes.tgi.requests == []


async def test_chat_with_an_image_model_yields_the_image(
    fakes: Fakes, provider: HuggingFace
) -> None:
    events = await collect(provider, chat("black-forest-labs/FLUX.1-schnell", seed=5))
    assert isinstance(events[0], ImageResult)
    assert events[0].data == png_bytes()
    assert events[1:] == [FinishReason("stop")]
    assert fakes.tgi.requests[0].json == {"inputs": "Name a color.", "parameters": {"seed": 5}}


# -- model list ---------------------------------------------------------------------------


async def test_list_models_merges_trending(fakes: Fakes, provider: HuggingFace) -> None:
    assert fakes.hub.requests == []  # nothing fetched before it is asked for
    models = list(await provider.list_models())
    assert models[: len(hf_module.TEXT_MODELS)] == list(hf_module.TEXT_MODELS)
    assert "moonshotai/Kimi-K2-Thinking" in models
    assert "someone/exactly-ten" in models
    assert "someone/nine" not in models
    assert "someone/image-twenty" in models
    assert "someone/image-nineteen" not in models
    assert models.count(QWEN) == 1
    listing = [r for r in fakes.hub.requests if r.path == "/api/models"]
    assert sorted(r.query["pipeline_tag"] for r in listing) == ["text-generation", "text-to-image"]
    assert await provider.list_models() == tuple(models)
    assert len([r for r in fakes.hub.requests if r.path == "/api/models"]) == 2  # cached


async def test_list_models_times_out_to_the_built_ins(
    fakes: Fakes, provider: HuggingFace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hf_module, "_LIST_TIMEOUT", 0.3)
    fakes.hub.script.listing_delay = 3
    started = time.monotonic()
    models = await provider.list_models()
    assert time.monotonic() - started < 2
    assert list(models) == list(hf_module.TEXT_MODELS + hf_module.IMAGE_MODELS)


async def test_list_models_hub_error_gives_built_ins_uncached(
    fakes: Fakes, provider: HuggingFace
) -> None:
    fakes.hub.script.fault = Fault("http_error", status=503, times=2)
    assert list(await provider.list_models()) == list(
        hf_module.TEXT_MODELS + hf_module.IMAGE_MODELS
    )
    assert "moonshotai/Kimi-K2-Thinking" in await provider.list_models()


# -- parser property ----------------------------------------------------------------------


def _tgi_bytes(tokens: list[str], space: bool) -> bytes:
    sep = " " if space else ""
    frames = []
    for index, text in enumerate(tokens):
        event = {
            "index": index + 1,
            "token": {"id": index, "text": text, "logprob": -1.0, "special": False},
            "generated_text": None,
            "details": None,
        }
        frames.append(f"data:{sep}{json.dumps(event)}")
    last = {
        "token": {"id": 2, "text": "</s>", "logprob": -1.0, "special": True},
        "generated_text": "".join(tokens),
        "details": None,
    }
    frames.append(f"data:{sep}{json.dumps(last, ensure_ascii=False)}")
    return ("\n\n".join(frames) + "\n\n").encode()


@settings(max_examples=200, deadline=None)
@given(
    tokens=st.lists(st.text(), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
    space=st.booleans(),
)
def test_any_tokens_under_any_chunking_come_out_exactly(
    tokens: list[str], cuts: list[int], space: bool
) -> None:
    data = _tgi_bytes(tokens, space)
    points = sorted({c % (len(data) + 1) for c in cuts})
    decoder = SSEDecoder()
    parser = TokenStream("huggingface", "m", ())
    out: list[Any] = []
    for a, b in zip([0, *points], [*points, len(data)], strict=True):
        for sse in decoder.feed(data[a:b]):
            out += parser.feed(sse.data)
    assert "".join(e for e in out if isinstance(e, str)) == "".join(tokens)
    assert parser.end() == FinishReason("stop")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "token",
                    "text",
                    "special",
                    "error",
                    "error_type",
                    "details",
                    "generated_text",
                    "finish_reason",
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
def test_any_json_event_gives_events_or_a_typed_error(value: Any) -> None:
    parser = TokenStream("huggingface", "m", ("x",))
    try:
        out = parser.feed(json.dumps(value))
        assert all(isinstance(e, str) for e in out)
        parser.end()
    except errors.ProviderError:
        pass


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_from_the_inference_api_is_a_typed_error(
    fakes: Fakes, provider: HuggingFace, status: int
) -> None:
    fakes.tgi.script = TGIScript(fault=Fault("http_error", status=status, body=""))
    with pytest.raises(errors.ProtocolError, match=f"redirect \\(HTTP {status}\\)") as caught:
        await collect(provider, chat())
    assert "huggingface base URL" in str(caught.value)


async def test_a_redirect_from_the_router_is_a_typed_error(
    fakes: Fakes, provider: HuggingFace
) -> None:
    fakes.router.script = OpenAIScript(fault=Fault("http_error", status=307, body=""))
    with pytest.raises(errors.ProtocolError, match="redirect"):
        await collect(provider, chat(options={"api": "router"}))
