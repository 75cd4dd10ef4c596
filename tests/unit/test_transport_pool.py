"""The tuned connection pool of the httpx transport (``llmrelay._pool``).

httpcore's own assignment pass hands one idle connection to every request of a burst
(each but one then retries), closes idle connections as surplus whenever more than
``max_keepalive_connections`` connections are open, and checks every connection for
expiry on every pass. These tests pin what the replacement must keep doing and what it
must stop doing. The replacement overrides a private method of httpcore 1.0 and reads its
pool state (``pyproject.toml`` bounds httpcore to ``<1.1``): the burst and keep-alive
tests fail when httpcore stops calling it (its own pass then runs: 39 retries, 10 idle
connections kept), every request fails when the state it reads is renamed, and
``test_httpcore_s_own_pass_still_needs_replacing`` fails when httpcore fixes its pass
(then this module can go).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpcore
import httpx
import pytest
from httpcore._async import http11
from httpcore._async.connection_pool import AsyncPoolRequest

from llmrelay import Timeouts
from llmrelay._pool import HttpcoreTransport, _TunedPool
from llmrelay._transport import make_http_client
from tests.fakes._server import serve
from tests.fakes.raw import RawServer, one_response_server

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def raw() -> Iterator[tuple[RawServer, str]]:
    server = RawServer()
    server.route("/quick", chunks=[b"a", b"b"])
    server.route("/slow", chunks=[b"a", b"b"], delay=0.05)
    server.route("/held", chunks=[b"a", b"b"], delay=1.0)
    with serve(server) as url:
        yield server, url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = make_http_client(Timeouts(connect=5, read=10))
    yield client
    await client.aclose()


def _pool(client: httpx.AsyncClient) -> Any:
    """The pool of http:// origins of llmrelay's httpx transport."""
    transport = client._transport  # type: ignore[attr-defined]
    assert isinstance(transport, HttpcoreTransport)
    return transport._plain


