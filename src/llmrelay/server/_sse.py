"""Server-Sent Events: OpenAI chunk frames built as bytes, and the streaming response.

``ChunkFrames`` writes the frames of one ``chat.completion.chunk`` stream directly as
bytes: the part every chunk of a stream shares (id, created, model) is encoded once, and
each token costs one JSON string encoding and a concatenation. The bytes are what
``ChatCompletionChunk.model_dump_json()`` wrote (same keys in the same order, same
values), except that U+2028, U+2029 and U+0085 are escaped (JSON-equal; a client that
splits lines with ``str.splitlines`` would otherwise cut a frame in two).

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
from collections.abc import Awaitable, Callable
from json.encoder import encode_basestring

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

__all__ = ["BATCH", "ChunkFrames", "EventStreamResponse", "Outbox", "json_string", "sse_data"]

BATCH = 32
"""Frames the producer queues at most before the writer takes them (then it waits)."""

_LINE_BREAKS = ("\u2028", "\u2029", "\x85")


def json_string(text: str) -> bytes:
    """``text`` as a JSON string (UTF-8; U+2028, U+2029 and U+0085 escaped)."""
    encoded: str = encode_basestring(text)
    if not encoded.isascii():
        for char in _LINE_BREAKS:
            if char in encoded:
                encoded = encoded.replace(char, f"\\u{ord(char):04x}")
    return encoded.encode()


def sse_data(payload: str) -> bytes:
    """One SSE event carrying ``payload`` (a single line) as ``data``."""
    return b"data: " + payload.encode() + b"\n\n"


_CHOICE_END = b',"finish_reason":null,"logprobs":null}],"usage":null,"system_fingerprint":null}\n\n'
_TEXT_END = b"}" + _CHOICE_END
_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


class ChunkFrames:
    """The SSE frames of one chat completion stream (``data: {chunk}`` and a blank line).

    Args:
        id: the completion id every chunk carries.
        created: Unix time of the request.
        model: the model name every chunk reports.

    The first chunk's delta carries ``"role": "assistant"`` (whatever its kind), later
    ones ``"role": null``, as OpenAI sends them.
    """

    __slots__ = ("_delta", "_delta_first", "_head", "_role_sent")

    def __init__(self, *, id: str, created: int, model: str) -> None:
        head = (
            b'data: {"id":'
            + json_string(id)
            + b',"object":"chat.completion.chunk","created":'
            + str(int(created)).encode()
            + b',"model":'
            + json_string(model)
        )
        self._head = head
        self._delta_first = head + b',"choices":[{"index":0,"delta":{"role":"assistant",'
        self._delta = head + b',"choices":[{"index":0,"delta":{"role":null,'
        self._role_sent = False

    def _start(self) -> bytes:
        if self._role_sent:
            return self._delta
        self._role_sent = True
        return self._delta_first

    def text(self, text: str) -> bytes:
        """The chunk of a text delta."""
        if self._role_sent:
            return self._delta + b'"content":' + json_string(text) + _TEXT_END
        return self._start() + b'"content":' + json_string(text) + _TEXT_END

    def reasoning(self, text: str) -> bytes:
        """The chunk of a reasoning delta (``reasoning_content``, ``content`` null)."""
        return (
            self._start() + b'"content":null,"reasoning_content":' + json_string(text) + _TEXT_END
        )

    def finish(self, reason: str) -> bytes:
        """The last choice chunk: empty delta and the finish reason (OpenAI's names)."""
        name = reason if reason in _FINISH else "stop"
        return (
            self._start()
            + b'"content":null},"finish_reason":"'
            + name.encode()
            + b'","logprobs":null}],"usage":null,"system_fingerprint":null}\n\n'
        )

    def usage(self, prompt: int, completion: int, total: int) -> bytes:
        """The usage chunk OpenAI sends last with ``include_usage``: empty ``choices``."""
        return (
            self._head + b',"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,'
            b'"total_tokens":%d},"system_fingerprint":null}\n\n' % (prompt, completion, total)
        )


class Outbox:
    """Frames a producer queued and the writer has not taken yet.

    ``put(frame)`` queues a frame (never blocks) and returns ``True`` when the producer
    should ``await pause()`` before it parses more: after the stream's first frame (time
    to first token) and once ``BATCH`` frames are queued. ``pause()`` lets the writer run
    and, with ``BATCH`` frames queued, waits until it has taken them: frames parsed from
    one large read go out in batches, and a slow client holds the producer back (at most
    ``BATCH`` frames wait here) instead of letting it buffer the whole answer.
    """

    __slots__ = ("closed", "frames", "started", "taken", "waiter")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None  # the writer waits for frames
        self.taken: asyncio.Future[None] | None = None  # the producer waits for the writer
        self.closed = False
        self.started = False

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
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class EventStreamResponse(Response):
    """``text/event-stream`` body of the frames ``produce(outbox)`` queues.

    Args:
        produce: a coroutine function given an ``Outbox`` (``put`` frames, ``await
            pause()`` when ``put`` says so); the body ends when it returns. It runs in
            its own task and is cancelled when the client goes away.
        headers: extra response headers.
        on_close: runs last, even if the producer never started (shielded).
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
        self.init_headers(headers)
        self._produce = produce
        self._on_close = on_close
        self._first = first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the frames until the producer returns or the client disconnects."""
        outbox = Outbox()
        if self._first is not None:
            outbox.frames.append(self._first)
            outbox.started = True
        loop = asyncio.get_running_loop()
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            group.cancel_scope.cancel()
                            return

                async def produce() -> None:
                    # on an exception the group cancels the writer: the body stays unended
                    await self._produce(outbox)
                    outbox.close()

                group.start_soon(watch)
                group.start_soon(produce)
                start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                try:
                    await self._write(outbox, loop, send, start)
                except OSError:  # the client went away while we wrote
                    pass
                finally:
                    group.cancel_scope.cancel()
        finally:
            if self._on_close is not None:
                with anyio.CancelScope(shield=True):
                    await self._on_close()

    @staticmethod
    async def _write(
        outbox: Outbox, loop: asyncio.AbstractEventLoop, send: Send, start: Message
    ) -> None:
        """Send what was emitted each time the producer waits; the last frames end the body.

        The response head goes out right before the first frames (the producer emits its
        first frame at once: the stream is open), so that a client reads both together;
        a ``first`` frame given to the response is already queued, and goes out before
        the producer's and the watcher's tasks have run.
        """
        frames = outbox.frames
        head: Message | None = start
        while True:
            if frames:
                body = outbox.take()
                last = outbox.closed  # the producer is done: one write with the chunked end
                if head is not None:
                    await send(head)
                    head = None
                await send({"type": "http.response.body", "body": body, "more_body": not last})
                if last:
                    return
                continue
            if outbox.closed:
                break
            waiter = outbox.waiter = loop.create_future()
            await waiter
        if head is not None:
            await send(head)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
