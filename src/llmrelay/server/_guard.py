"""ASGI middleware: the server key, the body size and time limits and the access log.

* ``/v1/*`` and ``/metrics`` need ``Authorization: Bearer KEY`` (or Anthropic's
  ``x-api-key: KEY``) when a key is set, compared with ``hmac.compare_digest``
  (the refusals of ``/v1/messages*`` in Anthropic's error shape); ``/``,
  ``/static/*`` and ``/health`` do not (the page asks for the key itself).
* Who a request comes from, for the rate limit (``caller``): the server key when one
  is set (the authenticated identity), else the client address as the ASGI server gives
  it (an IPv6 address counts as its /64). A client's own ``Authorization`` header never
  chooses its bucket, so a fresh bearer per request changes nothing.
* A body larger than ``max_body_bytes`` gets 413, by ``Content-Length`` before it is
  read, or while it is read when it comes chunked.
* A body not complete ``body_timeout`` seconds after the request's head (shorter than
  its ``Content-Length``, or trickled) gets 408 and the connection is closed; waiting
  for it is what the app would otherwise do for ever. (No deadline when the server says
  the whole body is already there: ``llmrelay serve``'s ``BODY_RECEIVED`` extension.)
* One access-log line per request: method, path (no query string), status, seconds and
  the provider/model that answered — never headers, keys or (unless asked) prompts.

A guard made with ``error_response`` is a front guard (see ``_fast``): it marks the scope
``GUARDED`` (the app's own guard then passes the request on unchecked) and, standing
outside FastAPI's server-error middleware, answers an exception raised before the
response started with ``error_response()`` as that middleware would, then raises it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._context import ACCESS_LOG
from ._errors import error_body
from ._fast import GUARDED
from ._sockets import BODY_RECEIVED

__all__ = ["Guard", "caller"]

_PROTECTED = ("/v1/", "/metrics")
_CLOSE = [(b"connection", b"close")]


def _clean(text: str | None) -> str:
    """A log-safe rendering of a client-chosen string (no control characters, bounded)."""
    if not text:
        return "-"
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text[:200]  # what ``unicode_escape`` leaves as it is
    return text.encode("unicode_escape").decode("ascii")[:200]


_ACCESS_LINE = "%s %s %s %.3fs provider=%s model=%s"


def _log_access(*args: object) -> None:
    """``ACCESS_LOG.info(_ACCESS_LINE, *args)`` for the caller, without its stack search.

    ``Logger.info`` looks for its caller by walking the stack (``findCaller``, about a
    fifth of an access line's cost); the caller is known here: the record is made by
    the logger (its record factory, filters and handlers) with the caller's file, line
    and function, as ``info`` would make it.
    """
    if not ACCESS_LOG.isEnabledFor(logging.INFO):
        return
    frame = sys._getframe(1)
    code = frame.f_code
    record = ACCESS_LOG.makeRecord(
        ACCESS_LOG.name,
        logging.INFO,
        code.co_filename,
        frame.f_lineno,
        _ACCESS_LINE,
        args,
        None,
        code.co_name,
    )
    ACCESS_LOG.handle(record)


def _json(status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]]) -> list[Message]:
    raw = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
        *extra,
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": raw},
    ]


_CALLER = "llmrelay_caller"


def caller(scope: Scope) -> str:
    """Who a request counts as for the rate limit (set by ``Guard``; see the module doc)."""
    state: dict[str, Any] = scope.get("state", {})
    known = state.get(_CALLER)
    if isinstance(known, str):
        return known
    return _address(scope)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    host = str(client[0]) if client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "addr:" + (host or "unknown")
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"addr:{address.ipv4_mapped}"
        # one host usually holds a whole /64: counting single addresses is dodged by rotation
        return f"addr:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"addr:{address}"


class Guard:
    """Wraps the app; see the module docstring.

    Args:
        app: the ASGI app.
        api_key: the server key, or ``None``.
        max_body_bytes: larger bodies get 413.
        body_timeout: seconds from the request's head to the end of its body (then 408).
        error_response: makes this the front guard (see the module docstring): the 500
            response to an exception raised before the response started.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_body_bytes: int,
        body_timeout: float = 30.0,
        error_response: Callable[[], Response] | None = None,
    ) -> None:
        self.app = app
        self._error_response = error_response
        self._key = api_key.encode() if api_key is not None else None
        # the rate-limit bucket of the key's holders (a digest: the key goes nowhere)
        self._identity = (
            "key:" + hashlib.sha256(self._key).hexdigest()[:32] if self._key is not None else None
        )
        self._max = max_body_bytes
        self._body_timeout = body_timeout

    def _authorized(self, scope: Scope) -> bool:
        if self._key is None:
            return True
        path: str = scope["path"]
        if not (path.startswith(_PROTECTED[0]) or path == _PROTECTED[1]):
            return True
        if scope["method"] == "OPTIONS":
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    return hmac.compare_digest(token.strip(), self._key)
            elif name == b"x-api-key":  # Anthropic's header (the anthropic SDKs send it)
                return hmac.compare_digest(value.strip(), self._key)
        return False

    def _declared_length(self, scope: Scope) -> int | None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check, log and pass the request on."""
        if scope["type"] != "http" or (self._error_response is None and GUARDED in scope):
            await self.app(scope, receive, send)
            return
        if self._error_response is not None:
            scope[GUARDED] = True
        started = time.monotonic()
        anthropic = scope["path"].startswith("/v1/messages")
        status = 0
        replied = False  # the guard answered (413 or 408 mid-body): drop what the app sends
        if self._identity is not None:
            scope.setdefault("state", {})[_CALLER] = self._identity

        async def send_logged(message: Message) -> None:
            nonlocal status
            if replied:
                return
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if not self._authorized(scope):
                await self._reply(
                    send_logged,
                    401,
                    error_body(
                        "missing or invalid server API key (Authorization: Bearer ...)",
                        "invalid_request_error",
                        "invalid_api_key",
                    ),
                    [(b"www-authenticate", b"Bearer")],
                    anthropic,
                )
                return
            length = self._declared_length(scope)
            if length is not None and length > self._max:
                await self._reply(send_logged, 413, self._too_large(), [], anthropic)
                return
            received = 0
            body_done = False
            # the loop's clock: asyncio.timeout_at (a timer handle) costs about half of an
            # anyio cancel scope, and the body is usually read in one ``receive``; none
            # when the server has the whole body already (``receive`` cannot wait)
            deadline = (
                None
                if scope.get("extensions", {}).get(BODY_RECEIVED)
                else asyncio.get_running_loop().time() + self._body_timeout
            )

            async def receive_limited() -> Message:
                nonlocal received, replied, body_done
                if body_done:  # the app waits for a disconnect: no deadline
                    return await receive()
                if deadline is None:
                    message = await receive()
                else:
                    try:
                        async with asyncio.timeout_at(deadline):
                            message = await receive()
                    except TimeoutError:
                        body_done = True
                        if not status and not replied:
                            await self._reply(send_logged, 408, self._too_slow(), _CLOSE, anthropic)
                            replied = True
                        return {"type": "http.disconnect"}
                if message["type"] != "http.request" or not message.get("more_body"):
                    body_done = True
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self._max:
                        if not status and not replied:
                            await self._reply(send_logged, 413, self._too_large(), [], anthropic)
                            replied = True
                        return {"type": "http.disconnect"}
                return message

            try:
                await self.app(scope, receive_limited, send_logged)
            except Exception:
                if self._error_response is not None and not status:
                    await self._error_response()(scope, receive, send)
                raise
        finally:
            target = scope.get("state", {}).get("llmrelay_target", (None, None))
            _log_access(
                scope["method"],
                _clean(scope["path"]),
                status or "-",
                time.monotonic() - started,
                _clean(target[0]),
                _clean(target[1]),
            )

    def _too_slow(self) -> dict[str, Any]:
        return error_body(
            f"request body not received within {self._body_timeout:g} s",
            "invalid_request_error",
            "request_timeout",
        )

    def _too_large(self) -> dict[str, Any]:
        return error_body(
            f"request body too large (limit {self._max} bytes)",
            "invalid_request_error",
            "request_too_large",
        )

    async def _reply(
        self,
        send: Send,
        status: int,
        body: dict[str, Any],
        extra: list[tuple[bytes, bytes]],
        anthropic: bool = False,
    ) -> None:
        if anthropic:  # /v1/messages answers errors in Anthropic's shape
            kind = {401: "authentication_error", 413: "request_too_large"}.get(
                status, "invalid_request_error"
            )
            body = {"type": "error", "error": {"type": kind, "message": body["error"]["message"]}}
        for message in _json(status, body, extra):
            await send(message)
