"""``POST /v1/chat/completions`` over ``client.chat.completions.create``.

``create(stream=True, progress=True)`` runs the open phase (candidates tried, fallback,
up to the first content) before it returns, so an error raised there still chooses the
HTTP status -- unless the service reports the request queued first (a Gradio Space's
queue): then it returns at that report, the response starts with an SSE comment per
report (``: queued position=2 eta=12``) and a ``: keep-alive`` comment every
``QUEUED_KEEPALIVE`` seconds while no report comes, so that a proxy keeps the connection
open; such requests are counted in ``/metrics`` (``llmrelay_server_queued_requests``,
``llmrelay_server_queue_wait_seconds``). The body is that stream's ``sse()``: its chunks
as SSE frames (the one OpenAI chunk encoder), the first taken before the response starts
and sent with its head. Once frames are flowing, a failure becomes one
``data: {"error": ...}`` frame and the stream ends without ``[DONE]``.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

import llmrelay

from ._context import ACCESS_LOG, Context, context, note
from ._errors import SHOULD_RETRY, attempts_header, error_body, error_reply, scrub
from ._guard import caller
from ._memory import history_keys
from ._schemas import ChatCompletionRequest
from ._sse import QUEUED_KEEPALIVE, EventStreamResponse, Outbox, sse_data

__all__ = ["router"]

router = APIRouter()

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
USAGE_HEADER = "x-llmrelay-usage"
"""``estimated``: the response's usage was counted by llmrelay, not reported by the
provider (``llmrelay._usage``). On a stream it is sent when the answering provider does
not report usage as a rule; the usage chunk comes after the headers."""


_conversation_id = functools.partial(next, map("relay-{}".format, itertools.count(1)))
"""The id of a request's ``Conversation``: a count, not ``Conversation``'s default random
``uuid4`` (a ``getrandom`` call and a ``UUID`` object, about 3 µs per request). The id
is never read: the conversation lives for one request, and the exchange log names it by
its history's digest."""


