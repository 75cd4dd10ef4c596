"""Wire-level fake of olmo-api's ``POST /v4/threads/`` (the Ai2 Playground backend).

Ground truth: allenai/olmo-api at f0c14ee41a81fab92a2b1b5cde5917038f315fee (2026-01-29),
``apps/flask-api/``: ``src/thread/threads_blueprint.py`` (the route, ``application/jsonl``),
``src/message/create_message_request.py`` (the form: camelCase aliases of
``CreateMessageRequest``, ``captchaToken`` and ``require_recaptcha``),
``src/flask_pydantic_api/api_wrapper.py`` (multipart: a list field is read by its alias),
``src/message/create_message_service/endpoint.py``, ``.../database.py`` and
``.../stream_new_message.py`` (the stream: start chunk, the thread, chunks, the final
thread, end chunk; system message first for a model with a system prompt; anonymous
threads private), ``src/message/message_chunk.py`` (chunk types),
``src/dao/message/message_models.py`` (``MessageStreamError``),
``src/thread/thread_models.py`` (``Thread``/``FlatMessage``), ``src/util/__init__.py``
(``CustomJSONProvider``: ``ensure_ascii``, ``sort_keys``), ``src/error.py`` (error
bodies), ``src/auth/allow_anonymous_resource_provider.py`` and ``src/constants.py``
(``X-Anonymous-User-ID``). The official client's thread stream mocks (allenai/olmo-ui
``src/mocks/handlers/responses/v4/stream/*.ts`` at 5680553, the last commit with them)
show the same line sequence.

* ``POST /v4/threads/``: multipart form ``content`` (required unless ``inputParts``),
  ``model`` (required), ``parent``, ``private``, ``temperature``, ``topP``,
  ``maxTokens``, repeated ``stop``, ``captchaToken``... (snake_case names are accepted
  too, but a repeated field only by its alias). ``POST /v4/threads`` is answered with a
  308 to the slashed URL, as Flask does.
* No ``X-Anonymous-User-ID`` (and no bearer token): 401.
* Errors: ``{"error": {"code", "message"[, "validation_errors"]}}``: 400 for validation
  (pydantic's text), an invalid model, an unknown parent ("Parent message X not found"),
  ``inappropriate_prompt_text``, ``invalid_captcha``; 403 for a parent of another user.
* ``require_recaptcha``: a request without ``captchaToken`` is refused as the validator
  ``captcha_token_required_if_captcha_enabled`` refuses an explicit null. (At f0c14ee a
  missing field is not validated -- pydantic skips defaults -- so the live service only
  refuses a token it cannot assess; the switch models a deployment that enforces it.)

The fake keeps the threads it created (``messages``), so a follow-up must name a
``parent`` it knows, created by the same anonymous user; ``expire()`` forgets them (the
service expires anonymous messages after a day).
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
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = ["DEFAULT_CHUNKS", "MODELS", "Ai2Script", "FakeAi2", "Mode", "Received", "new_id"]

Mode = Literal[
    "ok",
    "http_error",  # answer status/error_message before streaming
    "malformed",  # a line that is not JSON after fault_after chunks
    "invalid_utf8",  # a chunk whose bytes are not UTF-8 at fault_after
    "disconnect",  # drop the connection after fault_after chunks
    "hold_open",  # stop sending after fault_after chunks, keep the connection
    "error_line",  # a MessageStreamError line (reason) after fault_after chunks
    "error_chunk",  # an ErrorChunk (error_severity) after fault_after chunks, then the end
    "no_final",  # the chunks, then the end chunk, never the final thread
    "bad_chunk",  # a chunk whose content is not a string
    "no_reply",  # a thread without an assistant reply
]

MODELS: dict[str, str | None] = {
    "tulu3-405b": None,
    "OLMo-2-1124-13B-Instruct": None,
    "olmo-2-0325-32b-instruct": "You are OLMo 2 Instruct, a helpful, open-source AI Assistant "
    "built by the Allen Institute for AI.",
    "tulu-3-1-8b": None,
    "Llama-3-1-Tulu-3-70B": None,
    "olmoe-0125": None,
}
"""Model id -> its default system prompt (``None``: none)."""

DEFAULT_CHUNKS: tuple[str, ...] = ("", "", "Hello", " ", "wörld", "", " 🚀", "\n", "  ", "done.")
"""Chunks of a reply: empty and whitespace-only deltas, non-ASCII, an emoji (like the mocks)."""

ERROR_TEXTS: dict[str, str] = {
    "model overloaded": "model overloaded",
    "length": "This model's maximum context length is 4096 tokens.",
    "Model http error": "http error: status_code: 500",
    "value error": "'max_tokens' or 'max_completion_tokens' is too large",
}
UNAUTHORIZED = (
    "The server could not verify that you are authorized to access the URL requested. You "
    "either supplied the wrong credentials (e.g. a bad password), or your browser doesn't "
    "understand how to supply the credentials required."
)
FORBIDDEN = (
    "You don't have the permission to access the requested resource. It is either "
    "read-protected or not readable by the server."
)
CAPTCHA_MESSAGE = "Failed to evaluate captcha. Please reload the page and try again."
_ALIASES = {"max_tokens": "maxTokens", "top_p": "topP", "captcha_token": "captchaToken"}


@dataclass
class Ai2Script:
    """What the fake does on the next requests (defaults: a normal reply)."""

    mode: Mode = "ok"
    chunks: list[str] = field(default_factory=lambda: list(DEFAULT_CHUNKS))
    thinking: list[str] = field(default_factory=list)
    status: int = 500
    error_message: str = "Internal Server Error"
    error_body: Any = None
    retry_after: float | None = None
    reason: str = "model overloaded"
    error_severity: str = "error"
    fault_after: int = 3
    first_byte_delay: float = 0.0
    ensure_ascii: bool = True
    finish_reason: str | None = None
    final_content: str | None = None
    trailing: bytes = b""
    require_recaptcha: bool = False
    reject_captcha: bool = False
    inappropriate: bool = False
    hold_after_final: bool = False  # the final thread, then nothing until the client goes


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


def new_id(prefix: str = "msg") -> str:
    """An olmo-api id: the prefix, ``_``, 10 characters alternating A-Z / 0-9 (``NewID``)."""
    letters = (random.choice(string.ascii_uppercase) for _ in range(5))
    digits = (random.choice(string.digits) for _ in range(5))
    return f"{prefix}_" + "".join(itertools.chain.from_iterable(zip(letters, digits, strict=True)))


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    """olmo-api's ``make_error_response``: ``{"error": {"code", "message", ...}}``."""
    return JSONResponse({"error": {"code": status, "message": message, **extra}}, status)


