"""A fake that answers each path with scripted raw bytes: for the HTTP layer's tests.

``RawServer.route(path, status=..., headers=..., chunks=[...], abort_after=N)`` scripts a
response; chunks are sent as separate writes (so decoders see split fields); with
``abort_after`` the app raises after N chunks and the connection is dropped with the
chunked body unterminated; ``delay`` sleeps before each chunk (for read timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio


@dataclass
class RawRoute:
    """One scripted response."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    delay: float = 0.0
    abort_after: int | None = None


@dataclass
class RawServer:
    """ASGI app answering ``routes[path]``; records request headers per path."""

    routes: dict[str, RawRoute] = field(default_factory=dict)
    seen_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    seen_peers: dict[str, Any] = field(default_factory=dict)
    """The client address (host, port) of the last request per path: its connection."""

    def route(self, path: str, **kwargs: Any) -> None:
        self.routes[path] = RawRoute(**kwargs)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        path = scope["path"]
        self.seen_headers[path] = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen_peers[path] = scope.get("client")
        spec = self.routes.get(path, RawRoute(status=404, chunks=[b"not found"]))
        await send(
            {
                "type": "http.response.start",
                "status": spec.status,
                "headers": [(k.encode(), v.encode()) for k, v in spec.headers.items()],
            }
        )
        for index, chunk in enumerate(spec.chunks):
            if spec.abort_after is not None and index == spec.abort_after:
                raise RuntimeError("scripted disconnect")
            if spec.delay:
                await anyio.sleep(spec.delay)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


@contextlib.asynccontextmanager
async def one_response_server(response: bytes) -> AsyncIterator[str]:
    """A plain asyncio server on 127.0.0.1 (no ASGI layer): each connection reads one
    request head, gets ``response`` (raw HTTP/1.1 bytes) and is closed. Yields its URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()
        await server.wait_closed()
