"""httpx's ``Headers``, ``Request`` and ``Response`` built without their ``__init__``.

llmrelay's client and transports build one request and one response per call, from
values already in httpx's normal form (header names and values as bytes, a parsed
``httpx.URL``, a bytes body). ``httpx.Request.__init__`` and ``httpx.Response.__init__``
then normalise every header again (two function calls and a ``lower()`` per header),
copy the extensions and, for a request, build the headers a second time; that costs
6-10 % of a short streamed request's CPU on the aiohttp transport. The functions here set
the same attributes to the same values directly.

This reads httpx's private attribute layout (``Headers._list``/``_encoding``,
``Request._content``, ``Response._request``/``_num_bytes_downloaded``), bounded by
``httpx>=0.28,<0.30`` in ``pyproject.toml``; ``tests/unit/test_httpx_objects.py``
compares each object with the one httpx's own constructor builds from the same values
(every attribute, by name and value) and fails when httpx changes them. Source:
https://github.com/encode/httpx/blob/0.28.1/httpx/_models.py
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

__all__ = ["header_list", "new_headers", "new_request", "new_response"]

_new_headers = httpx.Headers.__new__
_new_request = httpx.Request.__new__
_new_response = httpx.Response.__new__
_Headers = httpx.Headers
_Request = httpx.Request
_Response = httpx.Response


def new_headers(items: Iterable[tuple[bytes, bytes]]) -> httpx.Headers:
    """``httpx.Headers(items)`` for (name, value) pairs that are both ``bytes``.

    Names and values are kept as given, in order (duplicates too), as httpx keeps bytes.
    """
    return header_list([(name, name.lower(), value) for name, value in items])


def header_list(items: list[tuple[bytes, bytes, bytes]]) -> httpx.Headers:
    """``httpx.Headers`` holding ``items``, taken, not copied.

    ``items`` are in httpx's own form: (name, lower-case name, value), all ``bytes``.
    """
    headers = _new_headers(_Headers)
    headers._list = items
    headers._encoding = None
    return headers


def new_request(
    method: str,
    url: httpx.URL,
    headers: httpx.Headers,
    body: bytes,
    extensions: dict[str, Any],
) -> httpx.Request:
    """A request whose body is read (``content`` is ``body``).

    What ``httpx.Request(method, url, headers=headers, stream=httpx.ByteStream(body),
    extensions=extensions)`` followed by ``read()`` gives.

    Args:
        method: the method, upper case already.
        url: the parsed URL.
        headers: the request's headers (taken, not copied).
        body: the whole body.
        extensions: the request's extensions (taken, not copied).
    """
    request = _new_request(_Request)
    request.method = method
    request.url = url
    request.headers = headers
    request.extensions = extensions
    request.stream = httpx.ByteStream(body)
    request._content = body
    return request


def new_response(
    status_code: int,
    headers: httpx.Headers,
    stream: httpx.AsyncByteStream,
    extensions: dict[str, Any],
    request: httpx.Request | None = None,
) -> httpx.Response:
    """A streamed response, not read yet.

    What ``httpx.Response(status_code, headers=headers, stream=stream,
    extensions=extensions, request=request)`` gives.

    Args:
        status_code: the HTTP status.
        headers: the response's headers (taken, not copied).
        stream: the body.
        extensions: the response's extensions (taken, not copied).
        request: the request it answers (``None``: set later, as httpx's client does).
    """
    response = _new_response(_Response)
    response.status_code = status_code
    response.headers = headers
    response._request = request
    response.next_request = None
    response.extensions = extensions
    response.history = []
    response.is_closed = False
    response.is_stream_consumed = False
    response.default_encoding = "utf-8"
    response.stream = stream
    response._num_bytes_downloaded = 0
    return response
