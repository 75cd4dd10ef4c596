"""``POST /v1/chat/completions`` over ``client.chat.completions.create``.

``create(stream=True)`` runs the open phase (candidates tried, fallback, up to the first
content) before it returns, so an error raised there still chooses the HTTP status.
Once frames are flowing, a failure becomes one ``data: {"error": ...}`` frame and the
stream ends without ``[DONE]``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

import llmrelay

from ._context import ACCESS_LOG, Context, context, note
from ._errors import attempts_header, error_body, error_reply, scrub
from ._memory import history_keys
from ._schemas import ChatCompletionRequest
from ._sse import ChunkFrames, EventStreamResponse, Outbox, sse_data

__all__ = ["router"]

router = APIRouter()

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _Turn:
    """One request's bookkeeping: conversation restore/remember, metrics, timing."""

    def __init__(self, ctx: Context, body: ChatCompletionRequest, endpoint: str) -> None:
        self.ctx = ctx
        self.body = body
        self.endpoint = endpoint
        self.started = time.monotonic()
        self.pairs = [(m.role, m.text()) for m in body.messages]
        self.conversation: Any = None
        # Labels come from what answered or failed, never from the request's model text.
        self.provider: str | None = None
        self.model: str | None = None
        self.first_token: float | None = None

    async def restore(self) -> list[dict[str, Any]]:
        """Messages to send; sets ``conversation`` (rebuilt with remembered states)."""
        messages = [m.to_input() for m in self.body.messages]
        keys = history_keys(self.pairs)
        split = max(
            (i for i, (role, _) in enumerate(self.pairs[:-1]) if role == "assistant"), default=-1
        )
        if split >= 0:
            states = await self.ctx.store.get(keys[split])
            if states:
                self.conversation = llmrelay.Conversation.from_dict(
                    {"messages": messages[: split + 1], "states": dict(states)}
                )
                return messages[split + 1 :]
        self.conversation = llmrelay.Conversation()
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

    def target(self, obj: Any) -> None:
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
        attempts: Any = (),
        usage: Any = None,
        finish_reason: str | None = None,
        error: BaseException | None = None,
        first_token: float | None = None,
    ) -> None:
        """Write this exchange to the exchange log (when the server has one)."""
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
        )
        await writer.write(entry)

    def labels(self) -> tuple[str, str]:
        return self.ctx.metrics.labels(self.provider, self.model)

    def finish(self, status: int, error_type: str | None = None) -> None:
        m = self.ctx.metrics
        provider, model = self.labels()
        m.requests.labels(self.endpoint, provider, model, str(status)).inc()
        m.duration.labels(self.endpoint, provider, model).observe(time.monotonic() - self.started)
        if error_type is not None:
            m.errors.labels(provider, model, error_type).inc()


def _attempt_dict(attempt: Any) -> dict[str, Any]:
    return {
        name: getattr(attempt, name, None)
        for name in ("provider", "model", "outcome", "error_type", "message")
    }


def _usage_dict(usage: Any) -> dict[str, int | None] | None:
    if usage is None:
        return None
    return {
        name: getattr(usage, name, None)
        for name in ("prompt_tokens", "completion_tokens", "total_tokens")
    }


def _caller(request: Request) -> str:
    """Who a rate limit counts: a digest of the bearer token, else the client address."""
    auth = request.headers.get("authorization", "")
    if auth:
        return "key:" + hashlib.sha256(auth.encode()).hexdigest()[:32]
    return "addr:" + (request.client.host if request.client else "unknown")


