"""The default HTTP transport: httpx over httpcore's connection pool, with llmrelay's pass.

``HttpcoreTransport`` is an ``httpx.AsyncBaseTransport`` (httpx's documented custom
transport interface, https://www.python-httpx.org/advanced/transports/) over httpcore's
public pool classes (``AsyncConnectionPool``, ``AsyncHTTPProxy``, ``AsyncSOCKSProxy``),
subclassed to replace one private method of httpcore 1.0, its connection assignment
pass. It does what ``httpx.AsyncHTTPTransport`` does (request and response conversion,
httpcore's errors turned into httpx's), plus two things:

* **the assignment pass** (``TunedAssignment``): httpcore 1.0.9's
  ``_assign_requests_to_connections`` runs on every request and every response close,
  and at hundreds of concurrent streams it was most of llmrelay's CPU (a burst given one
  idle connection, each request but one refused and queued again; a keep-alive bound
  compared with *every* open connection, once per idle one; an expiry check of every
  connection on every pass). Measured again with the fast transport in place
  (``benchmarks/README.md``): 1000 streams took 3.8x longer on httpcore's own pass, so
  it stays, for this transport only. It reads httpcore's private pool state, so
  ``pyproject.toml`` bounds httpcore to ``>=1.0.9,<1.1`` and
  ``tests/unit/test_transport_pool.py`` fails when httpcore's pass runs instead (a burst
  retried on one connection) or when a pool without the state it reads is built;
* **TLS on first use**: the https pool is built with its TLS context at the first https
  request (loading a CA bundle costs 30-100 ms a CLI talking plain http never needs);
  plain ``http://`` goes to a pool built without any TLS context (even an empty
  ``ssl.SSLContext`` cost ~2.5 ms at its first use). Only ``http`` origins reach that
  pool: every other scheme goes to the TLS pool, so no connection there ever needs a
  context. A proxy's own TLS (an ``https://`` proxy) is httpx's ``Proxy.ssl_context``
  in both pools, as in ``httpx.AsyncHTTPTransport``.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpcore
import httpx

from . import errors
from ._httpx_objects import new_headers, new_response
from ._transport import READ_EXTENSION

__all__ = ["HttpcoreTransport", "TunedAssignment", "tuned_pool"]

_SWEEP_EVERY = 0.5
"""Seconds between two checks of every idle connection for expiry (one syscall each)."""

KEEPALIVE_EXPIRY = 5.0
"""Seconds an idle connection is kept (httpx's default)."""

MAX_KEEPALIVE = 100
"""Idle connections kept per pool (the busy ones are not counted)."""


class TunedAssignment:
    """llmrelay's connection assignment for an httpcore 1.0 pool (a mixin).

    The same job as httpcore's pass, in one sweep: a connection referenced by a pending
    request is spoken for (never handed out twice, never closed, not even looked at
    until its request is done; https://github.com/encode/httpcore/issues/822,
    https://github.com/encode/httpcore/issues/1110), the keep-alive bound counts idle
    connections, a reused idle connection is checked for expiry before it is handed out
    and the others at most every ``_SWEEP_EVERY`` seconds.

    It reads httpcore 1.0's pool state: ``_requests`` (each with ``connection``,
    ``request`` and ``assign_to_connection``), ``_connections``, ``_max_connections``,
    ``_max_keepalive_connections``, ``_http2`` and ``create_connection``.
    """

    _next_sweep = 0.0

    def _assign_requests_to_connections(self) -> list[Any]:
        """Assign queued requests to connections; return the connections to close."""
        pool: Any = self
        requests = pool._requests
        queued = [r for r in requests if r.connection is None]
        closing: list[Any] = []
        claimed = {id(r.connection) for r in requests if r.connection is not None}
        now = time.monotonic()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + _SWEEP_EVERY
        # Connections in use are left alone until their request is done (then checked):
        # the pass costs set lookups on every connection, calls on the free ones only.
        connections = pool._connections
        removed: set[int] = set()
        free: list[Any] = []  # not spoken for: the only ones to check and to hand out
        idle: list[Any] = []
        for connection in [c for c in connections if id(c) not in claimed]:
            if connection.is_closed():
                removed.add(id(connection))
                continue
            if sweep and connection.has_expired():
                closing.append(connection)
                removed.add(id(connection))
                continue
            if connection.is_idle():
                idle.append(connection)
            free.append(connection)
        surplus = len(idle) - pool._max_keepalive_connections
        if surplus > 0:
            dropped = {id(c) for c in idle[:surplus]}
            closing.extend(idle[:surplus])
            del idle[:surplus]
            removed |= dropped
            free = [c for c in free if id(c) not in dropped]
        kept = [c for c in connections if id(c) not in removed] if removed else list(connections)
        if queued:
            # An HTTP/1.1 connection in use is never available; only HTTP/2 multiplexes.
            candidates = kept if pool._http2 else free
            available = [
                c for c in candidates if c.is_available() and not (id(c) in claimed and c.is_idle())
            ]
            for request in queued:
                origin = request.request.url.origin
                chosen = None
                index = 0
                while index < len(available):
                    candidate = available[index]
                    if not candidate.can_handle_request(origin):
                        index += 1
                        continue
                    if candidate.is_idle():  # one request at a time until it is released
                        del available[index]
                        idle.remove(candidate)
                        if candidate.has_expired():  # closed by the server, or too old
                            kept.remove(candidate)
                            closing.append(candidate)
                            continue
                    chosen = candidate
                    break
                if chosen is None:
                    if len(kept) >= pool._max_connections:
                        if not idle:
                            continue  # waits for a connection to be released
                        oldest = idle.pop(0)
                        kept.remove(oldest)
                        closing.append(oldest)
                        if oldest in available:  # closed: no later request may take it
                            available.remove(oldest)
                    chosen = pool.create_connection(origin)
                    kept.append(chosen)
                request.assign_to_connection(chosen)
        pool._connections = kept
        return closing


class _TunedPool(TunedAssignment, httpcore.AsyncConnectionPool):
    """``httpcore.AsyncConnectionPool`` with llmrelay's assignment pass."""


class _TunedHTTPProxy(TunedAssignment, httpcore.AsyncHTTPProxy):
    """``httpcore.AsyncHTTPProxy`` with llmrelay's assignment pass."""


class _TunedSOCKSProxy(TunedAssignment, httpcore.AsyncSOCKSProxy):
    """``httpcore.AsyncSOCKSProxy`` with llmrelay's assignment pass."""


def tuned_pool(
    ssl_context: ssl.SSLContext | None, proxy: httpx.Proxy | None = None
) -> httpcore.AsyncConnectionPool:
    """An httpcore pool (direct, or through ``proxy``) with llmrelay's assignment pass.

    No connection limit, ``MAX_KEEPALIVE`` idle connections kept for
    ``KEEPALIVE_EXPIRY`` seconds, HTTP/1.1. ``ssl_context`` verifies the origins'
    certificates; ``None`` only for a pool of plain ``http`` origins (httpcore would
    build its own default context for a TLS origin).

    Raises:
        llmrelay.errors.ConfigError: a proxy scheme other than http, https, socks5 and
            socks5h (or socks without the ``socksio`` package).
    """
    common: dict[str, Any] = {
        "ssl_context": ssl_context,
        "max_connections": None,
        "max_keepalive_connections": MAX_KEEPALIVE,
        "keepalive_expiry": KEEPALIVE_EXPIRY,
    }
    if proxy is None:
        return _TunedPool(**common)
    url = httpcore.URL(
        scheme=proxy.url.raw_scheme,
        host=proxy.url.raw_host,
        port=proxy.url.port,
        target=proxy.url.raw_path,
    )
    if proxy.url.scheme in ("http", "https"):
        return _TunedHTTPProxy(
            proxy_url=url,
            proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw,
            proxy_ssl_context=proxy.ssl_context,
            **common,
        )
    if proxy.url.scheme in ("socks5", "socks5h"):
        try:
            import socksio  # noqa: F401  (httpcore imports it on the first connection)
        except ImportError:  # pragma: no cover - a dependency of httpx[socks]
            raise errors.ConfigError("a socks proxy needs the socksio package") from None
        return _TunedSOCKSProxy(proxy_url=url, proxy_auth=proxy.raw_auth, **common)
    raise errors.ConfigError(
        f"unusable proxy setting: the scheme must be http, https, socks5 or socks5h; "
        f"got {proxy.url.scheme!r}"
    )


# httpcore's errors -> httpx's, most specific first (as httpx's own transport maps them)
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)
_HTTPCORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    httpcore.ProtocolError,
)


