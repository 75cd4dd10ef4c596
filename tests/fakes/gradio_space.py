"""Wire-level fake of the Qwen2-72B-Instruct Hugging Face Space (Gradio queue protocol).

Ground truth: the Gradio queue protocol (``sse_v3``) as the ``gradio`` wheels implement it, completed where it is
silent by captures of real Gradio 4.44.1 / 5.50.0 / 6.31.0 servers running
``scripts/demo_space.py`` (see ``test_fake_fidelity.py``).

Routes (``P`` = ``""`` for version "4", ``"/gradio_api"`` for "5" and "6"):

* ``GET /config`` -> the app config, laid out as the real Space's ``app.py``
  (https://huggingface.co/spaces/Qwen/Qwen2-72B-Instruct/blob/main/app.py, component ids
  as Gradio 4.44.1 and 6.31.0 number ``scripts/demo_space.py``): ``model_chat`` is
  dependency ``id`` 0 (= fn_index), target ``[[11, "submit"]]``, inputs ``[11, 10, 8]``
  (textbox, chatbot, the hidden unlabelled ``system_state``), outputs ``[11, 10, 4]``
  (textbox, chatbot, the visible "System" box); the Send button's ``model_chat_1`` (1)
  is wired the same way; ``clear_session`` (2); ``modify_system_session`` (3) copies
  the "System" box into ``system_state``.
* ``GET P/info`` -> ``{"named_endpoints", "unnamed_endpoints"}``: each documented
  dependency's parameters (by the function's own parameter names; state inputs left
  out), as real 4.44.1 and 6.31.0 servers describe them (trimmed: no JSON schemas,
  code snippets or descriptions) — what gradio_client reads.
* ``POST P/queue/join[?]`` -> ``{"event_id": "<32 hex>"}`` or Gradio/FastAPI errors.
* ``GET P/queue/data?session_hash=...`` -> ``text/event-stream``; one
  ``data: <compact JSON>\\n\\n`` per message, ending with ``close_stream``.
* anything else -> 404 ``{"detail":"Not Found"}`` (405 for a known path, wrong method).
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = [
    "DEFAULT_CHUNKS",
    "GRADIO_VERSIONS",
    "JOIN_ERROR_BODIES",
    "FakeSpace",
    "Mode",
    "RecordedRequest",
    "SpaceScript",
    "Version",
    "api_prefix",
    "chatbot_value",
    "diff",
]

Version = Literal["4", "5", "6"]
AppShape = Literal["blocks", "chatinterface"]
Mode = Literal[
    "ok",
    "malformed",
    "disconnect",
    "fail",
    "fail_hidden",
    "close_early",
    "unexpected_error",
    "queue_full_msg",
    "heartbeats_only",
]

GRADIO_VERSIONS: dict[str, str] = {"4": "4.44.1", "5": "5.50.0", "6": "6.31.0"}
"""``config.version`` reported for each fake version."""

DEFAULT_CHUNKS: tuple[str, ...] = (
    "Hello",
    ",",
    " world",
    " world",
    "!\n",
    "\n",
    "Ура",
    " ура",
    " 🚀",
    "🚀",
    "",
    " done",
    ".",
)
"""Default answer chunks: repeated words, ``\\n``/blank line, non-ASCII, emoji, one ``""``."""

JOIN_ERROR_BODIES: dict[int, Any] = {
    400: {"detail": "No function index provided."},
    404: {"detail": "Not Found"},
    422: {
        "detail": [
            {
                "__type__": "validate",
                "is_valid": False,
                "message": "Query must not be empty",
                "parameter_name": "query",
            },
            {"is_valid": True, "message": ""},
            {"is_valid": True, "message": ""},
        ]
    },
    500: "Internal Server Error",
    503: {"detail": "Queue is full. Max size is 1 and size is 1."},
}
"""Default join error bodies (gradio ``routes.py`` ``queue_join_helper`` ``error_map``,
``queueing.py`` ``push``/``process_validation_response``); a ``str`` is sent as text/plain."""

TEXTBOX, CHATBOT, SYSTEM, SYSTEM_STATE, SUBMIT, CLEAR, MODIFY = 11, 10, 4, 8, 14, 13, 7
CHAT_FNS = (0, 1)
"""``model_chat`` (the textbox's submit) and ``model_chat_1`` (the Send button's click)."""
_SESSION_NOT_FOUND = {"4": "404: Session not found.", "5": "404: Not Found", "6": "404: Not Found"}


@dataclass
class RecordedRequest:
    """One request the fake received: ``json`` is the parsed body or None;
    ``client_port`` identifies the TCP connection it came on."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    client_port: int | None = None


