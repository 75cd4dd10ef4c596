"""What ``/v1/responses`` and ``/v1/messages`` share with ``/v1/chat/completions``.

Both run one chat turn through the public facade (``client.responses`` /
``client.messages``): the same turn bookkeeping as chat (``_chat._Turn``: metrics, the
exchange log, the remembered provider states), the same rate limit, and a streamed body
of the facade stream's ``sse()`` frames sent like chat's. What differs per shape is the
error format; each shape has one table here:

* ``responses_error``: the Responses API answers errors in OpenAI's shape
  (``{"error": {"message", "type", "param", "code"}}``, the chat table of ``_errors``);
  a failure after the stream started is ``response.failed`` with a Responses error
  ``code`` (``RESPONSES_CODES``).
* ``anthropic_error``: ``{"type": "error", "error": {"type", "message"}}`` with
  Anthropic's status codes (https://docs.anthropic.com/en/api/errors; ``ANTHROPIC``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

import llmrelay

from ._chat import _caller, _Turn, head_frame
from ._context import Context, note
from ._errors import ErrorReply, attempts_header, error_body, error_reply
from ._sse import EventStreamResponse, Outbox

__all__ = [
    "ANTHROPIC",
    "RESPONSES_CODES",
    "ShapeBody",
    "anthropic_body",
    "anthropic_error",
    "read_json",
    "responses_error",
    "stream_reply",
]

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_DELTAS_EVERY = 32


class _Said:
    """One chat message as ``_Turn`` reads it (``role``, ``text()``, ``key()``, ``to_input()``)."""

    def __init__(self, message: Mapping[str, Any]) -> None:
        self.role = str(message.get("role"))
        self._message = dict(message)

    def text(self) -> str:
        content = self._message.get("content")
        if isinstance(content, list):
            return "".join(
                str(p.get("text", ""))
                for p in content
                if isinstance(p, Mapping) and p.get("type") == "text"
            )
        return content if isinstance(content, str) else ""

    def key(self) -> str:
        """What identifies it in the conversation memory: the text, the calls, the answer.

        The same as a chat message's (``_schemas.ChatMessage``), so one history has one
        key whichever shape sent it.
        """
        calls = [
            (c.get("id"), c.get("function", {}).get("name"), c.get("function", {}).get("arguments"))
            for c in self._message.get("tool_calls") or ()
        ]
        call_id = self._message.get("tool_call_id")
        if not calls and call_id is None:
            return self.text()
        return json.dumps([self.text(), calls, call_id])

    def to_input(self) -> dict[str, Any]:
        return dict(self._message)


@dataclass
class ShapeBody:
    """A request of another shape as ``_Turn`` reads a chat body (messages, model)."""

    messages: list[_Said]
    model: str | None

    @classmethod
    def of(cls, messages: list[dict[str, Any]], model: Any) -> ShapeBody:
        """From the request's chat messages (``chat_messages(body)``) and its model."""
        return cls([_Said(m) for m in messages], model if isinstance(model, str) else None)


async def read_json(request: Request) -> Any:
    """The request's JSON body.

    Raises:
        llmrelay.ConfigError: not JSON (``param`` ``body``).
    """
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError:
        raise llmrelay.ConfigError("the request body is not valid JSON", param="body") from None


# -- the Responses shape -------------------------------------------------------------


RESPONSES_CODES: Mapping[int, str] = {
    400: "invalid_prompt",
    404: "invalid_prompt",
    413: "invalid_prompt",
    422: "invalid_prompt",
    429: "rate_limit_exceeded",
}
"""The ``response.error.code`` of a failure after the stream started, by HTTP status
(``server_error`` for any other)."""


def responses_error(exc: BaseException) -> ErrorReply:
    """The reply to an error of ``/v1/responses``: the chat table, with ``param``."""
    reply = error_reply(exc)
    param = getattr(exc, "param", None)
    if isinstance(param, str) and reply.body.get("error", {}).get("param") is None:
        reply.body["error"]["param"] = param
    return reply


def responses_failure(reply: ErrorReply) -> tuple[str, str]:
    """``(code, message)`` of ``response.failed`` for an error reply."""
    message = str(reply.body.get("error", {}).get("message", "error"))
    return RESPONSES_CODES.get(reply.status, "server_error"), message


# -- the Anthropic shape -------------------------------------------------------------


