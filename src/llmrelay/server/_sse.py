"""Server-Sent Events: the streaming response that sends a stream's frames.

The frames themselves come from the public facade (``AsyncChatCompletionStream.sse()``:
the one OpenAI chunk encoder); this module only sends them.

``EventStreamResponse`` sends the frames a producer emits. It notices a client going away
at once: Starlette's ``StreamingResponse`` only listens for ``http.disconnect`` on
ASGI < 2.4; on 2.4 it learns of a disconnect at the next write, which never comes while
an upstream is silent. This response always watches ``receive`` beside the writer and,
when the client leaves, cancels the producer (which closes the llmrelay stream, and with
it the upstream connection) and runs ``on_close`` under a shielded scope.

Frames are coalesced without waiting for any: the producer runs in its own task and only
appends to a list; the writer wakes when the producer waits (for the upstream) and sends
every frame emitted so far in one ``send`` (one socket write). A frame is never held for
a later one to arrive: the writer runs as soon as the producer yields to the event loop,
which it also does after the first frame and after every ``BATCH`` frames parsed from one
read (so a large read is not parsed whole before its first frame goes out).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ._sockets import BATCH_WRITES, ON_DISCONNECT

__all__ = [
    "BATCH",
    "KEEPALIVE_FRAME",
    "QUEUED_KEEPALIVE",
    "EventStreamResponse",
    "Outbox",
    "sse_data",
]

BATCH = 32
"""Frames the producer queues at most before the writer takes them (then it waits)."""
QUEUED_KEEPALIVE = 15.0
"""Seconds without a frame after which a queued stream gets a ``: keep-alive`` comment
(proxies commonly close a response silent for 60 s)."""
KEEPALIVE_FRAME = b": keep-alive\n\n"


def sse_data(payload: str) -> bytes:
    """One SSE event carrying ``payload`` (a single line) as ``data``."""
    return b"data: " + payload.encode() + b"\n\n"


class Outbox:
    """Frames a producer queued and the writer has not taken yet.

    ``put(frame)`` queues a frame (never blocks) and returns ``True`` when the producer
    should ``await pause()`` before it parses more: after the stream's first frame (time
    to first token) and once ``BATCH`` frames are queued. ``pause()`` lets the writer run
    and, with ``BATCH`` frames queued, waits until it has taken them: frames parsed from
    one large read go out in batches, and a slow client holds the producer back (at most
    ``BATCH`` frames wait here) instead of letting it buffer the whole answer.
    """

    __slots__ = ("closed", "frames", "halted", "keepalive", "started", "taken", "waiter")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None  # the writer waits for frames
        self.taken: asyncio.Future[None] | None = None  # the producer waits for the writer
        self.closed = False
        self.halted = False
        """The writer stops without ending the body (the client left, the producer failed)."""
        self.started = False
        self.keepalive = 0.0
        """Seconds of silence after which the writer sends ``KEEPALIVE_FRAME`` (0: never);
        the producer sets it while the upstream request is queued."""

    def put(self, frame: bytes) -> bool:
        """Queue ``frame``; ``True``: ``await pause()`` before parsing more."""
        frames = self.frames
        frames.append(frame)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if not self.started:
            self.started = True
            return True
        return len(frames) >= BATCH

    async def pause(self) -> None:
        """Let the writer run; with ``BATCH`` frames queued, until it has taken them."""
        if len(self.frames) >= BATCH:
            taken = self.taken = asyncio.get_running_loop().create_future()
            await taken
        else:
            await asyncio.sleep(0)

    def take(self) -> bytes:
        """The queued frames as one body (the writer's side); wakes a paused producer."""
        frames = self.frames
        body = frames[0] if len(frames) == 1 else b"".join(frames)
        frames.clear()
        taken, self.taken = self.taken, None
        if taken is not None and not taken.done():
            taken.set_result(None)
        return body

    def close(self) -> None:
        """The producer is done: the writer sends what is left and ends the body."""
        self.closed = True
        self._wake()

    def halt(self) -> None:
        """Stop the writer now: nothing more is sent, the body is not ended."""
        self.halted = True
        self._wake()
        taken, self.taken = self.taken, None
        if taken is not None and not taken.done():
            taken.set_result(None)

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


_RAW_HEADER_SETS = 256
_RAW_HEADERS: dict[tuple[tuple[str, str], ...], tuple[tuple[bytes, bytes], ...]] = {}
"""``EventStreamResponse``'s raw headers by its headers (the first ``_RAW_HEADER_SETS``)."""


class EventStreamResponse(Response):
    """``text/event-stream`` body of the frames ``produce(outbox)`` queues.

    Args:
        produce: a coroutine function given an ``Outbox`` (``put`` frames, ``await
            pause()`` when ``put`` says so); the body ends when it returns. It runs in
            its own task and is cancelled when the client goes away.
        headers: extra response headers.
        on_close: runs last, even if the producer never started; shielded from an anyio
            cancellation unless the producer returned (its own clean-up then closed what
            ``on_close`` closes: the callers' ``frames.aclose`` is idempotent).
        first: a frame already built (the stream's first): it goes out with the response
            head at once, before the producer's task has started (the producer's first
            ``put`` is then not the stream's first).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        produce: Callable[[Outbox], Awaitable[None]],
        headers: dict[str, str],
        on_close: Callable[[], Awaitable[None]] | None = None,
        first: bytes | None = None,
    ) -> None:
        # Like StreamingResponse: no ``body``, so no Content-Length header.
        self.status_code = 200
        self.background = None
        # Starlette's raw headers depend on the headers alone here (the media type and
        # charset are the class's, there is no body): made once per distinct set
        key = tuple(headers.items())
        raw = _RAW_HEADERS.get(key)
        if raw is None:
            self.init_headers(headers)
            if len(_RAW_HEADERS) < _RAW_HEADER_SETS:
                _RAW_HEADERS[key] = tuple(self.raw_headers)
        else:
            self.raw_headers = list(raw)  # the response's own list (Starlette appends to it)
        self._produce = produce
        self._on_close = on_close
        self._first = first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the frames until the producer returns or the client disconnects.

        The producer and the disconnect watcher are plain asyncio tasks (an anyio task
        group and its cancel scope cost about 7 % of the CPU of a short answer): a
        disconnect cancels the producer and stops the writer; a producer (or ``receive``)
        that fails stops the writer (the body stays unended) and its error is raised, in
        an ``ExceptionGroup`` as from a task group; when this response is cancelled, both
        tasks are cancelled and awaited. A task is cancelled once: the producer's
        clean-up (closing its stream) is not cut short by a second cancel, and no anyio
        shield could hold one back (the producer is a plain task in no anyio cancel scope:
        its only cancellation is this ``Task.cancel()``, which passes an anyio shield).
        ``on_close`` runs last (see the arguments). Under ``llmrelay
        serve`` the server says when the client goes (the ``ON_DISCONNECT`` extension):
        then no watcher task waits on ``receive``.
        """
        outbox = Outbox()
        if self._first is not None:
            outbox.frames.append(self._first)
            outbox.started = True
        loop = asyncio.get_running_loop()
        failure: list[Exception] = []
        returned = False  # the producer returned (its own clean-up done)

        def left() -> None:
            producer.cancel()
            outbox.halt()

        async def watch() -> None:
            try:
                while (await receive())["type"] != "http.disconnect":
                    pass
            except Exception as exc:  # as the producer's: everything stops, it is raised
                failure.append(exc)
            left()

        async def produce() -> None:
            nonlocal returned
            try:
                await self._produce(outbox)
            except Exception as exc:  # the writer stops: the body stays unended
                failure.append(exc)
                outbox.halt()
                return
            returned = True
            outbox.close()

        producer = loop.create_task(produce())
        on_disconnect = scope.get("extensions", {}).get(ON_DISCONNECT)
        forget: Callable[[], None] | None = None
        if on_disconnect is None:
            tasks: tuple[asyncio.Task[None], ...] = (producer, loop.create_task(watch()))
        else:
            tasks = (producer,)
            forget = on_disconnect(left)
        try:
            start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            batch = scope.get("extensions", {}).get(BATCH_WRITES)
            with contextlib.suppress(OSError):  # the client went away while we wrote
                await self._write(outbox, loop, send, start, batch)
        finally:
            try:
                for task in tasks:
                    if not task.cancelling():  # once: a second cancel cuts its clean-up short
                        task.cancel()
                await asyncio.wait(tasks)
            finally:
                if forget is not None:
                    forget()
                if self._on_close is None:
                    pass
                elif returned:  # nothing of the producer's is left for on_close to wait on
                    await self._on_close()
                else:
                    with anyio.CancelScope(shield=True):
                        await self._on_close()
        if failure:
            raise ExceptionGroup("unhandled errors in a TaskGroup", failure)

    @staticmethod
    async def _write(
        outbox: Outbox,
        loop: asyncio.AbstractEventLoop,
        send: Send,
        start: Message,
        batch: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
    ) -> None:
        """Send what was emitted each time the producer waits; the last frames end the body.

        The response head goes out right before the first frames (the producer emits its
        first frame at once: the stream is open), so that a client reads both together:
        in one socket write when the server offers ``BATCH_WRITES`` (``batch``); a
        ``first`` frame given to the response is already queued, and goes out before the
        producer's and the watcher's tasks have run.
        """
        frames = outbox.frames
        head: Message | None = start
        while not outbox.halted:
            if frames:
                body = outbox.take()
                last = outbox.closed  # the producer is done: one write with the chunked end
                message = {"type": "http.response.body", "body": body, "more_body": not last}
                if head is None:
                    await send(message)
                else:
                    with batch() if batch is not None else contextlib.nullcontext():
                        await send(head)
                        head = None
                        if outbox.halted:
                            return
                        await send(message)
                if last:
                    return
                continue
            if outbox.closed:
                break
            waiter = outbox.waiter = loop.create_future()
            if outbox.keepalive:
                try:
                    await asyncio.wait_for(asyncio.shield(waiter), outbox.keepalive)
                except TimeoutError:
                    if outbox.keepalive and not frames and not outbox.closed:
                        frames.append(KEEPALIVE_FRAME)
                continue
            await waiter
        if outbox.halted:
            return
        end = {"type": "http.response.body", "body": b"", "more_body": False}
        if head is None:
            await send(end)
            return
        with batch() if batch is not None else contextlib.nullcontext():
            await send(head)
            await send(end)