class _Turn:
    """One request's bookkeeping: conversation restore/remember, metrics, timing."""

    def __init__(self, ctx: Context, body: ChatCompletionRequest, endpoint: str) -> None:
        self.ctx = ctx
        self.body = body
        self.endpoint = endpoint
        self.started = time.monotonic()
        self.pairs = [(m.role, m.key()) for m in body.messages]
        self.conversation: llmrelay.Conversation | None = None
        # Labels come from what answered or failed, never from the request's model text.
        self.provider: str | None = None
        self.model: str | None = None
        self.first_token: float | None = None
        self.queued: float | None = None
        """When the service first reported the request queued, until it answers."""

    async def restore(self) -> list[dict[str, Any]]:
        """Messages to send; sets ``conversation`` (rebuilt with remembered states)."""
        messages = [m.to_input() for m in self.body.messages]
        split = max(
            (i for i, (role, _) in enumerate(self.pairs[:-1]) if role == "assistant"), default=-1
        )
        if split >= 0:  # the key of the history up to the last answer (chained digests)
            states = await self.ctx.store.get(history_keys(self.pairs[: split + 1])[split])
            if states:
                self.conversation = llmrelay.Conversation.from_dict(
                    {
                        "id": _conversation_id(),
                        "messages": messages[: split + 1],
                        "states": dict(states),
                    }
                )
                return messages[split + 1 :]
        self.conversation = llmrelay.Conversation(id=_conversation_id())
        return messages

    async def remember(self, answer: str) -> None:
        """Store the conversation's provider states under the history + this answer."""
        if self.conversation is None or not self.conversation.states:
            return
        # the {"data", "index"} form Conversation.from_dict takes back (no messages copied)
        states = {
            name: {"data": dict(state.data), "index": state.index}
            for name, state in self.conversation.states.items()
        }
        key = history_keys([*self.pairs, ("assistant", answer)])[-1]
        await self.ctx.store.put(key, states)

    def target(
        self,
        obj: llmrelay.ChatCompletion | llmrelay.AsyncChatCompletionStream | llmrelay.AsyncSSEStream,
    ) -> None:
        """Take the answering provider and model from a completion or stream."""
        provider = getattr(obj, "provider", None)
        model = getattr(obj, "model", None)
        if provider is None and isinstance(model, str) and ":" in model:
            provider, _, model = model.partition(":")  # a ChatCompletion's "provider:model"
        self.provider = provider or self.provider
        self.model = model or self.model

    async def record(
        self,
        answer: str,
        *,
        attempts: Sequence[llmrelay.Attempt] = (),
        usage: object = None,
        finish_reason: str | None = None,
        error: BaseException | None = None,
        first_token: float | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """Hand this exchange to the exchange log's writer (when the server has one).

        ``enqueue`` returns at once: the answer never waits on the database.
        """
        writer = self.ctx.exchanges
        if writer is None:
            return
        from llmrelay.log import LogEntry

        now = time.monotonic()
        system = "\n".join(t for r, t in self.pairs if r in ("system", "developer")) or None
        prompt = next((t for r, t in reversed(self.pairs) if r == "user"), "")
        entry = LogEntry(
            prompt=prompt,
            answer=answer,
            conversation_id=history_keys(self.pairs[:1])[0][:32] if self.pairs else None,
            system=system,
            model_requested=self.body.model,
            provider=self.provider,
            model=self.model,
            attempts=[_attempt_dict(a) for a in attempts],
            first_token_ms=None
            if first_token is None
            else int((first_token - self.started) * 1000),
            duration_ms=int((now - self.started) * 1000),
            usage=_usage_dict(usage),
            finish_reason=finish_reason,
            error_type=type(error).__name__ if error is not None else None,
            error=scrub(str(error))[:2000] if error is not None else None,
            tool_calls=tool_calls or None,
        )
        writer.enqueue(entry)

    async def end_stream(
        self,
        frames: llmrelay.AsyncSSEStream,
        *,
        cancelled: bool,
        error_type: str | None,
        failure: BaseException | None,
    ) -> None:
        """Close a stream however it ended; count the request and log the exchange.

        Args:
            frames: the stream's frames (closed here).
            cancelled: the client went away (counted as status 499).
            error_type: the error reply's type, when the stream ended in one.
            failure: what ended the stream early, if anything.
        """
        await frames.aclose()
        self.ctx.metrics.in_flight.dec()
        self.finish(499 if cancelled else 200, error_type)
        if self.ctx.exchanges is None:  # no exchange log: its entry's parts are not needed
            return
        await self.record(
            frames.text,
            attempts=frames.attempts or (),
            usage=frames.usage,
            finish_reason=frames.finish_reason,
            error=failure,
            first_token=self.first_token,
            tool_calls=[
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in frames.tool_calls
            ],
        )

    def labels(self) -> tuple[str, str]:
        return self.ctx.metrics.labels(self.provider, self.model)

    def finish(self, status: int, error_type: str | None = None) -> None:
        m = self.ctx.metrics
        provider, model = self.labels()
        m.child(m.requests, self.endpoint, provider, model, str(status)).inc()
        m.child(m.duration, self.endpoint, provider, model).observe(time.monotonic() - self.started)
        if error_type is not None:
            m.child(m.errors, provider, model, error_type).inc()


def _attempt_dict(attempt: llmrelay.Attempt) -> dict[str, Any]:
    return {
        name: getattr(attempt, name, None)
        for name in ("provider", "model", "outcome", "error_type", "message")
    }


def _usage_dict(usage: object) -> dict[str, int | None] | None:
    if usage is None:
        return None
    return {
        name: getattr(usage, name, None)
        for name in ("prompt_tokens", "completion_tokens", "total_tokens")
    }


def _caller(request: Request) -> str:
    """Who a rate limit counts: the server key's holder, else the client address."""
    return caller(request.scope)


def _create_kwargs(
    body: ChatCompletionRequest,
    messages: list[dict[str, Any]],
    conversation: llmrelay.Conversation | None,
) -> llmrelay.CompletionCreateParams:
    """The keyword arguments of ``client.chat.completions.create`` for ``body``.

    Every OpenAI field the body gave (not ``null``) goes to ``create``, which honours,
    ignores or refuses each.
    """
    kwargs: llmrelay.CompletionCreateParams = {"model": body.model, "conversation": conversation}
    given: dict[str, Any] = {
        name: getattr(body, name)
        for name in _OPENAI_FIELDS & body.model_fields_set
        if getattr(body, name) is not None
    }
    kwargs.update(given)  # type: ignore[typeddict-item]
    if body.options:
        kwargs["options"] = body.options
    if body.stream_options is not None:
        kwargs["stream_options"] = {"include_usage": bool(body.stream_options.include_usage)}
    return kwargs


_OPENAI_FIELDS = frozenset(llmrelay.CompletionCreateParams.__annotations__) - {
    "model",
    "conversation",
    "options",
    "stream_options",
}
"""The body fields passed to ``create`` as they are (every OpenAI field but these)."""


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request, body: ChatCompletionRequest) -> Response:
    """Chat completion, as JSON or as an SSE stream of chunks (OpenAI's API)."""
    ctx = context(request)
    turn = _Turn(ctx, body, "chat")
    refused = await _refusal(request, ctx, turn, body)
    if refused is not None:
        return refused
    if ctx.config.log_prompts:
        ACCESS_LOG.info("prompt %s", json.dumps([m.to_input() for m in body.messages])[:10_000])
    messages = await turn.restore()
    kwargs = _create_kwargs(body, messages, turn.conversation)
    try:
        if body.stream:
            stream = await ctx.client.chat.completions.create(
                messages=messages, **kwargs, stream=True, progress=True
            )
        else:
            completion = await ctx.client.chat.completions.create(messages=messages, **kwargs)
    except Exception as exc:
        reply = error_reply(exc)
        if isinstance(exc, llmrelay.ProviderError):
            turn.provider, turn.model = exc.provider, exc.model
        turn.finish(reply.status, reply.error_type)
        await turn.record("", attempts=getattr(exc, "attempts", ()), error=exc)
        note(request, turn.provider, turn.model or body.model)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)
    if body.stream:
        return await _stream_reply(request, turn, stream)
    return await _json_reply(request, turn, completion)


