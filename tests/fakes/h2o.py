"""Wire-level fake of gpt-gm.h2o.ai: HuggingFace chat-ui (2023) in front of TGI.

Ground truth: huggingface/chat-ui ``src/hooks.server.ts`` (the session cookie, refreshed
on every answer; the 405 "You need to accept the welcome modal first" gate on POSTs of a
session that has not accepted the settings), ``src/routes/settings/+page.server.ts``
(form -> 303), ``src/routes/conversation/+server.ts`` (``{"model"}`` ->
``{"conversationId"}``), ``src/routes/conversation/[id]/+server.ts`` (404 "Conversation
not found", 410 "Model not available anymore", the TGI stream relayed verbatim; JSON-line
``MessageUpdate``s after commit e943a055), and text-generation-inference's 2023 stream
events (``data:{...}`` without a space).

Sessions are implicit as in chat-ui: a request without the cookie gets a fresh session id
(and its ``Set-Cookie``), which has accepted nothing, so its POSTs are refused with 405.
A conversation belongs to the session that created it (404 for any other).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = ["COOKIE_NAME", "DEFAULT_TOKENS", "MODELS", "FakeH2o", "H2oScript", "Received"]

COOKIE_NAME = "hf-chat"
MODELS = (
    "h2oai/h2ogpt-gm-oasst1-en-2048-falcon-40b-v1",
    "h2oai/h2ogpt-gm-oasst1-en-2048-falcon-7b-v3",
    "h2oai/h2ogpt-gm-oasst1-en-2048-open-llama-13b",
)
DEFAULT_TOKENS: tuple[str, ...] = ("\n", "Hello", ",", " wörld", " ", " 🚀", "\n", "  ", "Bye", ".")
"""Tokens of a reply: newlines, whitespace-only tokens, non-ASCII, an emoji."""

Format = Literal["tgi", "ndjson"]
Step = Literal["root", "settings", "conversation", "message", "delete"]
Mode = Literal[
    "ok",
    "http_error",
    "malformed",
    "disconnect",
    "hold_open",
    "error_payload",
    "no_final",
    "invalid_utf8",  # a token whose bytes are not UTF-8 at fault_after, then the rest
]
BAD_UTF8 = "caf\ufffd au lait"
"""What the ``invalid_utf8`` token reads as once the invalid byte is replaced."""
End = Literal["special", "endoftext_text", "length"]


@dataclass
class H2oScript:
    """What the fake does next (defaults: a normal 2023 TGI passthrough reply).

    ``end``: how the TGI stream ends -- ``"special"`` (an ``<|endoftext|>`` token with
    ``special: true``), ``"endoftext_text"`` (the same text, ``special: false``) or
    ``"length"`` (the last normal token carries ``generated_text``).
    """

    format: Format = "tgi"
    mode: Mode = "ok"
    step: Step = "message"
    status: int = 500
    error_body: Any = None
    retry_after: float | None = None
    tokens: list[str] = field(default_factory=lambda: list(DEFAULT_TOKENS))
    fault_after: int = 3
    first_byte_delay: float = 0.0
    end: End = "special"
    details: bool = False
    error_type: str = "overloaded"
    error_message: str = "Model is overloaded"
    removed_models: set[str] = field(default_factory=set)
    set_cookie: bool = True
    space_after_data: bool = False


@dataclass
class Received:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: dict[str, str]
    session: str | None
    form: dict[str, str] | None = None
    json: Any = None
    status: int | None = None
    continued: bool = False
    """A message POST to a conversation that already had messages."""


@dataclass
class _Conversation:
    session: str
    model: str
    messages: list[dict[str, str]] = field(default_factory=list)


class _AbruptClose(Exception):
    """Raised inside the body so uvicorn drops the connection mid-stream."""


class _Stream(StreamingResponse):
    """Always closes its generator, so its ``finally`` runs when the client goes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


