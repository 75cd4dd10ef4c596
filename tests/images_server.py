"""A loopback HTTP server of test images (for the image-fetch tests and URL FileData).

Routes: ``/dot.png`` (a 3x2 PNG), ``/big.png`` (a PNG of ``BIG`` bytes),
``/text`` (``text/plain``), ``/liar.png`` (``image/png`` that is not one),
``/to?url=U`` (302 to ``U``), ``/loop`` (302 to itself), ``/slow.png`` (waits 2 s).
``hits`` counts the requests by path and keeps each one's ``Host`` header.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.fakes._server import serve

__all__ = ["BIG", "ImageServer", "png", "serve_images"]

BIG = 300_000


def png(width: int, height: int) -> bytes:
    """A valid opaque PNG of one colour (RGB, 8 bits)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    rows = (b"\x00" + b"\xd0\x40\x20" * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


DOT = png(3, 2)


@dataclass
class ImageServer:
    """The served app and what it saw."""

    url: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    hosts: list[str] = field(default_factory=list)


@contextmanager
def serve_images() -> Iterator[ImageServer]:
    """Serve the routes above on ``127.0.0.1``; yield the ``ImageServer``."""
    state = ImageServer()

    async def handle(request: Request) -> Response:
        path = request.url.path
        state.hits[path] += 1
        state.hosts.append(request.headers.get("host", ""))
        if path == "/dot.png":
            return Response(DOT, media_type="image/png")
        if path == "/big.png":
            return Response(DOT + b"\0" * (BIG - len(DOT)), media_type="image/png")
        if path == "/text":
            return Response("not an image", media_type="text/plain")
        if path == "/liar.png":
            return Response(b"<html>not a png</html>", media_type="image/png")
        if path == "/to":
            return RedirectResponse(request.query_params["url"], 302)
        if path == "/loop":
            return RedirectResponse("/loop", 302)
        if path == "/slow.png":
            await anyio.sleep(2)  # the server waits for it when it stops
            return Response(DOT, media_type="image/png")
        return Response("no", 404)

    app = Starlette(routes=[Route("/{path:path}", handle)])
    with serve(app) as url:
        state.url = url
        yield state
