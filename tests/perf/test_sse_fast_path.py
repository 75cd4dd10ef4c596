"""``SSEDecoder``'s fast path for ``data:`` lines decodes exactly what the general path did.

The reference is the decoder before the fast paths (field parsing of every line, lines
split by ``_Lines``, the event kept in attributes), kept here in ``ReferenceDecoder``;
random byte streams, cut anywhere, must give the same events and the same errors.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmrelay._sse import LineTooLong, SSEDecoder, SSEvent, _Lines


class ReferenceDecoder:
    """``SSEDecoder`` as it was before its fast paths: general field parsing of every
    line, line splitting by ``_Lines``, the event in attributes."""

    def __init__(self, max_line: int) -> None:
        self._lines = _Lines(max_line)
        self._max_event = 2 * max_line
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._size = 0
        self._started = False
        self._head = b""

    def feed(self, chunk: bytes) -> list[SSEvent]:
        d = self
        if not d._started:
            # a BOM cut across chunks is skipped too (the reference once missed it)
            chunk = d._head + chunk
            if len(chunk) < 3 and b"\xef\xbb\xbf".startswith(chunk):
                d._head = chunk
                return []
            d._started = True
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        out: list[SSEvent] = []
        for raw in d._lines.feed(chunk):
            if not raw:
                if d._data or d._event is not None or d._id is not None:
                    out.append(SSEvent(d._event or "message", "\n".join(d._data), d._id, d._retry))
                d._data = []
                d._event = None
                d._id = None
                d._retry = None
                d._size = 0
                continue
            if raw[0] == 58:
                continue
            line = raw.decode("utf-8", "replace")
            name, sep, value = line.partition(":")
            if sep and value[:1] == " ":
                value = value[1:]
            if name == "data":
                d._size += len(raw)
                if d._size > d._max_event:
                    raise LineTooLong(f"an event's data longer than {d._max_event} bytes")
                d._data.append(value)
            elif name == "event":
                d._event = value
            elif name == "id":
                if "\0" not in value:
                    d._id = value
            elif name == "retry" and value.isdigit():
                d._retry = int(value)
        return out


PIECES = st.sampled_from(
    [
        b"data:",
        b"data: ",
        b"data",
        b"data:  x",
        b"event: e",
        b"id: 7",
        b"id: a\x00b",
        b"retry: 30",
        b"retry: \xd9\xa3",  # an Arabic-Indic digit: str.isdigit() reads it
        b"dat\xffa: x",
        b": comment",
        b"\n",
        b"\r\n",
        b"\r",
        b'{"a": 1}',
        b"\xe2\x80\xa8",
        b"\xff\xfe",
        b"\xef\xbb\xbf",
        b"x:y",
        b"dat",
        b"a:",
        b"data: x\n\n",
        b"data:y\n",
        b"\n\n",
    ]
)


def run(
    make: Callable[[int], SSEDecoder | ReferenceDecoder | DataOnly],
    body: bytes,
    cuts: list[int],
    max_line: int,
) -> list[object]:
    decoder = make(max_line)
    result: list[object] = []
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    try:
        for a, b in itertools.pairwise(points):
            events = decoder.feed(body[a:b])
            result += [(e.event, e.data, e.id, e.retry) for e in events]
    except LineTooLong as exc:
        result.append(("error", str(exc)))
    return result


@settings(max_examples=400, deadline=None)
@example([b"data: ", b"\n", b"\n"], [], 64)
@example([b"retry: 30", b"\n\n", b"data: x\n\n"], [], 64)  # a blank line resets retry
@example([b"data:  x", b"\r\n", b"data:", b"\r", b"\r"], [3, 9], 64)
@given(
    st.lists(PIECES, max_size=40),
    st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    st.sampled_from([8, 64, 4096]),
)
def test_the_fast_path_equals_the_general_parser(
    pieces: list[bytes], cuts: list[int], max_line: int
) -> None:
    body = b"".join(pieces)
    assert run(SSEDecoder, body, cuts, max_line) == run(ReferenceDecoder, body, cuts, max_line)
    assert run(DataOnly, body, cuts, max_line) == [
        item if item[0] == "error" else ("message", item[1], None, None)
        for item in run(ReferenceDecoder, body, cuts, max_line)
    ]


class DataOnly:
    """``SSEDecoder.feed_data``, each event's bytes decoded as ``feed`` decodes them."""

    def __init__(self, max_line: int) -> None:
        self._decoder = SSEDecoder(max_line)

    def feed(self, chunk: bytes) -> list[SSEvent]:
        out = []
        for data in self._decoder.feed_data(chunk):
            assert type(data) is bytes
            out.append(SSEvent("message", data.decode("utf-8", "replace")))
        return out


FRAMES = st.one_of(
    PIECES,
    st.text(max_size=20).map(lambda t: b"data: " + t.encode() + b"\n\n"),
    st.text(max_size=20).map(lambda t: b"data:" + t.encode("utf-8", "surrogatepass") + b"\n\n"),
    st.sampled_from(
        [b"data: \n\n", b"data:\n\n", b"data: x\r\n\n", b"data: x\n\r\n", b"data: x\n"]
    ),
)


def run_chunks(
    make: Callable[[int], SSEDecoder | ReferenceDecoder | DataOnly], chunks: list[bytes]
) -> Any:
    decoder = make(16)
    result: list[object] = []
    try:
        for chunk in chunks:
            result.append([(e.event, e.data, e.id, e.retry) for e in decoder.feed(chunk)])
    except LineTooLong as exc:
        result.append(("error", str(exc)))
    return result


@settings(max_examples=400, deadline=None)
@example([b"retry: 30\n", b"data: x\n\n"])  # the one-frame chunk of an event begun before
@example([b"event: e\n", b"data: x\n\n"])
@example([b"id: 1\n", b"data: x\n\n"])
@example([b"data: a\n", b"data: x\n\n"])
@example([b"data: a", b"data: x\n\n"])
@example([b"data: a\r", b"data: x\n\n"])
@example([b"data: " + b"x" * 40 + b"\n\n"])  # over the event bound (32 bytes)
@given(st.lists(FRAMES, max_size=12))
def test_one_event_per_chunk_equals_the_general_parser(chunks: list[bytes]) -> None:
    """Each chunk fed as is: the one-``data:``-frame fast path meets every state."""
    assert run_chunks(SSEDecoder, chunks) == run_chunks(ReferenceDecoder, chunks)
    assert run_chunks(DataOnly, chunks) == [
        item
        if isinstance(item, tuple)  # ("error", message)
        else [("message", data, None, None) for _, data, _, _ in item]
        for item in run_chunks(ReferenceDecoder, chunks)
    ]