def _create_kwargs(body: ChatCompletionRequest, messages: list[dict[str, Any]]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": body.model,
        "messages": messages,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_tokens": body.max_tokens,
        "max_completion_tokens": body.max_completion_tokens,
        "stop": body.stop,
        "seed": body.seed,
    }
    if body.options:
        kwargs["options"] = body.options
    return kwargs


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request, body: ChatCompletionRequest) -> Response:
    """Chat completion, as JSON or as an SSE stream of chunks (OpenAI's API)."""
    ctx = context(request)
    turn = _Turn(ctx, body, "chat")
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
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
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
    if ctx.config.log_prompts:
        ACCESS_LOG.info("prompt %s", json.dumps([m.to_input() for m in body.messages])[:10_000])
    messages = await turn.restore()
    try:
        if body.stream:
            events = await _open_stream(ctx.client, body, messages, turn.conversation)
        else:
            completion = await ctx.client.chat.completions.create(
                **_create_kwargs(body, messages), conversation=turn.conversation
            )
    except Exception as exc:
        reply = error_reply(exc)
        if isinstance(exc, llmrelay.ProviderError):
            turn.provider, turn.model = exc.provider, exc.model
        turn.finish(reply.status, reply.error_type)
        await turn.record("", attempts=getattr(exc, "attempts", ()), error=exc)
        note(request, turn.provider, turn.model or body.model)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)
    if not body.stream:
        turn.target(completion)
        note(request, turn.provider, turn.model)
        answer = completion.choices[0].message.content if completion.choices else None
        await turn.remember(answer or "")
        provider, model = turn.labels()
        if completion.usage is not None and completion.usage.completion_tokens:
            ctx.metrics.tokens.labels(provider, model).inc(completion.usage.completion_tokens)
        turn.finish(200)
        provider_name, _, model_name = completion.model.partition(":")
        turn.provider, turn.model = provider_name or None, model_name or None
        await turn.record(
            answer or "",
            usage=completion.usage,
            finish_reason=completion.choices[0].finish_reason if completion.choices else None,
        )
        return Response(completion.model_dump_json(), media_type="application/json")
    turn.target(events)
    note(request, turn.provider, turn.model)
    turn.first_token = time.monotonic()
    ctx.metrics.first_token.labels(*turn.labels()).observe(turn.first_token - turn.started)
    frames = ChunkFrames(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=f"{events.provider}:{events.model}",
    )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    try:
        start = await _first_frame(events, frames)
    except BaseException:  # not expected: these events were buffered
        await events.aclose()
        raise

    async def produce(outbox: Outbox) -> None:
        await _produce(turn, events, frames, include_usage, outbox, start)

    return EventStreamResponse(
        produce,
        headers={**_SSE_HEADERS, **attempts_header(events.attempts)},
        on_close=events.aclose,
        first=start.frame,
    )


async def _open_stream(
    client: Any,
    body: ChatCompletionRequest,
    messages: list[dict[str, Any]],
    conversation: Any,
) -> Any:
    """``client.stream(...)`` opened (errors before the first content raise here).

    The arguments are those ``client.chat.completions.create`` passes on.
    """
    stop = body.stop
    max_tokens = body.max_completion_tokens
    events = client.stream(
        messages,
        model=body.model,
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=max_tokens if max_tokens is not None else body.max_tokens,
        stop=[stop] if isinstance(stop, str) else stop,
        seed=body.seed,
        options=body.options or None,
        conversation=conversation,
    )
    try:
        await events.start()
    except BaseException:
        await events.aclose()
        raise
    return events


class _Start:
    """The stream's events up to its first frame, taken before the response starts.

    ``frame``: the first frame (sent with the response head), or ``None`` when none was
    built (an image came first, or building it raised: ``error``, which the producer
    raises first, so that it ends the stream as it would have mid-stream).
    """

    __slots__ = ("error", "finish_reason", "frame", "pieces", "reported")

    def __init__(self) -> None:
        self.frame: bytes | None = None
        self.error: Exception | None = None
        self.pieces: list[str] = []
        self.finish_reason: str | None = None
        self.reported: Any = None


