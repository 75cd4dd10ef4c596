"""The fast HTTP transport: httpx's client interface over aiohttp (``llmrelay[fast]``).

``AiohttpTransport`` is an ``httpx.AsyncBaseTransport``
(https://www.python-httpx.org/advanced/transports/) that sends each request with one
``aiohttp.ClientSession`` (https://docs.aiohttp.org/en/stable/client_reference.html):
the providers keep using ``httpx.AsyncClient`` (llmrelay's ``_transport._Client``, which
calls this transport without httpx's client layers), ``httpx.Response`` and the one error
mapping of ``llmrelay._transport``, and aiohttp's HTTP/1.1 parser and connection pool
(C-accelerated) replace httpcore and h11, which cost two to three times the CPU per
streamed token (``benchmarks/README.md``). Imported only when this transport is chosen:
``import aiohttp`` costs 100-250 ms.

What it keeps from the default transport, and how:

* **errors**: aiohttp's exceptions become the httpx exceptions the default transport
  raises for the same fault (``_as_httpx``: a connect timeout -> ``ConnectTimeout``, a
  silence -> ``ReadTimeout``, refused / DNS / TLS -> ``ConnectError``, a reset ->
  ``ReadError``, a body cut short or a malformed answer -> ``RemoteProtocolError``),
  so ``llmrelay.errors`` types are the same on both transports;
* **timeouts**: httpx's per-request connect and read timeouts become aiohttp's
  ``sock_connect`` (TCP and TLS handshake) and ``sock_read`` (the longest silence while
  waiting for the head or any body chunk); httpx's pool timeout becomes ``connect``;
* no connection limit (``limit=0``), no cookies (``DummyCookieJar``), no environment
  (``trust_env=False``: no ``HTTP_PROXY``, no ``.netrc``), redirects never followed,
  the body passed on exactly as received (``auto_decompress=False``: llmrelay's own
  readers inflate gzip/deflate in bounded steps), the URL sent as httpx encoded it, no
  header added that httpx did not send (``Accept``, ``Accept-Encoding``,
  ``User-Agent``, ``Content-Type``); response heads up to httpcore's bound (100 KiB);
* TLS: the same context as the default transport (certifi's CAs, a CA bundle or
  ``verify=False``), built at the first https request; http and https proxies (an
  https target is tunnelled with ``CONNECT``).

Where it differs: **no socks proxies** (aiohttp has none; ``make_http_client`` refuses
``transport="aiohttp"`` with a socks proxy and falls back to httpx for ``"auto"``), no
write timeout (aiohttp has none; the engine's first-token deadline bounds a stalled
upload), HTTP/1.1 only (as the default transport), request bodies are read whole before
sending (llmrelay's are small JSON documents).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable

import aiohttp
import httpx
from aiohttp import http_exceptions
from yarl import URL

from . import errors
from ._httpx_objects import new_headers, new_response
from ._transport import BODY_DONE_EXTENSION, RAW_READ_EXTENSION, READ_EXTENSION

__all__ = ["AiohttpTransport"]

KEEPALIVE_EXPIRY = 5.0
"""Seconds an idle connection is kept (the default transport's expiry)."""

MAX_HEAD_LINE = 100 * 1024
"""Longest status or header line accepted (httpcore's bound on a response head)."""

_HTTP_11 = b"HTTP/1.1"
_TARGETS = 256
"""Most httpx URLs whose yarl URL a transport keeps."""
_SKIP_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


def _as_httpx(exc: BaseException, request: httpx.Request | None = None) -> httpx.TransportError:
    """The httpx exception the default transport raises for the fault behind ``exc``."""
    message = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(exc, TimeoutError):  # SocketTimeoutError: sock_read
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientHttpProxyError):  # the proxy refused the CONNECT
        kind = httpx.ProxyError
    elif isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS, proxy down
        kind = httpx.ConnectError
    elif isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientResponseError
        | http_exceptions.HttpProcessingError,
    ):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        kind = httpx.UnsupportedProtocol
    else:  # a reset (ClientOSError) or another socket error
        kind = httpx.ReadError
    return kind(message, request=request)


_ERRORS = (aiohttp.ClientError, http_exceptions.HttpProcessingError, OSError, TimeoutError)


