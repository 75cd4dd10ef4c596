"""What the server's cheaper per-request paths keep: metrics series, access-log records."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

import llmrelay
from llmrelay.server import _guard
from llmrelay.server._context import ACCESS_LOG
from llmrelay.server._guard import Guard, _clean
from llmrelay.server._metrics import Metrics


def test_a_cached_series_counts_in_the_exposition() -> None:
    metrics = Metrics()
    requests = metrics.child(metrics.requests, "chat", "p", "m", "200")
    requests.inc()
    metrics.child(metrics.requests, "chat", "p", "m", "200").inc()
    metrics.child(metrics.requests, "chat", "p", "m", "500").inc()
    metrics.child(metrics.duration, "chat", "p", "m").observe(0.3)
    text = metrics.render().decode()
    assert (
        'llmrelay_server_requests_total{endpoint="chat",model="m",provider="p",status="200"} 2.0'
        in text
    )
    assert (
        'llmrelay_server_requests_total{endpoint="chat",model="m",provider="p",status="500"} 1.0'
        in text
    )
    assert 'llmrelay_server_request_duration_seconds_count{endpoint="chat",model="m"' in text
    assert metrics.child(metrics.requests, "chat", "p", "m", "200") is requests


@pytest.mark.parametrize(
    "text",
    [
        "/v1/chat/completions",
        "a\\nb",  # a backslash: escaped, so that it cannot pass for an escape
        "line\nbreak",
        "tab\there",
        "\x1b[31mred",
        "\x7fdel",
        "caf\u00e9",
        "\u2028sep",
        "x" * 500,
        "é" * 300,
    ],
)
def test_clean_escapes_as_unicode_escape_does(text: str) -> None:
    assert _clean(text) == text.encode("unicode_escape").decode("ascii")[:200]
    assert _clean(text).isprintable()


def test_clean_marks_nothing_with_a_dash() -> None:
    assert _clean(None) == "-"
    assert _clean("") == "-"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _guarded_request(level: int) -> list[logging.LogRecord]:
    """One request through the Guard (its app answers 204); the access-log records."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        scope.setdefault("state", {})["llmrelay_target"] = ("prov", "mod\nel")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/v1/x\x1b", "headers": []}
    handler = _Records()
    saved = (ACCESS_LOG.level, ACCESS_LOG.propagate)
    ACCESS_LOG.addHandler(handler)
    ACCESS_LOG.setLevel(level)
    try:
        asyncio.run(Guard(app, api_key=None, max_body_bytes=1000)(scope, receive, send))
    finally:
        ACCESS_LOG.removeHandler(handler)
        ACCESS_LOG.setLevel(saved[0])
    return handler.records


def test_the_access_line_is_a_record_of_the_guard_with_its_fields() -> None:
    (record,) = _guarded_request(logging.INFO)
    assert record.name == "llmrelay.server.access"
    assert record.levelno == logging.INFO
    # the caller as Logger.info's stack search finds it: the guard's own line
    assert record.pathname == _guard.__file__
    assert record.funcName == "__call__"
    assert record.lineno > 0
    message = record.getMessage()
    method, path, status, seconds, provider, model = message.split(" ")
    assert (method, path, status) == ("POST", "/v1/x\\x1b", "204")
    assert seconds.endswith("s")
    assert float(seconds[:-1]) >= 0
    assert (provider, model) == ("provider=prov", "model=mod\\nel")


def test_the_access_line_follows_the_logger_level_and_record_factory() -> None:
    assert _guarded_request(logging.WARNING) == []
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def recording(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record)
        return record

    logging.setLogRecordFactory(recording)
    try:
        (record,) = _guarded_request(logging.INFO)
    finally:
        logging.setLogRecordFactory(factory)
    assert made == [record]


