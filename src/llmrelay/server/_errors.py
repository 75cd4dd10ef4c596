"""llmrelay errors -> HTTP status + OpenAI's error JSON (what the ``openai`` SDK maps).

OpenAI's error body is ``{"error": {"message", "type", "param", "code"}}``
(https://platform.openai.com/docs/guides/error-codes); the SDK picks its exception class
from the status: 400 BadRequestError, 401 AuthenticationError, 404 NotFoundError,
413/other 4xx APIStatusError, 422 UnprocessableEntityError, 429 RateLimitError,
>=500 InternalServerError. Messages are scrubbed of URLs: an upstream address never
leaves the server, and no response body from upstream is passed on.

Every error reply carries ``x-should-retry`` (the header the ``openai`` SDKs read before
their own rule of retrying 408/409/429/5xx, ``_should_retry`` in openai-python's
``_base_client.py``, https://github.com/openai/openai-python/blob/main/src/openai/_base_client.py).
It is ``true``, with ``Retry-After`` when the wait is known, only when asking again can
help *and* llmrelay has not asked again itself:

* the failure is one llmrelay marks ``retryable`` (overload, a full queue, a timeout, a
  cut connection, a rate limit; the server shutting down), and
* the request reached a service once only (``ProviderError.tries == 1``): llmrelay's
  retry policy (``retries``) and fallback were not used -- ``retries = 0``, a probe, a
  timeout (never retried on the same candidate), a 429 whose ``Retry-After`` was longer
  than llmrelay waits, a retry skipped because its wait would pass the deadline.

It is ``false`` for a failure asking again cannot fix (a provider's own refusal or error,
a 4xx, a missing key, an unknown model) and for a retryable failure after llmrelay's own
retries or fallback (``tries >= 2``): the SDK's two retries would each repeat the whole
chain (3 x 3 upstream requests with the default settings), and a client that wants more
can ask again later itself. The server's own refusals (its rate limit, the connection
cap) are not upstream failures and say ``true`` (or leave the SDK's rule) as before.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

import llmrelay

__all__ = [
    "ATTEMPTS_HEADER",
    "SHOULD_RETRY",
    "URL_PATTERN",
    "ErrorReply",
    "attempts_header",
    "error_body",
    "error_reply",
    "release",
    "scrub",
]

_LOG = logging.getLogger("llmrelay.server")
URL_PATTERN = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
"""What ``scrub`` replaces: any ``scheme://...`` up to whitespace or a quote."""
_MAX_MESSAGE = 2000


SHOULD_RETRY = "x-should-retry"
"""Response header telling OpenAI SDKs whether to retry (``"true"`` / ``"false"``)."""


def _retry_headers(retry: bool, retry_after: float | None = None) -> dict[str, str]:
    headers = {SHOULD_RETRY: "true" if retry else "false"}
    if retry and retry_after is not None and math.isfinite(retry_after):
        headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
    return headers


def scrub(text: str) -> str:
    """``text`` with every URL replaced by ``<url>`` and cut to 2000 characters."""
    return URL_PATTERN.sub("<url>", text)[:_MAX_MESSAGE]


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    """OpenAI's error object: ``{"error": {"message", "type", "param", "code", ...}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}


@dataclass
class ErrorReply:
    """What to answer for an error: status, OpenAI JSON body, extra headers, metric label."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str = "error"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _attempts(exc: llmrelay.AllProvidersFailed) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    attempts = getattr(exc, "attempts", None)
    if attempts is not None:
        for a in attempts:
            out.append(
                {
                    "provider": a.provider,
                    "model": a.model,
                    "outcome": a.outcome,
                    "error_type": a.error_type,
                    "message": scrub(str(a.message or "")),
                }
            )
        return out
    for name, error in getattr(exc, "errors", ()):  # pragma: no cover - core v1 shape
        out.append(
            {
                "provider": name,
                "model": getattr(error, "model", None),
                "outcome": "failed",
                "error_type": type(error).__name__,
                "message": scrub(str(error)),
            }
        )
    return out


ATTEMPTS_HEADER = "X-LLMRelay-Attempts"
"""Response header of a streamed answer: the candidates tried, as a JSON list."""
_MAX_ATTEMPT_MESSAGE = 300


def attempts_header(attempts: Any) -> dict[str, str]:
    """``{ATTEMPTS_HEADER: json}`` for a stream's ``attempts`` (``llmrelay.Attempt``).

    The value is ASCII JSON, ``[{"provider", "model", "outcome", "error_type",
    "message"}]`` in the order tried (the last one ``"ok"``: it answers), messages
    scrubbed of URLs and cut to 300 characters; ``{}`` when there are none.
    """
    fields = tuple(
        (a.provider, a.model, a.outcome, a.error_type, a.message) for a in attempts or ()
    )
    if not fields:
        return {}
    if any(message for *_, message in fields):  # error texts are not kept
        return {ATTEMPTS_HEADER: _attempts_json(fields)}
    try:
        return {ATTEMPTS_HEADER: _attempts_cached(fields)}
    except TypeError:  # a field that cannot be a cache key
        return {ATTEMPTS_HEADER: _attempts_json(fields)}


def _attempts_json(fields: tuple[tuple[Any, Any, Any, Any, Any], ...]) -> str:
    """The header's JSON for the attempts' (provider, model, outcome, error_type, message)."""
    out = [
        {
            "provider": provider,
            "model": model,
            "outcome": outcome,
            "error_type": error_type,
            "message": scrub(str(message))[:_MAX_ATTEMPT_MESSAGE] if message else None,
        }
        for provider, model, outcome, error_type, message in fields
    ]
    return json.dumps(out, separators=(",", ":"))


