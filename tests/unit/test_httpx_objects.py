"""httpx's objects built without ``__init__`` (``llmrelay._httpx_objects``) equal httpx's own.

Each object is compared, attribute by attribute (names and values), with the one httpx's
constructor builds from the same values: this fails when httpx renames, adds or drops an
attribute these builders set (``pyproject.toml`` bounds httpx below 0.30).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llmrelay._httpx_objects import header_list, new_headers, new_request, new_response

PAIRS = [
    (b"Content-Type", b"text/event-stream"),
    (b"X-Dup", b"1"),
    (b"x-dup", b"2"),
    (b"Set-Cookie", b"a=\xc3\xa9"),
]


def _attributes(value: Any) -> dict[str, Any]:
    """Every attribute of ``value``, nested httpx objects as their own attributes."""
    out: dict[str, Any] = {}
    for name, item in vars(value).items():
        if isinstance(item, httpx.Headers | httpx.ByteStream):
            item = (type(item), _attributes(item))
        out[name] = item
    return out


@pytest.mark.parametrize("pairs", [PAIRS, []])
def test_headers_are_httpx_headers(pairs: list[tuple[bytes, bytes]]) -> None:
    theirs = httpx.Headers(pairs)
    assert _attributes(new_headers(pairs)) == _attributes(theirs)
    assert _attributes(header_list(list(theirs._list))) == _attributes(theirs)
    ours = new_headers(pairs)
    assert ours.get_list("x-dup") == (["1", "2"] if pairs else [])
    assert ours.encoding == theirs.encoding  # worked out on first use, as httpx does


@pytest.mark.parametrize("body", [b'{"a": 1}', b""])
def test_a_request_is_httpx_request(body: bytes) -> None:
    url = httpx.URL("https://example.test:8443/v1/x?y=1")
    extensions = {"timeout": {"connect": 1.0, "read": 2.0, "write": 2.0, "pool": None}}
    theirs = httpx.Request(
        "POST", url, headers=PAIRS, stream=httpx.ByteStream(body), extensions=extensions
    )
    theirs.read()
    ours = new_request("POST", url, new_headers(PAIRS), body, dict(extensions))
    assert _attributes(ours) == _attributes(theirs)
    assert ours.content == body
    assert list(ours.stream) == list(theirs.stream)  # type: ignore[call-overload]
    assert repr(ours) == repr(theirs)


def test_a_response_is_httpx_response() -> None:
    request = httpx.Request("GET", "http://example.test/")
    stream = httpx.ByteStream(b"data: 1\n\n")
    extensions = {"http_version": b"HTTP/1.1", "reason_phrase": b"OK"}
    for given in (request, None):
        theirs = httpx.Response(
            200, headers=PAIRS, stream=stream, extensions=extensions, request=given
        )
        ours = new_response(200, new_headers(PAIRS), stream, dict(extensions), given)
        assert _attributes(ours) == _attributes(theirs)
    ours.request = request
    assert ours.request is request
    assert ours.reason_phrase == "OK"
    assert ours.http_version == "HTTP/1.1"
    assert ours.headers["content-type"] == "text/event-stream"
    assert not ours.is_stream_consumed
    assert not ours.is_closed
