"""llmrelay's own HTTP client takes a short way through httpx's client layer, unchanged.

``llmrelay._transport._Client.build_request`` builds the request httpx builds from the
same arguments without httpx's merging passes, and ``_Client.send`` hands it to the
transport without the auth, redirect, hook and cookie layers (issue 21). Checked here:

* the built request equals httpx's (method, URL, header names, values and order, body,
  extensions) for every argument set the short way takes -- this fails when httpx
  changes how it builds a request (``pyproject.toml`` bounds httpx below 0.30) -- and
  the argument sets it does not take go httpx's way;
* on both transports against a loopback server: ``response.request`` is set, the
  client's timeouts apply to a request built without them, a transport error names the
  request, an unread body is closed on a failure (the connection is not kept), the
  connection is reused after a read (none leaked), a closed client refuses, httpx's log
  line is written; auth, hooks, a per-call ``follow_redirects`` and URL credentials still
  go httpx's way (each is then applied).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

import httpx
import pytest

from llmrelay import Timeouts, errors
from llmrelay._transport import _Client, make_http_client, translate_errors
from tests.transports import TRANSPORTS, read_head, server

pytestmark = pytest.mark.anyio


URL = "http://127.0.0.1:9/v1/chat/completions?x=1"
PAYLOAD = {"model": "m", "messages": [{"role": "user", "content": "é \u2028 \U0001f600"}]}

SHORT: list[tuple[str, dict[str, Any]]] = [
    ("POST", {"json": PAYLOAD}),
    ("POST", {"json": PAYLOAD, "headers": {"Authorization": "Bearer k", "X-A": "1"}}),
    ("POST", {"json": [1, "two", None], "headers": {"content-type": "application/x+json"}}),
    ("POST", {"json": {}, "headers": {"Content-Length": "2"}}),
    ("POST", {"content": b'{"a": 1}', "headers": {"Content-Type": "application/json"}}),
    ("POST", {"content": "é text"}),
    ("POST", {"content": b""}),
    ("POST", {}),
    ("PUT", {"headers": {"transfer-encoding": "chunked"}}),
    ("GET", {}),
    ("get", {"headers": {"ACCEPT": "text/event-stream", "User-Agent": "mine"}}),
    ("GET", {"headers": [("X-Dup", "1"), ("x-dup", "2"), ("Accept-Encoding", "identity")]}),
    ("GET", {"headers": httpx.Headers({"Host": "other.example", "Connection": "close"})}),
    ("GET", {"headers": {"X-Bytes": b"\xc3\xa9"}}),
    ("DELETE", {"timeout": 3.5}),
    ("POST", {"json": PAYLOAD, "timeout": httpx.Timeout(1, read=None)}),
    ("GET", {"headers": {}}),
]
"""Method and keyword arguments of requests built the short way."""

HTTPX_WAY: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", URL, {"params": {"y": "2"}}),
    ("POST", URL, {"data": {"field": "v"}}),
    ("POST", URL, {"files": {"f": ("a.txt", b"x")}}),
    ("POST", URL, {"content": b"raw", "json": {"ignored": True}}),
    ("POST", URL, {"content": iter([b"a", b"b"])}),
    ("GET", URL, {"extensions": {"trace": None}}),
    ("GET", URL, {"cookies": {"c": "1"}}),
]
"""Argument sets httpx builds itself."""


def _same(ours: httpx.Request, theirs: httpx.Request) -> None:
    # the same attributes (llmrelay._httpx_objects builds them without __init__) ...
    assert vars(ours).keys() == vars(theirs).keys()
    assert vars(ours.headers) == vars(theirs.headers)
    assert ours.headers._list is not theirs.headers._list
    # ... and the same request
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert ours.headers.raw == theirs.headers.raw
    assert ours.content == theirs.content
    assert ours.extensions == theirs.extensions
    assert isinstance(ours.stream, httpx.AsyncByteStream)


@pytest.mark.parametrize(("method", "kwargs"), SHORT)
@pytest.mark.parametrize("url", [URL, httpx.URL(URL)], ids=["str", "URL"])
async def test_the_short_build_is_httpx_build(
    method: str, kwargs: dict[str, Any], url: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = make_http_client(Timeouts(connect=2, read=7))
    try:
        theirs = httpx.AsyncClient.build_request(http, method, url, **kwargs)

        def refused(*args: Any, **kw: Any) -> None:
            raise AssertionError("httpx's build_request was called")

        monkeypatch.setattr(httpx.AsyncClient, "build_request", refused)
        ours = http.build_request(method, url, **kwargs)
    finally:
        await http.aclose()
    _same(ours, theirs)


@pytest.mark.parametrize(("method", "url", "kwargs"), HTTPX_WAY)
async def test_other_arguments_go_httpx_way(method: str, url: str, kwargs: dict[str, Any]) -> None:
    http = make_http_client(Timeouts())
    calls: list[str] = []
    original = httpx.AsyncClient.build_request

    def spy(self: httpx.AsyncClient, *args: Any, **kw: Any) -> httpx.Request:
        calls.append(args[0])
        return original(self, *args, **kw)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(httpx.AsyncClient, "build_request", spy)
            request = http.build_request(method, url, **kwargs)
    finally:
        await http.aclose()
    assert calls == [method]
    assert request.method == method


async def test_a_client_with_a_base_url_or_params_builds_httpx_way() -> None:
    http = make_http_client(Timeouts())
    try:
        http.base_url = httpx.URL("http://base.example/api/")
        assert http.build_request("GET", "v1/x").url == "http://base.example/api/v1/x"
        http.params = httpx.QueryParams({"k": "v"})
        assert http.build_request("GET", URL).url.params["k"] == "v"
    finally:
        await http.aclose()


# -- the send, on both transports -------------------------------------------------------


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Counting:
    """A keep-alive server answering ``ok``; counts connections and keeps each head."""

    def __init__(self, answer: bytes = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok") -> None:
        self.connections = 0
        self.heads: list[bytes] = []
        self.answer = answer

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while True:
            try:
                self.heads.append(await read_head(reader))
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            writer.write(self.answer)
            await writer.drain()
        writer.close()


def _short_sends(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Refuse httpx's own ``send``; record the requests the short way sends."""
    sent: list[httpx.Request] = []
    short = _Client.send

    def refused(*args: Any, **kw: Any) -> None:
        raise AssertionError("httpx's send was called")

    async def spy(self: _Client, request: httpx.Request, **kw: Any) -> httpx.Response:
        sent.append(request)
        return await short(self, request, **kw)

    monkeypatch.setattr(httpx.AsyncClient, "send", refused)
    monkeypatch.setattr(_Client, "send", spy)
    return sent