ANTHROPIC: Mapping[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    408: (408, "invalid_request_error"),
    413: (413, "request_too_large"),
    422: (400, "invalid_request_error"),
    429: (429, "rate_limit_error"),
    500: (500, "api_error"),
    502: (500, "api_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}
"""HTTP status of the error tree (``_errors.error_reply``) -> Anthropic's status and
error type (any other: 500 ``api_error``)."""


def anthropic_body(kind: str, message: str) -> dict[str, Any]:
    """Anthropic's error object: ``{"type": "error", "error": {"type", "message"}}``."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_error(reply: ErrorReply) -> tuple[int, dict[str, Any]]:
    """Anthropic's status and body for an error reply of the error tree."""
    status, kind = ANTHROPIC.get(reply.status, (500, "api_error"))
    message = str(reply.body.get("error", {}).get("message", "error"))
    return status, anthropic_body(kind, message)


# -- shared route parts --------------------------------------------------------------


async def rate_refusal(request: Request, ctx: Context) -> tuple[float, str] | None:
    """``(seconds to wait, message)`` when the caller is over the rate limit, else None."""
    if ctx.rate is None:
        return None
    wait = await ctx.rate.hit(_caller(request))
    if wait is None:
        return None
    return wait, f"rate limit: at most {ctx.rate.limit} requests per {ctx.rate.window:g} s"


def too_many(ctx: Context, said: list[dict[str, Any]], param: str) -> llmrelay.ConfigError | None:
    """The error of a request over ``ServerConfig.max_messages`` messages, else ``None``."""
    limit = ctx.config.max_messages
    if len(said) <= limit:
        return None
    return llmrelay.ConfigError(f"too many messages: {len(said)} (at most {limit})", param=param)


def retry_after(wait: float) -> dict[str, str]:
    """The ``Retry-After`` header of a rate-limit refusal."""
    return {"Retry-After": str(max(1, math.ceil(wait)))}


def openai_rate_reply(wait: float, message: str) -> JSONResponse:
    """The 429 of a rate-limit refusal in OpenAI's (and the Responses API's) shape."""
    return JSONResponse(
        error_body(message, "rate_limit_error", "rate_limit_exceeded"),
        status_code=429,
        headers=retry_after(wait),
    )


async def failed(
    request: Request,
    turn: _Turn,
    exc: Exception,
    model: str | None,
    to_reply: Callable[[Exception], ErrorReply] = error_reply,
) -> ErrorReply:
    """Count, log and note an error raised before the answer started; its reply."""
    reply = to_reply(exc)
    if isinstance(exc, llmrelay.ProviderError):
        turn.provider, turn.model = exc.provider, exc.model
    turn.finish(reply.status, reply.error_type)
    await turn.record("", attempts=getattr(exc, "attempts", ()), error=exc)
    note(request, turn.provider, turn.model or model)
    return reply


async def json_done(
    request: Request,
    turn: _Turn,
    *,
    provider: str,
    model: str,
    answer: str,
    usage: Any,
    finish_reason: str | None,
    body: bytes,
    tool_calls: list[dict[str, Any]] | None = None,
) -> Response:
    """The JSON reply of a whole answer, once remembered, counted and logged.

    ``tool_calls``: the answer's calls for the exchange log, ``{"id", "name",
    "arguments"}`` each (the arguments as JSON text).
    """
    turn.provider, turn.model = provider, model
    note(request, provider, model)
    await turn.remember(answer)
    labels = turn.labels()
    completion = getattr(usage, "completion_tokens", None)
    if completion:
        turn.ctx.metrics.tokens.labels(*labels).inc(completion)
    turn.finish(200)
    await turn.record(answer, usage=usage, finish_reason=finish_reason, tool_calls=tool_calls)
    return Response(body, media_type="application/json")


def usage_of(counts: Mapping[str, Any] | None, prompt: str, completion: str) -> Any:
    """An ``llmrelay.Usage`` of a shape's usage object (``None`` without one)."""
    if not counts:
        return None
    first = counts.get(prompt)
    second = counts.get(completion)
    total = counts.get("total_tokens")
    if total is None and isinstance(first, int) and isinstance(second, int):
        total = first + second
    return llmrelay.Usage(first, second, total)


async def stream_reply(
    request: Request,
    turn: _Turn,
    stream: Any,
    fail: Callable[[ErrorReply], bytes],
    on_error: Callable[[Exception], ErrorReply] = error_reply,
) -> Response:
    """The SSE response of an opened shape stream (``stream.sse()``'s frames).

    The first frame goes out with the response head; a failure after it becomes the
    frames ``fail(reply)`` writes (``response.failed``, an Anthropic ``error`` event).
    """
    turn.provider, turn.model = stream.provider, stream.model
    note(request, turn.provider, turn.model)
    turn.first_token = time.monotonic()
    turn.ctx.metrics.first_token.labels(*turn.labels()).observe(turn.first_token - turn.started)
    frames = stream.sse()
    first, error = await head_frame(frames)

    async def produce(outbox: Outbox) -> None:
        await _produce(turn, frames, outbox, error, fail, on_error)

    return EventStreamResponse(
        produce,
        headers={**_SSE_HEADERS, **attempts_header(frames.attempts)},
        on_close=frames.aclose,
        first=first,
    )


async def _produce(
    turn: _Turn,
    frames: llmrelay.AsyncSSEStream,
    outbox: Outbox,
    error: Exception | None,
    fail: Callable[[ErrorReply], bytes],
    on_error: Callable[[Exception], ErrorReply],
) -> None:
    """Send the frames, then remember the turn; or the shape's failure frames."""
    metrics = turn.ctx.metrics
    metrics.in_flight.inc()
    deltas = metrics.deltas.labels(*turn.labels())
    error_type: str | None = None
    failure: BaseException | None = None
    cancelled = False
    counted = sent = 0
    emit = outbox.put
    try:
        if error is not None:
            raise error
        async for frame in frames:
            if emit(frame):
                await outbox.pause()
            sent += 1
            if sent % _DELTAS_EVERY == 0 and frames.deltas > counted:
                deltas.inc(frames.deltas - counted)
                counted = frames.deltas
        usage = frames.usage
        if usage is not None and usage.completion_tokens:
            metrics.tokens.labels(*turn.labels()).inc(usage.completion_tokens)
        await turn.remember(frames.text)
    except Exception as exc:
        reply = on_error(exc)
        error_type = reply.error_type
        failure = exc
        emit(fail(reply))
    except BaseException as exc:  # cancelled: the client went away
        cancelled = True
        failure = exc
        raise
    finally:
        # no anyio shield: the producer runs in a plain task in no anyio cancel scope, and
        # EventStreamResponse cancels it once (a shield would hold back nothing)
        if frames.deltas > counted:
            deltas.inc(frames.deltas - counted)
        await turn.end_stream(frames, cancelled=cancelled, error_type=error_type, failure=failure)


Handler = Callable[[Request], Awaitable[Response]]
