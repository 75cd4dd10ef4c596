"""The JSON of the token path: ``orjson`` when installed, the standard library otherwise.

Two functions, each giving exactly what its standard-library form gives (the same value,
the same bytes), only faster with ``orjson`` (https://github.com/ijl/orjson; the
``llmrelay[fast]`` extra, also in ``[server]``):

* ``loads`` parses one JSON document (an upstream stream chunk) as ``json.loads`` does.
  ``orjson`` reads integers beyond 64 bits as floats and refuses ``NaN``, ``Infinity``,
  lone surrogates and deep nesting, all of which ``json.loads`` reads exactly: a
  document holding a run of 19 or more digits that may be an integer, or one ``orjson``
  refuses, is parsed by ``json.loads`` instead (so errors are ``json.loads``'s too). A
  run after a ``.`` (a fraction) or before a ``.``, ``e`` or ``E`` (a float's integer
  part) is a float's, which ``orjson`` reads correctly rounded, as ``json.loads`` does:
  Gradio's ``duration`` fields (``0.00027315000018764596``) stay on the fast path.
* ``loads_utf8`` is ``loads(data.decode("utf-8", "replace"))`` for bytes that are
  mostly valid UTF-8 (an event's data as received): ``orjson`` reads the bytes without
  the ``str`` in between; bytes it refuses take the decoded way.
* ``string`` encodes a ``str`` as a JSON string in UTF-8, as
  ``json.encoder.encode_basestring(text).encode()`` does (non-ASCII characters raw), and
  escapes U+2028, U+2029 and U+0085 (JSON-equal), so that a frame stays one line for a
  client splitting lines with ``str.splitlines``.

Encoding whole objects is left to the standard library: ``orjson`` writes floats in
another notation (``1e16``, not ``1e+16``) and ``NaN`` as ``null``.
``tests/unit/test_json.py`` checks both functions against the standard library.
"""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring
from typing import Any

__all__ = ["FAST", "loads", "loads_utf8", "string"]

try:
    import orjson
except ImportError:  # pragma: no cover - the [fast] extra is not installed
    orjson = None  # type: ignore[assignment]

FAST: bool = orjson is not None
"""Whether ``orjson`` is installed (and used)."""

_DIGITS = bytes(
    0x30 if 0x30 <= b <= 0x39 else b if b in b".eE" else 0x78  # "0", itself, "x"
    for b in range(256)
)
"""A ``bytes.translate`` table: each digit becomes ``0``; ``.``, ``e`` and ``E`` stay
(what may stand beside a float's digits); every other byte becomes ``x``."""
_LONG_RUN = b"0" * 19
"""19 digits in a row: a number ``orjson`` may not read exactly (beyond 64 bits)."""
_RUN = re.compile(b"0+")
_FLOAT_NEXT = (b".", b"e", b"E")
"""What may follow a float's integer part."""
_LINE_BREAKS = ("\u2028", "\u2029", "\x85")
_LINE_BREAKS_UTF8 = (
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
    (b"\xc2\x85", b"\\u0085"),
)


def _exact(marked: bytes) -> bool:
    """Whether ``orjson`` reads every number of a document as ``json.loads`` does.

    ``marked`` is the document translated by ``_DIGITS``. False when a run of 19 or more
    digits may be an integer: one not after a ``.`` and not before a ``.``, ``e`` or
    ``E`` (digits inside a string may count: that is only slower).
    """
    start = marked.find(_LONG_RUN)
    while start != -1:
        run = _RUN.match(marked, start)
        end = run.end() if run is not None else start + len(_LONG_RUN)  # always a match
        if marked[start - 1 : start] != b"." and marked[end : end + 1] not in _FLOAT_NEXT:
            return False
        start = marked.find(_LONG_RUN, end)
    return True


def _std_loads(data: str | bytes) -> Any:
    return json.loads(data)


def _std_loads_utf8(data: bytes) -> Any:
    return json.loads(data.decode("utf-8", "replace"))


def _std_string(text: str) -> bytes:
    encoded: str = encode_basestring(text)
    if not encoded.isascii():
        for char in _LINE_BREAKS:
            if char in encoded:
                encoded = encoded.replace(char, f"\\u{ord(char):04x}")
    return encoded.encode()


_LOADS_DOC = """``json.loads(data)``: the same value, or the same error.

    Args:
        data: one JSON document (UTF-8 when bytes).

    Raises:
        ValueError: not valid JSON (``json.JSONDecodeError``) or, for bytes, not
            decodable (``UnicodeDecodeError``), as ``json.loads`` raises.
        RecursionError: nested too deeply for ``json.loads``.
    """
_LOADS_UTF8_DOC = """``loads(data.decode("utf-8", "replace"))``: the same value, or the same error.

    Args:
        data: one JSON document in UTF-8 (an invalid sequence reads as U+FFFD).

    Raises:
        ValueError: not valid JSON (``json.JSONDecodeError``).
        RecursionError: nested too deeply for ``json.loads``.
    """
_STRING_DOC = """``text`` as a JSON string in UTF-8 (U+2028, U+2029 and U+0085 escaped).

    Raises:
        UnicodeEncodeError: ``text`` holds a lone surrogate (not UTF-8).
    """

if orjson is not None:
    _orjson_loads = orjson.loads
    _orjson_dumps = orjson.dumps
    _OrjsonDecodeError = orjson.JSONDecodeError
    _OrjsonEncodeError = orjson.JSONEncodeError

    def loads(data: str | bytes) -> Any:
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        marked = raw.translate(_DIGITS)  # C passes: the common chunk has < 19 digits in all
        if marked.count(48) < len(_LONG_RUN) or _exact(marked):
            try:
                return _orjson_loads(data)
            except _OrjsonDecodeError:
                pass
        return json.loads(data)

    def loads_utf8(data: bytes) -> Any:
        # ``loads`` of the decoded text: the same digit check (a decoded invalid sequence
        # holds no digit), orjson on the bytes (valid UTF-8: the same document), and any
        # document orjson refuses (invalid UTF-8 too) parsed decoded by ``json.loads``
        marked = data.translate(_DIGITS)
        if marked.count(48) < len(_LONG_RUN) or _exact(marked):
            try:
                return _orjson_loads(data)
            except _OrjsonDecodeError:
                pass
        return json.loads(data.decode("utf-8", "replace"))

    def string(text: str) -> bytes:
        try:
            encoded: bytes = _orjson_dumps(text)
        except _OrjsonEncodeError:  # a lone surrogate: the standard library's error
            return _std_string(text)
        if not encoded.isascii():
            for raw, escaped in _LINE_BREAKS_UTF8:
                if raw in encoded:
                    encoded = encoded.replace(raw, escaped)
        return encoded

else:  # pragma: no cover - the [fast] extra is not installed
    loads = _std_loads
    loads_utf8 = _std_loads_utf8
    string = _std_string

loads.__doc__ = _LOADS_DOC
loads_utf8.__doc__ = _LOADS_UTF8_DOC
string.__doc__ = _STRING_DOC
