r"""The one HTTP layer: httpx client factory, SSE / NDJSON decoding, error mapping.

* ``make_http_client`` builds the pooled ``httpx.AsyncClient`` every provider of a client
  shares (connect/read/write/pool timeouts, an http, https or socks proxy).
* ``aiter_sse`` decodes Server-Sent Events with httpx-sse (WHATWG spec: multi-line
  ``data`` joined with ``\\n``, ``data:`` with or without a space, comments, ``id:`` and
  ``retry:`` fields) and ``aiter_ndjson`` decodes newline-delimited JSON.
* ``raise_for_status`` maps an HTTP status and the error payload's explicit fields to the
  error tree of ``llmrelay.errors``; ``translate_errors`` maps httpx transport failures.

Request headers (and so API keys) never reach an error message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from . import errors
from ._settings import Timeouts
from ._version import __version__

__all__ = [
    "aiter_ndjson",
    "aiter_sse",
    "error_for_status",
    "make_http_client",
    "raise_for_status",
    "translate_errors",
]

USER_AGENT = f"llmrelay/{__version__}"


def make_http_client(timeouts: Timeouts, proxy: str | None = None) -> httpx.AsyncClient:
    """Build the shared, pooled ``httpx.AsyncClient``.

    Args:
        timeouts: connect and read timeouts (``total`` is enforced by the engine).
        proxy: ``http://``, ``https://``, ``socks5://`` or ``socks5h://`` URL, or ``None``.

    Raises:
        llmrelay.errors.ConfigError: on an unsupported proxy URL.
    """
    timeout = httpx.Timeout(
        connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=timeouts.connect
    )
    try:
        return httpx.AsyncClient(
            timeout=timeout,
            proxy=proxy,
            # Proxies and keys come from llmrelay's settings only, never implicitly.
            trust_env=False,
            headers={"user-agent": USER_AGENT},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
    except (ValueError, ImportError) as exc:
        raise errors.ConfigError(f"unusable proxy setting: {exc}") from exc


@contextmanager
def translate_errors(provider: str, model: str | None) -> Iterator[None]:
    """Map httpx transport failures raised inside the block to llmrelay errors.

    ``httpx.TimeoutException`` -> ``ProviderTimeout``; any other ``httpx.TransportError``
    (connection refused, reset, peer closed mid-body) -> ``TransportError``; a bad URL ->
    ``ConfigError``. llmrelay errors pass through unchanged.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        kind = {
            httpx.ConnectTimeout: "connect",
            httpx.ReadTimeout: "read",
            httpx.WriteTimeout: "write",
            httpx.PoolTimeout: "pool",
        }.get(type(exc), "")
        raise errors.ProviderTimeout(
            f"{kind} timeout talking to {_where(exc)}".lstrip(), provider=provider, model=model
        ) from exc
    except httpx.TransportError as exc:
        raise errors.TransportError(
            f"{type(exc).__name__} talking to {_where(exc)}: {exc}",
            provider=provider,
            model=model,
        ) from exc
    except httpx.InvalidURL as exc:
        raise errors.ConfigError(f"{provider}: invalid URL: {exc}") from exc


def _where(exc: httpx.RequestError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:
        return "the provider"
    return str(url.copy_with(query=None))


def _retry_after(value: str | None) -> float | None:
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
    except ValueError:
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


async def raise_for_status(
    response: httpx.Response, *, provider: str, model: str | None, what: str = "request"
) -> None:
    """Raise the mapped ``ProviderError`` when ``response`` is not a 2xx/3xx success.

    Reads the (possibly streamed) body first so the error carries it.
    """
    if response.status_code < 400:
        return
    await response.aread()
    raise error_for_status(
        response.status_code,
        response.text,
        provider=provider,
        model=model,
        what=what,
        retry_after=_retry_after(response.headers.get("retry-after")),
    )


async def aiter_sse(
    response: httpx.Response, *, provider: str, model: str | None
) -> AsyncIterator[ServerSentEvent]:
    r"""Decode ``response`` as Server-Sent Events (httpx-sse, WHATWG semantics).

    Yields:
        ``httpx_sse.ServerSentEvent`` with ``event``, ``data`` (lines joined with ``\\n``),
        ``id`` and ``retry``.

    Raises:
        llmrelay.errors.ProtocolError: if the response is not ``text/event-stream``.
    """
    source = EventSource(response)
    try:
        events = source.aiter_sse()
        async for event in events:
            yield event
    except SSEError as exc:
        raise errors.ProtocolError(str(exc), provider=provider, model=model) from exc


async def aiter_ndjson(
    response: httpx.Response, *, provider: str, model: str | None
) -> AsyncIterator[Any]:
    """Decode ``response`` as newline-delimited JSON, one document per line.

    Blank lines are skipped.

    Raises:
        llmrelay.errors.ProtocolError: on a line that is not JSON (the error quotes it).
    """
    async for line in response.aiter_lines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError as exc:
            raise errors.ProtocolError(
                f"malformed JSON line in stream: {line[:200]!r}", provider=provider, model=model
            ) from exc