@dataclass
class SpaceScript:
    """What the fake Space does; the defaults give a normal successful run (Gradio 5).

    ``fail_after`` = number of ``process_generating`` messages sent before the fault of a
    non-"ok" mode (None = ``len(chunks) // 2``; ``0`` with "unexpected_error" = the bare
    unknown-session reply).  ``first_event_delay`` is slept before the first message of a
    stream, ``chunk_delay`` before each ``process_generating``.  ``join_body=None`` uses
    :data:`JOIN_ERROR_BODIES` for ``join_status``, sent with ``join_headers``.

    Hostile-server knobs: ``config_body`` is served as ``/config`` instead of the real
    layout (an object is JSON-encoded, ``str``/``bytes`` are sent as they are, as
    ``application/json``), gzip-encoded when ``config_gzip``; ``raw_messages`` replaces the
    chat event's messages by these JSON texts (``EVENT_ID`` in them becomes the event id),
    each sent as one ``data:`` line; ``cut_after_completed`` drops the connection right after
    ``process_completed`` (no ``close_stream``, no terminating chunk).  Mode
    ``"heartbeats_only"`` answers the join, then sends only ``heartbeat`` messages every
    ``heartbeat_interval`` seconds until the client goes (a stuck queue).  ``app`` picks the
    Space's shape: the Qwen ``gr.Blocks`` app or a ``gr.ChatInterface`` (versions 4 and 6).
    ``estimations``: the chat event's ``estimation`` messages as ``(rank, queue_size,
    rank_eta)``, sent before ``process_starts`` (default: one ``(0, 1, None)``, as a real
    server with an empty queue); ``info_status`` answers ``/info`` with that error, and
    ``/info`` leaves out the dependencies named in ``info_hidden``.
    """

    version: Version = "5"
    chunks: list[str] = field(default_factory=lambda: list(DEFAULT_CHUNKS))
    config_status: int = 200
    join_status: int = 200
    join_body: Any = None
    join_headers: dict[str, str] = field(default_factory=dict)
    mode: Mode = "ok"
    fail_after: int | None = None
    error_message: str = "This Space is overloaded 🙁"
    first_event_delay: float = 0.0
    chunk_delay: float = 0.0
    hold_open: bool = False
    heartbeat_before_first: bool = True
    other_session_events: bool = False
    heartbeat_interval: float = 0.05
    config_body: Any = None
    config_gzip: bool = False
    raw_messages: list[str] | None = None
    cut_after_completed: bool = False
    app: AppShape = "blocks"
    estimations: list[tuple[int | None, int, float | None]] | None = None
    info_status: int = 200
    info_hidden: tuple[str, ...] = ()


def api_prefix(version: str) -> str:
    """Route prefix: ``""`` for Gradio 4, ``"/gradio_api"`` from Gradio 5 (gradio ``gradio/route_utils.py`` ``API_PREFIX``)."""
    return "" if version == "4" else "/gradio_api"


def chatbot_value(version: str, history: list[Any], prompt: str, reply: str) -> list[Any]:
    """Chatbot value after one turn: 4 = ``[[user, bot]]`` pairs, 5 = message dicts with
    string content, 6 = message dicts with ``[{"text", "type": "text"}]`` content parts.

    Like the real Chatbot's postprocess (4.44, 5.x and 6.x alike), every string message goes
    through ``inspect.cleandoc``: leading/trailing blank lines and common indentation are
    removed, so a trailing ``"\n"`` is only sent with the next chunk (captured)."""
    if version == "4":
        return [*history, [_clean(prompt), _clean(reply)]]
    return [*history, _message(version, "user", prompt), _message(version, "assistant", reply)]


def _clean(text: Any) -> Any:
    return inspect.cleandoc(text) if isinstance(text, str) else text


def _message(version: str, role: str, content: Any) -> dict[str, Any]:
    content = _clean(content)
    if version == "6" and isinstance(content, str):
        content = [{"text": content, "type": "text"}]
    return {"role": role, "metadata": None, "content": content, "options": None}


def _normalize_history(version: str, history: Any) -> list[Any]:
    """History as the server postprocesses it (non-conforming items are dropped)."""
    if not isinstance(history, list):
        return []
    if version == "4":
        return [
            [_clean(x) for x in pair]
            for pair in history
            if isinstance(pair, list) and len(pair) == 2
        ]
    return [
        _message(version, str(item["role"]), item["content"])
        for item in history
        if isinstance(item, dict) and "role" in item and "content" in item
    ]


def diff(old: Any, new: Any) -> list[list[Any]]:
    """Edits turning ``old`` into ``new``: ``[action, path, value]`` with actions
    ``append`` (string suffix), ``replace``, ``add``, ``delete`` (gradio_client ``utils.py`` ``apply_diff``).  ``[]`` when
    equal.  Surplus list items are deleted one by one at the first surplus index."""
    edits: list[list[Any]] = []
    _diff_into(old, new, [], edits)
    return edits


