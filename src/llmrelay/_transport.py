"""The HTTP client every provider shares, its two transports, and the one error mapping.

* ``make_http_client`` builds the pooled ``httpx.AsyncClient`` of a client: connect and
  read (idle) timeouts, an http, https or socks proxy, a CA bundle, no cookie jar (a
  provider that needs a cookie session keeps it in its conversation state), no
  connection limit (the 101st concurrent stream never waits for a slot), redirects not
  followed, no environment read (``trust_env=False``). Under it, one of two transports:

  - ``"httpx"`` (the default): httpcore's pools with llmrelay's assignment pass
    (``llmrelay._pool``);
  - ``"aiohttp"`` (``pip install 'llmrelay[fast]'``): the same client interface over
    aiohttp (``llmrelay._aiohttp``), a third to a half of the CPU per streamed token; no
    socks proxies;
  - ``"auto"``: aiohttp when it is installed and no socks proxy is set, else httpx (the
    default of ``llmrelay serve``).

  The client is ``_Client``: httpx's ``AsyncClient`` whose ``build_request``, ``send``
  and ``stream`` skip the generic layers (auth, redirects, hooks, cookies) none of which
  applies to it, and hand the request to the transport directly; the same requests,
  responses and errors (``_Client``'s docstring says what it keeps).

  Both build the TLS context at the first https request, once per process and setting
  (``httpx.create_ssl_context`` for a bool, ``ssl.create_default_context`` for a bundle):
  loading a CA bundle costs 30-100 ms, which a CLI talking plain http never needs.
* ``map_httpx_error`` / ``translate_errors`` map httpx's transport failures (both
  transports raise httpx's exceptions) to the error tree of ``llmrelay.errors``.

Request headers (and so API keys) never reach an error message.
"""

from __future__ import annotations

import functools
import http.cookiejar
import json
import logging
import ssl
import stat
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx

from . import errors
from ._http_setup import TRANSPORTS, check_ca_bundle, choose_transport
from ._httpx_objects import header_list, new_request
from ._settings import Timeouts
from ._version import __version__

__all__ = [
    "ACCEPT_ENCODING",
    "BODY_DONE_EXTENSION",
    "RAW_READ_EXTENSION",
    "READ_EXTENSION",
    "TRANSPORTS",
    "USER_AGENT",
    "choose_transport",
    "make_http_client",
    "map_httpx_error",
    "translate_errors",
]

log = logging.getLogger("llmrelay")

USER_AGENT = f"llmrelay/{__version__}"
ACCEPT_ENCODING = "gzip, deflate"
"""The ``Accept-Encoding`` llmrelay's HTTP client sends (the encodings ``aiter_body``
inflates in bounded steps; httpx would also ask for br and zstd when installed)."""

READ_EXTENSION = "llmrelay.read"
"""Key of a response's ``extensions`` (https://www.python-httpx.org/advanced/extensions/)
under which llmrelay's transports put the body's chunk reader: an ``async () -> bytes``
giving each chunk as received and ``b""`` at the end, raising the httpx exceptions the
body's iteration raises. ``llmrelay._http`` reads a body with it (no per-chunk layers
of httpx's response stream) and falls back to ``Response.aiter_raw`` without it (a
client passed as ``http_client=``)."""

RAW_READ_EXTENSION = "llmrelay.raw_read"
"""Key of a response's ``extensions`` under which a transport may also put the chunk
reader beneath ``READ_EXTENSION``'s, for a reader that maps its errors itself (one
coroutine less per chunk): ``(read, failures, mapped)``, where ``read`` is an
``async () -> bytes`` (each chunk, ``b""`` at the end) raising the transport's own
exceptions, ``failures`` the tuple of their types and ``mapped(exc)`` the httpx
exception ``READ_EXTENSION``'s reader raises for one (the request attached). The
aiohttp transport sets it (aiohttp's ``StreamReader.readany``)."""

