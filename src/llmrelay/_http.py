r"""Reading HTTP answers: bounded bodies, SSE / NDJSON, and the HTTP status mapping.

* The client itself, its transports and the mapping of transport failures
  (``make_http_client``, ``map_httpx_error``, ``translate_errors``) are
  ``llmrelay._transport``'s, re-exported here for the providers.
* ``aiter_sse`` decodes Server-Sent Events and ``aiter_ndjson`` JSON lines with the
  bounded decoders of ``llmrelay._sse``; ``read_bounded`` / ``read_json`` read a whole
  body with a size bound. Sizes count decoded bytes, so a compressed body is bounded
  too (transiently, one network chunk's expansion).
* ``raise_for_status`` maps an HTTP status and the error payload's explicit fields to the
  error tree of ``llmrelay.errors``.

Request headers (and so API keys) never reach an error message.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from . import _json, errors
from ._sse import DEFAULT_MAX_LINE, LineTooLong, NDJSONLineDecoder, SSEDecoder, SSEvent
from ._transport import (
    BODY_DONE_EXTENSION,
    RAW_READ_EXTENSION,
    READ_EXTENSION,
    make_http_client,
    map_httpx_error,
    translate_errors,
)

__all__ = [
    "BODY_DONE_EXTENSION",
    "MAX_BODY",
    "SSEvent",
    "aiter_ndjson",
    "aiter_sse",
    "aiter_sse_data",
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

MAX_BODY = 4 * 1024 * 1024
"""Default bound of a whole JSON or error body, in decoded bytes."""


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


def _json_object(body: str | bytes) -> dict[str, Any] | None:
    """``body`` as a JSON object, or ``None`` (not JSON, too deep, or not an object)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


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
    payload = _json_object(body)
    if payload is None:
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
    payload = _json_object(body)
    if payload is None:
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


_GZIP_WBITS = zlib.MAX_WBITS | 16
_INFLATE_WBITS = {"gzip": _GZIP_WBITS, "x-gzip": _GZIP_WBITS, "deflate": zlib.MAX_WBITS}
INFLATE_STEP = 256 * 1024
"""Most decoded bytes ``aiter_body`` makes of a compressed body at a time."""


def _chunk_reader(response: httpx.Response) -> Callable[[], Awaitable[bytes]] | None:
    """The transport's chunk reader of an unread body (``READ_EXTENSION``), or ``None``.

    ``None`` for a client without it (``http_client=``), and for a body read, being
    read or closed already (``Response.aiter_raw`` then raises what httpx raises).
    Taking the reader marks the body consumed, as ``aiter_raw`` does.
    """
    read: Callable[[], Awaitable[bytes]] | None = response.extensions.get(READ_EXTENSION)
    if read is None or response.is_stream_consumed or response.is_closed:
        return None
    response.is_stream_consumed = True
    return read


def _raw_reader(
    response: httpx.Response,
) -> tuple[Callable[[], Awaitable[bytes]], tuple[type[BaseException], ...], Any] | None:
    """The transport's own chunk reader (``RAW_READ_EXTENSION``) of an unread body.

    ``None`` as for ``_chunk_reader``; taking it marks the body consumed.
    """
    raw = response.extensions.get(RAW_READ_EXTENSION)
    if raw is None or response.is_stream_consumed or response.is_closed:
        return None
    response.is_stream_consumed = True
    return raw  # type: ignore[no-any-return]


async def _raw_chunks(
    response: httpx.Response, read: Callable[[], Awaitable[bytes]] | None
) -> AsyncIterator[bytes]:
    if read is None:
        async for chunk in response.aiter_raw():
            yield chunk
        return
    while chunk := await read():
        yield chunk
    await response.aclose()  # as aiter_raw: the connection goes back to the pool


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
    caller's own); one nobody asked for is refused. The raw bytes come from the
    transport's chunk reader (``llmrelay._transport.READ_EXTENSION``) when it has one,
    else from ``Response.aiter_raw``; both raise httpx's exceptions.

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
        # ``_raw_chunks`` inlined: a plain body (NDJSON streams) is the token path, and
        # one generator layer less per chunk is what the read path was changed for
        read = _chunk_reader(response)
        if read is None:
            async for chunk in response.aiter_raw():
                yield chunk
            return
        while chunk := await read():
            yield chunk
        await response.aclose()  # as aiter_raw: the connection goes back to the pool
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
    async for data in _raw_chunks(response, _chunk_reader(response)):
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
    """``json.loads`` whose every failure is a ``ProtocolError`` (``llmrelay._json.loads``).

    Covers malformed JSON, invalid UTF-8 and nesting too deep for the parser. The
    message says what was malformed and its size, never its content (an upstream frame
    is not relayed); the first 2000 characters are in the error's ``body``.
    """
    try:
        return _json.loads(data)
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