async def test_the_response_has_its_request_and_the_connection_is_reused(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = Counting()
    sent = _short_sends(monkeypatch)
    async with server(counting) as url:
        http = make_http_client(Timeouts(connect=2, read=2), transport=transport)
        try:
            for _ in range(3):
                response = await http.post(url + "/a", json={"n": 1})
                assert response.text == "ok"
                assert response.request is sent[-1]
                assert response.is_closed
            async with http.stream("GET", url + "/b") as streamed:
                assert streamed.request is sent[-1]
                assert await streamed.aread() == b"ok"
            assert streamed.is_closed
        finally:
            await http.aclose()
    assert len(sent) == 4
    assert counting.connections == 1  # every response gave its connection back
    assert counting.heads[0].startswith(b"POST /a HTTP/1.1\r\n")


async def test_a_request_without_a_timeout_gets_the_clients(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(5)
        writer.close()

    sent = _short_sends(monkeypatch)
    async with server(silent) as url:
        http = make_http_client(Timeouts(connect=2, read=0.2), transport=transport)
        request = httpx.Request("GET", url + "/")  # built without the client: no timeout
        try:
            with pytest.raises(httpx.ReadTimeout):
                await asyncio.wait_for(http.send(request), 3)
        finally:
            await http.aclose()
    assert sent == [request]
    assert request.extensions["timeout"]["read"] == 0.2


async def test_a_transport_error_names_the_request(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _short_sends(monkeypatch)
    http = make_http_client(Timeouts(connect=2, read=2), transport=transport)
    try:
        request = http.build_request("GET", f"http://127.0.0.1:{port}/x?secret=1")
        with pytest.raises(httpx.ConnectError) as info:
            await http.send(request)
        assert info.value.request is request
        with pytest.raises(errors.TransportError) as mapped, translate_errors("p", "m"):
            await http.get(f"http://127.0.0.1:{port}/x?secret=1")
    finally:
        await http.aclose()
    assert f"127.0.0.1:{port}/x" in str(mapped.value)
    assert "secret" not in str(mapped.value)


async def test_a_body_cut_short_closes_the_response(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    _short_sends(monkeypatch)
    async with server(reset) as url:
        http = make_http_client(Timeouts(connect=2, read=2), transport=transport)
        responses: list[httpx.Response] = []
        handle = http._one_transport.handle_async_request

        async def keep(request: httpx.Request) -> httpx.Response:
            responses.append(await handle(request))
            return responses[-1]

        monkeypatch.setattr(http._one_transport, "handle_async_request", keep)
        try:
            with pytest.raises(httpx.TransportError):
                await http.get(url + "/")
        finally:
            await http.aclose()
    assert len(responses) == 1
    assert responses[0].is_closed


async def test_a_closed_client_refuses(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _short_sends(monkeypatch)
    http = make_http_client(Timeouts(), transport=transport)
    request = http.build_request("GET", URL)
    await http.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await http.send(request)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_httpx_log_line_is_written(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _short_sends(monkeypatch)
    logger = logging.getLogger("httpx")  # its level is restored by the root conftest
    monkeypatch.setattr(logger, "disabled", False)  # whatever an earlier test configured
    records = _Records()
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    async with server(Counting()) as url:
        http = make_http_client(Timeouts(connect=2, read=2), transport=transport)
        try:
            await http.get(url + "/logged")
        finally:
            await http.aclose()
            logger.removeHandler(records)
    assert any("/logged" in m and "200 OK" in m for m in records.messages), records.messages


async def test_auth_hooks_redirects_and_url_credentials_go_httpx_way(transport: str) -> None:
    redirect = b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /next\r\ncontent-length: 0\r\n\r\n"
    counting = Counting(redirect)
    async with server(counting) as url:
        http = make_http_client(Timeouts(connect=2, read=2), transport=transport)
        try:
            plain = await http.get(url + "/a")
            assert plain.status_code == 307  # not followed
            with pytest.raises(httpx.TooManyRedirects):  # followed when asked per call
                await http.get(url + "/b", follow_redirects=True)
            await http.get(url.replace("://", "://user:pw@") + "/c")
            await http.get(url + "/d", auth=("u", "p"))
            seen: list[str] = []

            async def hook(request: httpx.Request) -> None:
                seen.append(request.url.path)

            http.event_hooks = {"request": [hook], "response": []}
            await http.get(url + "/e")
        finally:
            await http.aclose()
    heads = [h.decode() for h in counting.heads]
    assert "authorization" not in heads[0].lower()
    assert heads[1].startswith("GET /b ")
    assert heads[2].startswith("GET /next ")
    assert any(
        h.startswith("GET /c ") and "authorization: basic dxnlcjpwdw==" in h.lower() for h in heads
    )
    assert any(h.startswith("GET /d ") and "authorization: basic dtpw" in h.lower() for h in heads)
    assert seen == ["/e"]


async def test_stream_closes_the_response_when_the_block_raises(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = Counting()
    _short_sends(monkeypatch)
    async with server(counting) as url:
        http = make_http_client(Timeouts(connect=2, read=2), transport=transport)
        try:
            with pytest.raises(LookupError):
                async with http.stream("GET", url + "/a", headers={"X-A": "1"}) as response:
                    raise LookupError
            assert response.is_closed
            async with http.stream("POST", url + "/b", json={"k": 1}) as response:
                assert await response.aread() == b"ok"
        finally:
            await http.aclose()
    assert counting.heads[0].startswith(b"GET /a ")
    assert b"x-a: 1" in counting.heads[0].lower()
    assert counting.heads[1].endswith(b'\r\n\r\n{"k":1}')


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
async def test_the_response_is_an_httpx_response_of_the_heads_bytes(
    transport: str, version: bytes
) -> None:
    """Both transports build the response without ``httpx.Response.__init__``: the same
    attributes as httpx's own, every header as received (order, case, duplicates)."""
    head = version + (
        b" 200 OK\r\ncontent-length: 2\r\nX-Dup: 1\r\nx-dup: 2\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nX-Latin: caf\xe9\r\n\r\nok"
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(head)
        await writer.drain()
        writer.close()

    async with server(handle) as url:
        http = make_http_client(Timeouts(connect=2, read=2), transport=transport)
        try:
            async with http.stream("GET", url + "/h") as response:
                reference = httpx.Response(
                    200,
                    headers=response.headers.raw,
                    stream=response.stream,
                    request=response.request,
                    extensions=response.extensions,
                )
                assert vars(response).keys() == vars(reference).keys()
                assert vars(response.headers) == vars(reference.headers)
                assert response.headers.raw == [
                    (b"content-length", b"2"),
                    (b"X-Dup", b"1"),
                    (b"x-dup", b"2"),
                    (b"Content-Type", b"text/plain; charset=utf-8"),
                    (b"X-Latin", b"caf\xe9"),
                ]
                assert response.headers.get_list("x-dup") == ["1", "2"]
                assert response.http_version == version.decode()
                assert response.reason_phrase == "OK"
                assert await response.aread() == b"ok"
        finally:
            await http.aclose()