BODY_DONE_EXTENSION = "llmrelay.body_done"
"""Key of a response's ``extensions`` under which a transport may put a ``() -> bool``
telling whether the whole body has been received (what is left of it, if anything, is
buffered: reading it to its end waits for nothing). A reader that must read a body's
rest within a time bound can then skip the bound's timer. The aiohttp transport sets it
(aiohttp's ``StreamReader.is_eof``: the end of the body was parsed)."""


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that never stores a cookie.

    httpx hands every response to its client's jar (``CookieJar.extract_cookies``,
    https://docs.python.org/3/library/http.cookiejar.html), which parses the whole head
    into an ``email.message.Message`` to find ``Set-Cookie`` (30-60 µs per response);
    this jar ignores it before any parsing, and its policy allows no domain either.
    """

    def extract_cookies(self, response: Any, request: Any) -> None:
        """Keep nothing from ``response``."""


def _no_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that never stores a cookie (``_NoCookies``; no domain is allowed)."""
    return _NoCookies(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


@functools.lru_cache(maxsize=256)
def _parsed(url: str) -> tuple[httpx.URL, bytes]:
    """``httpx.URL(url)`` and its ``netloc`` (the ``Host`` header), once per distinct URL."""
    parsed = httpx.URL(url)
    return parsed, parsed.netloc


_HTTPX_LOG = logging.getLogger("httpx")
_DEFAULT = httpx.USE_CLIENT_DEFAULT
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_LENGTH_HEADERS = frozenset({b"content-length", b"transfer-encoding"})
_JSON_TYPE = (b"Content-Type", b"content-type", b"application/json")
_NO_BODY = (b"Content-Length", b"content-length", b"0")


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
"""httpx 0.28-0.29's encoding of ``json=`` (``json.dumps`` with these options: compact,
UTF-8, no NaN); one encoder, not one per ``json.dumps`` call."""


def _header_items(headers: Any) -> list[tuple[bytes, bytes, bytes]]:
    """``httpx.Headers(headers)``'s items: (name, lower-case name, value), all bytes.

    Without building a ``Headers`` for a dict of strings.

    A ``str`` name or value is encoded as ASCII, as httpx does (the same
    ``UnicodeEncodeError`` for other text); anything else goes through ``httpx.Headers``.
    """
    if type(headers) is dict:
        items: list[tuple[bytes, bytes, bytes]] = []
        for name, value in headers.items():
            if type(name) is not str or type(value) is not str:
                break
            raw = name.encode("ascii")
            items.append((raw, raw.lower(), value.encode("ascii")))
        else:
            return items
    return list(httpx.Headers(headers)._list)


class _Streamed:
    """The async context manager ``_Client.stream`` returns: the response, closed on exit."""

    __slots__ = ("_args", "_client", "_response")

    def __init__(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL | str,
        auth: Any,
        follow_redirects: Any,
        kwargs: dict[str, Any],
    ) -> None:
        self._client = client
        self._args = (method, url, auth, follow_redirects, kwargs)
        self._response: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        method, url, auth, follow_redirects, kwargs = self._args
        client = self._client
        request = client.build_request(method, url, **kwargs)
        self._response = await client.send(
            request, stream=True, auth=auth, follow_redirects=follow_redirects
        )
        return self._response

    async def __aexit__(self, *exc_info: object) -> None:
        response = self._response
        if response is not None:
            await response.aclose()


class _Client(httpx.AsyncClient):
    """llmrelay's ``httpx.AsyncClient``: the same requests and responses, fewer layers.

    ``make_http_client`` builds it with no auth, no event hooks, no cookie jar
    (``_NoCookies``), no base URL or default query, redirects never followed and one
    transport for every URL (no mounts). For such a client most of httpx's generic
    client layer does nothing but costs a third of llmrelay's CPU per short request
    (``benchmarks/send_path.py``), so two methods take a shorter way while the client
    is still configured so, and httpx's own otherwise:

    * ``build_request`` with a URL string, ``json=`` or ``bytes``/``str`` ``content=``
      and ``headers=`` (what the providers send) builds the ``httpx.Request`` httpx
      builds from the same arguments -- the client's headers merged with the request's
      as ``Headers.update`` does, then ``Host``, and ``Content-Length`` and
      ``Content-Type`` unless given, in httpx's order; the body encoded as httpx
      encodes it; the timeout extension -- with ``httpx.Request(..., stream=
      httpx.ByteStream(body))`` and no second pass over the headers. A string URL is
      parsed once per distinct value (an ``lru_cache`` of 256 immutable ``httpx.URL``).
      ``tests/unit/test_transport_send.py`` compares both for many argument sets and
      fails when httpx's request building changes.
    * ``send`` hands the request to the transport and sets ``response.request``, as
      httpx's ``_send_single_request`` does, without the auth flow, redirect loop,
      hooks, cookie extraction (httpx builds urllib request/response adapters for it on
      every response, 200-300 µs of the 600 per request measured) and the
      ``BoundAsyncStream`` wrapper. Kept: the closed-client error, the timeout
      extension when the request has none, the request attached to every
      ``httpx.RequestError`` the transport raises (errors name the URL), httpx's
      ``HTTP Request:`` log line, the body read and the response closed on any
      failure when ``stream=False``. Not set: ``response.elapsed`` (read by nothing in
      llmrelay) and ``response.next_request`` (a redirect is an error to llmrelay).
    """

    def __init__(self, *, transport: httpx.AsyncBaseTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._one_transport = transport

    def _plain(self) -> bool:
        """Whether the client is still as ``make_http_client`` built it (no auth, hooks...)."""
        hooks = self.event_hooks
        return (
            self.auth is None
            and not self.follow_redirects
            and not hooks["request"]
            and not hooks["response"]
            and type(self.cookies.jar) is _NoCookies
            and not self.params
        )

    def build_request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: Any = None,
        json: Any = None,
        headers: Any = None,
        timeout: Any = _DEFAULT,
        **kwargs: Any,
    ) -> httpx.Request:
        """Build a request as httpx does (see the class), a string URL parsed once."""
        netloc: bytes | None = None
        if isinstance(url, str):
            url, netloc = _parsed(url)
        if (
            any(value is not None for value in kwargs.values())
            or not (content is None or isinstance(content, bytes | str))
            or (content is not None and json is not None)
            or not url.is_absolute_url
            or not self._plain()
        ):
            return super().build_request(
                method, url, content=content, json=json, headers=headers, timeout=timeout, **kwargs
            )
        method = method.upper()
        # httpx's header items: (name, lower-case name, value), all bytes
        merged = self.headers._list
        if headers:
            given = _header_items(headers)
            names = {item[1] for item in given}
            merged = [item for item in merged if item[1] not in names] + given
        names = {item[1] for item in merged}
        head: list[tuple[bytes, bytes, bytes]] = []
        if b"host" not in names and url.raw_host:
            head.append((b"Host", b"host", url.netloc if netloc is None else netloc))
        tail: list[tuple[bytes, bytes, bytes]] = []
        body = b""
        if content is not None:
            body = content.encode() if isinstance(content, str) else content
        elif json is not None:
            body = _JSON.encode(json).encode()
        if body and b"content-length" not in names:
            tail.append((b"Content-Length", b"content-length", str(len(body)).encode()))
        if json is not None and content is None and b"content-type" not in names:
            tail.append(_JSON_TYPE)
        if not body and method in _BODY_METHODS and not names & _LENGTH_HEADERS:
            head.append(_NO_BODY)
        limits = self.timeout if timeout is _DEFAULT else httpx.Timeout(timeout)
        # httpx.Request(..., stream=ByteStream(body)) then read(), without its __init__
        return new_request(
            method,
            url,
            header_list([*head, *merged, *tail]),
            body,
            {"timeout": limits.as_dict()},
        )

    def stream(  # type: ignore[override]
        self,
        method: str,
        url: httpx.URL | str,
        *,
        auth: Any = _DEFAULT,
        follow_redirects: Any = _DEFAULT,
        **kwargs: Any,
    ) -> _Streamed:
        """``httpx.AsyncClient.stream`` (build, send with ``stream=True``, close on exit).

        The same steps through ``build_request`` and ``send`` as httpx's, in a plain
        async context manager instead of one made from a generator.
        """
        return _Streamed(self, method, url, auth, follow_redirects, kwargs)

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = _DEFAULT,
        follow_redirects: Any = _DEFAULT,
    ) -> httpx.Response:
        """Send ``request`` (see the class: the transport directly when nothing else applies)."""
        if (
            (auth is not _DEFAULT and auth is not None)
            or (follow_redirects is not _DEFAULT and follow_redirects)
            or not self._plain()
            or request.url.userinfo  # httpx sends it as basic auth
        ):
            return await super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise RuntimeError("Attempted to send a sync request with an AsyncClient instance.")
        if "timeout" not in request.extensions:
            request.extensions = {**request.extensions, "timeout": self.timeout.as_dict()}
        try:
            response = await self._one_transport.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request  # as httpx's request_context: errors name the URL
            raise
        response.request = request
        if _HTTPX_LOG.isEnabledFor(logging.INFO):
            _HTTPX_LOG.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response