_attempts_cached = functools.lru_cache(maxsize=256)(_attempts_json)
"""``_attempts_json`` of attempts without messages (most streams: one ``ok`` attempt)."""


def _provider_status(exc: llmrelay.ProviderError) -> tuple[int, str, str]:
    """(status, OpenAI type, code) of an upstream failure."""
    if isinstance(exc, llmrelay.RateLimitError):
        return 429, "rate_limit_error", "rate_limit_exceeded"
    if isinstance(exc, llmrelay.ModelNotFoundError):
        return 404, "invalid_request_error", "model_not_found"
    if isinstance(exc, llmrelay.InvalidRequestError):
        status = 422 if exc.status_code == 422 else 400
        # the provider's own machine-readable code (context_length_exceeded,
        # content_policy_violation, ...), so a client can act on it
        return status, "invalid_request_error", exc.code or "invalid_request"
    if isinstance(exc, llmrelay.ProviderUnavailable):
        return 503, "api_error", "upstream_unavailable"
    if isinstance(exc, llmrelay.ProviderTimeout):
        return 504, "api_error", "upstream_timeout"
    if isinstance(exc, llmrelay.AuthenticationError):
        # The server's own key for that provider was refused: not the caller's fault.
        return 502, "api_error", "upstream_authentication_error"
    return 502, "api_error", "upstream_error"


def error_reply(exc: BaseException) -> ErrorReply:
    """Map any exception raised while serving a request to its HTTP answer.

    Unknown model/provider -> 404; other configuration errors (bad messages, undeclared
    options) -> 400; a provider refusing a field -> 400 with ``param`` naming it; a
    provider without its key on this server -> 503; upstream errors by class (400, 429,
    502, 503, 504); every provider failing -> 502 with each attempt listed; anything else
    -> 500 without details. Every reply has ``x-should-retry``, and a retryable one
    ``Retry-After`` when the wait is known (see the module docstring).

    Once the reply is built, ``exc`` and every exception it carries (its causes and
    contexts, ``AllProvidersFailed``'s attempts' errors, ``StreamInterrupted``'s cause)
    lose their tracebacks: a traceback holds the frames it passed through, and one of
    them the object that kept the error to raise it again (``AsyncChatStream``), a
    reference cycle that kept the request's objects (~100: frames, the request body,
    the stream) until the cyclic collector ran, whose full collections pause every
    request being served. The type and message stay for the exchange log.
    """
    reply = _reply(exc)
    reply.headers = {**_should_retry(exc), **reply.headers}
    release(exc)
    return reply


def release(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and of every exception it refers to (see ``error_reply``)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        error.__traceback__ = None
        pending += (error.__cause__, error.__context__)
        if isinstance(error, llmrelay.StreamInterrupted):
            pending.append(error.cause)
        for attempt in getattr(error, "attempts", None) or ():
            pending.append(getattr(attempt, "error", None))


def _should_retry(exc: BaseException) -> dict[str, str]:
    """``x-should-retry`` (and ``Retry-After``) for an error (see the module docstring)."""
    if isinstance(exc, llmrelay.StreamInterrupted):
        exc = exc.cause
    if isinstance(exc, llmrelay.AllProvidersFailed):
        last = exc.__cause__  # the last candidate's error: it carries the chain's tries
        if not isinstance(last, llmrelay.ProviderError):
            return _retry_headers(False)
        exc = last
    if isinstance(exc, llmrelay.ProviderError):
        retry = exc.retryable and exc.tries <= 1
        return _retry_headers(retry, getattr(exc, "retry_after", None))
    closed = getattr(llmrelay.errors, "ClientClosed", None)
    return _retry_headers(closed is not None and isinstance(exc, closed))


def _reply(exc: BaseException) -> ErrorReply:
    name = type(exc).__name__
    if isinstance(exc, llmrelay.StreamInterrupted):
        return _reply(exc.cause)
    if isinstance(exc, (llmrelay.UnknownModelError, llmrelay.UnknownProviderError)):
        return ErrorReply(
            404,
            error_body(scrub(str(exc)), "invalid_request_error", "model_not_found", "model"),
            error_type=name,
        )
    if isinstance(exc, llmrelay.MissingCredentialsError):
        return ErrorReply(
            503,
            error_body(scrub(str(exc)), "api_error", "provider_not_configured"),
            error_type=name,
        )
    if isinstance(exc, llmrelay.ConfigError):
        return ErrorReply(
            400,
            error_body(
                scrub(str(exc)),
                "invalid_request_error",
                "invalid_request",
                getattr(exc, "param", None),
            ),
            error_type=name,
        )
    if isinstance(exc, llmrelay.AllProvidersFailed):
        attempts = _attempts(exc)
        return ErrorReply(
            502,
            error_body(scrub(str(exc)), "api_error", "all_providers_failed", attempts=attempts),
            error_type=name,
        )
    if isinstance(exc, llmrelay.ProviderError):
        status, type_, code = _provider_status(exc)
        param = getattr(exc, "param", None)  # the field a provider cannot honour
        body = error_body(scrub(str(exc)), type_, code, param if isinstance(param, str) else None)
        return ErrorReply(status, body, {}, name)
    closed = getattr(llmrelay.errors, "ClientClosed", None)
    if closed is not None and isinstance(exc, closed):
        return ErrorReply(
            503,
            error_body("the server is shutting down", "api_error", "shutting_down"),
            error_type=name,
        )
    if isinstance(exc, llmrelay.LLMRelayError):
        return ErrorReply(502, error_body(scrub(str(exc)), "api_error", _snake(name)), {}, name)
    _LOG.error("unexpected %s while serving a request: %s", name, scrub(str(exc)))
    return ErrorReply(500, error_body("internal server error", "server_error"), {}, name)