class _Body(httpx.AsyncByteStream):
    """An aiohttp response's body as it arrives; its errors mapped to httpx's.

    ``read`` (the response's ``READ_EXTENSION``) is the same bytes one call per chunk,
    without httpx's layers over a response stream (``Response.aiter_raw`` and the
    client's stream wrapper: 1-2 µs per chunk); ``llmrelay._http`` reads with it, or
    with aiohttp's ``readany`` itself and ``mapped`` (``RAW_READ_EXTENSION``).
    """

    __slots__ = ("_readany", "_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request
        self._readany = response.content.readany

    async def read(self) -> bytes:
        """The next chunk as received (``b""`` at the end of the body).

        Raises:
            httpx.TransportError: the subclass the default transport raises for the
                fault (a silence past the read timeout, a reset, a body cut short).
        """
        try:
            return await self._readany()
        except _ERRORS as exc:
            raise _as_httpx(exc, self._request) from exc

    def mapped(self, exc: BaseException) -> httpx.TransportError:
        """The httpx exception ``read`` raises for ``exc`` (``RAW_READ_EXTENSION``)."""
        return _as_httpx(exc, self._request)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read = self._readany
        try:
            while chunk := await read():
                yield chunk
        except _ERRORS as exc:
            raise _as_httpx(exc) from exc

    async def aclose(self) -> None:
        response = self._response
        if response.content.at_eof():
            response.release()  # the connection goes back to the pool
        else:  # not read to its end: the connection is closed, and by the time this
            response.close()  # returns (asyncio closes the socket at its next turn)
            await asyncio.sleep(0)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface over one ``aiohttp.ClientSession``.

    The session is made at the first request (aiohttp binds it to the running event
    loop) and closed by ``aclose``.

    Args:
        tls: builds the TLS context (called once, at the first https request; may raise
            ``ConfigError`` for a CA bundle that is not one).
        proxy: ``http://`` or ``https://`` proxy URL, or ``None``.

    Raises:
        llmrelay.errors.ConfigError: a proxy of another scheme (socks).
    """

    def __init__(self, tls: Callable[[], ssl.SSLContext], proxy: str | None = None) -> None:
        if proxy is not None and not proxy.lower().startswith(("http://", "https://")):
            raise errors.ConfigError(
                f"unusable proxy setting for the aiohttp transport: "
                f"{proxy.partition(':')[0]!r} (http:// and https:// only; socks proxies "
                "need the httpx transport)"
            )
        self._tls: Callable[[], ssl.SSLContext] | None = tls
        self._ssl: ssl.SSLContext | None = None
        self._proxy = URL(proxy) if proxy else None
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._targets: dict[object, URL] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, keepalive_timeout=KEEPALIVE_EXPIRY
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            max_line_size=MAX_HEAD_LINE,
            max_field_size=MAX_HEAD_LINE,
        )
        return self._session

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            assert self._tls is not None
            self._ssl = self._tls()  # may raise ConfigError
            self._tls = None
        return self._ssl

    def _timeout(self, extension: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (extension.get("connect"), extension.get("read"), extension.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read, pool = key
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` with aiohttp (httpx's transport interface)."""
        session = self._session or self._open()
        url = request.url
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        extensions = request.extensions
        # the yarl URL of a URL sent before, by its parts (httpx's private parsed
        # reference, a tuple of str: hashed in well under a µs, where str() and yarl
        # take 3-5 µs; httpx is bounded <0.30 and every request here needs it)
        key = url._uri_reference
        target = self._targets.get(key)
        if target is None:
            target = URL(str(url), encoded=True)
            if url.userinfo:  # sent as httpx's Authorization header; aiohttp refuses both
                target = target.with_user(None)
            if len(self._targets) >= _TARGETS:
                self._targets.clear()
            self._targets[key] = target
        try:
            response = await session.request(
                request.method,
                target,
                headers=[(k.decode("latin-1"), v.decode()) for k, _, v in request.headers._list],
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(extensions.get("timeout", {})),
                ssl=self._context() if url.scheme == "https" else True,
                proxy=self._proxy,
                server_hostname=extensions.get("sni_hostname"),
            )
        except _ERRORS as exc:
            raise _as_httpx(exc) from exc
        except UnicodeDecodeError as exc:
            raise httpx.LocalProtocolError(f"a header value is not UTF-8: {exc}") from exc
        version = response.version
        content = response.content
        stream = _Body(response, request)
        # httpx.Response(status, headers=raw_headers, stream=..., extensions=...),
        # without its __init__ (aiohttp's raw headers are bytes pairs already)
        return new_response(
            response.status,
            new_headers(response.raw_headers),
            stream,
            {
                READ_EXTENSION: stream.read,
                RAW_READ_EXTENSION: (content.readany, _ERRORS, stream.mapped),
                BODY_DONE_EXTENSION: content.is_eof,
                "http_version": _HTTP_11
                if version is None or version == (1, 1)
                else f"HTTP/{version.major}.{version.minor}".encode(),
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        """Close the session and every pooled connection."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
