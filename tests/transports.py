"""Both HTTP transports, for the suites that must hold on each (contract, faults, HTTP).

A conftest that imports ``transport`` and ``transport_setting`` runs each of its tests
once per transport: ``LLMRELAY_TRANSPORT`` is set for the test (so ``AsyncClient``,
``Client``, the CLI and the server all use it), and ``http_client`` builds the bare
``httpx.AsyncClient`` a provider-direct test hands a provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from llmrelay import Timeouts
from llmrelay._transport import make_http_client

TRANSPORTS = ("httpx", "aiohttp")


@pytest.fixture(scope="session", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """The transport of this run of the test (session-scoped: each runs as one block)."""
    return str(request.param)


@pytest.fixture(autouse=True)
def transport_setting(transport: str, isolated_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``LLMRELAY_TRANSPORT`` for the test (after the root conftest clears LLMRELAY_*)."""
    monkeypatch.setenv("LLMRELAY_TRANSPORT", transport)


def http_client(transport: str, timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
    """llmrelay's HTTP client on ``transport`` (default timeouts, or ``timeout``)."""
    client = make_http_client(Timeouts(), transport=transport)
    if timeout is not None:
        client.timeout = timeout
    return client


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
"""A raw HTTP/1.1 server's per-connection coroutine (asyncio streams)."""


@asynccontextmanager
async def server(handle: Handler) -> AsyncIterator[str]:
    """An asyncio server on 127.0.0.1 running ``handle`` per connection; yields its URL."""
    # a backlog for the 150 connections at once of the connection-limit test (asyncio's
    # default of 100 drops SYNs under load: connect timeouts, not the client's limit)
    srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    try:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    finally:
        srv.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """One request's head and its ``Content-Length`` body, as bytes."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    return head + (await reader.readexactly(length) if length else b"")
