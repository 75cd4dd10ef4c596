r"""Wire-level fake of Replicate's predictions API and its nchan event stream.

Built from public sources (https://replicate.com/docs/topics/predictions/streaming,
replicate-python ``replicate/stream.py`` and its cassettes, replicate-go ``stream_test.go``,
slact/nchan ``src/subscribers/eventsource.c``) and checked with the official ``replicate``
client (``tests/fidelity/test_replicate_fidelity.py``).

Routes (the API host is the one the client used, e.g. ``127.0.0.1:P``):

* ``POST /v1/models/{owner}/{name}/predictions`` and ``POST /v1/predictions`` (``version``)
  -> 201 (or 202) prediction JSON in the 2023, 2024 or 2025 shape (the deprecated
  ``"stream": true`` flag is optional: the 2024 and 2025 shapes list ``urls.stream``
  without it, the 2023 shape only with it, as recorded); ``Prefer: wait`` on
  an image model -> 201 with ``output`` filled, or 202 ``starting`` (``image_mode``).
* ``GET /v1/predictions/{id}`` -> the prediction (image polling: ``starting`` ->
  ``processing`` -> ``succeeded`` after ``polls_before_done`` polls).
* ``POST /v1/predictions/{id}/cancel`` -> 200 with ``status: "canceled"``.
* ``GET /v1/streams/{opaque}`` — named by ``urls.stream`` on ANOTHER host name
  (``localhost`` when the API was reached as ``127.0.0.1`` and vice versa) — nchan
  framing: ``: hi\n\n`` first; per token ``event: output\nid: <unix>:<n>\n`` and one
  ``data: `` line per ``\n``-separated piece; ``logs`` events; keep-alive comments;
  ``event: done`` with ``data: {}``, no data line, or ``{"reason": ...}``.
* ``GET /files/{name}`` -> the image bytes (``image_content_type``).
* errors: ``application/problem+json`` bodies as recorded (401, 404, 422 with
  ``invalid_fields``, 429 with ``Retry-After``, 5xx).

Every request is recorded with its Host and headers (``requests``), so tests can check
which hosts saw the ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = [
    "DEFAULT_TOKENS",
    "PNG_1X1",
    "FakeReplicate",
    "RecordedRequest",
    "ReplicateScript",
    "nchan_message",
    "problem",
]

DEFAULT_TOKENS: tuple[str, ...] = (
    "\n\n",
    "Fuzzy",
    ", gentle",
    " beasts",
    "\nSoft",
    "ly grazing",
    ", quiet",
    " eyes\n",
    "Llama",
    "'s gentle",
    " charm",
    "",
    " — Ура 🦙",
    "\n",
)
"""Tokens like the recorded output array (newline-bearing and empty tokens), plus unicode."""

PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63f8cfc0f01f0005000201a5e0a1b40000000049454e44ae426082"
)
"""A valid 1x1 PNG."""

Mode = Literal[
    "ok",
    "http_error",  # creation answers error_status with a problem+json body
    "stream_http_error",  # the stream URL answers error_status
    "malformed",  # creation answers 201 with a body that is not JSON
    "no_id",  # creation body without "id"
    "no_stream",  # creation body without urls.stream
    "disconnect",  # the stream drops after fail_after tokens
    "hold_open",  # fail_after tokens, then keep-alives until the client goes
    "end_without_done",  # tokens, then the stream ends cleanly without done (end_status)
    "error_event",  # fail_after tokens, then event: error
    "done_canceled",  # tokens, then done {"reason": "canceled"}
    "done_error",  # tokens, then done {"reason": "error"}
    "redirect",  # the stream URL redirects to redirect_to (another host)
    "wrong_content_type",  # the stream answers application/json
]

PROBLEMS: dict[int, dict[str, Any]] = {
    401: {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    },
    404: {"detail": "The specified model does not exist", "status": 404},
    422: {
        "detail": "- input: prompt is required\n",
        "status": 422,
        "title": "Input validation failed",
        "invalid_fields": [
            {"type": "required", "field": "input", "description": "prompt is required"}
        ],
    },
    429: {"title": "Too Many Requests", "detail": "Request was throttled.", "status": 429},
    500: {"title": "Internal Server Error", "detail": "Internal server error", "status": 500},
    502: {"detail": "Bad gateway", "status": 502},
    503: {"title": "Service Unavailable", "detail": "Service unavailable", "status": 503},
}
"""Problem bodies per status (401/422 as recorded; the rest in the same shape)."""


@dataclass
class ReplicateScript:
    """What the fake does; the defaults give a normal streamed run.

    ``shape``: creation body of ``"2023"`` (no model, trailing newline), ``"2024"`` (with
    ``model``, ``data_removed``, ``output``) or ``"2025"`` (``stream.replicate.com``-like
    ``/v1/files`` stream path). ``done_form``: ``"json"`` (``data: {}``) or ``"no_data"``.
    ``fail_after``: tokens sent before a mode's fault. ``first_byte_delay``: seconds before
    the stream's first byte; ``token_delay``: before each token. ``image_mode``:
    ``"wait"`` (201 with output), ``"wait_processing"`` (201, status processing, output
    filled), ``"poll"`` (202 starting, then ``urls.get``), ``"fail"`` (the poll ends
    ``failed``), ``"never"`` (stays ``starting``), ``"fail_first"`` (the first image
    prediction after ``reset`` fails as ``"fail"``, the others stay unfinished).
    """

    tokens: list[str] = field(default_factory=lambda: list(DEFAULT_TOKENS))
    mode: Mode = "ok"
    create_status: int = 201
    shape: Literal["2023", "2024", "2025"] = "2024"
    error_status: int = 500
    error_body: Any = None
    retry_after: str | None = None
    done_form: Literal["json", "no_data"] = "json"
    logs: bool = True
    keepalive: bool = True
    fail_after: int = 4
    first_byte_delay: float = 0.0
    token_delay: float = 0.0
    redirect_to: str | None = None
    image_mode: Literal["wait", "wait_processing", "poll", "fail", "never", "fail_first"] = "wait"
    polls_before_done: int = 2
    image_bytes: bytes = PNG_1X1
    image_content_type: str = "image/png"
    image_output: Literal["list", "string", "data_uri"] = "list"
    end_status: Literal["processing", "succeeded", "failed", "canceled"] = "processing"
    fault_times: int | None = None
    """How many streams the ``mode``'s fault applies to (``None``: all), the later ones
    answer normally (a model that failed once)."""
    continues: bool = False
    """A ``prompt_template`` of ``{prompt}`` with a ``prompt`` ending in the first tokens
    of the answer is continued (the rest of the tokens only), as a Llama 3 model given an
    open assistant turn does (https://replicate.com/meta/meta-llama-3-70b-instruct)."""


@dataclass
class RecordedRequest:
    """One request the fake received (``host`` is the Host header, with port)."""

    method: str
    path: str
    host: str
    headers: dict[str, str]
    json: Any


def nchan_message(event: str, msgid: str, payload: str | None) -> bytes:
    r"""One message as nchan's EventSource writer frames it.

    ``event: <name>\n`` + ``id: <msgid>\n`` + the payload split after every ``\n``, each
    piece prefixed with ``data: `` (a piece keeps no newline of its own), + ``\n``;
    ``payload=None`` sends no data line at all.
    """
    lines = [f"event: {event}", f"id: {msgid}"]
    if payload is not None:
        lines.extend(f"data: {piece}" for piece in payload.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def problem(status: int, body: Any = None, retry_after: str | None = None) -> Response:
    """A problem+json error response (``body`` None = the default for ``status``)."""
    if body is None:
        body = PROBLEMS.get(status, {"detail": f"HTTP {status}", "status": status})
    headers = {"retry-after": retry_after} if retry_after else None
    content = (json.dumps(body, separators=(",", ":")) + "\n").encode()
    return Response(content, status, headers=headers, media_type="application/problem+json")


class _Drop(Exception):
    """Raised inside a streamed body so uvicorn drops the connection mid-body."""


class _EventStream(StreamingResponse):
    """A StreamingResponse whose generator is always closed (its ``finally`` runs)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


@dataclass
class _Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    image: bool
    doomed: bool = False  # fails at its poll (``image_mode="fail_first"``)
    status: str = "starting"
    polls: int = 0
    output: Any = None
    error: Any = None


class FakeReplicate:
    """The fake service; ``app`` is the ASGI app; mutate ``script`` between requests.

    ``requests`` records every request; ``streams_opened`` counts stream responses,
    ``open_streams`` those still open; ``cancels`` the prediction ids cancelled.
    """

    IMAGE_OWNERS = ("black-forest-labs", "stability-ai", "bytedance")

    def __init__(self, script: ReplicateScript | None = None) -> None:
        self.script = script if script is not None else ReplicateScript()
        self.requests: list[RecordedRequest] = []
        self.cancels: list[str] = []
        self.streams_opened = 0
        self._open = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._cancelled = threading.Event()
        self._ids = itertools.count(1)
        self._images_created = 0
        self._predictions: dict[str, _Prediction] = {}
        self._streams: dict[str, str] = {}  # opaque stream key -> prediction id
        methods = ["GET", "POST"]
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=methods)])

    # -- observation -------------------------------------------------------------------

    def reset(self, script: ReplicateScript | None = None) -> None:
        """New script; forget recorded requests and cancels."""
        self.script = script if script is not None else ReplicateScript()
        self.requests.clear()
        self.cancels.clear()
        self._cancelled.clear()
        self._images_created = 0

    @property
    def open_streams(self) -> int:
        """Stream responses currently open."""
        with self._lock:
            return self._open

    def wait_streams_closed(self, timeout: float) -> bool:
        """Wait until no stream response is open; False on timeout."""
        return self._idle.wait(timeout)

    def wait_cancelled(self, timeout: float) -> bool:
        """Wait until a cancel request arrived; False on timeout."""
        return self._cancelled.wait(timeout)

    def hosts_with_key(self) -> set[str]:
        """Host headers of the requests that carried an ``Authorization`` header."""
        return {r.host for r in self.requests if "authorization" in r.headers}

    def creations(self) -> list[RecordedRequest]:
        """The recorded prediction-creation requests."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("predictions")]

    # -- routing -----------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        raw = await request.body()
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        host = request.headers.get("host", "")
        path = request.url.path
        self.requests.append(
            RecordedRequest(request.method, path, host, dict(request.headers), parsed)
        )
        parts = path.strip("/").split("/")
        method = request.method
        if method == "POST" and parts[:2] == ["v1", "models"] and parts[-1:] == ["predictions"]:
            if len(parts) != 5:
                return problem(404)
            return self._create(request, f"{parts[2]}/{parts[3]}", None, parsed)
        if method == "POST" and parts == ["v1", "predictions"]:
            version = parsed.get("version") if isinstance(parsed, dict) else None
            if not isinstance(version, str):
                return problem(422)
            return self._create(request, "", version, parsed)
        if parts[:2] == ["v1", "predictions"] and len(parts) == 4 and parts[3] == "cancel":
            return self._cancel(request, parts[2]) if method == "POST" else problem(405)
        if parts[:2] == ["v1", "predictions"] and len(parts) == 3 and method == "GET":
            return self._get(request, parts[2])
        if parts[:2] == ["v1", "streams"] or parts[:2] == ["v1", "files"]:
            return self._stream(request, parts[-1])
        if parts[:1] == ["files"] and method == "GET":
            script = self.script
            return Response(script.image_bytes, 200, media_type=script.image_content_type)
        return problem(404, {"detail": "Not found", "status": 404})

    def _authorized(self, request: Request) -> bool:
        """Any non-empty bearer token is accepted (401 otherwise, as recorded)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and bool(token.strip())

    def _api_url(self, request: Request) -> str:
        return f"{request.url.scheme}://{request.headers.get('host', '')}"

    def _stream_base(self, request: Request) -> str:
        host = request.headers.get("host", "")
        name, _, port = host.rpartition(":")
        other = "localhost" if name == "127.0.0.1" else "127.0.0.1"
        return f"{request.url.scheme}://{other}:{port}"

    def _create(self, request: Request, model: str, version: str | None, body: Any) -> Response:
        script = self.script
        if not self._authorized(request):
            return problem(401)
        if script.mode == "http_error":
            return problem(script.error_status, script.error_body, script.retry_after)
        if script.mode == "malformed":
            return Response(b'{"id": "abc", "urls": {', 201, media_type="application/json")
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return problem(422)
        if "stream" in body and not isinstance(body["stream"], bool):
            return problem(
                400,
                {
                    "detail": "Failed to parse request body as JSON: json: cannot unmarshal "
                    "string into Go struct field Prediction.stream of type bool",
                    "status": 400,
                },
            )
        pid = f"fake{next(self._ids):04d}{int(time.time())}"
        image = model.split("/")[0] in self.IMAGE_OWNERS
        prediction = _Prediction(
            pid, model or "owner/versioned", version or "dp-0123", body["input"], image
        )
        self._predictions[pid] = prediction
        if image:
            prediction.doomed = script.image_mode == "fail_first" and not self._images_created
            self._images_created += 1
        status = script.create_status
        if image and request.headers.get("prefer", "").startswith("wait"):
            if script.image_mode in ("wait", "wait_processing"):
                prediction.output = self._image_output(request)
                prediction.status = "succeeded" if script.image_mode == "wait" else "processing"
                status = 201
            else:
                status = 202
        payload = self._payload(request, prediction)
        if script.mode == "no_id":
            del payload["id"]
        if script.mode == "no_stream":
            del payload["urls"]["stream"]
        elif script.shape == "2023" and body.get("stream") is not True:
            # 2023 - 2024-04 recordings list urls.stream only when "stream": true was sent
            del payload["urls"]["stream"]
            payload["stream"] = False
        text = json.dumps(payload, separators=(",", ":"))
        if script.shape == "2023":
            text += "\n"
        ctype = "application/json" if script.shape == "2023" else "application/json; charset=UTF-8"
        return Response(text.encode(), status, headers={"content-type": ctype})

    def _image_output(self, request: Request) -> Any:
        script = self.script
        if script.image_output == "data_uri":
            import base64

            return [
                f"data:{script.image_content_type};base64,"
                + base64.b64encode(script.image_bytes).decode()
            ]
        url = f"{self._stream_base(request)}/files/out-0.png"
        return url if script.image_output == "string" else [url]

    def _payload(self, request: Request, p: _Prediction) -> dict[str, Any]:
        api = self._api_url(request)
        key = f"{p.id}s"
        self._streams[key] = p.id
        stream_path = "/v1/files/" if self.script.shape == "2025" else "/v1/streams/"
        urls = {
            "cancel": f"{api}/v1/predictions/{p.id}/cancel",
            "get": f"{api}/v1/predictions/{p.id}",
            "stream": f"{self._stream_base(request)}{stream_path}{key}",
        }
        if self.script.shape == "2023":
            return {
                "id": p.id,
                "version": p.version,
                "input": p.input,
                "logs": "",
                "error": p.error,
                "status": p.status,
                "created_at": "2023-10-28T10:00:00.000000Z",
                "stream": True,
                "urls": urls,
            }
        return {
            "id": p.id,
            "model": p.model,
            "version": p.version,
            "input": p.input,
            "logs": "",
            "output": p.output,
            "data_removed": False,
            "error": p.error,
            "status": p.status,
            "created_at": "2025-01-22T14:12:56.844Z",
            "urls": urls,
        }

    def _get(self, request: Request, pid: str) -> Response:
        if not self._authorized(request):
            return problem(401)
        p = self._predictions.get(pid)
        if p is None:
            return problem(404, {"detail": "Not found.", "status": 404})
        script = self.script
        unfinished = p.status not in ("succeeded", "failed", "canceled")
        if unfinished and script.image_mode == "fail_first":
            p.polls += 1
            if p.doomed and p.polls >= script.polls_before_done:
                p.status, p.error = "failed", "CUDA out of memory"
            else:
                p.status = "processing"
        elif unfinished and script.image_mode != "never":
            p.polls += 1
            if p.polls >= script.polls_before_done:
                if script.image_mode == "fail":
                    p.status, p.error = "failed", "CUDA out of memory"
                else:
                    p.status, p.output = "succeeded", self._image_output(request)
            else:
                p.status = "processing"
        return JSONResponse(self._payload(request, p))

    def _cancel(self, request: Request, pid: str) -> Response:
        if not self._authorized(request):
            return problem(401)
        p = self._predictions.get(pid)
        if p is None:
            return problem(404, {"detail": "Not found.", "status": 404})
        if p.status not in ("succeeded", "failed"):
            p.status = "canceled"
        self.cancels.append(pid)
        self._cancelled.set()
        return JSONResponse(self._payload(request, p))

    def _stream(self, request: Request, key: str) -> Response:
        script = self.script
        pid = self._streams.get(key)
        if pid is None:
            return problem(404, {"detail": "stream not found", "status": 404})
        if script.mode == "redirect" and script.redirect_to:
            target = script.redirect_to.rstrip("/")
            if not target.endswith(request.headers.get("host", "\0")):
                return Response(b"", 307, headers={"location": f"{target}{request.url.path}"})
        if script.mode == "stream_http_error":
            return problem(script.error_status, script.error_body, script.retry_after)
        media = "application/json" if script.mode == "wrong_content_type" else None
        return _EventStream(
            self._events(self._predictions[pid]),
            media_type=media or "text/event-stream; charset=utf-8",
            headers={"cache-control": "no-cache"},
        )

    async def _events(self, p: _Prediction) -> AsyncIterator[bytes]:
        script = self.script
        with self._lock:
            self._open += 1
            self.streams_opened += 1
            self._idle.clear()
        try:
            if script.first_byte_delay:
                await asyncio.sleep(script.first_byte_delay)
            yield b": hi\n\n"
            second = int(time.time())
            tags = itertools.count()

            def msgid() -> str:
                return f"{second}:{next(tags)}"

            if script.logs:
                yield nchan_message("logs", msgid(), "Loading model...\nstarting")
            tokens = script.tokens
            if script.continues and p.input.get("prompt_template") == "{prompt}":
                prompt = str(p.input.get("prompt", ""))
                done = max(
                    (k for k in range(1, len(tokens)) if prompt.endswith("".join(tokens[:k]))),
                    default=0,
                )
                tokens = tokens[done:]
            faulty = script.mode in ("disconnect", "hold_open", "error_event")
            if faulty and script.fault_times is not None:
                faulty = script.fault_times > 0
                script.fault_times -= 1
            stop_at = min(script.fail_after, len(tokens)) if faulty else len(tokens)
            for index, token in enumerate(tokens[:stop_at]):
                if script.token_delay:
                    await asyncio.sleep(script.token_delay)
                yield nchan_message("output", msgid(), token)
                if script.keepalive and index == 1:
                    yield b":\n\n"
                if script.logs and index == 2:
                    yield nchan_message("logs", msgid(), "tokens/s: 42")
            if faulty and script.mode == "disconnect":
                raise _Drop("scripted disconnect")
            if faulty and script.mode == "hold_open":
                while p.status != "canceled":
                    await asyncio.sleep(0.05)
                    yield b": keep-alive\n\n"
                yield nchan_message("done", msgid(), '{"reason":"canceled"}')
                return
            if faulty and script.mode == "error_event":
                p.status, p.error = "failed", "CUDA out of memory"
                yield nchan_message("error", msgid(), '{"detail":"CUDA out of memory"}')
                return
            if script.mode == "end_without_done":
                p.status = script.end_status
                if p.status == "succeeded":
                    p.output = list(tokens)
                elif p.status == "failed":
                    p.error = "CUDA out of memory"
                return
            if script.mode == "done_canceled":
                yield nchan_message("done", msgid(), '{"reason":"canceled"}')
                return
            if script.mode == "done_error":
                yield nchan_message("done", msgid(), '{"reason":"error"}')
                return
            p.status, p.output = "succeeded", list(tokens)
            data = None if script.done_form == "no_data" else "{}"
            yield nchan_message("done", msgid(), data)
        finally:
            with self._lock:
                self._open -= 1
                if self._open == 0:
                    self._idle.set()


def main() -> None:  # pragma: no cover - a manual tool
    """Serve the fake by hand: ``python -m tests.fakes.replicate [PORT]``."""
    import sys

    import uvicorn

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    print(
        f"export LLMRELAY_REPLICATE_BASE_URL=http://127.0.0.1:{port}/v1 "
        "REPLICATE_API_TOKEN=r8_demo",
        flush=True,
    )
    uvicorn.run(FakeReplicate().app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":  # pragma: no cover
    main()
