"""What every wire shape's streaming shares: JSON strings, the encoder seam, the SSE stream.

``json_string`` is ``llmrelay._json.string`` (a ``str`` as a JSON string in UTF-8,
U+2028, U+2029 and U+0085 escaped; ``orjson`` when installed, byte for byte the
standard library's output).

``AsyncSSEStream`` reads one turn (an ``AsyncChatStream``) and gives the SSE frames
(bytes) a shape's encoder (``SSEEncoder``) writes for its events: the frames of the
events, then the encoder's ``tail()`` (e.g. OpenAI's usage chunk), then its
``end_frame`` (``data: [DONE]``). ``head()`` takes the first frame before a server sends
its response head. A turn still in its open phase gives an SSE comment frame
(``: queued position=2 eta=12``, ignored by every SSE client) for each progress report
(``Queued``) and makes its encoder at the commit point (``ProviderInfo``), so that a
proxy between the server and its client sees bytes while the request waits in a queue.
The SSE format: https://html.spec.whatwg.org/multipage/server-sent-events.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .._json import string as json_string
from .._turn import is_content
from ..types import Event, ProviderInfo, Queued, ToolCall, Usage

if TYPE_CHECKING:
    from .. import errors
    from .._stream import AsyncChatStream

__all__ = ["AsyncSSEStream", "SSEEncoder", "json_string", "queued_comment"]


def queued_comment(event: Queued) -> bytes:
    """The SSE comment frame of a progress report: ``: queued position=2 queue_size=9 eta=12``."""
    fields = [("position", event.position), ("queue_size", event.queue_size), ("eta", event.eta)]
    text = " ".join(f"{name}={value:g}" for name, value in fields if value is not None)
    return b": queued" + (b" " + text.encode() if text else b"") + b"\n\n"


class SSEEncoder(Protocol):
    """One stream's frame encoder in one wire shape (one instance per stream).

    Attributes:
        end_frame: the shape's terminal frame (``b""`` when it has none).
        finish_reason: the shape's name for the finish sent, once sent.
        sent_usage: the token counts sent in a frame (missing counts 0), if any.
    """

    end_frame: bytes
    finish_reason: str | None
    sent_usage: Usage | None

    def text(self, text: str) -> bytes:
        """The frame of a text delta (the token path)."""
        ...

    def event(self, event: Event) -> bytes | None:
        """The frame of any other event, or ``None`` (skipped, or kept for ``tail``).

        An event type the shape has no form for gives ``None``.
        """
        ...

    def tail(self) -> bytes:
        """The frames after the last event, before ``end_frame`` (may be ``b""``)."""
        ...


class AsyncSSEStream:
    """A turn's events as the SSE frames of one wire shape (``bytes``, one per item).

    Made by a facade stream's ``sse()`` (``AsyncChatCompletionStream.sse``); iterate it
    for the frames, each item whole SSE events (``data: ...`` and a blank line; one per
    event, the tail's may be several). It ends with the encoder's tail and, unless made
    with ``end=False``, its ``end_frame``. An
    error is raised as the events raise it (``llmrelay.errors``): a server then ends
    its body with an error frame of its own. ``aclose()`` stops the turn (closes the
    provider's connection).

    Args:
        events: the turn.
        encoder: the shape's encoder, or a function making it once the turn is open
            (for a turn still in its open phase: its progress reports become comments).
        end: end with the encoder's ``end_frame``.

    Attributes:
        deltas: non-empty text deltas framed so far.
    """

    __slots__ = ("_encoder", "_end", "_events", "_factory", "_stage", "_unsent", "deltas")

    def __init__(
        self,
        events: AsyncChatStream,
        encoder: SSEEncoder | Callable[[], SSEEncoder],
        *,
        end: bool = True,
    ) -> None:
        self._events = events
        self._factory: Callable[[], SSEEncoder] | None = None
        if callable(encoder) and not hasattr(encoder, "text"):
            self._factory = encoder
            self._encoder: SSEEncoder | None = None
        else:
            self._encoder = encoder  # type: ignore[assignment]
        self._end = end
        self._stage = 0  # after the events: 1 tail sent, 2 end frame sent
        self._unsent = ""  # a text delta that could not be encoded (it ended the stream)
        self.deltas = 0

    @property
    def provider(self) -> str | None:
        """Registry name of the provider answering."""
        return self._events.provider

    @property
    def model(self) -> str | None:
        """That provider's model id."""
        return self._events.model

    @property
    def attempts(self) -> list[errors.Attempt]:
        """Each candidate tried."""
        return self._events.attempts

    @property
    def text(self) -> str:
        """The answer text framed so far (a delta that could not be encoded excluded)."""
        text = self._events.text
        return text[: len(text) - len(self._unsent)] if self._unsent else text

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls of the answer so far (``AsyncChatStream.tool_calls``)."""
        return self._events.tool_calls

    @property
    def skipped(self) -> int:
        """Upstream events that could not be parsed and were skipped."""
        return self._events.skipped

    @property
    def queued(self) -> bool:
        """Whether the turn is still in its open phase (no answer yet)."""
        return self._encoder is None

    @property
    def finish_reason(self) -> str | None:
        """The shape's finish reason sent (``None`` before the finish frame)."""
        return self._encoder.finish_reason if self._encoder is not None else None

    @property
    def usage(self) -> Usage | None:
        """The token counts sent in a frame (e.g. OpenAI's usage chunk), if any."""
        return self._encoder.sent_usage if self._encoder is not None else None

    @property
    def end_frame(self) -> bytes:
        """The shape's terminal frame (``data: [DONE]``).

        For a stream made with ``end=False``, whose caller sends it itself (after
        storing the turn, say).
        """
        return self._encoder.end_frame if self._encoder is not None else b""

    async def head(self) -> bytes | None:
        """The first frame, taken before a server starts its response.

        Reads the events up to the first that makes a frame or is content: after the
        open phase these were received already. ``None``: content without a frame came
        first (an image), or the events ended. Iteration continues after them.

        Raises:
            What iteration raises (an event that cannot be encoded, too).
        """
        async for event in self._events:
            encoder = self._encoder
            if encoder is None:
                frame = self._opening(event)
                if frame is not None:
                    return frame
                continue
            if type(event) is str:
                return self._text(event)
            frame = encoder.event(event)
            if frame is not None:
                return frame
            if is_content(event):
                return None
        return None

    def _opening(self, event: Event) -> bytes | None:
        """An event of the open phase: a progress comment, or the encoder made at commit."""
        if type(event) is Queued:
            return queued_comment(event)
        if type(event) is ProviderInfo and self._factory is not None:
            self._encoder = self._factory()
        return None

    def __aiter__(self) -> AsyncSSEStream:
        return self

    async def __anext__(self) -> bytes:
        encoder = self._encoder
        events = self._events
        while True:
            try:
                event = await events.__anext__()
            except StopAsyncIteration:
                return self._finish()
            if encoder is None:
                frame = self._opening(event)
                if frame is not None:
                    return frame
                encoder = self._encoder
                continue
            if type(event) is str:  # the token path (``_text`` inlined)
                try:
                    frame = encoder.text(event)
                except Exception:
                    self._unsent = event
                    raise
                if event:
                    self.deltas += 1
                return frame
            other = encoder.event(event)
            if other is not None:
                return other

    def _text(self, event: str) -> bytes:
        assert self._encoder is not None
        try:
            frame = self._encoder.text(event)
        except Exception:
            self._unsent = event
            raise
        if event:
            self.deltas += 1
        return frame

    def _finish(self) -> bytes:
        """The events ended: the encoder's tail, then the end frame, then the end."""
        encoder = self._encoder
        while self._stage < 2 and encoder is not None:
            self._stage += 1
            frame = encoder.tail() if self._stage == 1 else self._end_frame(encoder)
            if frame:
                return frame
        raise StopAsyncIteration

    def _end_frame(self, encoder: SSEEncoder) -> bytes:
        return encoder.end_frame if self._end else b""

    async def aclose(self) -> None:
        """Stop early: close the provider's stream and connection (idempotent)."""
        await self._events.aclose()
