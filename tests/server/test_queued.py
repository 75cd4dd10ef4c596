"""A request a Space keeps in its queue: the server answers at once and keeps the line alive.

Issue 20 (the server part) and issue 19: the first queue report starts the SSE response
with a comment per report (``: queued position=2 ...``), a ``: keep-alive`` comment
follows while the queue is silent, the chunks come when the answer does, and
``/metrics`` counts the queued request and its wait. The official ``openai`` client
ignores the comments. Also: an unparsable upstream event is skipped and counted, and the
provider's machine-readable error code reaches the client.
"""

from __future__ import annotations

import json

import httpx
import pytest
from tests.fakes.gradio_space import FakeSpace, SpaceScript
from tests.server import scripted

import llmrelay
from llmrelay.server import _chat

openai = pytest.importorskip("openai")

HI = [{"role": "user", "content": "hi"}]


def _metric(server_url: str, name: str) -> float:
    text = httpx.get(server_url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def test_a_queued_request_gets_comments_then_its_answer(
    space: FakeSpace, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_chat, "QUEUED_KEEPALIVE", 0.05)
    space.script = SpaceScript(estimations=[(2, 3, 12.5), (1, 2, 6.0)], chunk_delay=0.3)
    queued = _metric(server_url, "llmrelay_server_queued_requests_total")
    waits = _metric(server_url, "llmrelay_server_queue_wait_seconds_count")
    body = {"model": "hf_spaces:qwen-2-72b", "messages": HI, "stream": True}
    with httpx.stream(
        "POST", server_url + "/v1/chat/completions", json=body, timeout=10
    ) as response:
        assert response.status_code == 200
        raw = b"".join(response.iter_raw())
    frames = [f for f in raw.split(b"\n\n") if f]
    assert frames[0] == b": queued position=2 queue_size=3 eta=12.5"
    assert frames[1] == b": queued position=1 queue_size=2 eta=6"
    assert b": keep-alive" in frames  # the queue said nothing for a while: the line lives
    data = [f for f in frames if f.startswith(b"data: ")]
    assert data[-1] == b"data: [DONE]"
    chunks = [json.loads(f[6:]) for f in data[:-1]]
    assert chunks[0]["model"] == "hf_spaces:Qwen/Qwen2-72B-Instruct"  # known at the answer
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks).startswith(
        "Hello"
    )
    assert _metric(server_url, "llmrelay_server_queued_requests_total") == queued + 1
    assert _metric(server_url, "llmrelay_server_queue_wait_seconds_count") == waits + 1


def test_the_openai_client_reads_a_queued_stream(
    space: FakeSpace, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_chat, "QUEUED_KEEPALIVE", 0.05)
    space.script = SpaceScript(estimations=[(3, 4, 9.0)], chunk_delay=0.2)
    sdk = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    stream = sdk.chat.completions.create(model="hf_spaces:qwen-2-72b", messages=HI, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("Hello")


def test_an_unqueued_failure_still_chooses_the_status(server_url: str) -> None:
    scripted.SCRIPTS["alpha"] = [
        llmrelay.ContentPolicyViolation(
            "refused", provider="alpha", model="m", status_code=400, code="content_policy_violation"
        )
    ]
    response = httpx.post(
        server_url + "/v1/chat/completions",
        json={"model": "alpha:m", "messages": HI, "stream": True},
        timeout=10,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_policy_violation"  # the provider's own code
    assert error["type"] == "invalid_request_error"