def _diff_into(old: Any, new: Any, path: list[Any], edits: list[list[Any]]) -> None:
    if old == new:
        return
    if type(old) is not type(new):
        edits.append(["replace", path, new])
    elif isinstance(old, str) and new.startswith(old):
        edits.append(["append", path, new[len(old) :]])
    elif isinstance(old, list):
        common = min(len(old), len(new))
        for i in range(common):
            _diff_into(old[i], new[i], [*path, i], edits)
        edits.extend(["delete", [*path, common], None] for _ in range(len(old) - common))
        edits.extend(["add", [*path, i], new[i]] for i in range(common, len(new)))
    elif isinstance(old, dict):
        for key in old:
            if key in new:
                _diff_into(old[key], new[key], [*path, key], edits)
            else:
                edits.append(["delete", [*path, key], None])
        edits.extend(["add", [*path, key], value] for key, value in new.items() if key not in old)
    else:
        edits.append(["replace", path, new])


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _sse(obj: Any) -> str:
    return f"data: {_dumps(obj)}\n\n"


_MALFORMED = 'data: {"msg":"process_generating","event_id":\n\n'
"""The one non-JSON ``data:`` line of mode "malformed"."""


class _AbruptClose(Exception):
    """Raised inside the stream so uvicorn drops the connection mid-body."""


@dataclass
class _Event:
    event_id: str
    fn_index: int
    data: list[Any]


class _Timer:
    """Gradio-like ``duration`` / ``average_duration`` values."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.total = 0.0
        self.count = 0

    def tick(self) -> tuple[float, float]:
        now = time.monotonic()
        duration, self.last = now - self.last, now
        self.total += duration
        self.count += 1
        return duration, self.total / self.count


class _Messages:
    """Builds the version-specific message dicts (shapes captured from real servers)."""

    def __init__(self, version: str) -> None:
        self.v = version

    def simple(self, msg: str, event_id: str | None, **extra: Any) -> dict[str, Any]:
        return {"msg": msg, "event_id": event_id, **extra}

    def estimation(self, event_id: str) -> dict[str, Any]:
        return self.simple("estimation", event_id, rank=0, queue_size=1, rank_eta=None)

    def output(self, data: list[Any], generating: bool, timer: _Timer) -> dict[str, Any]:
        duration, average = timer.tick()
        out: dict[str, Any] = {
            "data": data,
            "is_generating": generating,
            "duration": duration,
            "average_duration": average,
            "render_config": None,
            "changed_state_ids": [],
        }
        if self.v == "6":
            out["used_cache"] = None
        return out

    def generating(self, event_id: str, data: list[Any], timer: _Timer) -> dict[str, Any]:
        message = self.simple(
            "process_generating", event_id, output=self.output(data, True, timer), success=True
        )
        if self.v != "4":
            message["time_limit"] = None
        return message

    def completed(
        self, event_id: str, output: dict[str, Any], success: bool, title: str | None = None
    ) -> dict[str, Any]:
        message = self.simple("process_completed", event_id, output=output, success=success)
        if self.v != "4":
            message["title"] = title
        if self.v == "6":
            message["used_cache"] = None
            message["cache_duration"] = output.get("duration")
            message["avg_time"] = output.get("average_duration")
        return message

    def failed(self, event_id: str, error: str | None, title: str | None = None) -> dict[str, Any]:
        output: dict[str, Any] = {"error": error}
        if error is not None:  # a gr.Error: 4.x repr()-quotes it, 5+/6 add a title
            output = {"error": f"'{error}'" if self.v == "4" else error}
            output |= {"duration": 10, "visible": True}
            if self.v != "4":
                output["title"] = "Error"
        message = self.completed(event_id, output, False, title)
        if self.v == "6":
            message["cache_duration"] = None if error is None else 10.0
            message["avg_time"] = None
        return message

    def unexpected_error(self) -> dict[str, Any]:
        message = self.simple("unexpected_error", None, message=_SESSION_NOT_FOUND[self.v])
        if self.v != "4":
            message["session_not_found"] = True
        message["success"] = False
        return message


class _EventStream(StreamingResponse):
    """A StreamingResponse that always closes its generator, so its ``finally`` runs even
    when the client disconnected while the generator was suspended at a ``yield``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


