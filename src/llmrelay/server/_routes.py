"""The small routes: models, images, health, metrics and the web page."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

import llmrelay
from llmrelay.catalog import openai_model_rows

from ._context import context, note
from ._errors import error_reply
from ._metrics import CONTENT_TYPE_LATEST
from ._models import describe_model, describe_models
from ._schemas import ImageGenerationRequest

__all__ = ["PAGE_POLICY", "WEB_DIR", "router"]

WEB_DIR = Path(__file__).with_name("web")
"""The web chat page's static files (shipped in the package)."""

router = APIRouter()


def _failed(request: Request, endpoint: str, exc: Exception, started: float) -> JSONResponse:
    reply = error_reply(exc)
    m = context(request).metrics
    m.requests.labels(endpoint, "", "", str(reply.status)).inc()
    m.errors.labels("", "", reply.error_type).inc()
    m.duration.labels(endpoint, "", "").observe(time.monotonic() - started)
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def _done(request: Request, endpoint: str, started: float, provider: str = "") -> None:
    m = context(request).metrics
    m.requests.labels(endpoint, provider, "", "200").inc()
    m.duration.labels(endpoint, provider, "").observe(time.monotonic() - started)


@router.get("/v1/models", response_model=None)
async def list_models(request: Request, live: bool = False) -> Response:
    """Every model and alias, ``owned_by`` the provider that serves it.

    Each object also carries ``provider``, ``kind``, ``ready`` (and ``alias_of``), and
    the list ``providers`` (see ``_models``): what the web page groups and marks by.
    ``?live=1`` adds the Hugging Face router's live catalogue (``AsyncClient.live_models``):
    ``huggingface:<id>`` rows with an ``llmrelay`` field (providers, context length, tool
    support, prices).
    """
    started = time.monotonic()
    client = context(request).client
    try:
        body = describe_models(client, await client.models.list())
        rows = openai_model_rows(await client.live_models("huggingface")) if live else []
    except Exception as exc:
        return _failed(request, "models", exc, started)
    _done(request, "models", started)
    body["data"].extend({**row, "vision": row["llmrelay"]["vision"]} for row in rows)
    return JSONResponse(body)


@router.get("/v1/models/{model_id:path}", response_model=None)
async def retrieve_model(request: Request, model_id: str) -> Response:
    """One model or alias, described as in the list.

    ``provider:model`` ids contain colons, some also slashes.
    """
    started = time.monotonic()
    client = context(request).client
    try:
        model = await client.models.retrieve(model_id)
        providers: dict[str, llmrelay.ProviderDescription] = {d.name: d for d in client.providers()}
        body = describe_model(
            model.model_dump(mode="json"), providers, client.aliases(), client.model_vision
        )
    except Exception as exc:
        return _failed(request, "models", exc, started)
    _done(request, "models", started)
    return JSONResponse(body)


@router.post("/v1/images/generations", response_model=None)
async def generate_images(request: Request, body: ImageGenerationRequest) -> Response:
    """Generate an image; the result comes back inline as ``b64_json``."""
    started = time.monotonic()
    try:
        result = await context(request).client.images.generate(
            model=body.model,
            prompt=body.prompt,
            n=body.n,
            size=body.size,
            response_format="b64_json",
            seed=body.seed,
        )
    except Exception as exc:
        note(request, None, body.model)
        return _failed(request, "images", exc, started)
    note(request, None, body.model)
    _done(request, "images", started)
    return Response(result.model_dump_json(), media_type="application/json")


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: ``{"status": "ok"}`` (no upstream is contacted)."""
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    return Response(context(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The page's Content-Security-Policy: only this server's own files run or load (model
output is rendered as sanitised HTML; this is the second line of defence)."""


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The web chat page."""
    return FileResponse(
        WEB_DIR / "index.html",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": PAGE_POLICY},
    )
