"""What OpenAI clients rely on: ``usage`` always present, and retry hints they obey.

* ``llm --no-stream`` (simonw's ``llm``, through the ``openai`` SDK) reads
  ``response.usage`` and crashed on ``"usage": null``: a non-streamed answer always
  carries usage, counted by llmrelay when the provider reported none and then marked
  ``x-llmrelay-usage: estimated``; a stream carries it only with ``include_usage``.
* The ``openai`` SDK retries 408/409/429/5xx twice by default unless ``x-should-retry``
  says otherwise: a failure that asking again cannot fix is sent once, one that can is
  retried (with ``Retry-After`` when the wait is known).
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

import llmrelay
from llmrelay import FinishReason
from tests.fakes.openai_server import FakeOpenAI
from tests.server import scripted

MESSAGES = [{"role": "user", "content": "hi"}]


def test_non_streamed_usage_is_always_an_object(base_url: str, upstream: FakeOpenAI) -> None:
    scripted.SCRIPTS["alpha"] = ["Forty bytes of answer, give or take 1234.", FinishReason("stop")]
    body = {"model": "alpha:m", "messages": MESSAGES}
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=10)
    assert response.status_code == 200
    usage = response.json()["usage"]
    assert isinstance(usage, dict)
    assert all(isinstance(usage[k], int) for k in ("prompt_tokens", "completion_tokens"))
    assert usage["completion_tokens"] == 11  # 41 UTF-8 bytes / 4, rounded up
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert response.headers["x-llmrelay-usage"] == "estimated"
    # what the openai SDK (and so `llm --no-stream`) reads
    completion = openai.types.chat.ChatCompletion.model_validate(response.json())
    assert completion.usage is not None
    assert completion.usage.model_dump()["total_tokens"] == usage["total_tokens"]


def test_reported_usage_is_passed_on_unmarked(base_url: str, upstream: FakeOpenAI) -> None:
    body = {"model": "local:fake-model", "messages": MESSAGES}
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=10)
    assert response.status_code == 200
    chunks = len(upstream.script.chunks)
    assert response.json()["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": chunks,
        "total_tokens": 7 + chunks,
    }
    assert "x-llmrelay-usage" not in response.headers


def _sse_chunks(response: httpx.Response) -> list[dict[str, object]]:
    frames = [f for f in response.text.split("\n\n") if f and f != "data: [DONE]"]
    return [json.loads(f.removeprefix("data: ")) for f in frames]


def test_streams_report_usage_only_with_include_usage(base_url: str, upstream: FakeOpenAI) -> None:
    scripted.SCRIPTS["alpha"] = ["twelve bytes", FinishReason("stop")]
    body: dict[str, object] = {"model": "alpha:m", "messages": MESSAGES, "stream": True}
    plain = httpx.post(f"{base_url}/chat/completions", json=body, timeout=10)
    assert all(c["usage"] is None for c in _sse_chunks(plain))
    assert "x-llmrelay-usage" not in plain.headers
    body["stream_options"] = {"include_usage": True}
    asked = httpx.post(f"{base_url}/chat/completions", json=body, timeout=10)
    chunks = _sse_chunks(asked)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3  # type: ignore[index]
    assert asked.headers["x-llmrelay-usage"] == "estimated"


@pytest.mark.parametrize(
    ("error", "status", "requests"),
    [
        # a Space's own error, a provider's refusal: asking again cannot help
        (llmrelay.ProviderError("the Space's function raised", provider="alpha"), 502, 1),
        (llmrelay.InvalidRequestError("context too long", provider="alpha"), 400, 1),
        (llmrelay.AuthenticationError("key refused", provider="alpha"), 502, 1),
        # overloaded or slow: the SDK's default retries (two) may succeed
        (llmrelay.ProviderUnavailable("overloaded", provider="alpha"), 503, 3),
        (llmrelay.ProviderTimeout("no answer", provider="alpha", kind="first_token"), 504, 3),
    ],
    ids=["space-error", "invalid", "auth", "unavailable", "timeout"],
)
def test_the_openai_sdk_retries_only_what_can_succeed(
    base_url: str, upstream: FakeOpenAI, error: llmrelay.ProviderError, status: int, requests: int
) -> None:
    scripted.SCRIPTS["alpha"] = [error]
    sdk = openai.OpenAI(base_url=base_url, api_key="unused", timeout=10)  # default retries
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="alpha:m", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == status
    assert caught.value.response.headers["x-should-retry"] == ("true" if requests > 1 else "false")
    assert len(scripted.LOG["alpha"].requests) == requests


def test_retry_after_is_sent_with_a_retryable_failure(base_url: str, upstream: FakeOpenAI) -> None:
    scripted.SCRIPTS["alpha"] = [
        llmrelay.RateLimitError("slow down", provider="alpha", retry_after=7.2)
    ]
    response = httpx.post(
        f"{base_url}/chat/completions", json={"model": "alpha:m", "messages": MESSAGES}, timeout=10
    )
    assert response.status_code == 429
    assert response.headers["x-should-retry"] == "true"
    assert response.headers["retry-after"] == "8"