class _Transport:
    """A connection's transport as uvicorn's protocols use it; records writes and a close."""

    def __init__(self) -> None:
        self.events: list[bytes | str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.events.append(bytes(data))

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _connected(protocol: str, app: Any, request: bytes) -> Any:
    """``serve``'s bounded uvicorn ``protocol`` on a recording transport, given ``request``.

    Call inside a running loop; the transport is ``proto.transport``.
    """
    import uvicorn
    from uvicorn.server import ServerState

    from llmrelay.server import SocketLimits
    from llmrelay.server._sockets import BoundedH11Protocol, BoundedHttpToolsProtocol

    cls = {"httptools": BoundedHttpToolsProtocol, "h11": BoundedH11Protocol}[protocol]
    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    proto = cls(config=config, server_state=ServerState(), app_state={}, limits=SocketLimits())
    proto.connection_made(_Transport())
    proto.data_received(request)
    return proto


async def _completed(proto: Any) -> None:
    """Turn the loop until ``proto``'s response is complete (asserts it is)."""
    for _ in range(200):
        await asyncio.sleep(0)
        if proto.cycle is not None and proto.cycle.response_complete:
            break
    assert proto.cycle.response_complete


def _exchange(protocol: str, app: Any, request: bytes) -> list[bytes | str]:
    """``request`` through ``serve``'s bounded uvicorn protocol; what it wrote to the socket."""

    async def run() -> list[bytes | str]:
        proto = _connected(protocol, app, request)
        transport = proto.transport
        await _completed(proto)
        proto.connection_lost(None)
        events: list[bytes | str] = transport.events
        return events

    return asyncio.run(run())


REQUEST = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize("protocol", ["httptools", "h11"])
def test_a_streams_head_and_first_frame_go_out_in_one_write(protocol: str) -> None:
    if protocol == "httptools":
        pytest.importorskip("httptools")
    from llmrelay.server._sse import EventStreamResponse, Outbox

    async def produce(outbox: Outbox) -> None:
        for _ in range(3):
            await asyncio.sleep(0)  # the upstream is quiet: the writer runs
        outbox.put(b"data: 2\n\n")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        response = EventStreamResponse(produce, headers={"X-A": "b"}, first=b"data: 1\n\n")
        await response(scope, receive, send)

    events = _exchange(protocol, app, REQUEST)
    writes = [e for e in events if isinstance(e, bytes)]
    assert writes[0].startswith(b"HTTP/1.1 200 ")
    assert b"\r\nx-a: b\r\n" in writes[0].lower()
    assert writes[0].endswith(b"9\r\ndata: 1\n\n\r\n")  # the head and the first frame
    assert b"data: 2" in writes[1]
    assert b"data: 1" not in writes[1]
    assert writes[-1].endswith(b"0\r\n\r\n")


@pytest.mark.parametrize("protocol", ["httptools", "h11"])
def test_a_batch_writes_before_the_close_it_held(protocol: str) -> None:
    if protocol == "httptools":
        pytest.importorskip("httptools")
    from llmrelay.server._sse import EventStreamResponse, Outbox

    async def produce(outbox: Outbox) -> None:
        return  # an empty stream: the head and the body's end, then the close asked for

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await EventStreamResponse(produce, headers={})(scope, receive, send)

    request = REQUEST.replace(b"Host: t\r\n", b"Host: t\r\nConnection: close\r\n")
    events = _exchange(protocol, app, request)
    head_and_end, closed, *rest = events  # (the harness closes the connection again)
    assert isinstance(head_and_end, bytes)
    assert head_and_end.startswith(b"HTTP/1.1 200 ")
    assert head_and_end.endswith(b"0\r\n\r\n")
    assert closed == "close"
    assert set(rest) <= {"close"}


def test_the_batch_extension_is_offered_per_request() -> None:
    pytest.importorskip("httptools")
    from llmrelay.server._sockets import BATCH_WRITES

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        seen.append(scope["extensions"][BATCH_WRITES])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    _exchange("httptools", app, REQUEST)
    _exchange("httptools", app, REQUEST)
    assert len(seen) == 2
    assert all(callable(b) for b in seen)


@pytest.mark.parametrize("protocol", ["httptools", "h11"])
@pytest.mark.parametrize("lost_before_the_response", [False, True])
def test_a_client_leaving_cancels_the_producer_without_a_watcher_task(
    protocol: str, lost_before_the_response: bool
) -> None:
    if protocol == "httptools":
        pytest.importorskip("httptools")
    from llmrelay.server._sse import EventStreamResponse, Outbox

    seen: dict[str, Any] = {"receives": 0, "closed": False, "cancelled": False, "ran": False}

    async def produce(outbox: Outbox) -> None:
        seen["ran"] = True
        try:
            await asyncio.Event().wait()  # a silent upstream
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise

    async def on_close() -> None:
        seen["closed"] = True

    async def run() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            if lost_before_the_response:
                proto.connection_lost(None)

            async def counted() -> Any:
                seen["receives"] += 1
                return await receive()

            response = EventStreamResponse(produce, headers={}, on_close=on_close, first=b"x\n\n")
            await response(scope, counted, send)

        proto = _connected(protocol, app, REQUEST)
        for _ in range(20):
            await asyncio.sleep(0)
        if not lost_before_the_response:
            assert not seen["closed"]  # the producer holds the response open
            proto.connection_lost(None)
        for _ in range(20):
            await asyncio.sleep(0)
            if seen["closed"]:
                break
        assert seen["closed"], "the response did not end when the client left"

    asyncio.run(run())
    # cancelled while waiting, or (the client gone before) before it ever ran
    assert seen["cancelled"] if seen["ran"] else lost_before_the_response
    assert seen["closed"]
    assert seen["receives"] == 0  # no task waited on receive for http.disconnect


@pytest.mark.parametrize("protocol", ["httptools", "h11"])
def test_a_finished_stream_forgets_its_disconnect_callback(protocol: str) -> None:
    """On a kept-alive connection each finished stream takes its callback back (a
    connection serving many streams would otherwise keep one per stream)."""
    if protocol == "httptools":
        pytest.importorskip("httptools")
    from llmrelay.server._sse import EventStreamResponse, Outbox

    registered: list[int] = []
    protos: list[Any] = []

    async def produce(outbox: Outbox) -> None:
        registered.append(len(protos[0]._on_lost))
        outbox.put(b"data: 2\n\n")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await EventStreamResponse(produce, headers={}, first=b"data: 1\n\n")(scope, receive, send)

    async def run() -> int:
        proto = _connected(protocol, app, REQUEST)
        protos.append(proto)
        await _completed(proto)
        for _ in range(5):
            await asyncio.sleep(0)
        left = len(proto._on_lost)
        proto.connection_lost(None)
        return left

    left = asyncio.run(run())
    assert registered == [1]  # the stream listened for the client leaving
    assert left == 0  # and forgot it when it ended


@pytest.fixture
def saved_garbage() -> Any:
    """The cyclic collector off, then saving what it finds (``gc.garbage``); restored after."""
    import gc

    gc.collect()
    enabled, flags = gc.isenabled(), gc.get_debug()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
        if enabled:
            gc.enable()


@pytest.mark.parametrize("protocol", ["httptools", "h11"])
def test_a_finished_stream_leaves_no_reference_cycle_through_the_protocol(
    protocol: str, saved_garbage: list[Any]
) -> None:
    """The scope's extensions refer to their cycle and protocol weakly: a finished request's
    protocol, cycle and scope are freed when the last reference goes, not by the cyclic
    collector (whose collections then pause every request being served)."""
    if protocol == "httptools":
        pytest.importorskip("httptools")
    import gc
    import weakref

    from llmrelay.server._sockets import BATCH_WRITES, ON_DISCONNECT
    from llmrelay.server._sse import EventStreamResponse, Outbox

    async def produce(outbox: Outbox) -> None:
        outbox.put(b"data: 2\n\n")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        assert {BATCH_WRITES, ON_DISCONNECT} <= set(scope["extensions"])
        await EventStreamResponse(produce, headers={}, first=b"data: 1\n\n")(scope, receive, send)

    async def run() -> tuple[weakref.ref[Any], weakref.ref[Any], list[bytes | str]]:
        proto = _connected(protocol, app, REQUEST)
        await _completed(proto)
        for _ in range(5):
            await asyncio.sleep(0)
        proto.connection_lost(None)
        events: list[bytes | str] = proto.transport.events
        return weakref.ref(proto), weakref.ref(proto.cycle), events

    proto, cycle, events = asyncio.run(run())
    assert any(isinstance(e, bytes) and b"data: 2" in e for e in events)
    assert proto() is None, "the protocol is held in a reference cycle"
    assert cycle() is None, "the request's cycle is held in a reference cycle"
    gc.collect()
    assert not [o for o in saved_garbage if type(o).__name__ in ("RequestResponseCycle", "partial")]


def test_the_extensions_of_a_request_whose_connection_is_gone_still_answer() -> None:
    """Weakly held: once the protocol and cycle are gone, the batch is a no-op and a
    disconnect callback runs at once (the client is gone)."""
    import weakref

    from llmrelay.server._sockets import _batched, _when_lost

    class Gone:
        pass

    gone = weakref.ref(Gone())
    with _batched(gone):
        pass
    called: list[int] = []
    forget = _when_lost(gone, lambda: called.append(1))
    assert called == [1]
    forget()  # nothing to forget


def test_a_streamed_chat_request_through_serve_leaves_no_reference_cycle(
    tmp_path: Any, saved_garbage: list[Any]
) -> None:
    """A streamed chat completion (the route, the engine's stream and its SSE frames)
    through serve's protocol is freed by reference counting, not the cyclic collector."""
    pytest.importorskip("httptools")
    import gc
    import json

    from tests.server import scripted

    import llmrelay
    from llmrelay.server import ServerConfig, create_app

    config = tmp_path / "config.toml"
    config.write_text("")
    client = llmrelay.AsyncClient(
        providers=list(scripted.ALL), config_path=str(config), retries=0, cooldown=0
    )
    app = create_app(client, config=ServerConfig())
    body = json.dumps(
        {"model": "alpha:m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )

    async def one() -> list[bytes | str]:
        proto = _connected("httptools", app, request)
        await _completed(proto)
        for _ in range(5):
            await asyncio.sleep(0)
        proto.connection_lost(None)
        events: list[bytes | str] = proto.transport.events
        return events

    async def run() -> list[bytes | str]:
        await one()  # the first request imports and builds what later ones reuse
        gc.collect()
        saved_garbage.clear()
        events = await one()
        await client.aclose()
        return events

    events = asyncio.run(run())
    body_out = b"".join(e for e in events if isinstance(e, bytes))
    assert b"Hello" in body_out
    assert b"data: [DONE]" in body_out
    gc.collect()
    kinds = {type(o).__name__ for o in saved_garbage}
    held = kinds & {
        "BoundedHttpToolsProtocol",
        "RequestResponseCycle",
        "AsyncChatCompletionStream",
        "ChunkFrames",
        "EventStreamResponse",
        "Outbox",
    }
    assert not held, f"held in reference cycles: {sorted(held)}"


@pytest.mark.parametrize("freeze", [False, True])
def test_the_app_freezes_the_heap_at_start_up_only_when_configured(
    tmp_path: Any, freeze: bool
) -> None:
    """``ServerConfig.freeze_heap`` (serve's): the objects alive after start-up are frozen
    (``gc.freeze``); an app embedded elsewhere leaves that process's collector alone."""
    import gc

    from tests.server import scripted

    import llmrelay
    from llmrelay.server import ServerConfig, create_app

    config = tmp_path / "config.toml"
    config.write_text("")
    client = llmrelay.AsyncClient(providers=list(scripted.ALL), config_path=str(config))
    app = create_app(client, config=ServerConfig(freeze_heap=freeze))
    marker = object()  # alive before start-up ends: frozen with the rest when configured

    async def run() -> int:
        startup: asyncio.Queue[Any] = asyncio.Queue()
        replies: asyncio.Queue[Any] = asyncio.Queue()
        await startup.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        lifespan = asyncio.create_task(app(scope, startup.get, replies.put))
        assert (await replies.get())["type"] == "lifespan.startup.complete"
        frozen = gc.get_freeze_count()
        await startup.put({"type": "lifespan.shutdown"})
        await lifespan
        await client.aclose()
        return frozen

    gc.unfreeze()
    try:
        frozen = asyncio.run(run())
    finally:
        gc.unfreeze()
    assert marker is not None
    if freeze:
        assert frozen > 1000  # the modules, the app, the client: everything alive
    else:
        assert frozen == 0


@pytest.mark.parametrize("as_sse", [False, True])
def test_a_finished_chunk_stream_is_freed_without_the_cyclic_collector(
    tmp_path: Any, saved_garbage: list[Any], as_sse: bool
) -> None:
    """A stream's chunk converter (iterating chunks) or SSE encoder (``sse()``) holds the
    engine's events for its usage estimate, not the stream: no reference cycle."""
    import gc
    import weakref

    from tests.server import scripted

    import llmrelay

    config = tmp_path / "config.toml"
    config.write_text("")

    async def run() -> tuple[weakref.ref[Any], str]:
        async with llmrelay.AsyncClient(
            providers=list(scripted.ALL), config_path=str(config), retries=0
        ) as client:
            stream = await client.chat.completions.create(
                model="alpha:m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            if as_sse:
                frames = stream.sse()
                text = b"".join([frame async for frame in frames]).decode()
                del frames
            else:
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in stream if c.choices]
                )
            await stream.aclose()
            return weakref.ref(stream), text

    ref, text = asyncio.run(run())
    assert "Hello" in text
    assert ref() is None, "the stream is held in a reference cycle"
    gc.collect()


@pytest.mark.parametrize(
    ("msg", "args", "expected"),
    [
        ("%s %s %s", ("POST", "/v1/chat/completions", 200), "POST /v1/chat/completions 200"),
        ("upstream %s failed", ("https://api.example/v1?key=s",), "upstream <url> failed"),
        ("see http://a.example/x and ftp://b.example", None, "see <url> and <url>"),
        ("a path /v1/x:// no scheme", None, "a path /v1/x:// no scheme"),
        ("100%% done", None, "100%% done"),  # no args: the message as it is
    ],
)
def test_the_redaction_filter_renders_the_message_and_replaces_every_url(
    msg: str, args: tuple[Any, ...] | None, expected: str
) -> None:
    from llmrelay.server._logs import RedactURLs

    record = logging.LogRecord("llmrelay.server.access", logging.INFO, "f", 1, msg, args, None)
    assert RedactURLs().filter(record)
    assert record.msg == expected
    assert record.args is None
    assert record.getMessage() == expected
    assert RedactURLs().filter(record)  # once: a second filter leaves it
    assert record.msg == expected


class _Socket:
    def __init__(self, sockname: Any, peername: Any) -> None:
        self.sockname, self.peername = sockname, peername

    def getsockname(self) -> Any:
        return self.sockname

    def getpeername(self) -> Any:
        return self.peername


@pytest.mark.parametrize("protocol", ["httptools", "h11"])
@pytest.mark.parametrize(
    ("sockname", "peername"),
    [
        (("127.0.0.1", 8000), ("127.0.0.1", 50123)),
        (("::1", 8000, 0, 0), ("::1", 50123, 0, 0)),  # IPv6: four fields
        ("/run/serve.sock", ""),  # a Unix socket
        (None, None),
    ],
)
def test_a_connection_gets_the_addresses_uvicorn_would_give_it(
    protocol: str, sockname: Any, peername: Any
) -> None:
    """serve's protocols take the addresses the loop read at accept; uvicorn's asked the
    socket: the same ``server``, ``client`` and ``scheme`` either way."""
    if protocol == "httptools":
        pytest.importorskip("httptools")
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from llmrelay.server import SocketLimits
    from llmrelay.server._sockets import BoundedH11Protocol, BoundedHttpToolsProtocol

    class Transport(_Transport):
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            extra = {
                "socket": _Socket(sockname, peername),
                "sockname": sockname,
                "peername": peername,
            }
            return extra.get(name, default)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    plain, bounded = {
        "httptools": (HttpToolsProtocol, BoundedHttpToolsProtocol),
        "h11": (H11Protocol, BoundedH11Protocol),
    }[protocol]
    config = uvicorn.Config(app, lifespan="off", log_level="warning")

    async def run() -> list[Any]:
        seen = []
        for cls, extra in ((plain, {}), (bounded, {"limits": SocketLimits()})):
            state = ServerState()
            proto = cls(config=config, server_state=state, app_state={}, **extra)
            transport = Transport()
            proto.connection_made(transport)
            assert proto in state.connections
            assert proto.transport is transport
            assert proto.flow._transport is transport
            seen.append((proto.server, proto.client, proto.scheme))
            proto.connection_lost(None)
        return seen

    uvicorn_gives, serve_gives = asyncio.run(run())
    assert serve_gives == uvicorn_gives


def test_uvicorns_connection_made_is_the_one_serve_stands_in_for() -> None:
    """``_Bounded.connection_made`` does what uvicorn 0.55's does, with the loop's cached
    addresses: a different uvicorn ``connection_made`` must be looked at again."""
    import hashlib
    import inspect

    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    for cls in (HttpToolsProtocol, H11Protocol):
        source = inspect.getsource(cls.connection_made)
        assert hashlib.sha256(source.encode()).hexdigest()[:16] == "6efb565ff3d36b91", cls


def test_a_real_connection_gets_its_addresses_on_both_loops() -> None:
    """Over real sockets (asyncio's loop and uvloop): the scope's ``client`` and
    ``server`` are the connection's two ends."""
    pytest.importorskip("httptools")
    uvloop = pytest.importorskip("uvloop")
    import uvicorn
    from uvicorn.server import ServerState

    from llmrelay.server import SocketLimits
    from llmrelay.server._sockets import protocol_factory

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["client"], scope["server"]))
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    config.load()
    factory = protocol_factory(SocketLimits())

    async def one() -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        state = ServerState()
        server = await loop.create_server(
            lambda: factory(config=config, server_state=state, app_state={}), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        local = writer.get_extra_info("socket").getsockname()
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 204")
        writer.close()
        server.close()
        await server.wait_closed()
        return local, ("127.0.0.1", port)

    for run in (asyncio.run, uvloop.run):
        seen.clear()
        client, server = run(one())
        assert seen == [(client, server)]


@pytest.mark.parametrize("protocol", ["httptools", "h11"])
def test_a_body_that_came_with_its_head_is_marked_received(protocol: str) -> None:
    """``BODY_RECEIVED`` only when the whole body was parsed before the app started."""
    if protocol == "httptools":
        pytest.importorskip("httptools")
    from llmrelay.server._sockets import BODY_RECEIVED

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["extensions"].get(BODY_RECEIVED))
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    _exchange(protocol, app, REQUEST)
    head, body = REQUEST[:-2], REQUEST[-2:]

    async def later() -> None:  # the body comes after the app started
        proto = _connected(protocol, app, head)
        for _ in range(3):
            await asyncio.sleep(0)
        proto.data_received(body)
        await _completed(proto)
        proto.connection_lost(None)

    asyncio.run(later())
    assert seen == [True, None]


