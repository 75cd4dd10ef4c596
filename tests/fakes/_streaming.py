"""Shared parts of the HTTP fakes: request recording, open-stream tracking, scripted faults.

``Recorder`` keeps every request a fake received (method, path, query, headers, parsed
JSON body) and counts the streaming responses currently open, so tests can wait for the
client to have closed its connection. ``TrackedStream`` is a StreamingResponse that always
closes its generator (its ``finally`` runs even when the client went away mid-stream).
``Fault`` is the scripted behaviour every fake shares: ``ok``, ``http_error``,
``malformed``, ``disconnect`` (cut after some events), ``hold_open`` (send some events,
then wait until the client goes), and a slow first byte (``first_byte_delay``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = [
    "AbruptClose",
    "Fault",
    "Mode",
    "Received",
    "Recorder",
    "TrackedStream",
    "combine",
    "dumps",
    "hold",
]

Mode = Literal[
    "ok", "http_error", "malformed", "disconnect", "hold_open", "inband_error", "truncate"
]


def dumps(obj: Any) -> str:
    """Compact JSON as the real servers send it (no spaces, UTF-8 kept)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class AbruptClose(Exception):
    """Raised inside a stream so uvicorn drops the connection mid-body."""


@dataclass
class Fault:
    """What goes wrong (if anything) on the next requests.

    Attributes:
        mode: see the module docstring; ``inband_error`` sends an error event inside a
            200 stream after ``after`` events; ``truncate`` ends the response cleanly
            after ``after`` events (no final event, no ``[DONE]``).
        status: HTTP status of ``http_error``.
        body: the error body (``dict``/``list`` -> JSON, ``str`` -> text/plain); ``None``
            lets the fake choose its service's usual body for ``status``.
        retry_after: ``Retry-After`` header value of ``http_error``.
        after: events sent before ``malformed``/``disconnect``/``hold_open``/``inband_error``.
        first_byte_delay: seconds before the response starts.
        times: how many requests the fault applies to (``None`` = all).
    """

    mode: Mode = "ok"
    status: int = 500
    body: Any = None
    retry_after: str | None = None
    after: int = 2
    first_byte_delay: float = 0.0
    times: int | None = None

    def take(self) -> Fault:
        """The fault for this request (``ok`` once ``times`` is used up)."""
        if self.times is None:
            return self
        if self.times <= 0:
            return Fault(first_byte_delay=self.first_byte_delay)
        self.times -= 1
        return self


@dataclass
class Received:
    """One request a fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    raw: bytes = b""


@dataclass
class Recorder:
    """Requests received and streams open, shared by the fakes."""

    requests: list[Received] = field(default_factory=list)
    streams_opened: int = 0
    _open: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _idle: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    async def record(self, request: Request) -> Received:
        raw = await request.body()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        item = Received(
            request.method,
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            parsed,
            raw,
        )
        self.requests.append(item)
        return item

    def opened(self) -> None:
        with self._lock:
            self._open += 1
            self.streams_opened += 1
            self._idle.clear()

    def closed(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self._idle.set()

    @property
    def open_streams(self) -> int:
        with self._lock:
            return self._open

    def wait_closed(self, timeout: float) -> bool:
        """Wait until no stream is open; ``False`` on timeout."""
        return self._idle.wait(timeout)

    def tracked(self, body: AsyncIterator[bytes | str]) -> AsyncIterator[bytes | str]:
        """Wrap a stream body so it counts as open while it runs."""

        async def run() -> AsyncIterator[bytes | str]:
            self.opened()
            try:
                async for part in body:
                    yield part
            finally:
                aclose = getattr(body, "aclose", None)
                if aclose is not None:
                    await aclose()
                self.closed()

        return run()


async def hold(seconds: float = 60.0) -> None:
    """Keep a stream open (the client's disconnect cancels or closes it)."""
    await anyio.sleep(seconds)


class TrackedStream(StreamingResponse):
    """A StreamingResponse that always closes its generator."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def combine(*fakes: Any) -> Any:
    """One Starlette app serving the ``routes`` of several fakes (hub + inference + router)."""
    from starlette.applications import Starlette

    return Starlette(routes=[route for fake in fakes for route in fake.routes])