class FakeSpace:
    """The fake Space.  ``app`` is the ASGI app; mutate ``script`` between requests.

    ``requests`` records every request; ``open_streams`` counts ``queue/data`` responses
    currently streaming and ``streams_opened`` all that were started.
    """

    def __init__(self, script: SpaceScript | None = None) -> None:
        self.script = script if script is not None else SpaceScript()
        self.requests: list[RecordedRequest] = []
        self.streams_opened = 0
        self._open_streams = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._sessions: dict[str, list[_Event]] = {}
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=methods)])

    # -- observation ---------------------------------------------------------------------

    @property
    def open_streams(self) -> int:
        """Number of ``queue/data`` streams currently open."""
        with self._lock:
            return self._open_streams

    def wait_streams_closed(self, timeout: float) -> bool:
        """Wait until no ``queue/data`` stream is open; False on timeout."""
        return self._idle.wait(timeout)

    @property
    def joins(self) -> list[RecordedRequest]:
        """The recorded ``queue/join`` requests."""
        return [r for r in self.requests if r.path.endswith("/queue/join")]

    def _stream_opened(self) -> None:
        with self._lock:
            self._open_streams += 1
            self.streams_opened += 1
            self._idle.clear()

    def _stream_closed(self) -> None:
        with self._lock:
            self._open_streams -= 1
            if self._open_streams == 0:
                self._idle.set()

    # -- routing -------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        body = await request.body()
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        path = request.url.path
        self.requests.append(
            RecordedRequest(
                request.method,
                path,
                dict(request.query_params),
                parsed,
                dict(request.headers),
                request.client.port if request.client else None,
            )
        )
        prefix = api_prefix(self.script.version)
        routes = {"/config": "GET", f"{prefix}/queue/join": "POST", f"{prefix}/queue/data": "GET",
                  f"{prefix}/info": "GET"}  # fmt: skip
        if path not in routes:
            return JSONResponse({"detail": "Not Found"}, 404)
        if request.method != routes[path]:
            return JSONResponse({"detail": "Method Not Allowed"}, 405)
        if path == "/config":
            return self._config()
        if path.endswith("/info"):
            return self._info()
        if path.endswith("/join"):
            return self._join(body, parsed)
        session_hash = request.query_params.get("session_hash")
        if session_hash is None:
            loc = ["query", "session_hash"]
            return _validation_error({"type": "missing", "loc": loc, "msg": "Field required"})
        return _EventStream(
            self._stream(session_hash), media_type="text/event-stream; charset=utf-8"
        )

    def _config(self) -> Response:
        script = self.script
        if script.config_status != 200:
            status = script.config_status
            detail = "Not Found" if status == 404 else "Internal Server Error"
            return JSONResponse({"detail": detail}, status)
        body: Any = script.config_body
        if body is None:
            if script.app == "chatinterface":
                body = build_chatinterface_config(script.version)
            else:
                body = build_config(script.version)
        raw = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else None
        if raw is None:
            raw = _dumps(body).encode()
        headers = {}
        if script.config_gzip:
            raw = gzip.compress(raw)
            headers["content-encoding"] = "gzip"
        return Response(raw, 200, headers=headers, media_type="application/json")

    def _info(self) -> Response:
        script = self.script
        if script.info_status != 200:
            return JSONResponse({"detail": "Internal Server Error"}, script.info_status)
        config = script.config_body
        if not isinstance(config, dict):
            config = (
                build_chatinterface_config(script.version)
                if script.app == "chatinterface"
                else build_config(script.version)
            )
        info = build_info(config, script.version)
        for name in script.info_hidden:
            info["named_endpoints"].pop(f"/{name}", None)
        return JSONResponse(info)

    def _join(self, raw: bytes, body: Any) -> Response:
        if body is None:
            try:
                json.loads(raw)
            except ValueError as exc:
                error = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                return _validation_error(
                    {
                        "type": "json_invalid",
                        "loc": ["body", 0],
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": error},
                    }
                )
        if not isinstance(body, dict):
            return _validation_error(
                {
                    "type": "model_attributes_type",
                    "loc": ["body"],
                    "input": body,
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                }
            )
        if "data" not in body:
            return _validation_error(
                {"type": "missing", "loc": ["body", "data"], "msg": "Field required", "input": body}
            )
        if not isinstance(body["data"], list):
            return _validation_error(
                {
                    "type": "list_type",
                    "loc": ["body", "data"],
                    "input": body["data"],
                    "msg": "Input should be a valid list",
                }
            )
        if body.get("session_hash") is None:
            return JSONResponse({"detail": "Session hash not found."}, 400)
        script = self.script
        if script.join_status != 200:
            payload = script.join_body
            if payload is None:
                payload = JOIN_ERROR_BODIES.get(script.join_status, {"detail": "Error"})
            if isinstance(payload, str):
                return PlainTextResponse(payload, script.join_status, script.join_headers)
            return JSONResponse(payload, script.join_status, script.join_headers)
        fn_index = body.get("fn_index")
        if fn_index is None:
            return JSONResponse({"detail": "No function index provided."}, 400)
        known = range(CI_DEPS[script.version]) if script.app == "chatinterface" else (0, 1, 2, 3)
        if fn_index not in known:
            return PlainTextResponse("Internal Server Error", 500)  # KeyError in get_fn
        event = _Event(uuid.uuid4().hex, int(fn_index), list(body["data"]))
        self._sessions.setdefault(str(body["session_hash"]), []).append(event)
        return JSONResponse({"event_id": event.event_id})

    # -- the event stream ----------------------------------------------------------------

    async def _stream(self, session_hash: str) -> AsyncIterator[str]:
        self._stream_opened()
        try:
            script = self.script
            m = _Messages(script.version)
            if script.first_event_delay:
                await asyncio.sleep(script.first_event_delay)
            events = self._sessions.pop(session_hash, [])
            if not events:  # gradio: HTTPException(404) inside the stream
                yield _sse(m.unexpected_error())
                raise _AbruptClose("session not found")
            if script.heartbeat_before_first:
                yield _sse(m.simple("heartbeat", None))
            if script.mode == "heartbeats_only":
                while True:  # a stuck queue: the client has to give up
                    await asyncio.sleep(script.heartbeat_interval)
                    yield _sse(m.simple("heartbeat", None))
            for index, event in enumerate(events):
                if event.fn_index in self._chat_fn_indexes():
                    ghost = script.other_session_events and index == 0
                    for line in self._chat_lines(event, m, ghost):
                        if isinstance(line, float):
                            await asyncio.sleep(line)
                        elif line is None:
                            await asyncio.Event().wait()  # hold open until cancelled
                        else:
                            yield line
                else:
                    yield _sse(m.estimation(event.event_id))
                    yield _sse(m.simple("process_starts", event.event_id, eta=None))
                    output = m.output(_other_fn_output(event), False, _Timer())
                    yield _sse(m.completed(event.event_id, output, True))
            if script.mode != "queue_full_msg":  # legacy message: the server just hangs up
                yield _sse(m.simple("close_stream", None))
        finally:
            self._stream_closed()

    def _chat_lines(self, event: _Event, m: _Messages, ghost: bool) -> Iterator[str | float | None]:
        """Lines of one ``model_chat`` event; a float = sleep, None = hold open forever."""
        script, eid = self.script, event.event_id
        fail_at = len(script.chunks) // 2 if script.fail_after is None else script.fail_after
        if script.mode == "unexpected_error" and fail_at == 0:
            yield _sse(m.unexpected_error())
            raise _AbruptClose("unexpected_error")
        if script.mode == "queue_full_msg":
            yield _sse(m.simple("queue_full", eid))
            return
        ghost_id = uuid.uuid4().hex
        if script.estimations is None:
            yield _sse(m.estimation(eid))
        for rank, size, eta in script.estimations or ():
            yield _sse(m.simple("estimation", eid, rank=rank, queue_size=size, rank_eta=eta))
        yield _sse(m.simple("process_starts", eid, eta=None))
        if ghost:
            yield _sse(m.simple("process_starts", ghost_id, eta=None))
        if script.raw_messages is not None:
            for text in script.raw_messages:
                yield f"data: {text.replace('EVENT_ID', eid)}\n\n"
            if script.hold_open:
                yield None
            return
        needed = 4 if script.app == "chatinterface" else 3
        if len(event.data) < needed:  # gradio: "didn't receive enough input values"
            yield _sse(m.failed(eid, None, title=None if m.v == "4" else "Error"))
            return
        if script.app == "chatinterface":
            yield from self._chatinterface_lines(event, m)
            return
        prompt, system = str(event.data[0]), str(event.data[2])
        history = _normalize_history(m.v, event.data[1])
        timer, ghost_timer = _Timer(), _Timer()
        previous: list[Any] | None = None
        ghost_previous: list[Any] | None = None
        reply = ""
        for sent, chunk in enumerate(script.chunks):
            if sent == fail_at and script.mode == "malformed":
                yield _MALFORMED
            elif sent == fail_at and script.mode != "ok":
                yield from self._fault(m, eid)
                return
            if script.chunk_delay:
                yield script.chunk_delay
            reply += chunk
            values = ["", chatbot_value(m.v, history, prompt, reply), system]
            data = (
                values
                if previous is None
                else [diff(a, b) for a, b in zip(previous, values, strict=True)]
            )
            previous = values
            yield _sse(m.generating(eid, data, timer))
            if ghost:
                ghost_values = ["", chatbot_value(m.v, [], "other", "✗" * (sent + 1)), "other"]
                ghost_data = ghost_values
                if ghost_previous is not None:
                    ghost_data = [
                        diff(a, b) for a, b in zip(ghost_previous, ghost_values, strict=True)
                    ]
                ghost_previous = ghost_values
                yield _sse(m.generating(ghost_id, ghost_data, ghost_timer))
        if fail_at >= len(script.chunks) and script.mode == "malformed":
            yield _MALFORMED
        elif fail_at >= len(script.chunks) and script.mode != "ok":
            yield from self._fault(m, eid)
            return
        if script.hold_open:
            yield None
        if ghost and ghost_previous is not None:
            yield _sse(m.completed(ghost_id, m.output(ghost_previous, False, ghost_timer), True))
        final = previous or ["", chatbot_value(m.v, history, prompt, ""), system]
        yield _sse(m.completed(eid, m.output(final, False, timer), True))
        if script.cut_after_completed:
            raise _AbruptClose("dropped after process_completed")

    def _chat_fn_indexes(self) -> tuple[int, ...]:
        return (CI_API_FN[self.script.version],) if self.script.app == "chatinterface" else CHAT_FNS

    def _chatinterface_lines(self, event: _Event, m: _Messages) -> Iterator[str | float | None]:
        """ChatInterface's API dependency: outputs ``[reply (json/textbox), state]``; the
        reply is the growing string (appended to), the state ``null`` then unchanged."""
        script, eid = self.script, event.event_id
        timer = _Timer()
        reply = ""
        previous: list[Any] | None = None
        for chunk in script.chunks:
            if script.chunk_delay:
                yield script.chunk_delay
            reply += chunk
            values: list[Any] = [reply, None]
            data = values if previous is None else [diff(previous[0], reply), []]
            previous = values
            yield _sse(m.generating(eid, data, timer))
        if script.hold_open:
            yield None
        final = previous or ["", None]
        yield _sse(m.completed(eid, m.output(final, False, timer), True))
        if script.cut_after_completed:
            raise _AbruptClose("dropped after process_completed")

    def _fault(self, m: _Messages, eid: str) -> Iterator[str]:
        """The failure of a non-"ok" mode ("close_early" sends nothing: close_stream follows)."""
        mode = self.script.mode
        if mode == "disconnect":
            raise _AbruptClose("dropped mid-stream")
        if mode == "fail":
            yield _sse(m.failed(eid, self.script.error_message))
        elif mode == "fail_hidden":
            yield _sse(m.failed(eid, None))
        elif mode == "unexpected_error":
            yield _sse(m.unexpected_error())
            raise _AbruptClose("unexpected_error")