@pytest.mark.parametrize("received", [True, False])
def test_the_guard_keeps_no_body_deadline_for_a_body_that_is_there(
    received: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmrelay.server._guard import Guard
    from llmrelay.server._sockets import BODY_RECEIVED

    timers: list[float] = []
    timeout_at = asyncio.timeout_at

    def counted(when: float | None) -> Any:
        timers.append(when or 0.0)
        return timeout_at(when)

    monkeypatch.setattr(asyncio, "timeout_at", counted)

    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "headers": [],
        "extensions": {BODY_RECEIVED: True} if received else {},
    }
    guard = Guard(app, api_key=None, max_body_bytes=1, body_timeout=5.0)
    asyncio.run(guard(dict(scope), receive, send))
    assert sent[0]["status"] == 413  # the size is still counted
    sent.clear()
    guard = Guard(app, api_key=None, max_body_bytes=100, body_timeout=5.0)
    asyncio.run(guard(dict(scope), receive, send))
    assert sent[0]["status"] == 204
    assert got == [
        {"type": "http.disconnect"},
        {"type": "http.request", "body": b"{}", "more_body": False},
    ]
    assert len(timers) == (0 if received else 2)


class _RememberingStore:
    """A conversation store that has states for any history (the restore path)."""

    async def get(self, key: str) -> Any:
        return {"alpha": {"data": {"session": "s"}, "index": 1}}

    async def put(self, key: str, states: Any) -> None:
        pass


