"""A Server-Sent Events response that notices a client going away at once.

Starlette's ``StreamingResponse`` only listens for ``http.disconnect`` on ASGI < 2.4;
on 2.4 it learns of a disconnect at the next write, which never comes while an upstream
is silent. This response always watches ``receive`` beside the writer and, when the
client leaves, cancels the writer and closes the frame generator (which closes the
llmrelay stream, and with it the upstream connection) under a shielded scope.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["EventStreamResponse", "sse_data"]


def sse_data(payload: str) -> bytes:
    """One SSE event carrying ``payload`` (a single line) as ``data``."""
    return b"data: " + payload.encode() + b"\n\n"


class EventStreamResponse(Response):
    """``text/event-stream`` body taken from an async generator of frames."""

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        headers: dict[str, str],
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        # Like StreamingResponse: no ``body``, so no Content-Length header.
        self.status_code = 200
        self.background = None
        self.init_headers(headers)
        self._frames = frames
        self._on_close = on_close  # runs last, even if the frames never started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the frames until they end or the client disconnects."""
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            group.cancel_scope.cancel()
                            return

                group.start_soon(watch)
                try:
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                    )
                    async for frame in self._frames:
                        await send({"type": "http.response.body", "body": frame, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except OSError:  # the client went away while we wrote
                    pass
                finally:
                    group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self._frames.aclose()
                finally:
                    if self._on_close is not None:
                        await self._on_close()
