"""Wire-level fake of olmo-api's ``POST /v4/message/stream`` (the Ai2 Playground backend).

Ground truth: allenai/olmo-api (``src/message/create_message_request.py`` for the form
fields, ``src/message/create_message_service.py`` for the stream, ``src/dao/message.py``
for the message keys, ``src/error.py`` for error bodies) and the official client's stream
mocks (allenai/olmo-ui ``src/mocks/handlers/responses/stream/*.ts``).

* The body is multipart form-data: ``content`` (required, non-empty), ``model``, ``host``
  (required), ``parent``, ``private``, ``temperature``, ``top_p``, ``max_tokens``, repeated
  ``stop``. The anonymous user is the ``X-Anonymous-User-ID`` header.
* A reply streams as ``application/jsonl``: the message tree (``final: false``), chunks
  ``{"message", "content"}`` (some ``""`` and ``" "``), then the final tree. Lines are
  Python ``json.dumps`` output (``ensure_ascii`` by default, like the server).
* Errors: ``{"error": {"code", "message"}}``; 400 for validation (with
  ``validation_errors``), unknown model/host or parent; 403 for a ``parent`` of another
  anonymous user.

The fake keeps the threads it created, so a follow-up must name a ``parent`` it knows,
created by the same anonymous user.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import string
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = ["DEFAULT_CHUNKS", "MODELS", "Ai2Script", "FakeAi2", "Mode", "Received"]

Mode = Literal[
    "ok",
    "http_error",
    "malformed",
    "disconnect",
    "hold_open",
    "error_line",
    "no_final",
    "no_children",
    "bad_chunk",
    "deep_tree",
]

MODELS: dict[str, str] = {
    "tulu3-405b": "inferd",
    "OLMo-2-1124-13B-Instruct": "modal",
    "tulu-3-1-8b": "modal",
    "Llama-3-1-Tulu-3-70B": "modal",
    "olmoe-0125": "modal",
}
"""Model id -> the host it is served on."""

DEFAULT_CHUNKS: tuple[str, ...] = ("", "", "Hello", " ", "wörld", "", " 🚀", "\n", "  ", "done.")
"""Chunks of a reply: empty and whitespace-only deltas, non-ASCII, an emoji (like the mocks)."""

ERROR_TEXTS: dict[str, str] = {
    "model overloaded": "model overloaded",
    "length": "the conversation is too large for the model to process, please shorten the "
    "conversation and try again",
    "grpc inference failed": "inference failed",
}


@dataclass
class Ai2Script:
    """What the fake does on the next requests (defaults: a normal reply)."""

    mode: Mode = "ok"
    chunks: list[str] = field(default_factory=lambda: list(DEFAULT_CHUNKS))
    status: int = 500
    error_message: str = "internal server error"
    retry_after: float | None = None
    reason: str = "model overloaded"
    fault_after: int = 3
    first_byte_delay: float = 0.0
    ensure_ascii: bool = True
    system_root: bool = False
    finish_reason: str = "stop"
    final_content: str | None = None
    trailing: bytes = b""


@dataclass
class Received:
    """One request: the form (name -> values), headers, and the ids involved."""

    form: dict[str, list[str]]
    headers: dict[str, str]
    anonymous_user_id: str | None
    parent: str | None
    reply_id: str | None = None

    def field(self, name: str) -> str | None:
        """The single value of form field ``name`` (``None`` when absent)."""
        values = self.form.get(name)
        return values[0] if values else None


class _AbruptClose(Exception):
    """Raised inside the body so uvicorn drops the connection mid-stream."""


def new_id(prefix: str = "msg_") -> str:
    """An olmo-api id: the prefix and 10 characters alternating A-Z / 0-9 (``NewID``)."""
    letters = (random.choice(string.ascii_uppercase) for _ in range(5))
    digits = (random.choice(string.digits) for _ in range(5))
    return prefix + "".join(itertools.chain.from_iterable(zip(letters, digits, strict=True)))


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": dict(sorted({"code": status, "message": message, **extra}.items()))}, status
    )


class _Stream(StreamingResponse):
    """Always closes its generator, so its ``finally`` runs when the client goes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