def _stream_heads(response: httpx.Response) -> tuple[str, str]:
    """``response.headers.get(name, "")`` of ``content-type`` and ``content-encoding``.

    One pass over httpx's header items (``Headers._list``, the layout
    ``llmrelay._httpx_objects`` relies on and tests) instead of two ``get`` calls, each
    a pass, the first also working out the headers' text encoding by decoding every
    header (4-5 µs a response). A header given twice or not ASCII goes httpx's way.
    """
    kind: bytes | None = None
    coding: bytes | None = None
    for _, name, value in response.headers._list:
        if name == b"content-type":
            if kind is not None:
                break
            kind = value
        elif name == b"content-encoding":
            if coding is not None:
                break
            coding = value
    else:
        if (kind is None or kind.isascii()) and (coding is None or coding.isascii()):
            return (
                "" if kind is None else kind.decode("ascii"),
                "" if coding is None else coding.decode("ascii"),
            )
    headers = response.headers
    return headers.get("content-type", ""), headers.get("content-encoding", "")


async def _close(response: httpx.Response) -> None:
    """``response.aclose()`` for a response of llmrelay's transports (an async stream).

    The same steps without the context manager httpx enters to attach the request to
    an error of the close (attached here too; 2-3 µs a response).
    """
    if not response.is_closed:
        response.is_closed = True
        try:
            await response.stream.aclose()  # type: ignore[union-attr]
        except httpx.RequestError as exc:
            request = response._request
            if request is not None:
                exc.request = request
            raise


def _check_content_type(
    response: httpx.Response,
    expected: tuple[str, ...],
    provider: str,
    model: str | None,
    given: str | None = None,
) -> None:
    text = response.headers.get("content-type", "") if given is None else given
    content_type = text.partition(";")[0].strip().lower()
    if expected and content_type not in expected:
        raise errors.ProtocolError(
            f"expected {' or '.join(expected)}, got {content_type or 'no content-type'!r}",
            provider=provider,
            model=model,
            status_code=response.status_code,
        )


def aiter_sse(
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
    return _aiter_sse(response, provider, model, max_line, content_types, False)  # type: ignore[return-value]


def aiter_sse_data(
    response: httpx.Response,
    *,
    provider: str,
    model: str | None,
    max_line: int = DEFAULT_MAX_LINE,
    content_types: tuple[str, ...] = ("text/event-stream",),
) -> AsyncGenerator[bytes, None]:
    r"""``aiter_sse``'s events given by their ``data`` only, as received (bytes).

    For a stream whose events are told apart by their data alone (OpenAI's chat
    completions: no ``event``, ``id`` or ``retry`` is read) and parsed as JSON, which
    takes UTF-8 bytes: no ``str`` and no ``SSEvent`` per event
    (``SSEDecoder.feed_data``). ``data.decode("utf-8", "replace")`` is ``aiter_sse``'s
    ``SSEvent.data`` of the same event. Same arguments and errors as ``aiter_sse``.
    """
    return _aiter_sse(response, provider, model, max_line, content_types, True)  # type: ignore[return-value]


async def _aiter_sse(
    response: httpx.Response,
    provider: str,
    model: str | None,
    max_line: int,
    content_types: tuple[str, ...],
    raw_data: bool,
) -> AsyncGenerator[SSEvent | bytes, None]:
    content_type, encoding = _stream_heads(response)
    _check_content_type(response, content_types, provider, model, content_type)
    decoder = SSEDecoder(max_line)
    # ``feed_data`` / ``feed`` without their one-line wrapper (a call less per chunk)
    feed: Callable[[bytes, bool], list[Any]] = decoder._feed
    try:
        if encoding.strip().lower() in ("", "identity"):
            # a plain body through the transport's reader: no generator between the
            # socket's chunks and the decoder (the hot path of every stream); with
            # the transport's own reader when it has one (one coroutine less a chunk)
            raw = _raw_reader(response)
            if raw is not None:
                readany, failures, mapped = raw
                while True:
                    try:
                        chunk = await readany()
                    except failures as exc:
                        raise mapped(exc) from exc
                    if not chunk:
                        break
                    for event in feed(chunk, raw_data):
                        yield event
                await _close(response)  # as aiter_raw: the connection goes back to the pool
                return
            read = _chunk_reader(response)
            if read is not None:
                while chunk := await read():
                    for event in feed(chunk, raw_data):
                        yield event
                await _close(response)
                return
        async for chunk in aiter_body(response, provider=provider, model=model):
            for event in feed(chunk, raw_data):
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