def test_a_requests_conversation_draws_no_random_id(
    base_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-request ``Conversation`` (fresh or restored) gets a counted id, no uuid4."""
    import uuid

    from tests.server.test_fast_path import CHAT, _through_app

    def refused() -> Any:
        raise AssertionError("uuid4 drawn for a request's conversation")

    monkeypatch.setattr(uuid, "uuid4", refused)
    history = {
        **CHAT,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "more"},
        ],
    }
    responses = _through_app(
        base_config,
        [("POST", "/v1/chat/completions", CHAT), ("POST", "/v1/chat/completions", history)],
        store=_RememberingStore(),
    )
    assert [r.status_code for r in responses] == [200, 200]
    assert all(r.text.endswith("data: [DONE]\n\n") for r in responses)


_USER = {"role": "user", "content": "hi"}
_BODIES: list[Any] = [
    {"messages": [_USER]},
    {"messages": [_USER], "stream": True, "stream_options": {"include_usage": True}},
    {"messages": [_USER], "stream_options": "yes"},
    {"messages": [_USER], "stream_options": ["include_usage"]},
    {"messages": [_USER], "stream_options": 1},
    {"messages": ["hi"]},
    {"messages": [[["user", "hi"]]]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, "b"]}]},
    {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": "f"}]}]},
    {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": [1]}]}]},
    {"messages": [_USER], "tools": [{"type": "function"}], "tool_choice": {"type": "auto"}},
    {"messages": [_USER], "metadata": {"a": 1}, "logit_bias": {"1": 2.5}, "stop": ["x", 2]},
    {"messages": [_USER], "temperature": "0.5", "seed": 2**63, "n": True},
    {"messages": [_USER], "temperature": "0.5", "max_tokens": 7.0, "stream": "true"},
    {"messages": [_USER], "options": {"x": [1, {"y": None}]}, "model": 3},
]


@pytest.mark.parametrize("body", _BODIES)
def test_the_fast_path_validates_a_json_body_as_fastapi_does(body: Any) -> None:
    """Without ``from_attributes`` (FastAPI's ``validate_python`` sets it): the same model
    for values JSON gives (pydantic reads no builtins value's attributes), and ``None`` for
    a body FastAPI refuses (the route then answers with FastAPI's own errors).
    """
    from pydantic import ValidationError

    from llmrelay.server._fast import ChatFastPath
    from llmrelay.server._schemas import ChatCompletionRequest

    raw = json.dumps(body).encode()
    try:
        expected: Any = ChatCompletionRequest.model_validate(json.loads(raw), from_attributes=True)
    except ValidationError:
        expected = None
    fast = ChatFastPath(
        lambda *a: None,  # type: ignore[arg-type,return-value]
        endpoint=lambda *a: None,  # type: ignore[arg-type,return-value]
        model=ChatCompletionRequest,
    )
    parsed = fast._parse(raw)
    assert parsed == expected
    if expected is not None:
        assert parsed is not None
        assert parsed.model_fields_set == expected.model_fields_set


def test_a_chat_body_sent_as_text_gets_fastapis_answer_not_the_fast_paths(
    base_config: Any,
) -> None:
    """Only ``candidate`` requests reach the front fast path (it does not check again)."""
    from tests.server.test_fast_path import CHAT

    from llmrelay.server import create_app

    async def run(cors: tuple[str, ...]) -> httpx.Response:
        from dataclasses import replace

        async with llmrelay.AsyncClient(**base_config.client_kwargs) as client:
            app = create_app(client, config=replace(base_config, cors_origins=cors))
            transport = httpx.ASGITransport(app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                return await http.post(
                    "/v1/chat/completions",
                    content=json.dumps(CHAT),
                    headers={"Content-Type": "text/plain", "Authorization": "Bearer k"},
                )

    front = asyncio.run(run(()))
    route = asyncio.run(run(("http://page.test",)))  # CORS: no front, FastAPI's route
    assert (front.status_code, front.text) == (route.status_code, route.text)
    assert front.status_code != 200
