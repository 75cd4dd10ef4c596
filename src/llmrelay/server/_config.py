"""Server settings: what ``llmrelay serve`` and ``create_app`` take (no provider secrets)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["API_KEY_ENV", "ServerConfig"]

API_KEY_ENV = "LLMRELAY_SERVER_API_KEY"
"""Environment variable holding the server's own bearer key (``llmrelay.settings``)."""


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one server app.

    Attributes:
        api_key: the bearer key clients must send (``Authorization: Bearer KEY``);
            ``None`` serves without one (only allowed on loopback by ``llmrelay serve``).
        cors_origins: origins allowed by CORS; empty = CORS off (no CORS headers).
        max_body_bytes: request bodies larger than this are refused with 413.
        max_messages: chat requests with more messages are refused with 400.
        log_prompts: put the request messages into the access log (off by default).
        conversation_entries: how many answered turns' provider states are remembered.
        conversation_ttl: seconds a remembered state stays valid.
        rate_limit: chat requests allowed per caller and ``rate_window`` seconds; 0 = no
            limit. The caller is the server key when one is set (the authenticated
            identity), else the client address (a trusted proxy's ``X-Forwarded-For`` only
            with ``llmrelay serve --trusted-proxy``); a client's own ``Authorization``
            header never picks its bucket. Shared through Redis when ``LLMRELAY_REDIS_URL``
            is set, else counted per process.
        rate_window: the rate limit's window in seconds.
        body_timeout: seconds a request's whole body may take to arrive once its head has;
            later, the request gets 408 and the connection is closed.
        log_max_pending: exchange-log rows waiting in memory (per process) before further
            ones go to the spill file (``llmrelay.log.LogWriter``).
        client_kwargs: keyword arguments for the ``llmrelay.AsyncClient`` the app creates
            (``config_path``, ``model``, ...; never taken from a request).
        freeze_heap: at the end of start-up, collect and freeze the objects alive
            (``gc.freeze``: later collections skip them); ``llmrelay serve`` sets it, an
            app embedded in another process leaves that process's collector alone.
    """

    api_key: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 2 * 1024 * 1024
    max_messages: int = 256
    log_prompts: bool = False
    conversation_entries: int = 4096
    conversation_ttl: float = 3600.0
    rate_limit: int = 0
    rate_window: float = 60.0
    body_timeout: float = 30.0
    log_max_pending: int = 10_000
    client_kwargs: Mapping[str, Any] = field(default_factory=dict)
    freeze_heap: bool = False

    def to_json(self) -> str:
        """This config as a JSON object, the key included (``from_json`` reads it back).

        Raises:
            TypeError: a ``client_kwargs`` value that JSON cannot hold.
        """
        data = asdict(self)
        data["client_kwargs"] = dict(self.client_kwargs)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        """The config ``to_json`` wrote.

        Raises:
            ValueError: not such a JSON object.
        """
        data: dict[str, Any] = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a server config is a JSON object")
        data["cors_origins"] = tuple(data.get("cors_origins", ()))
        return cls(**data)