def _as_httpx(exc: Exception) -> httpx.TransportError:
    for source, target in _ERRORS:
        if isinstance(exc, source):
            return target(str(exc))
    return httpx.TransportError(str(exc))  # pragma: no cover - every base is listed


class _Body(httpx.AsyncByteStream):
    """httpcore's response stream, its errors mapped to httpx's.

    ``read`` (the response's ``READ_EXTENSION``) gives the same chunks one call each,
    without httpx's layers over a response stream (``llmrelay._http`` reads with it,
    and closes the response at the end of the body, as ``Response.aiter_raw`` does).
    """

    __slots__ = ("_parts", "_request", "_stream")

    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request
        self._parts: AsyncIterator[bytes] | None = None

    async def read(self) -> bytes:
        """The next chunk as received (``b""`` at the end of the body).

        Raises:
            httpx.TransportError: the mapped httpcore failure (a read timeout, a reset,
                a body cut short).
        """
        parts = self._parts
        if parts is None:
            parts = self._parts = self._stream.__aiter__()
        try:
            return await parts.__anext__()
        except StopAsyncIteration:
            return b""
        except _HTTPCORE_ERRORS as exc:
            error = _as_httpx(exc)
            error.request = self._request
            raise error from exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except _HTTPCORE_ERRORS as exc:
            raise _as_httpx(exc) from exc

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        except _HTTPCORE_ERRORS as exc:
            raise _as_httpx(exc) from exc


