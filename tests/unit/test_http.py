"""The HTTP layer against a real loopback server sending scripted bytes, on both transports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest

from llmrelay import Timeouts, errors
from llmrelay._http import (
    INFLATE_STEP,
    aiter_body,
    aiter_ndjson,
    aiter_sse,
    aiter_sse_data,
    make_http_client,
    raise_for_status,
    read_bounded,
    translate_errors,
)
from llmrelay._transport import ACCEPT_ENCODING, BODY_DONE_EXTENSION
from tests.fakes._server import serve
from tests.fakes.raw import RawServer
from tests.transports import TRANSPORTS

pytestmark = pytest.mark.anyio
SSE = {"content-type": "text/event-stream; charset=utf-8"}


@pytest.fixture(scope="module")
def raw() -> Iterator[tuple[RawServer, str]]:
    server = RawServer()
    with serve(server) as url:
        yield server, url


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def http(transport: str) -> AsyncIterator[httpx.AsyncClient]:
    client = make_http_client(Timeouts(connect=2, read=2), transport=transport)
    yield client
    await client.aclose()


async def _sse(http: httpx.AsyncClient, url: str) -> list[tuple[str, str, str]]:
    async with http.stream("GET", url) as response:
        return [(e.event, e.data, e.id) async for e in aiter_sse(response, provider="p", model="m")]


async def test_sse_follows_the_spec(raw: tuple[RawServer, str], http: httpx.AsyncClient) -> None:
    server, url = raw
    body = (
        b": hi\n\n"
        b"event: output\nid: 1:0\ndata: a\ndata: b\n\n"
        b"data:no-space\n\n"
        b"data: eyes\ndata: \n\n"
        b"data: \n\n"
        b"retry: 100\r\ndata: crlf\r\n\r\n"
        b"event: done\nid: 1:1\ndata: {}\n\n"
    )
    # one byte per write: fields and values split across reads
    server.route("/sse", headers=SSE, chunks=[body[i : i + 1] for i in range(len(body))])
    events = await _sse(http, f"{url}/sse")
    assert events[0] == ("output", "a\nb", "1:0")
    assert [data for _, data, _ in events[1:5]] == ["no-space", "eyes\n", "", "crlf"]
    assert events[-1] == ("done", "{}", "1:1")


async def test_sse_rejects_other_content_types(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/html", headers={"content-type": "text/html"}, chunks=[b"<html>"])
    with pytest.raises(errors.ProtocolError, match="text/event-stream"):
        await _sse(http, f"{url}/html")


async def test_ndjson_lines_blank_lines_and_a_bad_line(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/nd", chunks=[b'{"a": 1}\n\n{"b"', b": 2}\n", b"not json\n"])
    seen = []
    with pytest.raises(errors.ProtocolError) as info:
        async with http.stream("GET", f"{url}/nd") as response:
            async for item in aiter_ndjson(response, provider="p", model="m"):
                seen.append(item)
    assert seen == [{"a": 1}, {"b": 2}]
    # the malformed frame is kept for the library's caller, never quoted in the message
    assert "not json" not in str(info.value)
    assert "8 bytes" in str(info.value)
    assert info.value.body == "not json"


@pytest.mark.parametrize(
    ("status", "body", "cls", "retryable", "message"),
    [
        (
            400,
            b'{"error": ["Error in `inputs`: field required"]}',
            errors.InvalidRequestError,
            False,
            "field required",
        ),
        (
            401,
            b'{"title":"Unauthenticated","detail":"You did not pass a valid authentication token","status":401}',
            errors.AuthenticationError,
            False,
            "valid authentication token",
        ),
        (
            403,
            b'{"error": {"code": 403, "message": "Forbidden"}}',
            errors.AuthenticationError,
            False,
            "Forbidden",
        ),
        (
            404,
            b'{"error":"Model x does not exist"}',
            errors.ModelNotFoundError,
            False,
            "does not exist",
        ),
        (
            422,
            b"Failed to deserialize the JSON body",
            errors.InvalidRequestError,
            False,
            "HTTP 422 with a non-JSON body (35 bytes)",
        ),
        (429, b'{"error":"Rate limit reached"}', errors.RateLimitError, True, "Rate limit"),
        (500, b'{"error":"unknown error"}', errors.ProviderUnavailable, True, "unknown error"),
        (
            503,
            b'{"error":"Model X is currently loading","estimated_time": 20.0}',
            errors.ProviderUnavailable,
            True,
            "loading",
        ),
    ],
)
async def test_status_mapping(
    raw: tuple[RawServer, str],
    http: httpx.AsyncClient,
    status: int,
    body: bytes,
    cls: type[errors.ProviderError],
    retryable: bool,
    message: str,
) -> None:
    server, url = raw
    server.route(f"/s{status}", status=status, headers={"retry-after": "7"}, chunks=[body])
    async with http.stream("GET", f"{url}/s{status}") as response:
        with pytest.raises(cls) as info:
            await raise_for_status(response, provider="prov", model="mod")
    error = info.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.retryable is retryable
    assert error.body == body.decode()
    assert message in str(error)
    assert str(error).startswith("prov (mod): ")
    if cls is errors.RateLimitError:
        assert error.retry_after == 7.0  # type: ignore[attr-defined]


async def test_connection_refused_is_a_transport_error(http: httpx.AsyncClient) -> None:
    with pytest.raises(errors.TransportError) as info, translate_errors("p", "m"):
        await http.get("http://127.0.0.1:9/")
    assert info.value.retryable
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_read_timeout_is_a_provider_timeout(
    raw: tuple[RawServer, str], transport: str
) -> None:
    server, url = raw
    server.route("/slow", headers=SSE, chunks=[b"data: 1\n\n", b"data: 2\n\n"], delay=0.5)
    client = make_http_client(Timeouts(connect=2, read=0.2), transport=transport)
    try:
        with (
            pytest.raises(errors.ProviderTimeout, match="read timeout"),
            translate_errors("p", "m"),
        ):
            await _sse(client, f"{url}/slow")
    finally:
        await client.aclose()


async def test_drop_mid_body_is_a_transport_error(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/drop", headers=SSE, chunks=[b"data: 1\n\n", b"data: 2\n\n"], abort_after=1)
    received: list[str] = []
    with pytest.raises(errors.TransportError), translate_errors("p", "m"):
        async with http.stream("GET", f"{url}/drop") as response:
            async for event in aiter_sse(response, provider="p", model="m"):
                received.append(event.data)
    assert received == ["1"]


async def test_secrets_in_headers_never_reach_errors(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/auth", status=401, chunks=[b'{"detail": "bad token"}'])
    async with http.stream(
        "GET", f"{url}/auth", headers={"authorization": "Bearer hf_SECRET123"}
    ) as response:
        with pytest.raises(errors.AuthenticationError) as info:
            await raise_for_status(response, provider="p", model="m")
    assert server.seen_headers["/auth"]["authorization"] == "Bearer hf_SECRET123"
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in repr(info.value)


async def test_requests_go_through_the_configured_proxy(
    raw: tuple[RawServer, str], transport: str
) -> None:
    server, url = raw
    # a proxy receives the absolute URL as the request target
    server.route("http://provider.invalid/via-proxy", chunks=[b"proxied"])
    client = make_http_client(Timeouts(connect=2, read=2), proxy=url, transport=transport)
    try:
        # the host does not exist: only the proxy (our loopback server) can answer
        response = await client.get("http://provider.invalid/via-proxy")
    finally:
        await client.aclose()
    assert response.text == "proxied"
    assert server.seen_headers["http://provider.invalid/via-proxy"]["host"] == "provider.invalid"


def test_bad_proxy_is_a_config_error(transport: str) -> None:
    with pytest.raises(errors.ConfigError, match="proxy"):
        make_http_client(Timeouts(), proxy="ftp://127.0.0.1:1", transport=transport)


async def test_socks_proxy_is_supported_by_the_httpx_transport() -> None:
    import httpcore

    client = make_http_client(Timeouts(), proxy="socks5://127.0.0.1:1080")
    try:
        transport = client._transport  # type: ignore[attr-defined]
        assert isinstance(transport._plain, httpcore.AsyncSOCKSProxy)
    finally:
        await client.aclose()


# -- compressed bodies: inflated in bounded steps ---------------------------------------------


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def _deflate(data: bytes, *, raw: bool) -> bytes:
    import zlib

    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


EVENTS = b"".join(b"data: token %d \xe2\x80\xa8 caf\xc3\xa9\n\n" % i for i in range(500))


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", _gzip),
        ("x-gzip", _gzip),
        ("deflate", lambda d: _deflate(d, raw=False)),
        ("deflate", lambda d: _deflate(d, raw=True)),  # httpx accepts headerless deflate too
    ],
)
@pytest.mark.parametrize("size", [1, 7, 4096])
async def test_compressed_event_streams_decode_exactly(
    raw: tuple[RawServer, str], http: httpx.AsyncClient, encoding: str, pack: Any, size: int
) -> None:
    server, url = raw
    body = pack(EVENTS)
    server.route(
        "/z",
        headers={**SSE, "content-encoding": encoding},
        chunks=[body[i : i + size] for i in range(0, len(body), size)],
    )
    events = await _sse(http, f"{url}/z")
    assert [e[1] for e in events] == [f"token {i} \u2028 café" for i in range(500)]
    assert server.seen_headers["/z"]["accept-encoding"] == ACCEPT_ENCODING


async def test_a_gzip_bomb_is_inflated_in_bounded_steps(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    bomb = _gzip(b"\0" * (64 * 1024 * 1024))  # ~64 KiB on the wire, 64 MiB inflated
    assert len(bomb) < 128 * 1024
    server.route("/bomb", headers={"content-encoding": "gzip"}, chunks=[bomb])
    sizes: list[int] = []
    async with http.stream("GET", f"{url}/bomb") as response:
        async for piece in aiter_body(response, provider="p", model="m"):
            sizes.append(len(piece))
            if sum(sizes) > 8 * INFLATE_STEP:
                break
    assert max(sizes) <= INFLATE_STEP
    assert sum(sizes) > 8 * INFLATE_STEP  # the bomb did inflate, one bounded step at a time


async def test_a_bomb_body_over_the_limit_is_refused_without_inflating_it_whole(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    import tracemalloc

    server, url = raw
    server.route("/bomb", headers={"content-encoding": "gzip"}, chunks=[_gzip(b"\0" * 2**26)])
    tracemalloc.start()
    try:
        async with http.stream("GET", f"{url}/bomb") as response:
            with pytest.raises(errors.ProtocolError, match="larger than 100000 bytes"):
                await read_bounded(response, provider="p", model="m", limit=100_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


async def test_an_encoding_nobody_asked_for_is_refused(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/br", headers={**SSE, "content-encoding": "br"}, chunks=[b"\x0b\x02\x80hi\x03"])
    with pytest.raises(errors.ProtocolError, match="'br' was not asked for"):
        await _sse(http, f"{url}/br")


async def test_a_corrupt_gzip_body_is_a_protocol_error(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    body = bytearray(_gzip(EVENTS))
    body[20:30] = b"\xff" * 10
    server.route("/bad", headers={**SSE, "content-encoding": "gzip"}, chunks=[bytes(body)])
    with pytest.raises(errors.ProtocolError, match="gzip body does not decode"):
        await _sse(http, f"{url}/bad")


async def test_a_body_read_already_is_given_as_it_was_read(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/read", headers={"content-encoding": "gzip"}, chunks=[_gzip(b'{"a": 1}')])
    async with http.stream("GET", f"{url}/read") as response:
        await response.aread()
        assert await read_bounded(response, provider="p", model="m") == b'{"a": 1}'


# -- the transports' chunk reader (READ_EXTENSION): the read path of every stream ---------------


@pytest.fixture
def no_aiter_raw(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx's ``Response.aiter_raw`` fails: a read through it is a test failure."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("read through httpx's Response.aiter_raw")

    monkeypatch.setattr(httpx.Response, "aiter_raw", refuse)


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_bodies_are_read_through_the_transports_chunk_reader(
    raw: tuple[RawServer, str], http: httpx.AsyncClient, no_aiter_raw: None, encoding: str
) -> None:
    server, url = raw
    pack = _gzip if encoding == "gzip" else bytes
    body = pack(EVENTS)
    headers = {"content-encoding": encoding}
    server.route(
        "/c", headers={**SSE, **headers}, chunks=[body[i : i + 7] for i in range(0, len(body), 7)]
    )
    events = await _sse(http, f"{url}/c")
    assert [e[1] for e in events] == [f"token {i} \u2028 café" for i in range(500)]
    lines = pack(b'{"a": 1}\n\n{"b": 2}')
    server.route("/j", headers=headers, chunks=[lines[:3], lines[3:]])
    async with http.stream("GET", f"{url}/j") as response:
        assert [x async for x in aiter_ndjson(response, provider="p", model="m")] == [
            {"a": 1},
            {"b": 2},
        ]
    server.route("/b", headers=headers, chunks=[pack(b"x" * 5000)])
    async with http.stream("GET", f"{url}/b") as response:
        with pytest.raises(errors.ProtocolError, match="larger than 4096 bytes"):
            await read_bounded(response, provider="p", model="m", limit=4096)


async def test_reading_to_the_end_closes_the_response_and_reuses_the_connection(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/e", headers=SSE, chunks=[b"data: 1\n\n", b"data: 2\n\n"])
    peers: list[Any] = []
    for _ in range(2):
        async with http.stream("GET", f"{url}/e") as response:
            assert not response.is_closed
            data = [e.data async for e in aiter_sse(response, provider="p", model="m")]
            # as aiter_raw does: at the end of the body the connection is released
            assert response.is_closed
            assert response.is_stream_consumed
            peers.append(server.seen_peers["/e"])
    assert data == ["1", "2"]
    assert peers[0] == peers[1]  # one connection, kept alive and reused


async def test_leaving_mid_stream_closes_the_connection(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/m", headers=SSE, chunks=[b"data: %d\n\n" % i for i in range(50)], delay=0.02)
    peers: list[Any] = []
    for _ in range(2):
        async with http.stream("GET", f"{url}/m") as response:
            async for event in aiter_sse(response, provider="p", model="m"):
                assert event.data == "0"
                break
        assert response.is_closed
        peers.append(server.seen_peers["/m"])
    assert peers[0] != peers[1]  # the half-read connection was not put back in the pool


async def test_a_reset_mid_stream_names_the_url_and_is_typed(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    server, url = raw
    server.route("/r", headers=SSE, chunks=[b"data: 1\n\n", b"data: 2\n\n"], abort_after=1)
    with pytest.raises(errors.TransportError) as info, translate_errors("p", "m"):
        async with http.stream("GET", f"{url}/r?key=hf_SECRET") as response:
            async for _ in aiter_sse(response, provider="p", model="m"):
                pass
    assert isinstance(info.value.__cause__, httpx.TransportError)
    assert f"{url}/r" in str(info.value)  # the request is attached, as httpx attaches it
    assert "SECRET" not in str(info.value)  # the query is not


MIXED = (
    b"\xef\xbb\xbfdata: a\xff\xfe\n\n: c\r\nevent: e\ndata: 1\ndata:2\r\n\r\nid: 9\n\n"
    b"retry: 5\ndata\n\n" + EVENTS[:2000]
)


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize("size", [1, 7, 4096])
async def test_sse_data_is_each_events_data_as_received(
    raw: tuple[RawServer, str], http: httpx.AsyncClient, encoding: str, size: int
) -> None:
    """``aiter_sse_data`` gives ``aiter_sse``'s events' data, undecoded, on any chunking."""
    server, url = raw
    body = _gzip(MIXED) if encoding == "gzip" else MIXED
    headers = {**SSE, "content-encoding": encoding}
    server.route(
        "/d", headers=headers, chunks=[body[i : i + size] for i in range(0, len(body), size)]
    )
    async with http.stream("GET", f"{url}/d") as response:
        data = [d async for d in aiter_sse_data(response, provider="p", model="m")]
        assert response.is_closed  # read to the end: released, as aiter_sse does
    assert all(type(d) is bytes for d in data)
    events = await _sse(http, f"{url}/d")
    assert [d.decode("utf-8", "replace") for d in data] == [e[1] for e in events]
    assert data[:4] == [b"a\xff\xfe", b"1\n2", b"", b""]
    server.route("/t", headers={"content-type": "text/plain"}, chunks=[b"data: x\n\n"])
    async with http.stream("GET", f"{url}/t") as response:
        with pytest.raises(errors.ProtocolError, match="text/event-stream"):
            await anext(aiter_sse_data(response, provider="p", model="m"))


async def test_aiohttps_reader_is_read_without_the_wrapper(
    raw: tuple[RawServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On aiohttp, events are read with ``readany`` itself (``RAW_READ_EXTENSION``), and a
    failure is still the httpx exception naming the request."""
    from llmrelay import _aiohttp

    async def refuse(self: Any) -> bytes:
        raise AssertionError("read through the transport's wrapper")

    monkeypatch.setattr(_aiohttp._Body, "read", refuse)
    server, url = raw
    server.route("/w", headers=SSE, chunks=[b"data: 1\n\n", b"data: 2\n\n"])
    server.route("/x", headers=SSE, chunks=[b"data: 1\n\n", b"data: 2\n\n"], abort_after=1)
    http = make_http_client(Timeouts(connect=2, read=2), transport="aiohttp")
    try:
        for read in (aiter_sse, aiter_sse_data):
            async with http.stream("GET", f"{url}/w") as response:
                assert len([x async for x in read(response, provider="p", model="m")]) == 2
            with pytest.raises(httpx.TransportError) as info:
                async with http.stream("GET", f"{url}/x") as response:
                    async for _ in read(response, provider="p", model="m"):
                        pass
            assert info.value.request.url == f"{url}/x"
            assert not isinstance(info.value.__cause__, httpx.HTTPError)  # aiohttp's, mapped
    finally:
        await http.aclose()


