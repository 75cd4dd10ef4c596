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

import json
import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from . import errors
from ._sse import DEFAULT_MAX_LINE, LineTooLong, NDJSONLineDecoder, SSEDecoder, SSEvent
from ._transport import make_http_client, map_httpx_error, translate_errors

__all__ = [
    "MAX_BODY",
    "SSEvent",
    "aiter_ndjson",
    "aiter_sse",
    "error_for_status",
    "loads",
    "make_http_client",
    "map_httpx_error",
    "raise_for_status",
    "read_bounded",
    "read_json",
    "retry_after_seconds",
    "translate_errors",
]

MAX_BODY = 4 * 1024 * 1024
"""Default bound of a whole JSON or error body, in decoded bytes."""


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import datetime as _dt

        when = parsedate_to_datetime(value)
        return max(0.0, (when - _dt.datetime.now(when.tzinfo)).total_seconds())
    except (TypeError, ValueError):
        return None


def _message_from_body(text: str) -> str | None:
    """Pull the human message out of the error payload shapes the providers use.

    Shapes: ``{"detail": str}`` (Replicate problem+json, FastAPI/Gradio), ``{"error": str}``
    and ``{"error": [str, ...]}`` (Hugging Face), ``{"error": {"message": str}}``
    (OpenAI, olmo-api), ``{"message": str}``, ``{"title": str}``.
    """
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        stripped = text.strip()
        return stripped[:300] or None
    if not isinstance(payload, dict):
        return None
    for key in ("detail", "error", "message", "title"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return "; ".join(value)
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return str(value["message"])
    return None


def error_for_status(
    status: int,
    body: str,
    *,
    provider: str,
    model: str | None,
    what: str = "request",
    retry_after: float | None = None,
) -> errors.ProviderError:
    """Build the ``ProviderError`` subclass for an HTTP error status.

    401/403 -> AuthenticationError, 404 -> ModelNotFoundError, 400/422 (and other 4xx)
    -> InvalidRequestError, 408 -> ProviderTimeout, 429 -> RateLimitError, 5xx ->
    ProviderUnavailable.
    """
    detail = _message_from_body(body)
    message = f"{what} failed: HTTP {status}" + (f": {detail}" if detail else "")
    common: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status,
        "body": body,
    }
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
    return errors.InvalidRequestError(message, **common)


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
    """``json.loads`` whose every failure is a ``ProtocolError`` quoting the input.

    Covers malformed JSON, invalid UTF-8 and nesting too deep for the parser.
    """
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        text = data[:200] if isinstance(data, str) else data[:200].decode("utf-8", "replace")
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
        raise errors.ProtocolError(
            f"malformed {what} ({reason}): {text!r}", provider=provider, model=model
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
    """Raise the mapped ``ProviderError`` when ``response`` is not a 2xx/3xx success.

    Reads the (possibly streamed) body first, bounded by ``limit``, so the error
    carries it.

    Raises:
        llmrelay.errors.ProviderError: the mapped subclass (see ``error_for_status``);
            ``ProtocolError`` when the error body is larger than ``limit``.
    """
    if response.status_code < 400:
        return
    body = await read_bounded(
        response, provider=provider, model=model, limit=limit, what=f"{what} error body"
    )
    raise error_for_status(
        response.status_code,
        body.decode(response.encoding or "utf-8", "replace"),
        provider=provider,
        model=model,
        what=what,
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
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