def _other_fn_output(event: _Event) -> list[Any]:
    if event.fn_index == 2:  # clear_session
        return ["", []]
    system = str(event.data[0]) if event.data else ""
    return [system, system, []]  # modify_system_session


def _validation_error(error: dict[str, Any]) -> Response:
    """FastAPI's 422 body for a request-validation error."""
    error.setdefault("input", None)
    ordered = {k: error[k] for k in ("type", "loc", "msg", "input", "ctx") if k in error}
    return JSONResponse({"detail": [ordered]}, 422)


def _textbox(
    cid: int, label: str | None, value: str | None, visible: bool = True
) -> dict[str, Any]:
    props: dict[str, Any] = {
        "type": "text",
        "lines": 1,
        "label": label,
        "show_label": True,
        "visible": visible,
        "name": "textbox",
    }
    if value is not None:
        props["value"] = value
    return {
        "id": cid,
        "type": "textbox",
        "props": props,
        "skip_api": False,
        "api_info": {"type": "string"},
        "example_inputs": "Hello!!",
    }


def _button(cid: int, value: str) -> dict[str, Any]:
    props = {"value": value, "variant": "secondary", "visible": True, "name": "button"}
    return {"id": cid, "type": "button", "props": props, "skip_api": True}


def _block(cid: int, kind: str) -> dict[str, Any]:
    props = {"visible": True} if kind in ("row", "column") else {}
    return {"id": cid, "type": kind, "props": {**props, "name": kind}, "skip_api": True}


