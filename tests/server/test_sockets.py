"""Sockets ``llmrelay serve`` never holds for ever: a head deadline (idle and slowloris
sockets), a body deadline (a body shorter than its Content-Length), a connection cap, the
keep-alive timeout, and X-Forwarded-For only from a trusted proxy.

The server runs as ``serve`` runs it (``uvicorn_options``), over both uvicorn protocol
classes (httptools, h11), with short limits.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import uvicorn
from tests.fakes._server import TestServer

from llmrelay.server import ServerConfig, SocketLimits, create_app, uvicorn_options
from llmrelay.server._sockets import BoundedH11Protocol, BoundedHttpToolsProtocol

HEAD = 0.5
BODY = 0.5
KEEP_ALIVE = 0.5
CAP = 8
# a bounded wait: several times each limit, far below "for ever"
PATIENCE = 5.0

PROTOCOLS = {"httptools": BoundedHttpToolsProtocol, "h11": BoundedH11Protocol}


@contextlib.contextmanager
def _serve(
    config: ServerConfig, protocol: str, limits: SocketLimits, trusted: tuple[str, ...] = ()
) -> Iterator[tuple[str, int]]:
    options = uvicorn_options(limits, trusted)
    options["http"] = functools.partial(PROTOCOLS[protocol], limits=limits)
    server = TestServer(
        uvicorn.Config(
            create_app(config=config),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            access_log=False,
            **options,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield "127.0.0.1", server.port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request: pytest.FixtureRequest) -> str:
    if request.param == "httptools":
        pytest.importorskip("httptools")
    return str(request.param)


@pytest.fixture
def server(base_config: ServerConfig, protocol: str) -> Iterator[tuple[str, int]]:
    limits = SocketLimits(
        head_timeout=HEAD, keep_alive=KEEP_ALIVE, max_connections=CAP, max_head_bytes=8192
    )
    with _serve(replace(base_config, body_timeout=BODY), protocol, limits) as address:
        yield address


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=PATIENCE)
    return sock


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and the seconds that took."""
    started = time.monotonic()
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"still open after {PATIENCE} s; got {data!r}") from None
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - started


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body): on a loaded machine the body
    may arrive in a later segment than the head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the head ended; got {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the body ended; got {data + body!r}"
        body += chunk
    assert len(body) == length, f"more than one response: {head!r} {body!r}"
    return head + b"\r\n\r\n" + body


def _ok(address: tuple[str, int]) -> None:
    host, port = address
    assert httpx.get(f"http://{host}:{port}/health", timeout=5).status_code == 200


def test_a_socket_that_sends_nothing_is_closed_after_the_head_timeout(
    server: tuple[str, int],
) -> None:
    with _connect(server) as sock:
        data, took = _read_until_closed(sock)
    assert data == b""  # nothing was asked: nothing to answer
    assert HEAD * 0.8 <= took < PATIENCE
    _ok(server)


def test_a_slowloris_head_is_cut_with_408(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        with contextlib.suppress(OSError):  # one header line each 0.1 s, never the end
            for i in range(int(PATIENCE / 0.1)):
                sock.sendall(f"X-Drip-{i}: y\r\n".encode())
                time.sleep(0.1)
        data, _ = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < PATIENCE
    _ok(server)


def test_a_slow_head_after_a_kept_alive_answer_is_cut_too(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = _read_response(sock)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /health HTTP/1.1\r\n")  # the next request, then only a drip
        with contextlib.suppress(OSError):
            for i in range(int(PATIENCE / 0.1)):
                sock.sendall(f"X-Drip-{i}: y\r\n".encode())
                time.sleep(0.1)
        data, _ = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ")


def test_an_idle_kept_alive_connection_is_closed(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200 ")
        data, took = _read_until_closed(sock)
    assert data == b""
    assert took < PATIENCE


def test_a_body_shorter_than_its_length_gets_408_and_the_connection_closes(
    server: tuple[str, int],
) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"model": "alpha:m"'
        )
        data, took = _read_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"request_timeout" in body
    assert BODY * 0.8 <= took < PATIENCE
    _ok(server)


def test_a_trickled_body_gets_408_within_the_body_timeout(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        started = time.monotonic()
        with contextlib.suppress(OSError):  # a byte each 0.05 s: never idle, never done
            for _ in range(int(PATIENCE / 0.05)):
                sock.sendall(b" ")
                time.sleep(0.05)
        data, _ = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < PATIENCE


def test_a_whole_request_with_a_large_body_in_one_read_is_served(
    server: tuple[str, int],
) -> None:
    host, port = server
    # well past max_head_bytes, arriving with the head: only the head is bounded
    filler = "x" * 200_000
    response = httpx.post(
        f"http://{host}:{port}/v1/chat/completions",
        json={"model": "alpha:m", "messages": [{"role": "user", "content": filler}]},
        timeout=10,
    )
    assert response.status_code == 200


def test_an_unfinished_head_larger_than_the_bound_is_refused(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
        data, took = _read_until_closed(sock)
    assert took < HEAD  # at once, not at the head timeout
    # ours (httptools) says 431; h11's own bound (the same size) says 400
    assert data.startswith((b"HTTP/1.1 431 ", b"HTTP/1.1 400 "))


def test_connections_beyond_the_cap_are_refused_and_service_resumes(
    base_config: ServerConfig, protocol: str
) -> None:
    limits = SocketLimits(head_timeout=30, keep_alive=30, max_connections=CAP)
    with _serve(base_config, protocol, limits) as address:
        idle = [_connect(address) for _ in range(CAP)]
        try:
            time.sleep(0.2)  # all accepted
            with _connect(address) as extra:
                data, took = _read_until_closed(extra)
            assert data.startswith(b"HTTP/1.1 503 ")
            assert b"too many connections" in data
            assert took < PATIENCE
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + PATIENCE
        while True:  # the server sees the closes
            try:
                _ok(address)
                break
            except (AssertionError, httpx.HTTPError):
                assert time.monotonic() < deadline
                time.sleep(0.05)


def _limited(address: tuple[str, int], forwarded: Any) -> list[int]:
    host, port = address
    return [
        httpx.post(
            f"http://{host}:{port}/v1/chat/completions",
            json={"model": "alpha:m", "messages": [{"role": "user", "content": "hi"}]},
            headers={"X-Forwarded-For": forwarded(i)},
            timeout=10,
        ).status_code
        for i in range(5)
    ]


def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    base_config: ServerConfig, protocol: str
) -> None:
    config = replace(base_config, rate_limit=2, rate_window=1e6)
    limits = SocketLimits()
    random_address = lambda i: f"198.51.100.{secrets.randbelow(250) + 1}"  # noqa: E731
    # before: uvicorn's default trusts 127.0.0.1, so a local client picked its bucket
    with _serve(config, protocol, limits) as address:
        assert _limited(address, random_address) == [200, 200, 429, 429, 429]
    with _serve(config, protocol, limits, trusted=("127.0.0.1",)) as address:
        assert _limited(address, lambda i: f"198.51.100.{i + 1}") == [200] * 5
        # the rightmost address not a trusted proxy: 198.51.100.1, its 2nd and 3rd requests
        assert _limited(address, lambda i: "198.51.100.1, 127.0.0.1")[:2] == [200, 429]


@pytest.mark.parametrize("cls", sorted(PROTOCOLS.values(), key=str))
def test_the_uvicorn_internals_the_limits_read_are_still_there(cls: Any) -> None:
    """``_sockets`` reads undocumented uvicorn attributes: this fails when they change."""
    import inspect

    base = cls.__mro__[2]
    source = inspect.getsource(base)
    for needle in (
        "self.connections = server_state.connections",
        "self.cycle = RequestResponseCycle(",
        "def on_response_complete(self)",
        "self.transport = transport",
    ):
        assert needle in source, needle
    cycle = inspect.getsource(inspect.getmodule(base).RequestResponseCycle)  # type: ignore[union-attr]
    assert "self.response_complete = False" in cycle
    assert "self.more_body = True" in cycle  # BODY_RECEIVED: set False at the message's end
    assert "self.cycle.more_body = False" in source


def test_the_default_cap_keeps_half_the_descriptors_for_upstreams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    from llmrelay.server import default_max_connections

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert default_max_connections() == 480
    assert SocketLimits().max_connections == 480
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY, -1))
    assert default_max_connections() == (65536 - 64) // 2