@pytest.fixture
def unavailable(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the ``ConnectionNotAvailable`` retries of httpcore's HTTP/1.1 connections."""
    hits: list[int] = []
    original = http11.AsyncHTTP11Connection.handle_async_request

    async def counting(self: Any, request: httpcore.Request) -> httpcore.Response:
        try:
            return await original(self, request)
        except httpcore.ConnectionNotAvailable:
            hits.append(1)
            raise

    monkeypatch.setattr(http11.AsyncHTTP11Connection, "handle_async_request", counting)
    return hits


async def _read(client: httpx.AsyncClient, url: str) -> bytes:
    async with client.stream("GET", url) as response:
        return await response.aread()


async def test_a_burst_after_a_warm_request_never_shares_the_idle_connection(
    raw: tuple[RawServer, str], http: httpx.AsyncClient, unavailable: list[int]
) -> None:
    _, url = raw
    assert await _read(http, url + "/quick") == b"ab"  # one idle keep-alive connection
    bodies: list[bytes] = []

    async def one() -> None:
        bodies.append(await _read(http, url + "/slow"))

    async with anyio.create_task_group() as tg:
        for _ in range(40):  # all started in the same event-loop tick
            tg.start_soon(one)
    assert bodies == [b"ab"] * 40
    assert unavailable == []  # httpcore's own pass: 39 retries here
    # the warm connection served one of them; the rest opened one each and went idle
    assert len(_pool(http).connections) == 40
    assert all(c.is_idle() for c in _pool(http).connections)


async def test_idle_connections_are_kept_up_to_the_bound_while_many_are_busy(
    raw: tuple[RawServer, str], http: httpx.AsyncClient
) -> None:
    _, url = raw
    async with anyio.create_task_group() as tg:
        for _ in range(90):
            tg.start_soon(_read, http, url + "/held")
        await anyio.sleep(0.3)  # 90 connections busy for another second or so
        quick = [_read(http, url + "/quick") for _ in range(60)]
        assert await asyncio.gather(*quick) == [b"ab"] * 60
        connections = _pool(http).connections
        # 150 open, 60 of them idle: within the keep-alive bound of 100, so all kept
        # (httpcore counts every connection against the bound and keeps only 10)
        assert sum(c.is_idle() for c in connections) == 60
        assert len(connections) == 150
    # once the held ones end too: 150 idle, the 50 oldest closed
    assert len(_pool(http).connections) == 100


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    """A kept-alive connection closed by the server is dropped when picked, not used."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # keep-alive from the client's point of view, but gone

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = make_http_client(Timeouts(connect=5, read=5))
    try:
        for _ in range(3):  # well within one expiry sweep of each other
            response = await client.get(f"http://127.0.0.1:{port}/")
            assert response.text == "ok"
            await asyncio.sleep(0.05)  # the server's FIN arrives
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert connections == 3


async def test_the_pool_still_honours_a_connection_limit() -> None:
    """``max_connections`` (not set by llmrelay, but kept working): requests queue."""
    client = make_http_client(Timeouts(connect=5, read=5))
    pool = _pool(client)
    pool._max_connections = 2
    server = RawServer()
    server.route("/slow", chunks=[b"x"], delay=0.05)
    try:
        with serve(server) as url:
            results = await asyncio.gather(*[_read(client, url + "/slow") for _ in range(6)])
            assert results == [b"x"] * 6
            assert len(pool.connections) <= 2
    finally:
        await client.aclose()


async def test_connections_closed_after_their_response_leave_the_pool() -> None:
    """``connection: close`` answers: each connection is closed, then dropped by the pool."""
    answer = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
    async with one_response_server(answer) as url:
        client = make_http_client(Timeouts(connect=5, read=5))
        try:
            for _ in range(3):
                assert (await client.get(url)).text == "ok"
            assert _pool(client).connections == []
        finally:
            await client.aclose()


async def test_httpcore_s_own_pass_still_needs_replacing(
    raw: tuple[RawServer, str], unavailable: list[int]
) -> None:
    """httpx's own transport (httpcore's pass) on the burst of the first test: its
    requests are refused and retried. When this fails, httpcore's pass was fixed and
    ``llmrelay._pool``'s replacement (a reach into httpcore's internals) can go."""
    _, url = raw
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)
    ) as http:
        assert await _read(http, url + "/quick") == b"ab"
        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(_read, http, url + "/slow")
    assert len(unavailable) > 0


class _FakeConnection:
    """What the pass asks of an httpcore HTTP/1.1 connection."""

    def __init__(self, origin: httpcore.Origin, *, busy: bool) -> None:
        self.origin = origin
        self.busy = busy
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed

    def has_expired(self) -> bool:
        return self.closed

    def is_idle(self) -> bool:
        return not self.closed and not self.busy

    def is_available(self) -> bool:
        return not self.closed and not self.busy

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self.origin


async def test_an_idle_connection_closed_to_make_room_is_not_handed_out() -> None:
    """A connection limit reached (2: one busy h0 connection, one idle h1), a request to
    h0 and one to h1 waiting: the idle h1 connection is closed to make room for h0, so
    the h1 request waits (it was handed the closed connection: ``ValueError``)."""
    pool = _TunedPool(max_connections=2)
    h0, h1 = (httpcore.Request("GET", f"http://h{i}:80/x") for i in (0, 1))
    busy = _FakeConnection(h0.url.origin, busy=True)
    idle = _FakeConnection(h1.url.origin, busy=False)
    made: list[_FakeConnection] = []

    def create(origin: httpcore.Origin) -> _FakeConnection:
        made.append(_FakeConnection(origin, busy=False))
        return made[-1]

    pool.create_connection = create  # type: ignore[method-assign]
    pool._connections = [busy, idle]  # type: ignore[list-item]
    first, second = AsyncPoolRequest(h0), AsyncPoolRequest(h1)
    pool._requests = [first, second]
    closing = pool._assign_requests_to_connections()
    assert closing == [idle]
    assert first.connection is made[0]
    assert made[0].origin == h0.url.origin
    assert second.connection is None  # waits for a connection to be released
    assert pool._connections == [busy, made[0]]


async def test_a_request_retried_after_connection_not_available_is_served(
    raw: tuple[RawServer, str], http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpcore clears a request's connection and runs the pass again when the connection
    refuses it (``ConnectionNotAvailable``): the pass must see it waiting again."""
    _, url = raw
    original = http11.AsyncHTTP11Connection.handle_async_request
    refused: list[int] = []

    async def refuse_once(self: Any, request: httpcore.Request) -> httpcore.Response:
        if not refused:
            refused.append(1)
            raise httpcore.ConnectionNotAvailable()
        return await original(self, request)

    monkeypatch.setattr(http11.AsyncHTTP11Connection, "handle_async_request", refuse_once)
    with anyio.fail_after(5):
        bodies = await asyncio.gather(*(_read(http, url + "/quick") for _ in range(3)))
    assert bodies == [b"ab"] * 3
    assert refused == [1]