async def test_aiohttps_body_done_tells_when_the_whole_body_is_in(
    raw: tuple[RawServer, str],
) -> None:
    """``BODY_DONE_EXTENSION`` (the drain after ``[DONE]`` skips its timer on it): false
    while the body's end has not arrived, true once it has, the rest still readable."""
    server, url = raw
    server.route("/e", headers=SSE, chunks=[b"data: 1\n\n", b"data: 2\n\n"], delay=0.2)
    http = make_http_client(Timeouts(connect=2, read=2), transport="aiohttp")
    try:
        async with http.stream("GET", f"{url}/e") as response:
            done = response.extensions[BODY_DONE_EXTENSION]
            assert done() is False  # the head only: the chunks come 0.2 s apart
            for _ in range(500):  # the end arrives about 0.4 s later (10 s at most)
                if done():
                    break
                await asyncio.sleep(0.02)
            assert done() is True
            # all of it buffered: read to its end without waiting
            with anyio.fail_after(0.1):
                data = [d async for d in aiter_sse_data(response, provider="p", model="m")]
            assert data == [b"1", b"2"]
    finally:
        await http.aclose()
    async with httpx.AsyncClient() as plain:  # a client of another transport: absent
        async with plain.stream("GET", f"{url}/e") as response:
            assert BODY_DONE_EXTENSION not in response.extensions


