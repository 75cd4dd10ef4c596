"""``create_app``: the FastAPI app (routes, error handlers, middleware, lifespan).

The app is FastAPI with one addition (``_RelayApp``): a chat-completions request the
fast path can take goes first to a front ``Guard`` and ``ChatFastPath`` (see ``_fast``),
not through FastAPI's own middleware, unless FastAPI's native OpenTelemetry is configured
(its span then covers the request as before) or CORS is (its middleware stays outermost).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

import llmrelay
from llmrelay.log import ExchangeLog, LogWriter
from llmrelay.scale import RedisStateStore
from llmrelay.settings import database_url, redis_url, server_api_key

from . import _chat, _embeddings, _messages, _responses, _routes
from ._config import ServerConfig
from ._context import Context, configure_access_log
from ._errors import error_body, scrub
from ._fast import ChatFastPath, candidate
from ._guard import Guard
from ._heap import freeze_heap
from ._logs import install_redaction, redact_root_handlers
from ._memory import MemoryStateStore, StateStore
from ._metrics import Metrics
from ._schemas import ChatCompletionRequest
from ._shared import RateLimit

__all__ = ["app_from_env", "create_app"]


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    message = f"{'.'.join(loc) or 'body'}: {first.get('msg', 'invalid request')}"
    return JSONResponse(
        error_body(
            scrub(message), "invalid_request_error", "invalid_request", ".".join(loc) or None
        ),
        status_code=400,
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal server error"
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")
    type_ = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(error_body(scrub(str(detail)), type_, code), status_code=status)


def _internal_error(request: Request | None = None, exc: Exception | None = None) -> JSONResponse:
    return JSONResponse(error_body("internal server error", "server_error"), status_code=500)


class _RelayApp(FastAPI):
    """FastAPI with the chat fast path in front of its middleware (see the module)."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A fast-path candidate to ``front`` when untraced; everything else to FastAPI."""
        front = self.front
        if front is not None and candidate(scope) and not self.root_path and not _traced(self):
            scope["app"] = self  # as Starlette sets it (``request.app``)
            await front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _traced(app: FastAPI) -> bool:
    """Whether FastAPI's native OpenTelemetry would trace a request now.

    FastAPI (0.16x) asks ``app._native_telemetry.enabled()`` for every request; an app
    without it has no native telemetry. ``tests/server/test_fast_path.py`` fails when a
    traced request no longer gets its route's span.
    """
    telemetry = getattr(app, "_native_telemetry", None)
    return telemetry is not None and bool(telemetry.enabled())


async def _open_log_writer(url: str, config: ServerConfig, metrics: Metrics) -> LogWriter:
    """The exchange log's writer, connected and migrated (raises ``LogError``).

    Its counts are exported on ``/metrics``.
    """
    writer = LogWriter(ExchangeLog(url), max_pending=config.log_max_pending)
    await anyio.to_thread.run_sync(writer.open)
    metrics.watch_log(writer)
    return writer


def create_app(
    client: llmrelay.AsyncClient | None = None,
    *,
    config: ServerConfig | None = None,
    store: StateStore | None = None,
) -> FastAPI:
    """Build the server app.

    Args:
        client: an ``llmrelay.AsyncClient`` to serve (the caller closes it); ``None``
            makes one from ``config.client_kwargs`` at startup and closes it at shutdown.
        config: ``ServerConfig`` (key, CORS, limits, logging); default: no key, no CORS.
        store: where provider conversation states are remembered (default: in Redis when
            ``LLMRELAY_REDIS_URL`` is set, else in memory, ``config.conversation_entries``
            entries; both for ``config.conversation_ttl`` s).

    Returns:
        A FastAPI (ASGI) app with ``/v1/chat/completions``, ``/v1/responses``,
        ``/v1/messages``, ``/v1/embeddings``, ``/v1/models``, ``/v1/images/generations``,
        ``/health``, ``/metrics`` and the page at ``/``.
    """
    config = config or ServerConfig()
    install_redaction()
    redis = redis_url()
    owned_store: Any = None
    if store is None and redis:
        store = owned_store = RedisStateStore(redis, ttl=config.conversation_ttl)
    ctx = Context(
        config=config,
        metrics=Metrics(),
        store=store
        if store is not None  # not ``or``: an empty MemoryStateStore is falsy (``__len__``)
        else MemoryStateStore(config.conversation_entries, config.conversation_ttl),
        served=client,
    )
    database = database_url()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if owned_store is not None:
                stack.push_async_callback(owned_store.aclose)
            if config.rate_limit > 0:
                ctx.rate = RateLimit(config.rate_limit, config.rate_window, redis)
                stack.push_async_callback(ctx.rate.aclose)
            if database:
                ctx.exchanges = await _open_log_writer(database, config, ctx.metrics)
                stack.push_async_callback(anyio.to_thread.run_sync, ctx.exchanges.close)
            if ctx.served is None:
                ctx.served = llmrelay.AsyncClient(**dict(config.client_kwargs))
                stack.push_async_callback(ctx.served.aclose)
                ctx.served.prepare()  # built now, not at the first request
                install_redaction()  # provider loggers created by now
            if database:  # stored responses in the log database: every worker sees them
                responses = llmrelay.DatabaseResponseStore(database)
                stack.push_async_callback(responses.aclose)
                ctx.responses = ctx.served.responses.with_store(responses)
            if config.freeze_heap:  # the start-up objects out of every later collection
                freeze_heap()
            yield

    app = _RelayApp(
        title="llmrelay",
        version=llmrelay.__version__,
        summary="OpenAI-compatible API over many hosted LLM services.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.llmrelay = ctx
    app.include_router(_chat.router)
    app.include_router(_embeddings.router)
    app.include_router(_responses.router)
    app.include_router(_messages.router)
    app.include_router(_routes.router)
    app.mount("/static", StaticFiles(directory=_routes.WEB_DIR), name="static")
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    # inside the Guard: valid chat requests skip FastAPI's routing (see ``_fast``)
    app.add_middleware(ChatFastPath, endpoint=_chat.chat_completions, model=ChatCompletionRequest)
    app.add_middleware(
        Guard,
        api_key=config.api_key,
        max_body_bytes=config.max_body_bytes,
        body_timeout=config.body_timeout,
    )
    if not config.cors_origins:  # the same two in front of FastAPI's middleware
        app.front = Guard(
            ChatFastPath(
                functools.partial(FastAPI.__call__, app),
                endpoint=_chat.chat_completions,
                model=ChatCompletionRequest,
                front=True,
            ),
            api_key=config.api_key,
            max_body_bytes=config.max_body_bytes,
            body_timeout=config.body_timeout,
            error_response=_internal_error,
        )
    else:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Api-Key", "Anthropic-Version"],
        )
    return app


def app_from_env() -> FastAPI:
    """App factory for an ASGI server (``uvicorn llmrelay.server:app_from_env --factory``).

    The default ``ServerConfig`` with the key of ``LLMRELAY_SERVER_API_KEY``
    (``llmrelay.settings.server_api_key``), and the server's logging.
    """
    configure_access_log()
    redact_root_handlers()
    return create_app(config=ServerConfig(api_key=server_api_key()))
