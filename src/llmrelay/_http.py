r"""The one HTTP layer: httpx client factory, bounded reading, SSE / NDJSON, error mapping.

* ``make_http_client`` builds the pooled ``httpx.AsyncClient`` every provider of a client
  shares: connect/read(idle) timeouts, an http, https or socks proxy, a CA bundle, no
  cookie jar (a provider that needs a cookie session keeps it in its conversation
  state) and no connection limit (the 101st concurrent stream never waits for a slot).
  Its pools assign connections with ``_PoolTuning`` (httpcore's pass hands one idle
  connection to every request of a burst) and build the TLS context on first https use.
* ``aiter_sse`` decodes Server-Sent Events and ``aiter_ndjson`` JSON lines with the
  bounded decoders of ``llmrelay._sse``; ``read_bounded`` / ``read_json`` read a whole
  body with a size bound. Sizes count decoded bytes, so a compressed body is bounded
  too (transiently, one network chunk's expansion).
* ``raise_for_status`` maps an HTTP status and the error payload's explicit fields to the
  error tree of ``llmrelay.errors``; ``translate_errors`` maps httpx transport failures.

Request headers (and so API keys) never reach an error message.
"""

from __future__ import annotations

import datetime
import http.cookiejar
import json
import math
import re
import ssl
import threading
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx

from . import errors
from ._settings import Timeouts
from ._sse import DEFAULT_MAX_LINE, LineTooLong, NDJSONLineDecoder, SSEDecoder, SSEvent
from ._version import __version__

__all__ = [
    "MAX_BODY",
    "SSEvent",
    "aiter_ndjson",
    "aiter_sse",
    "describe_body",
    "error_detail",
    "error_for_status",
    "loads",
    "make_http_client",
    "map_httpx_error",
    "protocol_error",
    "raise_for_status",
    "read_bounded",
    "read_json",
    "retry_after_seconds",
    "translate_errors",
    "upstream_text",
]

USER_AGENT = f"llmrelay/{__version__}"
MAX_BODY = 4 * 1024 * 1024
"""Default bound of a whole JSON or error body, in decoded bytes."""