async def test_a_client_without_the_chunk_reader_reads_through_httpx() -> None:
    """``http_client=``: a plain httpx client (no ``READ_EXTENSION``) still reads."""
    body = _gzip(EVENTS)

    def handle(request: httpx.Request) -> httpx.Response:
        headers = {**SSE, "content-encoding": "gzip"} if request.url.path == "/z" else SSE
        return httpx.Response(
            200, headers=headers, content=body if request.url.path == "/z" else b"data: 1\n\n"
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        assert [e[1] for e in await _sse(http, "http://x/z")][:2] == [
            "token 0 \u2028 café",
            "token 1 \u2028 café",
        ]
        assert await _sse(http, "http://x/p") == [("message", "1", None)]


@pytest.mark.parametrize(
    "items",
    [
        [(b"Content-Type", b"text/event-stream; charset=utf-8")],
        [(b"content-type", b"Text/Event-Stream"), (b"CONTENT-ENCODING", b" GZip ")],
        [(b"Content-Type", b"a"), (b"content-type", b"b")],  # twice: httpx joins them
        [(b"Content-Encoding", b"gzip"), (b"content-encoding", b"br")],
        [(b"Content-Type", b"text/event-stream; x=\xc3\xa9")],  # not ASCII
        [(b"X-Other", b"\xff"), (b"Content-Type", b"text/plain")],
        [],
    ],
)
def test_the_stream_heads_are_httpxs_values(items: list[tuple[bytes, bytes]]) -> None:
    from llmrelay._http import _stream_heads

    response = httpx.Response(200, headers=items)
    expected = (
        response.headers.get("content-type", ""),
        response.headers.get("content-encoding", ""),
    )
    assert _stream_heads(httpx.Response(200, headers=items)) == expected


async def test_closing_attaches_the_request_to_an_error_as_httpx_does() -> None:
    from llmrelay._http import _close

    class Failing(httpx.AsyncByteStream):
        closed = 0

        async def aclose(self) -> None:
            self.closed += 1
            raise httpx.ReadError("reset on close")

    request = httpx.Request("GET", "http://x/y")
    for close in (httpx.Response.aclose, _close):
        stream = Failing()
        response = httpx.Response(200, stream=stream, request=request)
        with pytest.raises(httpx.ReadError) as info:
            await close(response)
        assert info.value.request is request
        assert response.is_closed
        await close(response)  # once only
        assert stream.closed == 1
