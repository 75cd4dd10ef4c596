"""The streamed frames are those of the path they replaced, byte for byte where they can be.

``llmrelay serve`` used to stream ``client.chat.completions.create(stream=True)`` and write
``data: {chunk.model_dump_json()}`` per chunk, then ``data: [DONE]`` (or one error frame).
It now sends ``create(stream=True).sse()``: frame bytes built from the events (``ChunkFrames``,
the one OpenAI chat encoder in ``llmrelay._wire.openai_chat``). Here the
old path runs in-process on the same scripted providers and both outputs are compared:
same chunks in the same order, one id and one ``created`` per stream, same model, finish,
usage, ``[DONE]`` or error frame; byte-identical once the id and time are set aside,
except the line separators U+2028, U+2029 and U+0085, which are now escaped (JSON-equal).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.server import scripted
from tests.server.scripted import HOLD, Busy

import llmrelay
from llmrelay._wire.openai_chat import ChunkFrames
from llmrelay._wire.sse import json_string
from llmrelay.server._errors import error_reply
from llmrelay.types import ConversationState, FinishReason, Reasoning, Usage

HI = [{"role": "user", "content": "hi"}]


async def _old_frames(client_kwargs: dict[str, Any], include_usage: bool) -> list[bytes]:
    """What the server sent before: the facade's chunks, serialised one by one."""
    async with llmrelay.AsyncClient(**client_kwargs) as client:
        stream = await client.chat.completions.create(
            model="alpha:m",
            messages=HI,
            stream=True,
            stream_options={"include_usage": include_usage},
        )
        frames = []
        try:
            async for chunk in stream:
                frames.append(b"data: " + chunk.model_dump_json().encode() + b"\n\n")
            frames.append(b"data: [DONE]\n\n")
        except Exception as exc:
            frames.append(b"data: " + json.dumps(error_reply(exc).body).encode() + b"\n\n")
        finally:
            await stream.aclose()
    return frames