async def _refusal(
    request: Request, ctx: Context, turn: _Turn, body: ChatCompletionRequest
) -> Response | None:
    """The reply to a request refused before it reaches the client (rate, size), else None."""
    if ctx.rate is not None:
        wait = await ctx.rate.hit(_caller(request))
        if wait is not None:
            turn.finish(429)
            return JSONResponse(
                error_body(
                    f"rate limit: at most {ctx.rate.limit} requests per {ctx.rate.window:g} s",
                    "rate_limit_error",
                    "rate_limit_exceeded",
                ),
                status_code=429,
                headers={"Retry-After": str(max(1, math.ceil(wait))), SHOULD_RETRY: "true"},
            )
    if len(body.messages) > ctx.config.max_messages:
        turn.finish(400)
        return JSONResponse(
            error_body(
                f"too many messages: {len(body.messages)} (at most {ctx.config.max_messages})",
                "invalid_request_error",
                "too_many_messages",
                "messages",
            ),
            status_code=400,
        )
    return None


async def _json_reply(
    request: Request, turn: _Turn, completion: llmrelay.ChatCompletion
) -> Response:
    """The ``chat.completion`` object, once the turn is remembered, counted and logged."""
    turn.target(completion)
    note(request, turn.provider, turn.model)
    answer = completion.choices[0].message.content if completion.choices else None
    await turn.remember(answer or "")
    provider, model = turn.labels()
    if completion.usage is not None and completion.usage.completion_tokens:
        metrics = turn.ctx.metrics
        metrics.child(metrics.tokens, provider, model).inc(completion.usage.completion_tokens)
    turn.finish(200)
    provider_name, _, model_name = completion.model.partition(":")
    turn.provider, turn.model = provider_name or None, model_name or None
    calls = completion.choices[0].message.tool_calls if completion.choices else None
    await turn.record(
        answer or "",
        usage=completion.usage,
        finish_reason=completion.choices[0].finish_reason if completion.choices else None,
        tool_calls=[
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in calls or ()
        ],
    )
    headers = {USAGE_HEADER: "estimated"} if completion.usage_estimated else None
    return Response(completion.model_dump_json(), media_type="application/json", headers=headers)