class _Stream(StreamingResponse):
    """Always closes its generator, so its ``finally`` runs when the client goes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


class FakeAi2:
    """The fake olmo-api. ``app`` is the ASGI app; set ``script`` between requests.

    ``received`` records every ``POST /v4/threads/``; ``messages`` is the thread store
    (id -> flat message with a ``_children`` list of ids and the ``creator``).
    """

    def __init__(self, script: Ai2Script | None = None) -> None:
        self.script = script or Ai2Script()
        self.received: list[Received] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self._open = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self.app = Starlette(
            routes=[
                Route("/v4/threads/", self._post, methods=["POST"]),
                Route("/v4/threads", self._slash, methods=["POST"]),
                Route("/v4/threads/{thread_id}", self._get, methods=["GET"]),
            ]
        )

    def reset(self) -> None:
        """Back to a normal reply; forget what was received."""
        self.script = Ai2Script()
        self.received.clear()

    def expire(self) -> None:
        """Forget every thread (anonymous messages expire after a day)."""
        self.messages.clear()

    def wait_closed(self, timeout: float) -> bool:
        """Wait until no stream is open; False on timeout."""
        return self._idle.wait(timeout)

    def chain(self, message_id: str) -> list[dict[str, Any]]:
        """The messages from ``message_id`` up to its root, leaf first."""
        out: list[dict[str, Any]] = []
        node = self.messages.get(message_id)
        while node is not None:
            out.append(node)
            node = self.messages.get(node["parent"]) if node["parent"] else None
        return out

    # -- requests ------------------------------------------------------------------------

    async def _slash(self, request: Request) -> Response:
        # werkzeug's strict_slashes: a rule ending in "/" redirects the bare URL (308)
        return RedirectResponse(str(request.url.replace(path="/v4/threads/")), 308)

    async def _get(self, request: Request) -> Response:
        anonymous = request.headers.get("x-anonymous-user-id")
        if not anonymous:
            return error_response(401, UNAUTHORIZED)
        message = self.messages.get(request.path_params["thread_id"])
        if message is None:
            return error_response(404, "Not Found")
        if message["creator"] != anonymous:
            return error_response(403, FORBIDDEN)
        return JSONResponse(self._thread(message["id"], final=True))

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
            body = script.error_body
            if body is not None:
                response: Response = (
                    Response(body, script.status, media_type="text/html")
                    if isinstance(body, str)
                    else JSONResponse(body, script.status)
                )
            else:
                response = error_response(script.status, script.error_message)
            if script.retry_after is not None:
                response.headers["retry-after"] = f"{script.retry_after:g}"
            return response
        problems = self._validate(fields)
        if problems:
            return error_response(
                400,
                f"{len(problems)} validation error{'s' if len(problems) > 1 else ''} for "
                "CreateMessageRequest\n"
                + "\n".join(
                    f"{'.'.join(p['loc'])}\n  {p['msg']} [type={p['type']}]".lstrip("\n")
                    for p in problems
                ),
                validation_errors=problems,
            )
        if not anonymous:  # validation runs before authentication (the e2e tests say so)
            return error_response(401, UNAUTHORIZED)
        model = str(_value(fields, "model"))
        if model not in MODELS:
            return error_response(400, f"Invalid model {model}")
        parent = self.messages.get(record.parent) if record.parent else None
        if record.parent and parent is None:
            return error_response(
                400,
                f"1 validation error for CreateMessageRequestWithFullMessages\n  Value error, "
                f"Parent message {record.parent} not found [type=value_error]",
                validation_errors=[
                    {
                        "loc": [],
                        "msg": f"Value error, Parent message {record.parent} not found",
                        "type": "value_error",
                    }
                ],
            )
        if parent is not None and parent["creator"] != anonymous:
            return error_response(403, FORBIDDEN)
        if script.reject_captcha and _value(fields, "captchaToken") is not None:
            return error_response(400, "invalid_captcha")
        if script.inappropriate:
            return error_response(400, "inappropriate_prompt_text")
        return self._reply(record, fields, parent, model)

    def _validate(self, fields: dict[str, list[str]]) -> list[dict[str, Any]]:
        """pydantic's errors of ``CreateMessageRequest`` (the ones this fake checks)."""
        problems: list[dict[str, Any]] = []
        if _value(fields, "model") is None:
            problems.append({"loc": ["model"], "msg": "Field required", "type": "missing"})
        if not _value(fields, "content") and not _value(fields, "inputParts"):
            problems.append(
                {
                    "loc": [],
                    "msg": "Value error, One of content or inputParts is required",
                    "type": "value_error",
                }
            )
        if self.script.require_recaptcha and _value(fields, "captchaToken") is None:
            problems.append(
                {
                    "loc": ["captchaToken"],
                    "msg": f"Value error, {CAPTCHA_MESSAGE}",
                    "type": "value_error",
                }
            )
        for name, low, high in (("n", 1, 1), ("logprobs", 0, 10)):
            raw = _value(fields, name)
            if raw is not None and not (raw.isdigit() and low <= int(raw) <= high):
                problems.append(
                    {
                        "loc": [name],
                        "msg": f"Input should be between {low} and {high}",
                        "type": "range",
                    }
                )
        return problems

    def _reply(
        self,
        record: Received,
        fields: dict[str, list[str]],
        parent: dict[str, Any] | None,
        model: str,
    ) -> Response:
        creator = record.anonymous_user_id or ""
        opts = {
            "maxTokens": int(_value(fields, "maxTokens") or 2048),
            "temperature": float(_value(fields, "temperature") or 0.7),
            "n": 1,
            "topP": float(_value(fields, "topP") or 1.0),
            "logprobs": None,
            "stop": fields.get("stop", []),
        }
        first: dict[str, Any] | None = None
        if parent is None and MODELS[model] is not None:
            first = self._message("system", str(MODELS[model]), creator, None, model, opts)
        content = str(_value(fields, "content")).replace("\r\n", "\n")
        user = self._message("user", content, creator, first or parent, model, opts)
        reply = self._message("assistant", "", creator, user, model, opts)
        record.reply_id = reply["id"]
        shown = first["id"] if first is not None else user["id"]
        return _Stream(self._lines(shown, reply), media_type="application/jsonl")

    def _message(
        self,
        role: str,
        content: str,
        creator: str,
        parent: dict[str, Any] | None,
        model: str,
        opts: dict[str, Any],
    ) -> dict[str, Any]:
        """A stored message (``FlatMessage`` fields, children as ids)."""
        mid = new_id()
        message: dict[str, Any] = {
            "id": mid,
            "content": content,
            "inputParts": None,
            "creator": creator,
            "role": role,
            "opts": dict(opts),
            "root": parent["root"] if parent else mid,
            "created": "2026-01-29T12:00:00.000000+00:00",
            "modelId": model,
            "modelHost": "modal",
            "agentId": None,
            "deleted": None,
            "parent": parent["id"] if parent else None,
            "template": None,
            "children": [],
            "completion": None,
            "final": False,
            "original": None,
            "private": True,  # anonymous users are not allowed to share messages
            "modelType": "chat" if role == "assistant" else None,
            "finishReason": None,
            "harmful": None if role == "assistant" else False,
            "expirationTime": "2026-01-30T12:00:00.000000+00:00",
            "labels": [],
            "fileUrls": None,
            "toolCalls": None,
            "thinking": None,
            "toolDefinitions": None,
            "extraParameters": None,
            "errorCode": None,
            "errorDescription": None,
            "errorSeverity": None,
        }
        if parent is not None:
            parent["children"].append(mid)
        self.messages[mid] = message
        return message

    def _flat(self, message: dict[str, Any]) -> dict[str, Any]:
        """``FlatMessage.model_dump()``: the fields and the computed ones."""
        words = message["content"][: 16 * 32].split()
        snippet = " ".join(words[:16]) + ("…" if len(words) > 16 else "")
        return {
            **message,
            "snippet": snippet,
            "isLimitReached": message["finishReason"] == "length",
            "isOlderThan30Days": False,
        }

    def _thread(self, first: str, *, final: bool) -> dict[str, Any]:
        """``Thread.from_message``: ``first`` and its descendants along the chain."""
        messages = []
        node: dict[str, Any] | None = self.messages[first]
        while node is not None:
            if final:
                node["final"] = True
            messages.append(self._flat(node))
            node = self.messages.get(node["children"][-1]) if node["children"] else None
        return {"id": first, "messages": messages}

    # -- the stream ----------------------------------------------------------------------

    def _dumps(self, obj: Any) -> bytes:
        # flask.json.dumps with the app's CustomJSONProvider: ensure_ascii, sort_keys
        return (
            json.dumps(obj, ensure_ascii=self.script.ensure_ascii, sort_keys=True) + "\n"
        ).encode()

    async def _lines(self, first: str, reply: dict[str, Any]) -> AsyncIterator[bytes]:
        with self._lock:
            self._open += 1
            self._idle.clear()
        try:
            async for line in self._body(first, reply):
                yield line
        finally:
            with self._lock:
                self._open -= 1
                if self._open == 0:
                    self._idle.set()

    async def _body(self, first: str, reply: dict[str, Any]) -> AsyncIterator[bytes]:
        script = self.script
        root = self.messages[first]["root"]
        if script.first_byte_delay:
            await asyncio.sleep(script.first_byte_delay)
        yield self._dumps({"message": root, "type": "start"})
        thread = self._thread(first, final=False)
        if script.mode == "no_reply":
            thread["messages"] = [m for m in thread["messages"] if m["role"] != "assistant"]
        yield self._dumps(thread)
        for piece in script.thinking:
            yield self._dumps(
                {"content": piece, "id": None, "message": reply["id"], "type": "thinking"}
            )
        for index, chunk in enumerate(script.chunks):
            if index == script.fault_after and script.mode != "ok":
                async for line in self._fault(reply):
                    yield line
                if script.mode == "invalid_utf8":  # a bad line, then the stream goes on
                    reply["content"] += "caf\ufffd au lait"
                elif script.mode in ("no_final", "error_chunk"):
                    # an error chunk ends the step; the server still finalizes the thread
                    break
                else:
                    return
            reply["content"] += chunk
            yield self._dumps({"content": chunk, "message": reply["id"], "type": "modelResponse"})
        if script.mode == "no_final":
            yield self._dumps({"message": root, "type": "end"})
            return
        reply["completion"] = None  # anonymous users get no completion record
        reply["finishReason"] = script.finish_reason
        reply["thinking"] = "".join(script.thinking) or None
        if script.final_content is not None:
            reply["content"] = script.final_content
        yield self._dumps(self._thread(first, final=True))
        if script.hold_after_final:
            await asyncio.Event().wait()
        yield self._dumps({"message": root, "type": "end"})
        if script.trailing:
            yield script.trailing

    async def _fault(self, reply: dict[str, Any]) -> AsyncIterator[bytes]:
        mode = self.script.mode
        if mode == "malformed":
            yield b'{"content": "x", "message": "' + reply["id"].encode() + b'", \n'
        elif mode == "invalid_utf8":
            yield (
                b'{"content": "caf\xc3 au lait", "message": "'
                + reply["id"].encode()
                + b'", "type": "modelResponse"}\n'
            )
        elif mode == "bad_chunk":
            yield self._dumps({"content": 42, "message": reply["id"], "type": "modelResponse"})
        elif mode == "error_line":
            reason = self.script.reason
            text = ERROR_TEXTS.get(reason, reason)
            yield self._dumps({"error": text, "message": reply["id"], "reason": reason})
        elif mode == "error_chunk":
            yield self._dumps(
                {
                    "errorCode": "toolCallError",
                    "errorDescription": "Could not find tool unknown_tool",
                    "errorSeverity": self.script.error_severity,
                    "message": reply["id"],
                    "type": "error",
                }
            )
        elif mode == "disconnect":
            raise _AbruptClose("dropped mid-stream")
        elif mode == "hold_open":
            await asyncio.Event().wait()


def _value(fields: dict[str, list[str]], name: str) -> str | None:
    """A field by its camelCase alias or, ``populate_by_name``, its Python name."""
    for key in (name, *(k for k, alias in _ALIASES.items() if alias == name)):
        values = fields.get(key)
        if values:
            return values[0]
    return None


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None