def _new_frames(server_url: str, include_usage: bool) -> list[bytes]:
    response = httpx.post(
        server_url + "/v1/chat/completions",
        json={
            "model": "alpha:m",
            "messages": HI,
            "stream": True,
            "stream_options": {"include_usage": include_usage},
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    body = response.content
    assert body.endswith(b"\n\n")
    return [block + b"\n\n" for block in body.split(b"\n\n")[:-1]]


def _normalised(frames: list[bytes]) -> tuple[list[bytes], str, str]:
    """Frames with the stream's one id and one ``created`` replaced; (frames, model, id)."""
    chunks = [json.loads(f[len(b"data: ") :]) for f in frames if f.startswith(b"data: {")]
    chunks = [c for c in chunks if "id" in c]
    assert chunks, frames
    ids = {c["id"] for c in chunks}
    created = {c["created"] for c in chunks}
    models = {c["model"] for c in chunks}
    assert len(ids) == 1, ids
    assert len(created) == 1, created
    assert len(models) == 1, models
    (id_,), (when,), (model,) = ids, created, models
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", id_)
    assert isinstance(when, int)
    out = [
        f.replace(json.dumps(id_).encode(), b'"ID"').replace(
            b'"created":%d,' % when, b'"created":0,'
        )
        for f in frames
    ]
    return out, model, id_


def _json(frames: list[bytes]) -> list[Any]:
    return [
        f[len(b"data: ") : -2].decode() if f == b"data: [DONE]\n\n" else json.loads(f[6:-2])
        for f in frames
    ]


SCRIPTS: dict[str, list[Any]] = {
    "text": scripted.ok_script("Hello", ", world", "!"),
    "text without usage": scripted.ok_script("one", " two", usage=False),
    "empty and spaces": ["", " ", "a", "", FinishReason("stop")],
    "reasoning": [
        Reasoning("Let me think."),
        Reasoning(" Still thinking."),
        "The answer",
        " is 4.",
        Usage(prompt_tokens=7, completion_tokens=None, total_tokens=None),
        FinishReason("length"),
    ],
    "finish not OpenAI's": ["x", Usage(completion_tokens=1), FinishReason("max_new_tokens")],
    "usage total given": ["x", Usage(1, 2, 30), FinishReason("content_filter")],
    "error mid-stream": [
        "Partial",
        " answer",
        llmrelay.ProviderUnavailable("alpha is down", provider="alpha", model="m"),
    ],
    # the events up to the first frame are taken before the response starts
    "empty answer": [FinishReason("stop")],
    "state and usage before the text": [
        ConversationState("alpha", {"turn": 1}),
        Usage(prompt_tokens=3, completion_tokens=None, total_tokens=None),
        "a",
        " b",
        FinishReason("stop"),
    ],
    "reasoning only": [Reasoning("hmm"), Usage(1, 1, 2), FinishReason("stop")],
    "unicode": [
        'quote " backslash \\ slash / tab \t newline \n nul \x00 unit sep \x1f del \x7f',
        "é ü 中文 😀 \ufeff",
        "line\u2028separator\u2029paragraph\x85next",
        "</script><!-- -->",
        FinishReason("stop"),
    ],
}


@pytest.mark.parametrize("include_usage", [False, True], ids=["no usage", "include_usage"])
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_frames_equal_the_chunks_of_the_previous_path(
    server_url: str, base_config: Any, name: str, include_usage: bool
) -> None:
    scripted.SCRIPTS["alpha"] = SCRIPTS[name]
    old = asyncio.run(_old_frames(dict(base_config.client_kwargs), include_usage))
    new = _new_frames(server_url, include_usage)
    old_n, old_model, _ = _normalised(old)
    new_n, new_model, _ = _normalised(new)
    assert new_model == old_model == "alpha:m"
    assert _json(new_n) == _json(old_n)  # the same chunks, in the same order
    if name != "unicode":
        assert new_n == old_n  # and the same bytes
    else:  # only the line separators differ: escaped now
        for char in ("\u2028", "\u2029", "\x85"):
            assert char.encode() not in b"".join(new)
        unescape = [(b"\\u2028", "\u2028"), (b"\\u2029", "\u2029"), (b"\\u0085", "\x85")]
        joined = b"".join(new_n)
        for escaped, char in unescape:
            joined = joined.replace(escaped, char.encode())
        assert joined == b"".join(old_n)
    ended = new[-1]
    if name == "error mid-stream":
        assert b"[DONE]" not in b"".join(new)
        assert json.loads(ended[6:])["error"]["message"]
    else:
        assert ended == b"data: [DONE]\n\n"


def test_a_stream_keeps_one_id_created_and_model_and_differs_from_the_next(
    server_url: str,
) -> None:
    ids = set()
    for _ in range(2):
        _, model, id_ = _normalised(_new_frames(server_url, True))
        assert model == "alpha:m"
        ids.add(id_)
    assert len(ids) == 2


@given(st.text())
def test_json_string_is_a_json_string_on_one_line(text: str) -> None:
    try:
        encoded = json_string(text)
    except UnicodeEncodeError:  # lone surrogates: not UTF-8 (the stream ends in an error)
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        return
    assert json.loads(encoded) == text
    assert encoded.decode().splitlines() == [encoded.decode()]  # no line break of any kind
    assert encoded == json.dumps(text, ensure_ascii=False).encode().replace(
        "\u2028".encode(), b"\\u2028"
    ).replace("\u2029".encode(), b"\\u2029").replace("\x85".encode(), b"\\u0085")


@pytest.mark.parametrize("first", ["text", "reasoning", "finish"])
def test_chunk_frames_first_chunk_carries_the_role_whatever_its_kind(first: str) -> None:
    frames = ChunkFrames(id="chatcmpl-x", created=1, model="p:m")
    if first == "text":
        frame = frames.text("a")
    elif first == "reasoning":
        frame = frames.reasoning("r")
    else:
        frame = frames.finish("stop")
    assert json.loads(frame[6:])["choices"][0]["delta"]["role"] == "assistant"
    assert json.loads(frames.text("b")[6:])["choices"][0]["delta"]["role"] is None


def test_the_first_frame_is_sent_before_more_events_are_parsed(server_url: str) -> None:
    """Frames are coalesced, but the first one never waits for the events parsed after it."""
    scripted.SCRIPTS["alpha"] = ["first", Busy(0.6), "second", HOLD]
    body = json.dumps({"model": "alpha:m", "messages": HI, "stream": True}).encode()
    port = int(server_url.rsplit(":", 1)[1])
    seen: dict[bytes, float] = {}
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b'"second"' not in received:
            data = sock.recv(65536)
            assert data, "the server closed the stream early"
            received += data
            for word in (b'"first"', b'"second"'):
                if word in received:
                    seen.setdefault(word, time.monotonic())
    assert seen[b'"second"'] - seen[b'"first"'] > 0.4  # "first" did not wait for "second"
    assert scripted.LOG["alpha"].wait_closed(5)


@pytest.mark.anyio
async def test_a_slow_client_holds_the_producer_back_and_gets_every_frame_in_order() -> None:
    """While the client reads nothing, at most about ``BATCH`` frames wait in the server
    (the producer is paused, as the old one-frame-per-send loop was); then all arrive."""
    import anyio

    from llmrelay.server._sse import BATCH, EventStreamResponse

    expected = [b"data: %d\n\n" % i for i in range(20 * BATCH)]
    produced = 0

    async def produce(outbox: Any) -> None:
        nonlocal produced
        for frame in expected:
            produced += 1
            if outbox.put(frame):
                await outbox.pause()

    gate = anyio.Event()
    bodies: list[bytes] = []
    ended = anyio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])
            if not message["more_body"]:
                ended.set()
            await gate.wait()  # a client that reads nothing until the gate opens

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    async with anyio.create_task_group() as group:
        group.start_soon(EventStreamResponse(produce, headers={}), scope, receive, send)
        await anyio.sleep(0.2)
        assert produced <= 2 * BATCH + 1  # held back, not the whole answer buffered
        gate.set()
        with anyio.fail_after(5):
            await ended.wait()
        group.cancel_scope.cancel()
    assert b"".join(bodies) == b"".join(expected)
    assert all(len(body) <= BATCH * len(expected[-1]) for body in bodies)
