"""The OpenAI-compatible HTTP server behind ``llmrelay serve`` (needs ``llmrelay[server]``).

A thin shell over the public OpenAI-shaped API (``client.chat.completions.create``,
``client.images.generate``, ``client.embed``, ``client.models``): it never
reaches into providers.

    from llmrelay.server import create_app, ServerConfig
    app = create_app(config=ServerConfig(api_key="..."))   # any ASGI server runs it

Routes: ``POST /v1/chat/completions`` (JSON or SSE), ``POST /v1/embeddings`` (``float`` or
``base64``), ``GET /v1/models``,
``GET /v1/models/{id}``, ``POST /v1/images/generations`` (``b64_json``), ``GET /health``,
``GET /metrics`` (Prometheus), and the web chat page at ``/``.
"""

from __future__ import annotations

from ._app import app_from_env, create_app
from ._config import API_KEY_ENV, ServerConfig
from ._context import configure_access_log
from ._logs import redact_root_handlers
from ._memory import MemoryStateStore, StateStore
from ._shared import check_shared_config
from ._sockets import SocketLimits, default_max_connections, uvicorn_options
from ._workers import settings_file as worker_settings_file

__all__ = [
    "API_KEY_ENV",
    "MemoryStateStore",
    "ServerConfig",
    "SocketLimits",
    "StateStore",
    "app_from_env",
    "check_shared_config",
    "configure_access_log",
    "create_app",
    "default_max_connections",
    "redact_root_handlers",
    "uvicorn_options",
    "worker_settings_file",
]