def make_http_client(
    timeouts: Timeouts,
    proxy: str | None = None,
    verify: bool | str = True,
    transport: str = "httpx",
) -> httpx.AsyncClient:
    """Build the shared, pooled ``httpx.AsyncClient``.

    Args:
        timeouts: connect and read (idle) timeouts; first-token and total deadlines are
            the engine's.
        proxy: ``http://``, ``https://``, ``socks5://`` or ``socks5h://`` URL, or ``None``.
        verify: ``True`` (certifi's CAs), ``False`` (no TLS verification) or the path of
            a CA bundle (PEM file or directory).
        transport: ``"httpx"``, ``"aiohttp"`` or ``"auto"`` (see ``choose_transport``).

    Raises:
        llmrelay.errors.ConfigError: an unusable proxy URL, transport or unreadable CA
            bundle (from a request: a CA bundle file that is not one).
    """
    timeout = httpx.Timeout(
        connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=None
    )
    tls: Callable[[], ssl.SSLContext]
    if isinstance(verify, str):
        tls = _bundle_context(verify)
    else:
        tls = _shared_context_true if verify else _shared_context_false
    base: httpx.AsyncBaseTransport
    chosen = choose_transport(transport, proxy)
    if chosen == "aiohttp":
        from ._aiohttp import AiohttpTransport

        base = AiohttpTransport(tls, proxy)
    else:
        from ._pool import HttpcoreTransport

        base = HttpcoreTransport(tls, proxy)
    log.debug("HTTP transport: %s", chosen)
    return _Client(
        transport=base,
        timeout=timeout,
        # Proxies and keys come from llmrelay's settings only, never implicitly.
        trust_env=False,
        cookies=_no_cookies(),
        follow_redirects=False,
        headers={"user-agent": USER_AGENT, "accept-encoding": ACCEPT_ENCODING},
    )


