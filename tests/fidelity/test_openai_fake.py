"""Is the OpenAI-compatible fake faithful?  The ``openai`` SDK (the official client) consumes it.

The SDK must accept every variant the fake sends and get the same answer as llmrelay's
``OpenAICompatible`` provider: text, reasoning, finish reason, usage, model list, errors.
(The product never imports openai.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from llmrelay import errors
from llmrelay.providers._openai_compat import OpenAICompatible
from llmrelay.types import ChatRequest, FinishReason, Message, Reasoning, Usage
from tests.fakes._server import serve
from tests.fakes._streaming import Fault
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.anyio
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def _served() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        yield fake, url + "/v1"


@pytest.fixture
def fake(_served: tuple[FakeOpenAI, str]) -> Iterator[FakeOpenAI]:
    _served[0].script = OpenAIScript()
    yield _served[0]
    assert _served[0].wait_closed(5)


@pytest.fixture
async def sdk(_served: tuple[FakeOpenAI, str]) -> AsyncIterator[Any]:
    client = openai.AsyncOpenAI(base_url=_served[1], api_key="sk-test", max_retries=0)
    async with client:
        yield client


@pytest.fixture
async def provider(_served: tuple[FakeOpenAI, str]) -> AsyncIterator[OpenAICompatible]:
    cls = OpenAICompatible.from_config("local", {"base_url": _served[1], "api_key": "sk-test"})
    async with httpx.AsyncClient(timeout=10) as http:
        provider = cls(http)
        assert isinstance(provider, OpenAICompatible)
        yield provider


async def theirs(sdk: Any) -> dict[str, Any]:
    stream = await sdk.chat.completions.create(
        model="fake-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, reasoning, finish, usage = "", "", None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = (
                chunk.usage.prompt_tokens,
                chunk.usage.completion_tokens,
                chunk.usage.total_tokens,
            )
        for choice in chunk.choices:
            text += choice.delta.content or ""
            extra = choice.delta.model_extra or {}
            reasoning += extra.get("reasoning_content") or extra.get("reasoning") or ""
            finish = choice.finish_reason or finish
    return {"text": text, "reasoning": reasoning, "finish": finish, "usage": usage}


async def ours(provider: OpenAICompatible) -> dict[str, Any]:
    request = ChatRequest(
        messages=(Message("system", "Be brief."), Message("user", "Hi")), model="fake-model"
    )
    events = [e async for e in provider.stream(request)]
    finish = events[-1]
    assert isinstance(finish, FinishReason)
    usages = [e for e in events if isinstance(e, Usage)]
    return {
        "text": "".join(e for e in events if isinstance(e, str)),
        "reasoning": "".join(e.text for e in events if isinstance(e, Reasoning)),
        "finish": finish.reason,
        "usage": (usages[0].prompt_tokens, usages[0].completion_tokens, usages[0].total_tokens)
        if usages
        else None,
    }


@pytest.mark.parametrize(
    "script",
    [
        OpenAIScript(),
        OpenAIScript(space=False),
        OpenAIScript(reasoning=["Let me", " think."]),
        OpenAIScript(reasoning=["Hmm."], reasoning_key="reasoning"),
        OpenAIScript(finish="length"),
    ],
    ids=["2025", "nospace", "reasoning_content", "reasoning", "length"],
)
async def test_stream_same_answer(
    fake: FakeOpenAI, sdk: Any, provider: OpenAICompatible, script: OpenAIScript
) -> None:
    fake.script = script
    assert await theirs(sdk) == await ours(provider)


async def test_2024_text_completion_chunks(
    fake: FakeOpenAI, sdk: Any, provider: OpenAICompatible
) -> None:
    fake.script = OpenAIScript(flavor="2024-03")
    answer = await theirs(sdk)
    mine = await ours(provider)
    # the SDK shows TGI 1.4's leaked end token and its raw finish reason; llmrelay does not
    assert answer["text"] == mine["text"] + "</s>"
    assert (answer["finish"], mine["finish"]) == ("eos_token", "stop")


async def test_non_streaming_completion(
    fake: FakeOpenAI, sdk: Any, provider: OpenAICompatible
) -> None:
    completion = await sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert completion.choices[0].message.content == (await ours(provider))["text"]
    assert completion.usage.total_tokens == 16


async def test_models_list(fake: FakeOpenAI, sdk: Any, provider: OpenAICompatible) -> None:
    page = await sdk.models.list()
    assert [m.id for m in page.data] == list(await provider.list_models())


@pytest.mark.parametrize(
    ("status", "theirs_cls", "mine_cls"),
    [
        (400, "BadRequestError", errors.InvalidRequestError),
        (401, "AuthenticationError", errors.AuthenticationError),
        (403, "PermissionDeniedError", errors.AuthenticationError),
        (404, "NotFoundError", errors.ModelNotFoundError),
        (422, "UnprocessableEntityError", errors.InvalidRequestError),
        (429, "RateLimitError", errors.RateLimitError),
        (500, "InternalServerError", errors.ProviderUnavailable),
        (503, "InternalServerError", errors.ProviderUnavailable),
    ],
)
async def test_http_errors(
    fake: FakeOpenAI,
    sdk: Any,
    provider: OpenAICompatible,
    status: int,
    theirs_cls: str,
    mine_cls: type[Exception],
) -> None:
    fake.script = OpenAIScript(fault=Fault("http_error", status=status))
    with pytest.raises(getattr(openai, theirs_cls)) as their_error:
        await theirs(sdk)
    with pytest.raises(mine_cls) as my_error:
        await ours(provider)
    assert their_error.value.status_code == status
    expected = fake.error_body(status)["error"]
    assert their_error.value.message == f"Error code: {status} - {expected['message']}"
    assert (their_error.value.type, their_error.value.code) == (expected["type"], expected["code"])
    assert expected["message"] in str(my_error.value)


async def test_error_chunk_in_the_stream(
    fake: FakeOpenAI, sdk: Any, provider: OpenAICompatible
) -> None:
    fake.script = OpenAIScript(fault=Fault("inband_error", status=429, after=2))
    with pytest.raises(openai.APIError, match="scripted error 429"):
        await theirs(sdk)
    with pytest.raises(errors.RateLimitError, match="scripted error 429"):
        await ours(provider)
