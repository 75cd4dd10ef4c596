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
import logging
import ssl
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from . import errors
from ._http_setup import TRANSPORTS, check_ca_bundle, choose_transport
from ._settings import Timeouts
from ._version import __version__

__all__ = [
    "ACCEPT_ENCODING",
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
def _parsed(url: str) -> httpx.URL:
    return httpx.URL(url)


class _Client(httpx.AsyncClient):
    """``httpx.AsyncClient`` that parses each distinct URL string once.

    Providers send every request of an endpoint to the same URL, and httpx parses and
    validates a string URL on each request (``build_request``, 20-40 µs); an
    ``httpx.URL`` is immutable, so the parsed one is reused (at most 256 kept).
    """

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        """Build a request as httpx does, a string URL parsed once per distinct value."""
        if type(url) is str:
            url = _parsed(url)
        return super().build_request(method, url, **kwargs)


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


@contextmanager
def translate_errors(provider: str, model: str | None) -> Iterator[None]:
    """Map httpx failures raised inside the block with ``map_httpx_error``.

    llmrelay errors pass through unchanged.
    """
    try:
        yield
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        mapped = map_httpx_error(exc, provider, model)
        assert mapped is not None
        raise mapped from exc


def _where(exc: httpx.RequestError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:
        return "the provider"
    return str(url.copy_with(query=None))
