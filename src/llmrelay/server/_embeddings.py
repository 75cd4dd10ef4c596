"""``POST /v1/embeddings`` over ``client.embed`` (OpenAI's embeddings API).

The body is OpenAI's ``EmbeddingCreateParams`` (openai-python
``src/openai/types/embedding_create_params.py``;
https://platform.openai.com/docs/api-reference/embeddings/create): ``input`` (a string,
strings, token ids or token-id arrays), ``model``, ``encoding_format``, ``dimensions``,
``user``, plus llmrelay's ``options``. A field outside these is refused (400 naming it
in ``param``), not ignored; a field a provider cannot honour is refused by the library
with ``param`` and the provider named. The server key, the rate limit (the same budget
per caller as chat) and the metrics (endpoint ``embeddings``) apply as to chat; the
``X-LLMRelay-Attempts`` header lists the candidates tried, as for a streamed chat.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

import llmrelay

from ._chat import _caller
from ._context import Context, context, note
from ._errors import attempts_header, error_body, error_reply

__all__ = ["EmbeddingCreateRequest", "router"]

router = APIRouter()

_MAX_TEXT = 1_000_000
_MAX_ITEMS = 2048


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class EmbeddingCreateRequest(BaseModel):
    """``POST /v1/embeddings`` body (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid")

    input: Any
    model: Annotated[str, Field(min_length=1, max_length=512)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(strict=True, ge=1, le=65_536)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    options: dict[str, Any] | None = Field(
        default=None,
        description="Provider-specific embedding options; each must be declared by the provider.",
    )

    @field_validator("input")
    @classmethod
    def _input(cls, value: Any) -> Any:
        """A non-empty string, or 1..2048 non-empty strings, token ids or token arrays."""
        if isinstance(value, str):
            if not value or len(value) > _MAX_TEXT:
                raise ValueError(f"a string of 1 to {_MAX_TEXT} characters")
            return value
        if not isinstance(value, list) or not 1 <= len(value) <= _MAX_ITEMS:
            raise ValueError(
                f"a string, or a list of 1 to {_MAX_ITEMS} strings, token ids or token arrays"
            )
        if all(isinstance(v, str) and 0 < len(v) <= _MAX_TEXT for v in value):
            return value
        if all(_token(v) for v in value):
            return value
        if all(isinstance(v, list) and v and all(_token(i) for i in v) for v in value):
            return value
        raise ValueError(
            "all non-empty strings, all token ids (integers >= 0), or all non-empty token arrays"
        )


async def _limited(ctx: Context, request: Request) -> JSONResponse | None:
    """The 429 when the caller is over the rate limit (the chat route's budget)."""
    if ctx.rate is None:
        return None
    wait = await ctx.rate.hit(_caller(request))
    if wait is None:
        return None
    return JSONResponse(
        error_body(
            f"rate limit: at most {ctx.rate.limit} requests per {ctx.rate.window:g} s",
            "rate_limit_error",
            "rate_limit_exceeded",
        ),
        status_code=429,
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


def _count(ctx: Context, status: int, started: float, target: tuple[Any, Any]) -> None:
    m = ctx.metrics
    provider, model = m.labels(*target)
    m.requests.labels("embeddings", provider, model, str(status)).inc()
    m.duration.labels("embeddings", provider, model).observe(time.monotonic() - started)


@router.post("/v1/embeddings", response_model=None)
async def create_embeddings(request: Request, body: EmbeddingCreateRequest) -> Response:
    """Embeddings, as OpenAI's ``POST /v1/embeddings`` (``float`` or ``base64``)."""
    ctx = context(request)
    started = time.monotonic()
    limited = await _limited(ctx, request)
    if limited is not None:
        _count(ctx, 429, started, (None, None))
        return limited
    try:
        result = await ctx.client.embed(
            body.input,
            model=body.model,
            dimensions=body.dimensions,
            user=body.user,
            options=body.options,
        )
    except Exception as exc:
        reply = error_reply(exc)
        target: tuple[str | None, str | None] = (None, None)
        if isinstance(exc, llmrelay.ProviderError):
            target = (exc.provider, exc.model)
        _count(ctx, reply.status, started, target)
        provider, model = ctx.metrics.labels(*target)
        ctx.metrics.errors.labels(provider, model, reply.error_type).inc()
        note(request, target[0], target[1] or body.model)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)
    _count(ctx, 200, started, (result.provider, result.model))
    note(request, result.provider, result.model)
    response = llmrelay.CreateEmbeddingResponse.from_result(result, body.encoding_format)
    return Response(
        response.model_dump_json(),
        media_type="application/json",
        headers=attempts_header(result.attempts),
    )
