"""``/v1/messages``: Anthropic's Messages API over ``client.messages`` (the one engine).

* ``POST /v1/messages``: ``messages.create(**body)``; a ``Message`` as JSON, or with
  ``stream: true`` the stream's ``sse()`` frames (``message_start`` ... ``message_stop``;
  a failure after the first frame is an ``error`` event). Like chat completions, a
  client that resends the whole history continues the provider's own conversation: the
  server remembers the provider states under the history (``_memory``) and passes the
  restored ``Conversation`` to ``create``.
* ``POST /v1/messages/count_tokens``: ``{"input_tokens": n}``, an estimate.

The server key is accepted as ``x-api-key`` (Anthropic's header) as well as a bearer
token (``_guard``). Errors are ``{"type": "error", "error": {"type", "message"}}`` with
Anthropic's status codes (``_shape_common.ANTHROPIC``).
API reference: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

import llmrelay

from ._chat import _Turn
from ._context import ACCESS_LOG, context
from ._errors import ErrorReply, error_reply
from ._shape_common import (
    ShapeBody,
    anthropic_body,
    anthropic_error,
    failed,
    json_done,
    rate_refusal,
    read_json,
    retry_after,
    stream_reply,
    too_many,
    usage_of,
)

__all__ = ["router"]

router = APIRouter()


def _reply(reply: ErrorReply) -> JSONResponse:
    status, body = anthropic_error(reply)
    return JSONResponse(body, status_code=status, headers=reply.headers)


async def _body(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise llmrelay.ConfigError("the request body must be a JSON object", param="body")
    return body


@router.post("/v1/messages", response_model=None)
async def create_message(request: Request) -> Response:
    """Create a message, as JSON or as a stream of Anthropic events."""
    ctx = context(request)
    client = ctx.client
    try:
        body = await _body(request)
        said = client.messages.chat_messages(body)
        refusal = too_many(ctx, said, "messages")
        if refusal is not None:
            raise refusal
    except Exception as exc:
        return _reply(error_reply(exc))
    # a ShapeBody reads as the chat body _Turn takes (messages with role/text, model)
    turn = _Turn(ctx, ShapeBody.of(said, body.get("model")), "messages")  # type: ignore[arg-type]
    refused = await rate_refusal(request, ctx)
    if refused is not None:
        turn.finish(429)
        wait, message = refused
        return JSONResponse(
            anthropic_body("rate_limit_error", message), status_code=429, headers=retry_after(wait)
        )
    if ctx.config.log_prompts:
        ACCESS_LOG.info("prompt %s", json.dumps(said)[:10_000])
    await turn.restore()  # the remembered provider states of this history, if any
    try:
        result = await client.messages.create(**body, conversation=turn.conversation)
    except Exception as exc:
        return _reply(await failed(request, turn, exc, body.get("model")))
    if isinstance(result, llmrelay.AsyncMessageStream):
        stream = result

        def fail(reply: ErrorReply) -> bytes:
            _, error = anthropic_error(reply)
            return stream.fail(error["error"]["type"], error["error"]["message"])

        return await stream_reply(request, turn, stream, fail)
    provider, _, model = result.model.partition(":")
    return await json_done(
        request,
        turn,
        provider=provider,
        model=model,
        answer=result.text,
        usage=usage_of(result.usage, "input_tokens", "output_tokens"),
        finish_reason=result.stop_reason,
        body=result.model_dump_json().encode(),
        tool_calls=[
            {
                "id": block["id"],
                "name": block["name"],
                "arguments": json.dumps(block["input"], ensure_ascii=False, separators=(",", ":")),
            }
            for block in result.content
            if block.get("type") == "tool_use"
        ],
    )


@router.post("/v1/messages/count_tokens", response_model=None)
async def count_tokens(request: Request) -> Response:
    """``{"input_tokens": n}``: an estimate of the request's input tokens."""
    try:
        body = await _body(request)
        counted = await context(request).client.messages.count_tokens(**body)
    except Exception as exc:
        return _reply(error_reply(exc))
    return JSONResponse(counted)