class HttpcoreTransport(httpx.AsyncBaseTransport):
    """llmrelay's default transport: httpcore pools with ``TunedAssignment``.

    Args:
        tls: builds the TLS context (called once, at the first https request; may raise
            ``ConfigError`` for a CA bundle that is not one).
        proxy: ``http://``, ``https://``, ``socks5://`` or ``socks5h://`` URL, or ``None``.

    Raises:
        llmrelay.errors.ConfigError: an unusable proxy URL.
    """

    def __init__(self, tls: Callable[[], ssl.SSLContext], proxy: str | None = None) -> None:
        try:
            self._proxy = httpx.Proxy(proxy) if proxy else None
        except ValueError as exc:
            raise errors.ConfigError(f"unusable proxy setting: {exc}") from exc
        self._tls: Callable[[], ssl.SSLContext] | None = tls
        # http:// origins only (see _pool_for): no TLS handshake, so no context
        self._plain = tuned_pool(None, self._proxy)
        self._secure: httpcore.AsyncConnectionPool | None = None

    def _pool_for(self, scheme: bytes) -> httpcore.AsyncConnectionPool:
        if scheme == b"http":
            return self._plain
        if self._secure is None:
            assert self._tls is not None
            self._secure = tuned_pool(self._tls(), self._proxy)  # may raise ConfigError
            self._tls = None
        return self._secure

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the pool of its scheme (httpx's transport interface)."""
        url = request.url
        pool = self._pool_for(url.raw_scheme)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await pool.handle_async_request(core)
        except _HTTPCORE_ERRORS as exc:
            raise _as_httpx(exc) from exc
        body = _Body(response.stream, request)
        extensions = response.extensions  # httpcore's, made for this response
        extensions[READ_EXTENSION] = body.read
        # httpx.Response(status, headers=..., stream=..., extensions=...) without its
        # __init__ (httpcore's headers are bytes pairs already)
        return new_response(response.status, new_headers(response.headers), body, dict(extensions))

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._plain.aclose()
        if self._secure is not None:
            await self._secure.aclose()