class FakeAi2:
    """The fake olmo-api. ``app`` is the ASGI app; set ``script`` between requests.

    ``received`` records every ``/v4/message/stream`` request; ``messages`` is the
    fake's thread store (id -> message dict).
    """

    def __init__(self, script: Ai2Script | None = None) -> None:
        self.script = script or Ai2Script()
        self.received: list[Received] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self._open = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self.app = Starlette(routes=[Route("/v4/message/stream", self._post, methods=["POST"])])

    def reset(self) -> None:
        """Back to a normal reply; forget what was received."""
        self.script = Ai2Script()
        self.received.clear()

    def wait_closed(self, timeout: float) -> bool:
        """Wait until no stream is open; False on timeout."""
        return self._idle.wait(timeout)

    # -- request -------------------------------------------------------------------------

    async def _post(self, request: Request) -> Response:
        async with request.form() as form:
            fields: dict[str, list[str]] = {}
            for key, value in form.multi_items():
                fields.setdefault(key, []).append(value if isinstance(value, str) else "<file>")
        anonymous = request.headers.get("x-anonymous-user-id")
        record = Received(fields, dict(request.headers), anonymous, _one(fields, "parent"))
        self.received.append(record)
        script = self.script
        if script.mode == "http_error":
            response = _error(script.status, script.error_message)
            if script.retry_after is not None:
                response.headers["retry-after"] = f"{script.retry_after:g}"
            return response
        problems = [
            {"loc": [name], "msg": "Field required", "type": "missing"}
            for name in ("content", "model", "host")
            if not _one(fields, name)
        ]
        if problems:
            return _error(400, "Validation error", validation_errors=problems)
        model, host = _one(fields, "model"), _one(fields, "host")
        if MODELS.get(str(model)) != host:
            return _error(400, f"model {model} is not available on {host}")
        parent = self.messages.get(record.parent) if record.parent else None
        if record.parent and parent is None:
            return _error(400, f"parent message {record.parent} not found")
        if parent is not None and parent["creator"] != anonymous:
            return _error(403, "Forbidden")
        return self._reply(record, fields, parent)

    def _reply(
        self, record: Received, fields: dict[str, list[str]], parent: dict[str, Any] | None
    ) -> Response:
        creator = record.anonymous_user_id or "anonymous"
        user = self._message("user", str(_one(fields, "content")), creator, parent, fields)
        reply = self._message("assistant", "", creator, user, fields)
        record.reply_id = reply["id"]
        root: dict[str, Any] = user
        if self.script.system_root and parent is None:
            system = self._message("system", "You are a helpful assistant.", creator, None, fields)
            user["parent"], user["root"], reply["root"] = system["id"], system["id"], system["id"]
            system["children"] = [user]
            root = system
        return _Stream(self._lines(root, reply), media_type="application/jsonl")

    def _message(
        self,
        role: str,
        content: str,
        creator: str,
        parent: dict[str, Any] | None,
        fields: dict[str, list[str]],
    ) -> dict[str, Any]:
        """A message in olmo-api's ``Message`` key order."""
        mid = new_id()
        message: dict[str, Any] = {
            "id": mid,
            "content": content,
            "snippet": content[:80],
            "creator": creator,
            "role": role,
            "opts": {
                "max_tokens": int(_one(fields, "max_tokens") or 2048),
                "temperature": float(_one(fields, "temperature") or 0.7),
                "n": 1,
                "top_p": float(_one(fields, "top_p") or 1.0),
                "logprobs": None,
                "stop": fields.get("stop", []),
            },
            "root": parent["root"] if parent else mid,
            "created": "2025-03-05T12:00:00.000000+00:00",
            "model_id": _one(fields, "model"),
            "model_host": _one(fields, "host"),
            "deleted": None,
            "parent": parent["id"] if parent else None,
            "template": None,
            "logprobs": None,
            "children": [],
            "completion": None,
            "final": False,
            "original": None,
            "private": _one(fields, "private") == "true",
            "model_type": "chat",
            "finish_reason": None,
            "harmful": None,
            "expiration_time": None,
            "labels": [],
            "file_urls": None,
        }
        if parent is not None:
            parent["children"].append(message)
        self.messages[mid] = message
        return message

    # -- the stream ----------------------------------------------------------------------

    def _dumps(self, obj: Any) -> bytes:
        return (json.dumps(obj, ensure_ascii=self.script.ensure_ascii) + "\n").encode()

    async def _lines(self, root: dict[str, Any], reply: dict[str, Any]) -> AsyncIterator[bytes]:
        with self._lock:
            self._open += 1
            self._idle.clear()
        try:
            async for line in self._body(root, reply):
                yield line
        finally:
            with self._lock:
                self._open -= 1
                if self._open == 0:
                    self._idle.set()

    async def _body(self, root: dict[str, Any], reply: dict[str, Any]) -> AsyncIterator[bytes]:
        script = self.script
        if script.first_byte_delay:
            await asyncio.sleep(script.first_byte_delay)
        if script.mode == "no_children":
            yield self._dumps({**root, "children": None})
            return
        if script.mode == "deep_tree":
            deep: dict[str, Any] = {"id": reply["id"], "role": "assistant", "children": []}
            for _ in range(50):
                deep = {"id": new_id(), "role": "user", "children": [deep]}
            yield self._dumps(deep)
            return
        yield self._dumps(root)
        for index, chunk in enumerate(script.chunks):
            if index == script.fault_after and script.mode != "ok":
                async for line in self._fault(reply):
                    yield line
                if script.mode != "no_final":
                    return
                break
            reply["content"] += chunk
            yield self._dumps({"message": reply["id"], "content": chunk})
        if script.mode == "no_final":
            return
        reply["final"] = True
        reply["completion"] = new_id("cpl_")
        reply["finish_reason"] = script.finish_reason
        if script.final_content is not None:
            reply["content"] = script.final_content
        reply["snippet"] = reply["content"][:80]
        root["final"] = True
        yield self._dumps(root)
        if script.trailing:
            yield script.trailing

    async def _fault(self, reply: dict[str, Any]) -> AsyncIterator[bytes]:
        mode = self.script.mode
        if mode == "malformed":
            yield b'{"message": "' + reply["id"].encode() + b'", "content": \n'
        elif mode == "bad_chunk":
            yield self._dumps({"message": reply["id"], "content": 42})
        elif mode == "error_line":
            reason = self.script.reason
            text = ERROR_TEXTS.get(reason, reason)
            yield self._dumps({"message": reply["id"], "error": text, "reason": reason})
        elif mode == "disconnect":
            raise _AbruptClose("dropped mid-stream")
        elif mode == "hold_open":
            await asyncio.Event().wait()


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None