def _dependency(
    fid: int,
    name: str,
    targets: list[list[Any]],
    inputs: list[int],
    outputs: list[int],
    generator: bool,
    version: str = "5",
) -> dict[str, Any]:
    dep: dict[str, Any] = {
        "id": fid,
        "targets": targets,
        "inputs": inputs,
        "outputs": outputs,
        "backend_fn": True,
        "js": None,
        "queue": True,
        "api_name": name,
        "scroll_to_output": False,
        "show_progress": "full",
        "batch": False,
        "max_batch_size": 4,
        "cancels": [],
        "types": {"generator": generator, "cancel": False},
        "collects_event_data": False,
        "trigger_after": None,
        "trigger_only_on_success": False,
        "trigger_mode": "once",
        "rendered_in": None,
    }
    if version == "6":
        dep["api_visibility"] = "public"
    else:
        dep["show_api"] = True
    return dep


def build_config(version: str) -> dict[str, Any]:
    """``GET /config`` body for ``version`` (key set trimmed from real 4.44/5.50/6.31)."""
    chatbot_props: dict[str, Any] = {
        "value": [], "label": "qwen2-72B-instruct", "visible": True, "name": "chatbot"
    }  # fmt: skip
    if version in ("4", "5"):  # 6.x has no ``type`` prop: messages only
        chatbot_props["type"] = "tuples" if version == "4" else "messages"
    system = "You are a helpful assistant."
    components = [
        {
            "id": 1,
            "type": "markdown",
            "props": {"value": "<center><font size=8>Qwen2-72B-instruct Chat</center>"},
            "skip_api": True,
        },
        _block(2, "row"),
        _block(3, "column"),
        _textbox(SYSTEM, "System", system),
        _block(5, "form"),
        _block(6, "column"),
        _button(MODIFY, "🛠️ Set system prompt and clear history"),
        _textbox(SYSTEM_STATE, None, system, visible=False),
        _block(9, "form"),
        {"id": CHATBOT, "type": "chatbot", "props": chatbot_props, "skip_api": False},
        _textbox(TEXTBOX, "Input", None),
        _block(12, "row"),
        _button(CLEAR, "🧹 Clear history"),
        _button(SUBMIT, "🚀 Send"),
        _block(15, "form"),
    ]
    inputs, outputs = [TEXTBOX, CHATBOT, SYSTEM_STATE], [TEXTBOX, CHATBOT, SYSTEM]
    v = version
    dependencies = [
        _dependency(0, "model_chat", [[TEXTBOX, "submit"]], inputs, outputs, True, v),
        _dependency(1, "model_chat_1", [[SUBMIT, "click"]], inputs, outputs, True, v),
        _dependency(2, "clear_session", [[CLEAR, "click"]], [], [TEXTBOX, CHATBOT], False, v),
        _dependency(
            3, "modify_system_session", [[MODIFY, "click"]], [SYSTEM],
            [SYSTEM_STATE, SYSTEM, CHATBOT], False, v,
        ),
    ]  # fmt: skip
    layout = {
        "id": 0,
        "children": [
            {"id": 1},
            {
                "id": 2,
                "children": [
                    {"id": 3, "children": [{"id": 5, "children": [{"id": SYSTEM}]}]},
                    {"id": 6, "children": [{"id": MODIFY}]},
                    {"id": 9, "children": [{"id": SYSTEM_STATE}]},
                ],
            },
            {"id": CHATBOT},
            {"id": 15, "children": [{"id": TEXTBOX}]},
            {"id": 12, "children": [{"id": CLEAR}, {"id": SUBMIT}]},
        ],
    }
    config: dict[str, Any] = {
        "version": GRADIO_VERSIONS[version],
        "mode": "blocks",
        "dev_mode": False,
        "analytics_enabled": True,
        "enable_queue": True,
        "show_error": False,
        "title": "Gradio",
        "space_id": "Qwen/Qwen2-72B-Instruct",
        "protocol": "sse_v3",
        "components": components,
        "layout": layout,
        "dependencies": dependencies,
        "connect_heartbeat": False,
    }
    if version != "4":
        config["api_prefix"] = "/gradio_api"
    return config