async def _first_frame(events: Any, frames: ChunkFrames) -> _Start:
    """Take ``events`` up to the first that makes a frame or is content (``_Start``).

    ``start()`` returned once the first content (or the finish) arrived, and iteration
    yields what it buffered first (``ProviderInfo``, then the buffered events): these
    steps never wait for the upstream. Each event is handled as ``_produce`` handles it.
    """
    start = _Start()
    async for event in events:
        try:
            if type(event) is str:
                start.frame = frames.text(event)
                if event:
                    start.pieces.append(event)
                return start
            if isinstance(event, llmrelay.Reasoning):
                start.frame = frames.reasoning(event.text)
                return start
            if isinstance(event, llmrelay.FinishReason):
                start.frame = frames.finish(event.reason)
                start.finish_reason = _finish_name(event.reason)
                return start
        except Exception as exc:
            start.error = exc
            return start
        if isinstance(event, llmrelay.Usage):
            start.reported = event
        elif isinstance(event, llmrelay.ImageResult):
            return start  # content without a frame
    return start


async def _produce(
    turn: _Turn,
    events: Any,
    frames: ChunkFrames,
    include_usage: bool,
    outbox: Outbox,
    start: _Start,
) -> None:
    """Emit the SSE frames of ``events``: chunks, then ``[DONE]`` or one error frame.

    The frames are those ``chat.completions.create(stream=True)`` chunks serialise to
    (``ChunkFrames``), built from the events without chunk objects. ``start``: the
    events already taken (``_first_frame``; its frame went out with the response head).
    """
    metrics = turn.ctx.metrics
    metrics.in_flight.inc()
    provider, model = turn.labels()
    deltas = metrics.deltas.labels(provider, model)
    pieces = start.pieces
    error_type: str | None = None
    error: BaseException | None = None
    finish_reason = start.finish_reason
    usage: Any = None
    reported = start.reported
    cancelled = False
    text = frames.text
    emit = outbox.put
    try:
        if start.error is not None:
            raise start.error
        async for event in events:
            if type(event) is str:
                flush = emit(text(event))
                if event:
                    pieces.append(event)
                    if len(pieces) % _DELTAS_EVERY == 0:
                        deltas.inc(_DELTAS_EVERY)
            elif isinstance(event, llmrelay.Reasoning):
                flush = emit(frames.reasoning(event.text))
            elif isinstance(event, llmrelay.FinishReason):
                chunk = frames.finish(event.reason)
                finish_reason = _finish_name(event.reason)
                flush = emit(chunk)
            else:
                if isinstance(event, llmrelay.Usage):
                    reported = event
                continue
            if flush:  # let the writer send what is queued before parsing more
                await outbox.pause()
        if include_usage and reported is not None:
            usage = _Usage(reported)
            emit(frames.usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens))
            if usage.completion_tokens:
                metrics.tokens.labels(provider, model).inc(usage.completion_tokens)
        await turn.remember("".join(pieces))
        emit(b"data: [DONE]\n\n")
    except Exception as exc:
        reply = error_reply(exc)
        error_type = reply.error_type
        error = exc
        emit(sse_data(json.dumps(reply.body)))
    except BaseException as exc:  # cancelled: the client went away
        cancelled = True
        error = exc
        raise
    finally:
        with anyio.CancelScope(shield=True):
            if len(pieces) % _DELTAS_EVERY:
                deltas.inc(len(pieces) % _DELTAS_EVERY)
            await events.aclose()
            metrics.in_flight.dec()
            turn.finish(499 if cancelled else 200, error_type)
            await turn.record(
                "".join(pieces),
                attempts=events.attempts or (),
                usage=usage,
                finish_reason=finish_reason,
                error=error,
                first_token=turn.first_token,
            )


_DELTAS_EVERY = 32
"""The streamed-deltas counter is advanced every 32 deltas and at the end of the stream."""

_FINISH_NAMES = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


def _finish_name(reason: str) -> str:
    """OpenAI's finish reason for an llmrelay one (``stop`` for any other)."""
    return reason if reason in _FINISH_NAMES else "stop"


class _Usage:
    """OpenAI's usage counts from an ``llmrelay.Usage`` (a missing count is 0)."""

    __slots__ = ("completion_tokens", "prompt_tokens", "total_tokens")

    def __init__(self, usage: llmrelay.Usage) -> None:
        self.prompt_tokens = usage.prompt_tokens or 0
        self.completion_tokens = usage.completion_tokens or 0
        total = usage.total_tokens
        self.total_tokens = self.prompt_tokens + self.completion_tokens if total is None else total
