r"""Incremental, bounded decoders for event streams: Server-Sent Events and JSON lines.

Both work on bytes, so only ``\r\n``, ``\r`` and ``\n`` end a line (never U+2028,
U+2029 or U+0085, which Gradio leaves unescaped inside JSON strings), and both refuse a
line longer than ``max_line`` bytes *before* buffering more of it: a hostile 50 MiB
frame costs at most ``max_line`` bytes of memory.

SSE follows the WHATWG HTML "event stream interpretation" rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
a leading UTF-8 BOM is skipped (also when cut across chunks); lines starting with ``:``
are comments; ``field: value`` strips one space after the colon (``data:x`` and
``data: x`` are the same); several ``data`` lines are joined with ``\n``; a blank line
dispatches the event. Unlike a browser, an event with an ``event`` or ``id`` field but
no ``data`` line is dispatched too (with ``data == ""``), because Replicate's ``done``
arrives that way (as httpx-sse and replicate-go accept it). An unfinished event at the
end of the stream is discarded, as the spec says.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_MAX_LINE", "LineTooLong", "NDJSONLineDecoder", "SSEDecoder", "SSEvent"]

DEFAULT_MAX_LINE = 4 * 1024 * 1024
"""Default bound of one line (SSE) or one document (JSON lines), in bytes."""


_BOM = b"\xef\xbb\xbf"


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

    __slots__ = (
        "_buf",
        "_data",
        "_event",
        "_id",
        "_max_event",
        "_max_line",
        "_pending_cr",
        "_retry",
        "_size",
        "_started",
    )

    def __init__(self, max_line: int = DEFAULT_MAX_LINE, max_event: int | None = None) -> None:
        self._buf = b""
        self._pending_cr = False
        self._max_line = max_line
        self._max_event = max_event if max_event is not None else 2 * max_line
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._size = 0
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEvent]:
        """Feed the next bytes; return the events they complete (maybe none)."""
        return self._feed(chunk, False)  # type: ignore[return-value]

    def feed_data(self, chunk: bytes) -> list[bytes]:
        """Feed the next bytes; return the ``data`` of the events they complete, as bytes.

        The same events as ``feed`` (the same bounds and errors), each given only by its
        data, undecoded: ``feed_data(chunk)[i].decode("utf-8", "replace") ==
        feed(chunk)[i].data``. For a reader that parses the data as JSON anyway (JSON
        parsers take UTF-8 bytes), without a ``str`` and an ``SSEvent`` per event.
        """
        return self._feed(chunk, True)  # type: ignore[return-value]

    def _feed(self, chunk: bytes, raw_data: bool) -> list[SSEvent] | list[bytes]:
        if not self._started:
            if self._buf:  # the first bytes of a BOM, held back
                chunk = self._buf + chunk
                self._buf = b""
            if len(chunk) < 3 and _BOM.startswith(chunk):
                self._buf = chunk  # empty, or maybe a BOM cut across chunks
                return []
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        # Fast path: the chunk is exactly one ``data:`` line and its blank line, between
        # events (how servers flush each event). The general path below gives the same.
        if (
            chunk[:5] == b"data:"
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk[-1:] == b"\n"
            and not self._buf
            and not self._pending_cr
            and not self._data
            and self._event is None
            and self._id is None
            and self._retry is None
            and len(chunk) - 2 <= self._max_event
            and b"\r" not in chunk
        ):
            payload = chunk[6:-2] if chunk[5:6] == b" " else chunk[5:-2]
            if raw_data:
                return [payload]
            return [SSEvent("message", payload.decode("utf-8", "replace"), None, None)]
        # the line splitting of ``_Lines.feed``, inlined (one call less per chunk)
        if self._pending_cr:
            self._pending_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        buf = self._buf
        if buf:
            chunk = buf + chunk
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                self._pending_cr = True  # maybe the first half of a \r\n split across chunks
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if len(rest) > self._max_line:
            raise LineTooLong(f"a line longer than {self._max_line} bytes")
        self._buf = rest
        if not lines:
            return []
        # the event being built lives in locals; written back before returning or raising.
        # Data lines are kept as bytes and decoded once per event ("replace" gives the
        # same text line by line or joined: a ``\n`` never belongs to a UTF-8 sequence).
        data = self._data
        event = self._event
        id_ = self._id
        retry = self._retry
        size = self._size
        max_event = self._max_event
        out: list[Any] = []
        for raw in lines:
            if not raw:
                if data or event is not None or id_ is not None:
                    payload = data[0] if len(data) == 1 else b"\n".join(data)
                    if raw_data:
                        out.append(payload)
                    else:
                        out.append(
                            SSEvent(
                                event or "message", payload.decode("utf-8", "replace"), id_, retry
                            )
                        )
                    if data:
                        data = []
                event = id_ = retry = None
                size = 0
                continue
            if raw[:5] == b"data:":  # the common line, without the general field parsing
                size += len(raw)
                if size > max_event:
                    self._store(data, event, id_, retry, size)
                    raise LineTooLong(f"an event's data longer than {max_event} bytes")
                data.append(raw[6:] if raw[5:6] == b" " else raw[5:])
                continue
            if raw[:6] == b"event:":  # as the general parsing below, on the bytes
                event = (raw[7:] if raw[6:7] == b" " else raw[6:]).decode("utf-8", "replace")
                continue
            if raw[:3] == b"id:":
                text = (raw[4:] if raw[3:4] == b" " else raw[3:]).decode("utf-8", "replace")
                if "\0" not in text:
                    id_ = text
                continue
            if raw[0] == 58:  # b":" comment
                continue
            name, sep, value = raw.partition(b":")  # ":" never belongs to a UTF-8 sequence
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                size += len(raw)
                if size > max_event:
                    self._store(data, event, id_, retry, size)
                    raise LineTooLong(f"an event's data longer than {max_event} bytes")
                data.append(value)
            elif name == b"event":
                event = value.decode("utf-8", "replace")
            elif name == b"id":
                text = value.decode("utf-8", "replace")
                if "\0" not in text:
                    id_ = text
            elif name == b"retry":
                text = value.decode("utf-8", "replace")
                if text.isdigit():
                    retry = int(text)
            # other fields are ignored, as the spec says
        self._store(data, event, id_, retry, size)
        return out

    def _store(
        self, data: list[bytes], event: str | None, id_: str | None, retry: int | None, size: int
    ) -> None:
        self._data = data
        self._event = event
        self._id = id_
        self._retry = retry
        self._size = size


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