async def _stream_reply(
    request: Request, turn: _Turn, stream: llmrelay.AsyncChatCompletionStream
) -> Response:
    """The SSE response of an opened (or queued) stream; its first frame goes out with the head."""
    frames = stream.sse(end=False)  # [DONE] goes out after the turn is remembered
    if frames.queued:
        turn.ctx.metrics.queued.inc()
        turn.queued = time.monotonic()
    else:
        _answering(request, turn, frames)
    # the events ``create`` buffered up to the first content: no wait for the upstream
    first, error = await head_frame(frames)

    async def produce(outbox: Outbox) -> None:
        await _produce(turn, frames, outbox, error)

    headers = {**_SSE_HEADERS, **attempts_header(frames.attempts)}
    include_usage = turn.body.stream_options is not None and turn.body.stream_options.include_usage
    if include_usage and not stream.reports_usage:
        headers[USAGE_HEADER] = "estimated"
    return EventStreamResponse(
        produce,
        headers=headers,
        on_close=frames.aclose,
        first=first,
    )


async def head_frame(frames: llmrelay.AsyncSSEStream) -> tuple[bytes | None, Exception | None]:
    """A stream's first frame (sent with the response head), or what taking it raised.

    The error (e.g. a first delta that cannot be encoded) is raised again by the producer,
    so that it ends the stream as it would mid-stream. Cancelled: the stream is closed.
    """
    try:
        return await frames.head(), None
    except Exception as exc:
        return None, exc
    except BaseException:
        await frames.aclose()
        raise


def _answering(request: Request | None, turn: _Turn, frames: llmrelay.AsyncSSEStream) -> None:
    """The stream committed: label the request, count its first token (and queue wait)."""
    turn.target(frames)
    if request is not None:
        note(request, turn.provider, turn.model)
    turn.first_token = now = time.monotonic()
    metrics = turn.ctx.metrics
    metrics.child(metrics.first_token, *turn.labels()).observe(now - turn.started)
    if turn.queued is not None:
        metrics.queue_wait.observe(now - turn.queued)
        turn.queued = None


async def _produce(
    turn: _Turn, frames: llmrelay.AsyncSSEStream, outbox: Outbox, error: Exception | None
) -> None:
    """Emit the SSE frames of the stream: chunks, then ``[DONE]`` or one error frame.

    ``frames`` is ``chat.completions.create(stream=True)``'s ``sse()``: the chunks as
    frames, after the first (``head()``, sent with the response head). ``error``: what
    taking that first frame raised (raised here first, so that it ends the stream as it
    would have mid-stream).
    """
    metrics = turn.ctx.metrics
    metrics.in_flight.inc()
    provider, model = turn.labels()
    deltas = metrics.child(metrics.deltas, provider, model)
    error_type: str | None = None
    failure: BaseException | None = None
    cancelled = False
    counted = sent = 0
    emit = outbox.put
    queued = frames.queued
    outbox.keepalive = QUEUED_KEEPALIVE if queued else 0.0
    try:
        if error is not None:
            raise error
        async for frame in frames:
            if queued and not frames.queued:  # the queued request is answered
                queued = False
                outbox.keepalive = 0.0
                _answering(None, turn, frames)
                provider, model = turn.labels()
                deltas = metrics.child(metrics.deltas, provider, model)
            if emit(frame):  # let the writer send what is queued before parsing more
                await outbox.pause()
            sent += 1
            if sent % _DELTAS_EVERY == 0 and frames.deltas > counted:
                deltas.inc(frames.deltas - counted)
                counted = frames.deltas
        usage = frames.usage
        if usage is not None and usage.completion_tokens:
            metrics.child(metrics.tokens, provider, model).inc(usage.completion_tokens)
        await turn.remember(frames.text)
        emit(frames.end_frame)
    except Exception as exc:
        reply = error_reply(exc)
        error_type = reply.error_type
        failure = exc
        emit(sse_data(json.dumps(reply.body)))
    except BaseException as exc:  # cancelled: the client went away
        cancelled = True
        failure = exc
        raise
    finally:
        # no anyio shield: the producer runs in a plain task in no anyio cancel scope, and
        # EventStreamResponse cancels it once (a shield would hold back nothing)
        if turn.queued is not None:  # it never got an answer
            metrics.queue_wait.observe(time.monotonic() - turn.queued)
        if frames.skipped:
            metrics.child(metrics.skipped, provider, model).inc(frames.skipped)
        if frames.deltas > counted:
            deltas.inc(frames.deltas - counted)
        await turn.end_stream(frames, cancelled=cancelled, error_type=error_type, failure=failure)


_DELTAS_EVERY = 32
"""The streamed-deltas counter is advanced every 32 frames and at the end of the stream."""
