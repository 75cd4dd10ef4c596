"""``POST /v1/chat/completions`` over ``client.chat.completions.create``.

``create(stream=True)`` runs the open phase (candidates tried, fallback, up to the first
content) before it returns, so an error raised there still chooses the HTTP status.
Once frames are flowing, a failure becomes one ``data: {"error": ...}`` frame and the
stream ends without ``[DONE]``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

import llmrelay

from ._context import ACCESS_LOG, Context, context, note
from ._errors import error_body, error_reply
from ._memory import history_keys
from ._schemas import ChatCompletionRequest
from ._sse import EventStreamResponse, sse_data

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

    def labels(self) -> tuple[str, str]:
        return self.ctx.metrics.labels(self.provider, self.model)

    def finish(self, status: int, error_type: str | None = None) -> None:
        m = self.ctx.metrics
        provider, model = self.labels()
        m.requests.labels(self.endpoint, provider, model, str(status)).inc()
        m.duration.labels(self.endpoint, provider, model).observe(time.monotonic() - self.started)
        if error_type is not None:
            m.errors.labels(provider, model, error_type).inc()


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
    kwargs = _create_kwargs(body, messages)
    try:
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            stream = await ctx.client.chat.completions.create(
                **kwargs,
                stream=True,
                stream_options={"include_usage": include_usage},
                conversation=turn.conversation,
            )
        else:
            completion = await ctx.client.chat.completions.create(
                **kwargs, conversation=turn.conversation
            )
    except Exception as exc:
        reply = error_reply(exc)
        if isinstance(exc, llmrelay.ProviderError):
            turn.provider, turn.model = exc.provider, exc.model
        turn.finish(reply.status, reply.error_type)
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
        return Response(completion.model_dump_json(), media_type="application/json")
    turn.target(stream)
    note(request, turn.provider, turn.model)
    ctx.metrics.first_token.labels(*turn.labels()).observe(time.monotonic() - turn.started)
    return EventStreamResponse(
        _frames(turn, stream), headers=_SSE_HEADERS, on_close=lambda: _close(stream)
    )


async def _frames(turn: _Turn, stream: Any) -> AsyncGenerator[bytes, None]:
    """SSE frames of ``stream``: chunks, then ``[DONE]`` or one error frame."""
    metrics = turn.ctx.metrics
    metrics.in_flight.inc()
    provider, model = turn.labels()
    pieces: list[str] = []
    error_type: str | None = None
    cancelled = False
    try:
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                    metrics.deltas.labels(provider, model).inc()
            if chunk.usage is not None and chunk.usage.completion_tokens:
                metrics.tokens.labels(provider, model).inc(chunk.usage.completion_tokens)
            yield sse_data(chunk.model_dump_json())
        await turn.remember("".join(pieces))
        yield sse_data("[DONE]")
    except Exception as exc:
        reply = error_reply(exc)
        error_type = reply.error_type
        yield sse_data(json.dumps(reply.body))
    except BaseException:  # cancelled or closed: the client went away
        cancelled = True
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await _close(stream)
        metrics.in_flight.dec()
        turn.finish(499 if cancelled else 200, error_type)


async def _close(stream: Any) -> None:
    """Close an llmrelay stream (``close()`` like openai's ``AsyncStream``, or ``aclose()``)."""
    close = getattr(stream, "close", None) or getattr(stream, "aclose", None)
    if close is not None:
        await close()
