"""What every route shares: the llmrelay client, the config, metrics, state store, logs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Request

import llmrelay

from ._config import ServerConfig
from ._memory import StateStore
from ._metrics import Metrics

__all__ = ["ACCESS_LOG", "Context", "configure_access_log", "context", "note"]

ACCESS_LOG = logging.getLogger("llmrelay.server.access")
"""One line per request: method, path, status, seconds, provider, model (no secrets;
the prompt only with ``log_prompts``)."""


@dataclass
class Context:
    """Per-app state; ``client`` is the ``llmrelay.AsyncClient`` served (set at startup)."""

    config: ServerConfig
    metrics: Metrics
    store: StateStore
    served: llmrelay.AsyncClient | None = None
    exchanges: Any = None  # an llmrelay.log.LogWriter when LLMRELAY_DATABASE_URL is set
    rate: Any = None  # a RateLimit when ServerConfig.rate_limit is set

    @property
    def client(self) -> llmrelay.AsyncClient:
        """The client served (``RuntimeError`` before the app's startup)."""
        if self.served is None:
            raise RuntimeError("the llmrelay server has not started")
        return self.served


def context(request: Request) -> Context:
    """The app's ``Context``."""
    ctx: Context = request.app.state.llmrelay
    return ctx


def note(request: Request, provider: str | None, model: str | None) -> None:
    """Record the provider and model that answered, for the access log."""
    request.scope.setdefault("state", {})["llmrelay_target"] = (provider, model)


def configure_access_log() -> None:
    """Send the access log (INFO) to stderr, once per process."""
    if not ACCESS_LOG.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("llmrelay: access: %(message)s"))
        ACCESS_LOG.addHandler(handler)
        ACCESS_LOG.setLevel(logging.INFO)
        ACCESS_LOG.propagate = False