class FakeH2o:
    """The fake service. ``app`` is the ASGI app; set ``script`` between requests.

    Observation: ``received`` (every request), ``settings`` (session -> accepted form),
    ``conversations`` (id -> session, model, stored messages), ``deleted`` (ids).
    """

    def __init__(self, script: H2oScript | None = None) -> None:
        self.script = script or H2oScript()
        self.received: list[Received] = []
        self.settings: dict[str, dict[str, str]] = {}
        self.conversations: dict[str, _Conversation] = {}
        self.deleted: list[str] = []
        self._open = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._deleted_event = threading.Event()
        methods = ["GET", "POST", "DELETE", "PUT", "PATCH"]
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=methods)])

    def reset(self) -> None:
        """Back to a normal reply; forget what was received (sessions are kept)."""
        self.script = H2oScript()
        self.received.clear()
        self.deleted.clear()
        self._deleted_event.clear()

    def wait_closed(self, timeout: float) -> bool:
        """Wait until no answer stream is open; False on timeout."""
        return self._idle.wait(timeout)

    def wait_deleted(self, timeout: float) -> bool:
        """Wait until a DELETE was received; False on timeout."""
        return self._deleted_event.wait(timeout)

    def of(self, method: str, prefix: str) -> list[Received]:
        """Recorded requests with this method whose path starts with ``prefix``."""
        return [r for r in self.received if r.method == method and r.path.startswith(prefix)]

    # -- routing -------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        token = request.cookies.get(COOKIE_NAME)
        session = token or str(uuid.uuid4())
        record = Received(method, path, dict(request.headers), token)
        self.received.append(record)
        if method == "POST" and path == "/settings":
            form = await request.form()
            record.form = {k: v for k, v in form.items() if isinstance(v, str)}
        elif method == "POST":
            raw = await request.body()
            try:
                record.json = json.loads(raw) if raw else None
            except ValueError:
                record.json = None
        response = self._route(request, record, session)
        record.status = response.status_code
        if self.script.set_cookie:
            response.set_cookie(
                COOKIE_NAME, session, max_age=31536000, path="/", secure=True, samesite="none"
            )
        return response

    def _route(self, request: Request, record: Received, session: str) -> Response:
        script, path, method = self.script, record.path, record.method
        step = _step(method, path)
        if step is None:
            return JSONResponse({"message": "Not found"}, 404)
        if script.mode == "http_error" and script.step == step:
            body = script.error_body if script.error_body is not None else {"message": "Error"}
            headers = (
                {} if script.retry_after is None else {"retry-after": f"{script.retry_after:g}"}
            )
            if isinstance(body, str):
                return PlainTextResponse(body, script.status, headers=headers)
            return JSONResponse(body, script.status, headers=headers)
        if method == "POST" and step != "settings" and not self._accepted(session):
            wants_json = "application/json" in request.headers.get(
                "accept", ""
            ) or "application/json" in request.headers.get("content-type", "")
            text = "You need to accept the welcome modal first"
            if wants_json:
                return JSONResponse({"error": text}, 405)
            return PlainTextResponse(text, 405)
        if step == "root":
            return Response(
                "<!doctype html><html><body>HuggingChat</body></html>", 200, media_type="text/html"
            )
        if step == "settings":
            return self._settings(request, record, session)
        if step == "conversation":
            return self._new_conversation(record, session)
        cid = path.removeprefix("/conversation/")
        conversation = self.conversations.get(cid)
        if conversation is None or conversation.session != session:
            return JSONResponse({"message": "Conversation not found"}, 404)
        if step == "delete":
            del self.conversations[cid]
            self.deleted.append(cid)
            self._deleted_event.set()
            return Response(b"", 200)
        if conversation.model in script.removed_models:
            return JSONResponse({"message": "Model not available anymore"}, 410)
        body = record.json
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("inputs"), str)
            or not body["inputs"].strip()
        ):
            return JSONResponse({"message": "Invalid request"}, 400)
        record.continued = bool(conversation.messages)
        conversation.messages.append({"from": "user", "content": body["inputs"]})
        return self._answer(conversation)

    def _accepted(self, session: str) -> bool:
        return "ethicsModalAcceptedAt" in self.settings.get(session, {})

    def _settings(self, request: Request, record: Received, session: str) -> Response:
        form = record.form or {}
        stored = self.settings.setdefault(session, {})
        stored["activeModel"] = form.get("activeModel", MODELS[0])
        stored["shareConversationsWithModelAuthors"] = form.get(
            "shareConversationsWithModelAuthors", "true"
        )
        if form.get("ethicsModalAccepted"):
            stored["ethicsModalAcceptedAt"] = "2023-07-01T00:00:00.000Z"
        location = request.headers.get("referer") or "/"
        return Response(b"", 303, headers={"location": location})

    def _new_conversation(self, record: Received, session: str) -> Response:
        body = record.json
        model = body.get("model") if isinstance(body, dict) else None
        if model not in MODELS:  # zod validation throws: an unhandled error in SvelteKit
            return JSONResponse({"message": "Internal Error"}, 500)
        cid = secrets.token_hex(12)
        self.conversations[cid] = _Conversation(session, str(model))
        return JSONResponse({"conversationId": cid})

    # -- the answer ----------------------------------------------------------------------

    def _answer(self, conversation: _Conversation) -> Response:
        if self.script.format == "tgi":
            return _Stream(
                self._counted(self._tgi(conversation)),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        return _Stream(self._counted(self._ndjson(conversation)))  # chat-ui sets no type

    async def _counted(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        with self._lock:
            self._open += 1
            self._idle.clear()
        try:
            if self.script.first_byte_delay:
                await asyncio.sleep(self.script.first_byte_delay)
            async for chunk in body:
                yield chunk
        finally:
            with self._lock:
                self._open -= 1
                if self._open == 0:
                    self._idle.set()

    def _data(self, obj: Any) -> bytes:
        space = " " if self.script.space_after_data else ""
        return (
            f"data:{space}{json.dumps(obj, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()
        )

    async def _tgi(self, conversation: _Conversation) -> AsyncIterator[bytes]:
        script = self.script
        tokens = list(script.tokens)
        text = ""
        for index, token in enumerate(tokens):
            if index == script.fault_after and script.mode == "invalid_utf8":
                text += BAD_UTF8
                yield self._data(self._token(index, "@@", False, None, "length")).replace(
                    b'"@@"', b'"caf\xc3 au lait"'
                )
            if index == script.fault_after and script.mode not in ("ok", "invalid_utf8"):
                async for chunk in self._fault(
                    b'data:{"token":{"id":5,"text":',
                    self._data({"error": script.error_message, "error_type": script.error_type}),
                ):
                    yield chunk
                return
            text += token
            last = index == len(tokens) - 1 and script.end == "length"
            yield self._data(self._token(index, token, False, text if last else None, "length"))
        if script.end != "length":
            special = script.end == "special"
            yield self._data(self._token(len(tokens), "<|endoftext|>", special, text, "eos_token"))
        conversation.messages.append({"from": "assistant", "content": text})

    def _token(
        self, index: int, text: str, special: bool, generated: str | None, reason: str
    ) -> dict[str, Any]:
        details = None
        if generated is not None and self.script.details:
            details = {"finish_reason": reason, "generated_tokens": index + 1, "seed": None}
        return {
            "token": {"id": 1000 + index, "text": text, "logprob": -0.25, "special": special},
            "generated_text": generated,
            "details": details,
        }

    async def _ndjson(self, conversation: _Conversation) -> AsyncIterator[bytes]:
        script = self.script

        def line(obj: Any) -> bytes:
            return (json.dumps(obj, ensure_ascii=False) + "\n").encode()

        yield line({"type": "status", "status": "started"})
        text = ""
        for index, token in enumerate(script.tokens):
            if index == script.fault_after and script.mode == "invalid_utf8":
                text += BAD_UTF8
                yield line({"type": "stream", "token": "@@"}).replace(b'"@@"', b'"caf\xc3 au lait"')
            if index == script.fault_after and script.mode not in ("ok", "invalid_utf8"):
                error = {"type": "status", "status": "error", "message": script.error_message}
                async for chunk in self._fault(b'{"type":"stream","token":\n', line(error)):
                    yield chunk
                return
            text += token
            yield line({"type": "stream", "token": token})
        conversation.messages.append({"from": "assistant", "content": text})
        yield line({"type": "status", "status": "finished"})
        yield line({"type": "finalAnswer", "text": text})

    async def _fault(self, malformed: bytes, error: bytes) -> AsyncIterator[bytes]:
        mode = self.script.mode
        if mode == "malformed":
            yield malformed
        elif mode == "error_payload":
            yield error
        elif mode == "disconnect":
            raise _AbruptClose("dropped mid-stream")
        elif mode == "hold_open":
            await asyncio.Event().wait()
        # "no_final": the stream just ends


def _step(method: str, path: str) -> Step | None:
    if path == "/" and method == "GET":
        return "root"
    if path == "/settings" and method == "POST":
        return "settings"
    if path == "/conversation" and method == "POST":
        return "conversation"
    if path.startswith("/conversation/") and path.count("/") == 2:
        if method == "POST":
            return "message"
        if method == "DELETE":
            return "delete"
    return None