CI_API_FN: dict[str, int] = {"4": 18, "6": 6}
"""``fn_index`` of ``gr.ChatInterface``'s API dependency (captured: 4.44.1, 6.31.0)."""
CI_DEPS: dict[str, int] = {"4": 19, "6": 31}
"""Number of dependencies of the captured ChatInterface (only a few are described)."""
CI_SYSTEM_DEFAULT = "You are a friendly chatbot."


def _component(cid: int, kind: str, props: dict[str, Any], skip_api: bool) -> dict[str, Any]:
    return {"id": cid, "type": kind, "props": {**props, "name": kind}, "skip_api": skip_api}


def build_chatinterface_config(version: str) -> dict[str, Any]:
    """``GET /config`` of ``gr.ChatInterface(fn, additional_inputs=[Textbox("System
    message"), Slider("Temperature")])`` (``scripts/demo_chatinterface.py``), trimmed from
    captures of real 4.44.1 and 6.31.0 servers: the API dependency bound to the hidden
    "Fake API" button, the chatbot, and one internal dependency that also reads a textbox
    and writes the chatbot (undocumented / ``show_api: false``), which discovery must skip."""
    if version not in CI_API_FN:
        raise ValueError(f"no ChatInterface capture for Gradio {version}")
    system = {"value": CI_SYSTEM_DEFAULT, "label": "System message", "visible": True}
    slider = {"minimum": 0.1, "maximum": 2.0, "value": 0.7, "step": 0.1, "label": "Temperature"}
    if version == "4":
        message, history, chatbot, reply, button = 11, 20, 4, 15, 14
        reply_type, state_props, message_label = "textbox", {"value": []}, "Message"
    else:
        message, history, chatbot, reply, button = 12, 16, 9, 15, 14
        reply_type, state_props, message_label = "json", {}, ""
    components = [
        _component(0, "textbox", system, False),
        _component(1, "slider", {**slider, "visible": True}, False),
        _component(chatbot, "chatbot", {"value": [], "label": "Chatbot"}, False),
        _component(message, "textbox", {"label": message_label, "visible": True}, False),
        _component(button, "button", {"value": "Fake API", "visible": False}, True),
        _component(reply, reply_type, {"label": "Response", "visible": False}, False),
        _component(history, "state", state_props, True),
    ]
    internal = _dependency(2, "_stream_fn" if version == "4" else "_submit_fn", [[None, "then"]],
                           [history, chatbot, 0, 1], [chatbot], True, version)  # fmt: skip
    api = _dependency(CI_API_FN[version], "chat" if version == "4" else "respond",
                      [[button, "click"]], [message, history, 0, 1], [reply, history], True,
                      version)  # fmt: skip
    if version == "4":
        internal["show_api"], api["show_api"] = False, True
    else:
        internal["api_visibility"], api["api_visibility"] = "undocumented", "public"
    config: dict[str, Any] = {
        "version": GRADIO_VERSIONS[version],
        "mode": "chat_interface",
        "title": "Local ChatInterface demo",
        "protocol": "sse_v3",
        "components": components,
        "layout": {"id": 0, "children": [{"id": c["id"]} for c in components]},
        "dependencies": [internal, api],
        "enable_queue": True,
    }
    if version != "4":
        config["api_prefix"] = "/gradio_api"
    return config


