"""``stream_chat`` over each transport's reader, with ``aiter_sse_data``'s behaviour.

Each case runs on both transports (aiohttp's reader taken by ``aiter_sse_data`` itself,
httpx's through its chunk reader) and must give the same: the events, the connection
back to the pool after ``[DONE]`` and what follows it (drained, even while still
arriving), a line over the bound as ``ProtocolError``, a cut as a mapped error, a
failure after ``[DONE]`` ignored, a wrong content type refused.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from llmrelay import Timeouts, _http, errors
from llmrelay._transport import make_http_client
from llmrelay.providers._openai_stream import stream_chat
from llmrelay.types import FinishReason, Usage
from tests.fakes._server import serve
from tests.fakes.raw import RawServer
from tests.transports import TRANSPORTS

pytestmark = pytest.mark.anyio

SSE = {"content-type": "text/event-stream"}


def frame(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


ANSWER = [
    frame({"role": "assistant", "content": ""}),
    frame({"content": "Hel"}),
    frame({"content": "lo"}) + frame({"content": "!"}),  # two events in one chunk
    frame({}, "stop"),
    b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}}\n\n',
    b"data: [DONE]\n\n",
]
EXPECTED = ["Hel", "lo", "!", Usage(3, 3, None), FinishReason("stop")]


@pytest.fixture(scope="module")
def raw() -> Iterator[tuple[RawServer, str]]:
    server = RawServer()
    with serve(server) as url:
        yield server, url


@pytest.fixture(params=TRANSPORTS)
async def http(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    client = make_http_client(Timeouts(connect=2, read=2), transport=str(request.param))
    try:
        yield client
    finally:
        await client.aclose()


async def chat(http: httpx.AsyncClient, url: str) -> list[Any]:
    source = stream_chat(
        http, url, {"model": "m"}, headers={}, provider="p", model="m", translate=True
    )
    return [event async for event in source]


async def test_events_then_the_connection_goes_back_to_the_pool(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    after = [b": after [DONE]\n\n", b"data: ignored\n\n"]
    server.route("/a", headers=SSE, chunks=ANSWER)
    server.route("/b", headers=SSE, chunks=ANSWER + after)
    server.route("/c", headers=SSE, chunks=[b"".join(ANSWER)])  # all in one chunk
    # what follows [DONE] still on its way when [DONE] is read: waited for (drained)
    server.route("/d", headers=SSE, chunks=ANSWER + after, delay=0.05)
    assert await chat(http, f"{url}/a") == EXPECTED
    assert await chat(http, f"{url}/b") == EXPECTED
    assert await chat(http, f"{url}/c") == EXPECTED
    assert await chat(http, f"{url}/d") == EXPECTED
    assert await chat(http, f"{url}/a") == EXPECTED
    # one connection: each body was read to its end (drained) and released
    peers = server.seen_peers
    assert peers["/a"] == peers["/b"] == peers["/c"] == peers["/d"]


async def test_a_line_over_the_bound_is_a_protocol_error(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    long = b"data: " + b"x" * (_http.DEFAULT_MAX_LINE + 10)  # no end of line yet
    server.route("/long", headers=SSE, chunks=[ANSWER[1], long])
    with pytest.raises(errors.ProtocolError, match=r"event stream: .*line") as caught:
        await chat(http, f"{url}/long")
    assert caught.value.provider == "p"
    # the same after [DONE]: ignored (the answer is finished)
    server.route("/late", headers=SSE, chunks=[*ANSWER, long])
    assert await chat(http, f"{url}/late") == EXPECTED


async def test_a_cut_is_a_mapped_error_and_a_cut_after_done_is_ignored(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/cut", headers=SSE, chunks=ANSWER, abort_after=2)
    with pytest.raises(errors.ProviderError) as caught:
        await chat(http, f"{url}/cut")
    assert isinstance(caught.value.__cause__, httpx.TransportError)
    assert caught.value.provider == "p"
    server.route("/cut-late", headers=SSE, chunks=[*ANSWER, b": more\n\n"], abort_after=6)
    assert await chat(http, f"{url}/cut-late") == EXPECTED


async def test_a_wrong_content_type_is_refused(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/t", headers={"content-type": "text/plain"}, chunks=ANSWER)
    with pytest.raises(errors.ProtocolError, match="text/event-stream"):
        await chat(http, f"{url}/t")