def _no_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that never stores a cookie (no domain is allowed)."""
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def make_http_client(
    timeouts: Timeouts, proxy: str | None = None, verify: bool | str = True
) -> httpx.AsyncClient:
    """Build the shared, pooled ``httpx.AsyncClient``.

    The TLS context is built on the first https connection, once per process and
    setting (``httpx.create_ssl_context`` for a bool, ``ssl.create_default_context`` for
    a bundle): loading a CA bundle costs 30-100 ms, which a CLI talking plain http, or
    not at all, never needs. A bundle that cannot be read is refused here; one that
    reads but is not a CA bundle is refused at the first https request.

    Args:
        timeouts: connect and read (idle) timeouts; first-token and total deadlines are
            the engine's.
        proxy: ``http://``, ``https://``, ``socks5://`` or ``socks5h://`` URL, or ``None``.
        verify: ``True`` (the system's default CAs), ``False`` (no TLS verification) or
            the path of a CA bundle (PEM file or directory).

    Raises:
        llmrelay.errors.ConfigError: on an unsupported proxy URL or unreadable CA bundle
            (from a request: a CA bundle file that is not one).
    """
    timeout = httpx.Timeout(
        connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=None
    )
    # httpx builds its context when the client is made; hand it a placeholder that trusts
    # no CA (so a connection that somehow skipped the real one fails closed) and let each
    # pool swap in the real context before its first https connection.
    lazy: Callable[[], ssl.SSLContext]
    if isinstance(verify, str):
        lazy = _bundle_context(verify)
    else:
        lazy = _shared_context_true if verify else _shared_context_false
    client = _build_client(timeout, proxy, _placeholder_context())
    pools = [getattr(t, "_pool", None) for t in (client._transport, *client._mounts.values())]
    if all(_PoolTuning.fits(pool) for pool in pools if pool is not None):
        for pool in pools:
            if pool is not None:
                _PoolTuning(pool, lazy)
    else:  # an httpcore whose pool is not the one _PoolTuning knows: httpx's own, as is
        client = _build_client(timeout, proxy, lazy())
    return client


def _build_client(
    timeout: httpx.Timeout, proxy: str | None, tls: ssl.SSLContext
) -> httpx.AsyncClient:
    try:
        return httpx.AsyncClient(
            timeout=timeout,
            proxy=proxy,
            verify=tls,
            # Proxies and keys come from llmrelay's settings only, never implicitly.
            trust_env=False,
            cookies=_no_cookies(),
            # only the encodings aiter_body inflates in bounded steps (httpx would also
            # ask for br and zstd when their packages are installed)
            headers={"user-agent": USER_AGENT, "accept-encoding": ACCEPT_ENCODING},
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        )
    except (ValueError, ImportError) as exc:
        raise errors.ConfigError(f"unusable proxy setting: {exc}") from exc


_TLS_LOCK = threading.Lock()
_TLS_CONTEXTS: dict[object, ssl.SSLContext] = {}


def _tls_context(key: object, make: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    with _TLS_LOCK:
        context = _TLS_CONTEXTS.get(key)
        if context is None:
            context = _TLS_CONTEXTS[key] = make()
        return context


def _placeholder_context() -> ssl.SSLContext:
    """A client context that trusts no CA: every verified handshake with it fails."""
    return _tls_context("placeholder", lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


def _bundle_context(path: str) -> Callable[[], ssl.SSLContext]:
    """A builder of the context trusting the CA bundle ``path`` (file or directory).

    Raises:
        llmrelay.errors.ConfigError: ``path`` cannot be read (now), or is not a CA
            bundle (when the builder is called).
    """
    import os

    try:
        status = os.stat(path)
        is_dir = os.path.isdir(path)
        if not os.access(path, os.R_OK):
            raise PermissionError(f"permission denied: {path!r}")
    except OSError as exc:
        raise errors.ConfigError(f"cannot use CA bundle {path!r}: {exc}") from exc

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


_TLS_SCHEMES = (b"https", b"wss")
_SWEEP_EVERY = 0.5
"""Seconds between two checks of every idle connection for expiry (one syscall each)."""


class _PoolTuning:
    """Connection assignment for one ``httpcore.AsyncConnectionPool`` (or proxy pool).

    httpcore 1.0.9's ``_assign_requests_to_connections`` runs on every request and every
    response close, and at hundreds of concurrent streams it was 80 % of llmrelay's CPU:

    * it hands the same idle connection to every queued request of one pass, and an
      idle connection stays ``IDLE`` until its request starts, so a burst arriving in
      one event-loop tick is all given the one warm connection: all but one request get
      ``ConnectionNotAvailable`` and go round again, each round a pass over every queued
      request and connection (https://github.com/encode/httpcore/issues/822,
      https://github.com/pydantic/httpx2/pull/1075);
    * its keep-alive bound compares the number of *all* connections with
      ``max_keepalive_connections``, once per idle connection (quadratic), so above 100
      open connections it closes every connection that turns idle;
    * it checks every connection for expiry on every pass, one ``poll`` per idle
      connection;
    * a connection handed to a request that has not started yet can be closed as surplus
      (https://github.com/encode/httpcore/issues/1110).

    This pass does the same job in one sweep: a connection referenced by a pending
    request is spoken for (never handed out twice, never closed, not even looked at
    until its request is done), the keep-alive bound
    counts idle connections, a reused idle connection is checked for expiry before it
    is handed out and the others at most every ``_SWEEP_EVERY`` seconds. It also builds
    the pool's TLS context on the first https (or wss) connection (``make_http_client``).
    """

    __slots__ = ("_create", "_lazy_tls", "_next_sweep", "_pool")

    USES = (
        "_requests",
        "_connections",
        "_max_connections",
        "_max_keepalive_connections",
        "_http2",
        "_ssl_context",
        "_assign_requests_to_connections",
        "create_connection",
    )
    """The httpcore 1.0 pool attributes this pass reads or replaces."""

    @classmethod
    def fits(cls, pool: object) -> bool:
        """Whether ``pool`` is an httpcore pool with every attribute this pass uses."""
        return isinstance(pool, httpcore.AsyncConnectionPool) and all(
            hasattr(pool, name) for name in cls.USES
        )

    def __init__(
        self, pool: httpcore.AsyncConnectionPool, lazy_tls: Callable[[], ssl.SSLContext]
    ) -> None:
        self._pool: Any = pool
        self._create: Callable[[httpcore.Origin], Any] = pool.create_connection
        self._lazy_tls: Callable[[], ssl.SSLContext] | None = lazy_tls
        self._next_sweep = 0.0
        # instance attributes win over the class's methods for every caller in httpcore
        setattr(pool, "_assign_requests_to_connections", self.assign)  # noqa: B010
        setattr(pool, "create_connection", self.create_connection)  # noqa: B010

    def create_connection(self, origin: httpcore.Origin) -> Any:
        """The pool's own ``create_connection``, with its TLS context made on first need."""
        if self._lazy_tls is not None and origin.scheme in _TLS_SCHEMES:
            self._load_tls()
        return self._create(origin)

    def _load_tls(self) -> None:
        assert self._lazy_tls is not None
        # may raise ConfigError: the pass is abandoned before it changes the pool
        self._pool._ssl_context = self._lazy_tls()
        self._lazy_tls = None

    def assign(self) -> list[Any]:
        """Assign queued requests to connections; return the connections to close."""
        pool = self._pool
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
                    chosen = self.create_connection(origin)
                    kept.append(chosen)
                request.assign_to_connection(chosen)
        pool._connections = kept
        return closing


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
    any other ``httpx.TransportError`` (refused, reset, peer closed mid-body) ->
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


_DELTA_SECONDS = re.compile(r"\d{1,10}(?:\.\d{1,6})?", re.ASCII)
MAX_DETAIL = 300
"""Most characters of a provider's own error message an error text relays."""


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or ``None``.

    The one parser every provider uses. Both forms of RFC 9110 section 10.2.3 are read:
    delta-seconds (``"120"``; a decimal fraction is tolerated) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``, and the obsolete RFC 850 / asctime forms),
    counted from ``now`` (``time.time()``); a date in the past gives ``0.0``.

    Args:
        value: the header value, or ``None`` when absent.
        now: the current Unix time (for tests); ``None`` reads the clock.

    Returns:
        Seconds (``>= 0``, finite), or ``None`` for an absent or unreadable value.
    """
    if not value:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" and asctime dates: UTC by definition
        when = when.replace(tzinfo=datetime.UTC)
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def upstream_text(value: Any, limit: int = MAX_DETAIL) -> str | None:
    """A provider's own message, fit to relay: one line, printable, at most ``limit`` chars.

    Args:
        value: the value of the provider's documented error field.
        limit: the bound, in characters (an ellipsis marks a cut).

    Returns:
        The cleaned text, or ``None`` when ``value`` is not a non-blank string.
    """
    if not isinstance(value, str):
        return None
    text = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_detail(body: str | bytes) -> str | None:
    """The message of a documented error object, or ``None`` for any other body.

    The error objects of the services llmrelay speaks: ``{"error": str}`` and
    ``{"error": [str, ...]}`` (Hugging Face, TGI, chat-ui), ``{"error": {"message":
    str}}`` (OpenAI, olmo-api), ``{"detail": str}`` (Replicate problem+json, FastAPI,
    Gradio), ``{"detail": [{"msg": str}, ...]}`` (FastAPI validation), ``{"message":
    str}`` (SvelteKit, chat-ui) and ``{"title": str}`` (problem+json without detail).
    The text is bounded by ``upstream_text``. Anything else -- an HTML page, plain
    text, a JSON document of another shape, a malformed body -- gives ``None``: its
    content is never relayed.
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        return upstream_text(error.get("message"))
    if isinstance(error, list):
        return upstream_text("; ".join(v for v in error[:10] if isinstance(v, str)))
    detail = payload.get("detail")
    if isinstance(detail, list):
        texts = [d.get("msg") for d in detail[:10] if isinstance(d, dict)]
        return upstream_text("; ".join(t for t in texts if isinstance(t, str)))
    for value in (error, detail, payload.get("message"), payload.get("title")):
        text = upstream_text(value)
        if text:
            return text
    return None


def error_code(body: str | bytes) -> str | None:
    """The machine-readable code of a documented error object, or ``None``.

    OpenAI's ``{"error": {"code": str, "type": str}}`` (``code`` first) and TGI's
    ``{"error": str, "error_type": str}``; bounded to 64 characters.
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    candidates = [error.get("code"), error.get("type")] if isinstance(error, dict) else []
    candidates.append(payload.get("error_type"))
    return next((upstream_text(c, 64) for c in candidates if isinstance(c, str) and c), None)


_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_POLICY_CODES = frozenset({"content_policy_violation", "content_filter", "safety"})
_CONTEXT_TEXT = re.compile(
    r"context length|context window|maximum context|prompt is too long|input is too long"
    r"|too many (?:input )?tokens|tokens? \+ `?max_new_tokens`? must be <="
    r"|`?inputs`? must have less than \d+ tokens|exceeds? the (?:model's )?max(?:imum)? "
    r"(?:context|sequence|input) length",
    re.IGNORECASE,
)


def invalid_request_class(
    code: str | None, message: str | None
) -> type[errors.InvalidRequestError]:
    """The ``InvalidRequestError`` subclass of a refused request, by its code or message.

    ``ContextLengthExceeded`` for OpenAI's ``context_length_exceeded`` code or the
    messages TGI, the Hugging Face APIs, vLLM and Replicate models give for a prompt that
    does not fit ("`inputs` tokens + `max_new_tokens` must be <= 4096", "maximum context
    length is 8192 tokens"); ``ContentPolicyViolation`` for ``content_policy_violation``
    (OpenAI) or ``content_filter`` (Azure OpenAI); else ``InvalidRequestError``.
    """
    if code in _POLICY_CODES:
        return errors.ContentPolicyViolation
    if code in _CONTEXT_CODES or (message and _CONTEXT_TEXT.search(message)):
        return errors.ContextLengthExceeded
    return errors.InvalidRequestError


def describe_body(body: str | bytes, content_type: str | None = None) -> str:
    """Say what an upstream body is, quoting none of it.

    ``"an empty body"``, ``"an HTML page (1234 bytes)"``, ``"a JSON object (56 bytes)"``,
    ``"a text/plain body (78 bytes)"``.
    """
    data = body.encode("utf-8", "replace") if isinstance(body, str) else body
    size = len(data)
    if not data.strip():
        return "an empty body"
    kind = (content_type or "").partition(";")[0].strip().lower()
    head = data.lstrip()[:15].lower()
    if kind == "text/html" or head.startswith((b"<!doctype html", b"<html")):
        return f"an HTML page ({size} bytes)"
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return f"a {kind or 'non-JSON'} body ({size} bytes)"
    names: dict[type, str] = {dict: "object", list: "array", str: "string"}
    name = names.get(type(value), "value")
    return f"a JSON {name} ({size} bytes)"


def protocol_error(
    message: str,
    data: Any = None,
    *,
    provider: str,
    model: str | None,
    status_code: int | None = None,
) -> errors.ProtocolError:
    """A ``ProtocolError`` about upstream content that does not follow the protocol.

    The message says what was wrong and, when ``data`` is given, what it was
    (``describe_body``: its kind and size), never its content; ``data`` itself (text,
    bytes or a parsed JSON value) is kept in the error's ``body``.
    """
    body: str | None = None
    if data is not None:
        if isinstance(data, bytes):
            body = data[:4000].decode("utf-8", "replace")
        elif isinstance(data, str):
            body = data
        else:
            try:
                body = json.dumps(data, ensure_ascii=False, default=str)[:4000]
            except (TypeError, ValueError, RecursionError):
                body = f"<{type(data).__name__}>"
        message = f"{message} ({describe_body(body)})"
    return errors.ProtocolError(
        message, provider=provider, model=model, status_code=status_code, body=body
    )


def error_for_status(
    status: int,
    body: str,
    *,
    provider: str,
    model: str | None,
    what: str = "request",
    retry_after: float | None = None,
    detail: str | None = None,
    content_type: str | None = None,
) -> errors.ProviderError:
    """Build the ``ProviderError`` subclass for an HTTP status other than 2xx.

    3xx -> ProtocolError (a redirect llmrelay did not follow), 401/403 ->
    AuthenticationError, 404 -> ModelNotFoundError, 408 -> ProviderTimeout, 429 ->
    RateLimitError (``retry_after``), 5xx -> ProviderUnavailable, other 4xx ->
    InvalidRequestError (``ContextLengthExceeded`` / ``ContentPolicyViolation`` by
    ``invalid_request_class``). The error's ``code`` is the body's own (``error_code``).

    The message relays only the provider's own message: ``detail`` when the caller read
    it from the provider's documented error field, else ``error_detail(body)``, bounded
    either way; any other body is described (``describe_body``), never quoted. The
    whole body stays in the error's ``body`` attribute for the library's caller.

    Args:
        status: the HTTP status.
        body: the response body, decoded.
        provider: registry name.
        model: the model id, when known.
        what: what was asked ("chat completion", "model info" ...), for the message.
        retry_after: seconds from ``Retry-After`` (``retry_after_seconds``).
        detail: the provider's message, read from its documented error field.
        content_type: the response's ``Content-Type`` (to describe the body).
    """
    common: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status,
        "body": body,
        "code": error_code(body),
    }
    if 300 <= status < 400:
        return errors.ProtocolError(
            f"{what}: the provider answered with a redirect (HTTP {status}), which llmrelay "
            f"does not follow; check the {provider} base URL setting",
            **common,
        )
    said = upstream_text(detail) or error_detail(body)
    message = f"{what} failed: HTTP {status}" + (
        f": {said}" if said else f" with {describe_body(body, content_type)}"
    )
    if status in (401, 403):
        return errors.AuthenticationError(message, **common)
    if status == 404:
        return errors.ModelNotFoundError(message, **common)
    if status == 408:
        return errors.ProviderTimeout(message, **common)
    if status == 429:
        return errors.RateLimitError(message, retry_after=retry_after, **common)
    if status >= 500:
        return errors.ProviderUnavailable(message, **common)
    return invalid_request_class(common["code"], said)(message, **common)


ACCEPT_ENCODING = "gzip, deflate"
"""The ``Accept-Encoding`` llmrelay's HTTP client sends."""

_GZIP_WBITS = zlib.MAX_WBITS | 16
_INFLATE_WBITS = {"gzip": _GZIP_WBITS, "x-gzip": _GZIP_WBITS, "deflate": zlib.MAX_WBITS}
INFLATE_STEP = 256 * 1024
"""Most decoded bytes ``aiter_body`` makes of a compressed body at a time."""


async def aiter_body(
    response: httpx.Response, *, provider: str, model: str | None
) -> AsyncIterator[bytes]:
    """The decoded body of ``response``, as it arrives, never inflated all at once.

    httpx's ``aiter_bytes`` inflates each network chunk whole: one 64 KiB read of a
    gzip bomb becomes ~64 MiB at once. Here a ``gzip``/``deflate`` body (RFC 9110
    section 8.4.1) is inflated at most ``INFLATE_STEP`` bytes at a time, so the
    consumer's own bounds (an SSE line, a body limit) stop a bomb after a few steps. A
    ``deflate`` body without its zlib header is accepted, as httpx does. Another
    encoding is decoded by httpx only if the request asked for it (a client of the
    caller's own); one nobody asked for is refused.

    Raises:
        llmrelay.errors.ProtocolError: an encoding not asked for, or a body that does
            not decode.
    """
    try:
        content = response.content  # read already (by httpx, or a caller): decoded
    except httpx.ResponseNotRead:
        pass
    else:
        if content:
            yield content
        return
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        async for chunk in response.aiter_raw():
            yield chunk
        return
    wbits = _INFLATE_WBITS.get(encoding)
    if wbits is None:
        asked = response.request.headers.get("accept-encoding", "").lower()
        if encoding not in {part.partition(";")[0].strip() for part in asked.split(",")}:
            raise errors.ProtocolError(
                f"the response's content-encoding {encoding!r} was not asked for "
                f"(accept-encoding: {asked or 'none'})",
                provider=provider,
                model=model,
                status_code=response.status_code,
            )
        async for chunk in response.aiter_bytes():
            yield chunk
        return
    inflate = zlib.decompressobj(wbits)
    # a deflate body's bytes until it gave output: replayed as raw deflate when the
    # zlib header check fails (which may be only at its second byte)
    head: bytes | None = b"" if encoding == "deflate" else None
    async for data in response.aiter_raw():
        while data:
            try:
                out = inflate.decompress(data, INFLATE_STEP)
            except zlib.error as exc:
                if head is not None and wbits > 0:
                    wbits = -zlib.MAX_WBITS  # raw deflate, without the zlib header
                    inflate = zlib.decompressobj(wbits)
                    data, head = head + data, None
                    continue
                raise errors.ProtocolError(
                    f"the {encoding} body does not decode: {exc}",
                    provider=provider,
                    model=model,
                    status_code=response.status_code,
                ) from None
            if head is not None:
                head = None if out or len(head) > 64 else head + data
            data = inflate.unconsumed_tail
            if out:
                yield out
    try:
        rest = inflate.flush()
    except zlib.error as exc:  # pragma: no cover - flush after full input rarely fails
        raise errors.ProtocolError(
            f"the {encoding} body does not decode: {exc}", provider=provider, model=model
        ) from None
    if rest:
        yield rest


async def read_bounded(
    response: httpx.Response,
    *,
    provider: str,
    model: str | None,
    limit: int = MAX_BODY,
    what: str = "response body",
) -> bytes:
    """Read ``response``'s (decoded) body, refusing more than ``limit`` bytes.

    Raises:
        llmrelay.errors.ProtocolError: the body is larger than ``limit``.
    """
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        await response.aclose()
        raise errors.ProtocolError(
            f"{what} too large ({int(length)} bytes; the limit is {limit})",
            provider=provider,
            model=model,
            status_code=response.status_code,
        )
    parts: list[bytes] = []
    size = 0
    async for chunk in aiter_body(response, provider=provider, model=model):
        size += len(chunk)
        if size > limit:
            await response.aclose()
            raise errors.ProtocolError(
                f"{what} larger than {limit} bytes",
                provider=provider,
                model=model,
                status_code=response.status_code,
            )
        parts.append(chunk)
    return b"".join(parts)


def loads(data: str | bytes, *, provider: str, model: str | None, what: str = "payload") -> Any:
    """``json.loads`` whose every failure is a ``ProtocolError``.

    Covers malformed JSON, invalid UTF-8 and nesting too deep for the parser. The
    message says what was malformed and its size, never its content (an upstream frame
    is not relayed); the first 2000 characters are in the error's ``body``.
    """
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        text = data if isinstance(data, str) else data[:2000].decode("utf-8", "replace")
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
        raise errors.ProtocolError(
            f"malformed {what} ({reason}, {len(data)} bytes)",
            provider=provider,
            model=model,
            body=text[:2000],
        ) from None


async def read_json(
    response: httpx.Response,
    *,
    provider: str,
    model: str | None,
    limit: int = MAX_BODY,
    what: str = "response",
) -> Any:
    """Read and parse a JSON body with ``read_bounded`` and ``loads``.

    Raises:
        llmrelay.errors.ProtocolError: too large, not JSON or nested too deeply.
    """
    body = await read_bounded(response, provider=provider, model=model, limit=limit, what=what)
    return loads(body, provider=provider, model=model, what=what)


async def raise_for_status(
    response: httpx.Response,
    *,
    provider: str,
    model: str | None,
    what: str = "request",
    limit: int = MAX_BODY,
) -> None:
    """Raise the mapped ``ProviderError`` unless ``response`` is a 2xx success.

    A 3xx is an error too (``ProtocolError``): llmrelay's client does not follow
    redirects, and reading a redirect as an empty success would hide it. The error body
    is read first (bounded by ``limit``) so the error carries it; see
    ``error_for_status`` for what its message may relay.

    Raises:
        llmrelay.errors.ProviderError: the mapped subclass (see ``error_for_status``);
            ``ProtocolError`` when the error body is larger than ``limit``.
    """
    status = response.status_code
    if status < 300:
        return
    body = await read_bounded(
        response, provider=provider, model=model, limit=limit, what=f"{what} error body"
    )
    raise error_for_status(
        status,
        body.decode(response.encoding or "utf-8", "replace"),
        provider=provider,
        model=model,
        what=what,
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
        content_type=response.headers.get("content-type"),
    )


def _check_content_type(
    response: httpx.Response, expected: tuple[str, ...], provider: str, model: str | None
) -> None:
    content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if expected and content_type not in expected:
        raise errors.ProtocolError(
            f"expected {' or '.join(expected)}, got {content_type or 'no content-type'!r}",
            provider=provider,
            model=model,
            status_code=response.status_code,
        )


async def aiter_sse(
    response: httpx.Response,
    *,
    provider: str,
    model: str | None,
    max_line: int = DEFAULT_MAX_LINE,
    content_types: tuple[str, ...] = ("text/event-stream",),
) -> AsyncGenerator[SSEvent, None]:
    r"""Decode ``response`` as Server-Sent Events (``llmrelay._sse.SSEDecoder``).

    Args:
        response: a streamed response.
        provider: registry name, for errors.
        model: model id, for errors.
        max_line: bound of one line in bytes.
        content_types: accepted content types (``()`` accepts any).

    Yields:
        ``SSEvent`` with ``event``, ``data`` (lines joined with ``\n``), ``id``, ``retry``.

    Raises:
        llmrelay.errors.ProtocolError: wrong content type, or a line over ``max_line``.
    """
    _check_content_type(response, content_types, provider, model)
    decoder = SSEDecoder(max_line)
    feed = decoder.feed
    try:
        async for chunk in aiter_body(response, provider=provider, model=model):
            for event in feed(chunk):
                yield event
    except LineTooLong as exc:
        raise errors.ProtocolError(f"event stream: {exc}", provider=provider, model=model) from None


async def aiter_ndjson(
    response: httpx.Response,
    *,
    provider: str,
    model: str | None,
    max_line: int = DEFAULT_MAX_LINE,
) -> AsyncGenerator[Any, None]:
    """Decode ``response`` as newline-delimited JSON, one document per line.

    Blank lines are skipped; a last line without its newline is parsed too.

    Raises:
        llmrelay.errors.ProtocolError: on a line that is not JSON (the error quotes it)
            or longer than ``max_line`` bytes.
    """
    decoder = NDJSONLineDecoder(max_line)
    try:
        async for chunk in aiter_body(response, provider=provider, model=model):
            for line in decoder.feed(chunk):
                yield loads(line, provider=provider, model=model, what="JSON line in stream")
    except LineTooLong as exc:
        raise errors.ProtocolError(
            f"JSON lines stream: {exc}", provider=provider, model=model
        ) from None
    last = decoder.flush()
    if last is not None:
        yield loads(last, provider=provider, model=model, what="JSON line in stream")