PARAMETER_NAMES: dict[str, list[str]] = {
    "model_chat": ["query", "history", "system"],
    "model_chat_1": ["query", "history", "system"],
    "modify_system_session": ["system"],
    "chat": ["message", "system", "temperature"],
    "respond": ["message", "system", "temperature"],
}
"""The functions' own parameter names, as ``/info`` gives them (``scripts/demo_*.py``)."""
_PYTHON_TYPES = {"textbox": "str", "slider": "float", "chatbot": "list", "json": "Any"}


def build_info(config: dict[str, Any], version: str) -> dict[str, Any]:
    """``GET {prefix}/info`` of ``config`` (shape captured from real 4.44.1 and 6.31.0
    servers): the documented dependencies (``show_api`` true / ``api_visibility``
    public) by ``/api_name``; state inputs and outputs are not parameters."""
    components = {c["id"]: c for c in config.get("components", []) if isinstance(c, dict)}
    named: dict[str, Any] = {}
    for dep in config.get("dependencies", []):
        name = dep.get("api_name")
        shown = dep.get("api_visibility", "public") == "public" and dep.get("show_api") is not False
        if not isinstance(name, str) or not shown or dep.get("backend_fn") is False:
            continue
        names = iter(PARAMETER_NAMES.get(name, []))
        parameters = []
        for cid in dep.get("inputs", []):
            kind = components.get(cid, {}).get("type", "")
            if kind == "state":
                continue
            props = components.get(cid, {}).get("props", {})
            value = props.get("value")
            parameters.append({
                "label": f"parameter_{cid}" if props.get("label") is None else props["label"],
                "parameter_name": next(names, f"param_{cid}"),
                "parameter_has_default": value is not None,
                "parameter_default": value,
                "type": {"type": "string"} if kind == "textbox" else {},
                "python_type": {"type": _PYTHON_TYPES.get(kind, "Any"), "description": ""},
                "component": kind.capitalize(),
                "example_input": "Hello!!" if kind == "textbox" else value,
            })  # fmt: skip
        returns = []
        for cid in dep.get("outputs", []):
            kind = components.get(cid, {}).get("type", "")
            if kind != "state":
                label = components.get(cid, {}).get("props", {}).get("label")
                returns.append({"label": label or f"value_{cid}", "type": {},
                                "python_type": {"type": _PYTHON_TYPES.get(kind, "Any"),
                                                "description": ""},
                                "component": kind.capitalize()})  # fmt: skip
        entry: dict[str, Any] = {"parameters": parameters, "returns": returns}
        if version == "6":
            entry |= {"api_visibility": "public", "description": "", "code_snippets": {}}
        else:
            entry["show_api"] = True
        named[f"/{name}"] = entry
    return {"named_endpoints": named, "unnamed_endpoints": {}}
