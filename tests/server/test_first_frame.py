"""The stream's first frame is built in the handler and sent with the response head.

``chat_completions`` takes the events ``start()`` buffered up to the first that makes a
frame (``_first_frame``) and hands that frame to ``EventStreamResponse``, which sends it
before the producer's task has run (it used to wait for that task to start, parse it and
wake the writer). Everything else must be as before: the frames (``test_frames.py``
compares them with the old path), the answer remembered and logged, the counters, and a
first delta that cannot be encoded ending the stream in one error frame after the head.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx
import pytest
from tests.server import scripted

from llmrelay.server._sse import EventStreamResponse
from llmrelay.types import FinishReason, Usage

HI = [{"role": "user", "content": "hi"}]


def _post(server_url: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        server_url + "/v1/chat/completions",
        json={"model": "alpha:m", "messages": HI, "stream": True, **extra},
        timeout=10,
    )


def _deltas(server_url: str) -> float:
    text = httpx.get(server_url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("llmrelay_server_streamed_deltas_total{") and 'provider="alpha"' in line
    )


@pytest.mark.parametrize(
    ("script", "counted"),
    [
        (["a", "", "b", FinishReason("stop")], 2),
        (["", "a", FinishReason("stop")], 1),
        ([Usage(1, 2, 3), "only", FinishReason("stop")], 1),
        ([FinishReason("stop")], 0),
    ],
    ids=["text first", "empty text first", "usage first", "finish only"],
)
def test_every_non_empty_delta_is_counted_once(
    server_url: str, script: list[Any], counted: int
) -> None:
    scripted.SCRIPTS["alpha"] = script
    before = _deltas(server_url)
    response = _post(server_url)
    assert response.status_code == 200
    assert response.content.endswith(b"data: [DONE]\n\n")
    assert _deltas(server_url) == before + counted


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (["\ud800", "never lost"], "\ufffdnever lost"),
        (["smile \ud83d", "\ude00 never lost"], "smile \U0001f600 never lost"),
    ],
    ids=["lone", "split pair"],
)
def test_a_lone_surrogate_first_delta_is_mended_not_an_error(
    server_url: str, script: list[Any], expected: str
) -> None:
    """Issue 24 item 4: a pair split across deltas is joined, a lone surrogate becomes
    U+FFFD; the answer and [DONE] follow."""
    scripted.SCRIPTS["alpha"] = [*script, FinishReason("stop")]
    response = _post(server_url)
    assert response.status_code == 200
    frames = [f for f in response.content.split(b"\n\n") if f]
    assert frames[-1] == b"data: [DONE]"
    texts = [
        json.loads(f[len(b"data: ") :])["choices"][0]["delta"].get("content") for f in frames[:-1]
    ]
    assert "".join(t for t in texts if t) == expected
    assert scripted.LOG["alpha"].wait_closed(5)


@pytest.mark.anyio
async def test_the_first_frame_goes_out_with_the_head_before_the_producer_runs() -> None:
    sent: list[dict[str, Any]] = []
    at_start: list[int] = []

    async def produce(outbox: Any) -> None:
        at_start.append(len(sent))
        outbox.put(b"data: 2\n\n")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    response = EventStreamResponse(produce, headers={}, first=b"data: 1\n\n")
    with anyio.fail_after(5):
        await response(scope, receive, send)
    assert at_start == [2]  # the head and the first frame were sent already
    assert sent[0]["type"] == "http.response.start"
    assert [m["body"] for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n"]
    assert [m["more_body"] for m in sent[1:]] == [True, False]


class _Recorder:
    """Stands in for the exchange log's writer (``Context.exchanges``)."""

    def __init__(self) -> None:
        self.entries: list[Any] = []

    def enqueue(self, entry: Any) -> None:
        self.entries.append(entry)


@pytest.mark.parametrize(
    ("script", "answer", "finish"),
    [
        (["Hel", "lo", FinishReason("length")], "Hello", "length"),
        (["", "x", FinishReason("stop")], "x", "stop"),
        ([FinishReason("content_filter")], "", "content_filter"),
        ([FinishReason("max_new_tokens")], "", "stop"),
    ],
)
def test_the_logged_exchange_has_the_whole_answer_and_its_finish(
    base_config: Any, script: list[Any], answer: str, finish: str
) -> None:
    from tests.server.conftest import run_app

    from llmrelay.server import create_app

    app = create_app(config=base_config)
    recorder = _Recorder()
    app.state.llmrelay.exchanges = recorder
    scripted.SCRIPTS["alpha"] = script
    with run_app(app) as url:
        assert _post(url).status_code == 200
        assert scripted.LOG["alpha"].wait_closed(5)
        deadline = time.monotonic() + 5
        while not recorder.entries and time.monotonic() < deadline:
            time.sleep(0.01)  # written right after the stream is closed
    (entry,) = recorder.entries
    assert entry.answer == answer
    assert entry.finish_reason == finish
    assert entry.error is None