_TLS_LOCK = threading.Lock()
_TLS_CONTEXTS: dict[object, ssl.SSLContext] = {}


def _tls_context(key: object, make: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    with _TLS_LOCK:
        context = _TLS_CONTEXTS.get(key)
        if context is None:
            context = _TLS_CONTEXTS[key] = make()
        return context


def _bundle_context(path: str) -> Callable[[], ssl.SSLContext]:
    """A builder of the context trusting the CA bundle ``path`` (file or directory).

    Raises:
        llmrelay.errors.ConfigError: ``path`` cannot be read (now), or is not a CA
            bundle (when the builder is called).
    """
    status = check_ca_bundle(path)
    is_dir = stat.S_ISDIR(status.st_mode)

    def make() -> ssl.SSLContext:
        try:
            return ssl.create_default_context(
                cafile=None if is_dir else path, capath=path if is_dir else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise errors.ConfigError(f"cannot use CA bundle {path!r}: {exc}") from exc

    # the same file, unchanged, is loaded once per process
    key = ("bundle", path, status.st_mtime_ns, status.st_size)
    return lambda: _tls_context(key, make)


def _shared_context_true() -> ssl.SSLContext:
    """The verifying context of httpx (certifi's CAs, no environment), built once."""
    return _tls_context(True, lambda: httpx.create_ssl_context(verify=True, trust_env=False))


def _shared_context_false() -> ssl.SSLContext:
    """The non-verifying context of httpx (``verify=False``), built once."""
    return _tls_context(False, lambda: httpx.create_ssl_context(verify=False, trust_env=False))


_TIMEOUT_KINDS: dict[type[Exception], str] = {
    httpx.ConnectTimeout: "connect",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
    httpx.PoolTimeout: "pool",
}


def map_httpx_error(
    exc: BaseException, provider: str, model: str | None
) -> errors.LLMRelayError | None:
    """The llmrelay error for an httpx exception, or ``None`` when it is not one.

    ``httpx.TimeoutException`` -> ``ProviderTimeout`` (``kind`` connect/read/write/pool);
    any other ``httpx.TransportError`` (refused, reset, TLS, peer closed mid-body) ->
    ``TransportError``; an invalid URL -> ``ConfigError``.
    """
    if isinstance(exc, httpx.TimeoutException):
        kind = _TIMEOUT_KINDS.get(type(exc), "")
        return errors.ProviderTimeout(
            f"{kind} timeout talking to {_where(exc)}".lstrip(),
            kind=kind,
            provider=provider,
            model=model,
        )
    if isinstance(exc, httpx.TransportError):
        return errors.TransportError(
            f"{type(exc).__name__} talking to {_where(exc)}: {exc}", provider=provider, model=model
        )
    if isinstance(exc, httpx.InvalidURL):
        return errors.ConfigError(f"{provider}: invalid URL: {exc}")
    return None


class _Translated:
    """The context manager of ``translate_errors`` (a class: entered once per request)."""

    __slots__ = ("_model", "_provider")

    def __init__(self, provider: str, model: str | None) -> None:
        self._provider = provider
        self._model = model

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if isinstance(exc, httpx.TransportError | httpx.InvalidURL):
            mapped = map_httpx_error(exc, self._provider, self._model)
            assert mapped is not None
            raise mapped from exc


def translate_errors(provider: str, model: str | None) -> AbstractContextManager[None]:
    """Map httpx failures raised inside the block with ``map_httpx_error``.

    llmrelay errors pass through unchanged.
    """
    return _Translated(provider, model)


def _where(exc: httpx.RequestError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:
        return "the provider"
    return str(url.copy_with(query=None))
