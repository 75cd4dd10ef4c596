"""``/v1/responses``: OpenAI's Responses API over ``client.responses`` (the one engine).

* ``POST /v1/responses``: ``responses.create(**body)``; a ``Response`` as JSON, or with
  ``stream: true`` the stream's ``sse()`` frames (``response.created`` ...
  ``response.completed``; a failure after the first frame is ``response.failed``).
* ``GET /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items``,
  ``DELETE /v1/responses/{id}``, ``POST /v1/responses/{id}/cancel``: the stored
  responses (``store: true``), kept by ``ServerContext.responses``' store: the
  exchange-log database when ``LLMRELAY_DATABASE_URL`` is set (every worker sees them),
  else this process's memory.

Errors are OpenAI's error objects (``param`` names a refused field); an unknown id is
404. API reference: https://platform.openai.com/docs/api-reference/responses
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

import llmrelay

from ._chat import _Turn
from ._context import ACCESS_LOG, Context, context
from ._errors import error_body
from ._shape_common import (
    ShapeBody,
    failed,
    json_done,
    openai_rate_reply,
    rate_refusal,
    read_json,
    responses_error,
    responses_failure,
    stream_reply,
    too_many,
    usage_of,
)

__all__ = ["router"]

router = APIRouter()


def _responses(ctx: Context) -> llmrelay.AsyncResponses:
    """The served client's ``responses`` with the server's store (set at startup)."""
    responses: llmrelay.AsyncResponses | None = ctx.responses
    return responses if responses is not None else ctx.client.responses


def _error(exc: Exception) -> JSONResponse:
    reply = responses_error(exc)
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def _not_found(exc: Exception) -> JSONResponse | None:
    """404 for an unknown response id (``ConfigError`` with ``param`` ``response_id``)."""
    if isinstance(exc, llmrelay.ConfigError) and getattr(exc, "param", None) == "response_id":
        return JSONResponse(
            error_body(str(exc), "invalid_request_error", "not_found", "response_id"),
            status_code=404,
        )
    return None


@router.post("/v1/responses", response_model=None)
async def create_response(request: Request) -> Response:
    """Create a response, as JSON or as a stream of Responses events."""
    ctx = context(request)
    try:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise llmrelay.ConfigError("the request body must be a JSON object", param="body")
        responses = _responses(ctx)
        said = responses.chat_messages(body)
        refusal = too_many(ctx, said, "input")
        if refusal is not None:
            raise refusal
    except Exception as exc:
        return _error(exc)
    # a ShapeBody reads as the chat body _Turn takes (messages with role/text, model)
    turn = _Turn(ctx, ShapeBody.of(said, body.get("model")), "responses")  # type: ignore[arg-type]
    refused = await rate_refusal(request, ctx)
    if refused is not None:
        turn.finish(429)
        return openai_rate_reply(*refused)
    if ctx.config.log_prompts:
        ACCESS_LOG.info("prompt %s", json.dumps(said)[:10_000])
    try:
        result = await responses.create(**body)
    except Exception as exc:
        reply = await failed(request, turn, exc, body.get("model"), responses_error)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)
    if isinstance(result, llmrelay.AsyncResponseStream):
        stream = result

        def fail(reply: Any) -> bytes:
            return stream.fail(*responses_failure(reply))

        return await stream_reply(request, turn, stream, fail, responses_error)
    provider, _, model = result.model.partition(":")
    incomplete = result.model_extra.get("incomplete_details") if result.model_extra else None
    return await json_done(
        request,
        turn,
        provider=provider,
        model=model,
        answer=result.output_text,
        usage=usage_of(result.usage, "input_tokens", "output_tokens"),
        finish_reason=(incomplete or {}).get("reason") or result.status,
        body=result.model_dump_json().encode(),
        tool_calls=[
            {"id": item["call_id"], "name": item["name"], "arguments": item["arguments"]}
            for item in result.output
            if item.get("type") == "function_call"
        ],
    )


@router.get("/v1/responses/{response_id}", response_model=None)
async def retrieve_response(request: Request, response_id: str) -> Response:
    """A stored response (``store: true``)."""
    if request.query_params.get("stream") not in (None, "false"):
        return _error(
            llmrelay.ConfigError(
                "stream: llmrelay does not stream a stored response again", param="stream"
            )
        )
    try:
        response = await _responses(context(request)).retrieve(response_id)
    except Exception as exc:
        return _not_found(exc) or _error(exc)
    return Response(response.model_dump_json(), media_type="application/json")


@router.get("/v1/responses/{response_id}/input_items", response_model=None)
async def list_input_items(request: Request, response_id: str) -> Response:
    """The input items of a stored response (``after``, ``limit``, ``order``)."""
    query = request.query_params
    try:
        for name in query:
            if name not in ("after", "limit", "order"):
                raise llmrelay.ConfigError(f"{name}: unknown parameter", param=name)
        limit = query.get("limit", "20")
        if not limit.isdigit():
            raise llmrelay.ConfigError("limit must be from 1 to 100", param="limit")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise llmrelay.ConfigError("order must be asc or desc", param="order")
        page = await _responses(context(request)).input_items.list(
            response_id,
            after=query.get("after"),
            limit=int(limit),
            order="asc" if order == "asc" else "desc",
        )
    except Exception as exc:
        return _not_found(exc) or _error(exc)
    return JSONResponse(page)


@router.delete("/v1/responses/{response_id}", response_model=None)
async def delete_response(request: Request, response_id: str) -> Response:
    """Forget a stored response."""
    try:
        deleted = await _responses(context(request)).delete(response_id)
    except Exception as exc:
        return _not_found(exc) or _error(exc)
    return JSONResponse(deleted)


@router.post("/v1/responses/{response_id}/cancel", response_model=None)
async def cancel_response(request: Request, response_id: str) -> Response:
    """Cancel a background response: llmrelay runs none (400; 404 for an unknown id)."""
    try:
        response = await _responses(context(request)).cancel(response_id)
    except Exception as exc:
        return _not_found(exc) or _error(exc)
    return Response(response.model_dump_json(), media_type="application/json")
