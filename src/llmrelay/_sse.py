r"""Incremental, bounded decoders for event streams: Server-Sent Events and JSON lines.

Both work on bytes, so only ``\r\n``, ``\r`` and ``\n`` end a line (never U+2028,
U+2029 or U+0085, which Gradio leaves unescaped inside JSON strings), and both refuse a
line longer than ``max_line`` bytes *before* buffering more of it: a hostile 50 MiB
frame costs at most ``max_line`` bytes of memory.

SSE follows the WHATWG HTML "event stream interpretation" rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
a leading UTF-8 BOM is skipped; lines starting with ``:`` are comments; ``field: value``
strips one space after the colon (``data:x`` and ``data: x`` are the same); several
``data`` lines are joined with ``\n``; a blank line dispatches the event. Unlike a
browser, an event with an ``event`` or ``id`` field but no ``data`` line is dispatched
too (with ``data == ""``), because Replicate's ``done`` arrives that way (as
httpx-sse and replicate-go accept it). An unfinished event at the end of the stream is
discarded, as the spec says.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_LINE", "LineTooLong", "NDJSONLineDecoder", "SSEDecoder", "SSEvent"]

DEFAULT_MAX_LINE = 4 * 1024 * 1024
"""Default bound of one line (SSE) or one document (JSON lines), in bytes."""


class LineTooLong(ValueError):
    """A line (or an event's data) is longer than the decoder's bound."""


class SSEvent:
    r"""One Server-Sent Event.

    Attributes:
        event: the ``event`` field, ``"message"`` when absent.
        data: the ``data`` lines joined with ``\\n`` (``""`` when there was none).
        id: the ``id`` field, or ``None``.
        retry: the ``retry`` field in milliseconds, or ``None``.
    """

    __slots__ = ("data", "event", "id", "retry")

    def __init__(
        self,
        event: str = "message",
        data: str = "",
        id: str | None = None,
        retry: int | None = None,
    ) -> None:
        self.event = event
        self.data = data
        self.id = id
        self.retry = retry

    def __repr__(self) -> str:
        return f"SSEvent(event={self.event!r}, data={self.data!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSEvent):
            return NotImplemented
        return (self.event, self.data, self.id, self.retry) == (
            other.event,
            other.data,
            other.id,
            other.retry,
        )

    __hash__ = None  # type: ignore[assignment]


class _Lines:
    r"""Split a byte stream into lines (``\\r\\n``, ``\\r`` or ``\\n``), bounded."""

    __slots__ = ("_buf", "_max", "_pending_cr")

    def __init__(self, max_line: int) -> None:
        self._buf = b""
        self._max = max_line
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._pending_cr:
            self._pending_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        data = self._buf + chunk if self._buf else chunk
        if b"\r" in data:
            if data.endswith(b"\r"):
                # maybe the first half of a \r\n split across chunks
                self._pending_cr = True
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        rest = lines.pop()
        if len(rest) > self._max:
            raise LineTooLong(f"a line longer than {self._max} bytes")
        self._buf = rest
        return lines

    def flush(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest


class SSEDecoder:
    """Decode an SSE byte stream incrementally: ``feed(chunk)`` returns whole events.

    Args:
        max_line: bound of one line in bytes.
        max_event: bound of one event's joined ``data`` in bytes.

    Raises:
        LineTooLong: from ``feed`` when a bound is exceeded.
    """

    __slots__ = ("_data", "_event", "_id", "_lines", "_max_event", "_retry", "_size", "_started")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE, max_event: int | None = None) -> None:
        self._lines = _Lines(max_line)
        self._max_event = max_event if max_event is not None else 2 * max_line
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._size = 0
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEvent]:
        """Feed the next bytes; return the events they complete (maybe none)."""
        if not self._started:
            if not chunk:
                return []
            self._started = True
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        out: list[SSEvent] = []
        data = self._data
        for raw in self._lines.feed(chunk):
            if not raw:
                if data or self._event is not None or self._id is not None:
                    out.append(
                        SSEvent(
                            self._event or "message",
                            data[0] if len(data) == 1 else "\n".join(data),
                            self._id,
                            self._retry,
                        )
                    )
                if data:
                    data = self._data = []
                self._event = None
                self._id = None
                self._retry = None
                self._size = 0
                continue
            if raw[:5] == b"data:":  # the common line, without the general field parsing
                self._size += len(raw)
                if self._size > self._max_event:
                    raise LineTooLong(f"an event's data longer than {self._max_event} bytes")
                data.append((raw[6:] if raw[5:6] == b" " else raw[5:]).decode("utf-8", "replace"))
                continue
            if raw[0] == 58:  # b":" comment
                continue
            line = raw.decode("utf-8", "replace")
            name, sep, value = line.partition(":")
            if sep and value[:1] == " ":
                value = value[1:]
            if name == "data":
                self._size += len(raw)
                if self._size > self._max_event:
                    raise LineTooLong(f"an event's data longer than {self._max_event} bytes")
                data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id":
                if "\0" not in value:
                    self._id = value
            elif name == "retry" and value.isdigit():
                self._retry = int(value)
            # other fields are ignored, as the spec says
        return out


class NDJSONLineDecoder:
    """Split a JSON-lines byte stream into lines (without the newline), bounded.

    Blank lines are skipped. ``flush()`` returns the last line when the stream did not
    end with a newline (``None`` when it did).

    Raises:
        LineTooLong: from ``feed`` when a line exceeds ``max_line`` bytes.
    """

    __slots__ = ("_lines",)

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._lines = _Lines(max_line)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Feed the next bytes; return the non-blank lines they complete."""
        return [line for line in self._lines.feed(chunk) if line.strip()]

    def flush(self) -> bytes | None:
        """The unterminated last line, or ``None``."""
        rest = self._lines.flush()
        return rest if rest.strip() else None
