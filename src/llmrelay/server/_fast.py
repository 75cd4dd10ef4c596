"""The fast path of ``POST /v1/chat/completions``: a valid JSON body straight to its endpoint.

FastAPI's way to the route (exception and exit-stack middleware, three routers, the
request handler: reading the body, choosing the parser by content type, solving the
dependencies) was about a tenth of the server's CPU per short answer. ``ChatFastPath``
sits inside the ``Guard`` (key, size and time limits, access log) and takes the requests
it can answer exactly as the route would:

* ``POST`` to ``/v1/chat/completions`` (no ``root_path``), without FastAPI's native
  OpenTelemetry for the request (``scope["fastapi.telemetry"]`` unset or ``None``: with
  tracing, metrics or logs configured the request takes the route, so its span names the
  route and gets the operation spans);
* a ``Content-Type`` of ``application/json`` (parameters allowed);
* a body that ``json.loads`` reads as an object (what Starlette's ``Request.json`` does)
  and that ``ChatCompletionRequest`` validates as FastAPI does
  (``validate_python(..., from_attributes=True)``; ``from_attributes`` is left out here:
  pydantic applies it to no value of a builtins type, and JSON gives no other, so the
  outcome is the same, about a fifth of the validation sooner). The body is read with ``orjson``
  (about a fifth of ``json.loads``'s cost), which gives the same values where it reads a
  body at all -- except integers beyond 64 bits, which it reads as floats: a body with
  19 or more digits in a row, and one ``orjson`` refuses (``NaN``, a BOM, UTF-16, a lone
  surrogate escape ...), is read by ``json.loads``.

It reads the body whole, parses and validates it once, and calls the route's endpoint
with it; the endpoint's response is sent as the route would send it. Anything else -- any
other path, method or content type, an empty or unreadable body, invalid JSON, a value
that fails validation, a disconnect while the body is read -- goes to the app unchanged,
with the messages already received replayed first: FastAPI then answers it (its errors,
``RequestValidationError``'s 400 in OpenAI's shape) exactly as without the fast path.
Its OpenAPI operation is the route's, which stays declared.

``create_app`` also puts a ``Guard`` and a ``ChatFastPath`` in front of FastAPI's own
middleware (``FRONT``: its server-error, exception-telemetry and body-limit layers, about a
tenth of the fast path's own cost): a request ``candidate`` accepts, when FastAPI's native
OpenTelemetry is not configured, goes through them first; what they hand on goes to the
whole app, whose ``Guard`` and ``ChatFastPath`` see ``GUARDED`` in the scope and pass it
on as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ChatFastPath"]

PATH = "/v1/chat/completions"
GUARDED = "llmrelay.guarded"
"""Scope key set by the front ``Guard``: the request was checked, logged and tried."""
_LONG_NUMBER = re.compile(rb"[0-9]{19}")
"""Where ``orjson`` could read an integer as a float (beyond 64 bits; it reads up to
-2**63 and 2**64 - 1 exactly): the body is read by ``json.loads``."""
_TELEMETRY = "fastapi.telemetry"
"""The scope key under which FastAPI's native OpenTelemetry keeps a request's data
(``fastapi/telemetry/_asgi.py``; a test fails if a traced request loses its route)."""


def _json_content(scope: Scope) -> bool:
    """Whether the request's first ``Content-Type`` is ``application/json``."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.partition(b";")[0].strip().lower() == b"application/json")
    return False


def candidate(scope: Scope) -> bool:
    """Whether ``ChatFastPath`` may take the request (before reading its body)."""
    return (
        scope["type"] == "http"
        and scope["path"] == PATH
        and scope["method"] == "POST"
        and not scope.get("root_path")
        and scope.get(_TELEMETRY) is None
        and _json_content(scope)
    )


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages`` first, then ``receive``'s."""
    pending = list(reversed(messages))

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


class ChatFastPath:
    """ASGI middleware: the chat route's valid JSON requests straight to its endpoint.

    Args:
        app: the app (FastAPI's exception middleware and routers) that answers every
            other request, and the requests this one does not take (see the module).
        endpoint: the route's endpoint, ``await endpoint(request, body) -> Response``.
        model: the body's pydantic model (``ChatCompletionRequest``).
        front: this one stands in front of FastAPI's middleware (see the module); the
            app's own then passes on the requests the front ``Guard`` marked ``GUARDED``.
            A front one is given only requests ``candidate`` accepted (``create_app``'s
            app checks) and does not check again.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoint: Callable[[Request, Any], Awaitable[Response]],
        model: type[BaseModel],
        front: bool = False,
    ) -> None:
        self.app = app
        self._endpoint = endpoint
        self._model = model
        self._front = front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a valid chat request at once; pass everything else on."""
        # GUARDED: the front one tried it already; the front one's requests are candidates
        if not self._front and (GUARDED in scope or not candidate(scope)):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # a disconnect: the route's answer
                await self.app(scope, _replaying(messages, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = self._parse(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if body is None:
            await self.app(scope, _replaying(messages, receive), send)
            return
        response = await self._endpoint(Request(scope, receive, send), body)
        await response(scope, receive, send)

    def _parse(self, raw: bytes) -> BaseModel | None:
        """The validated body, or ``None`` when the route must answer (see the module)."""
        if not raw:
            return None
        try:
            value = orjson.loads(raw)
            if _LONG_NUMBER.search(raw) is not None:
                raise ValueError("an integer orjson could read as a float")
        except ValueError:  # orjson.JSONDecodeError: json.loads decides, as the route would
            try:
                value = json.loads(raw)
            except ValueError:  # JSONDecodeError, UnicodeDecodeError
                return None
        if not isinstance(value, dict):
            return None
        try:
            return self._model.model_validate(value)  # from_attributes: see the module
        except ValidationError:
            return None
