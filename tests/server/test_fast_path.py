"""``ChatFastPath``: which requests it answers itself, and that it hands the rest on
with the body it read replayed (the route then answers them as before)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import Request
from fastapi.responses import Response
from opentelemetry import trace
from starlette.types import Message, Receive, Scope, Send
from tests.server import scripted

import llmrelay
from llmrelay.server._fast import ChatFastPath
from llmrelay.server._schemas import ChatCompletionRequest

BODY = json.dumps({"model": "alpha:m", "messages": [{"role": "user", "content": "hi"}]}).encode()


class _Downstream:
    def __init__(self) -> None:
        self.calls: list[list[Message]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        got = [await receive()]
        while got[-1]["type"] == "http.request" and got[-1].get("more_body"):
            got.append(await receive())
        self.calls.append(got)


def _run(scope_changes: dict[str, Any], pieces: list[bytes]) -> tuple[_Downstream, list[Any]]:
    downstream = _Downstream()
    bodies: list[Any] = []

    async def endpoint(request: Request, body: Any) -> Response:
        bodies.append(body)
        return Response(b"ok")

    messages: list[Message] = [
        {"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
        for i, p in enumerate(pieces)
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        **scope_changes,
    }
    app = ChatFastPath(downstream, endpoint=endpoint, model=ChatCompletionRequest)
    asyncio.run(app(scope, receive, send))
    if bodies:
        assert sent[0]["status"] == 200
    return downstream, bodies


def test_a_valid_body_in_pieces_goes_straight_to_the_endpoint() -> None:
    downstream, bodies = _run({}, [BODY[:10], BODY[10:20], BODY[20:]])
    assert downstream.calls == []
    assert bodies == [ChatCompletionRequest.model_validate_json(BODY)]


@pytest.mark.parametrize(
    ("changes", "pieces"),
    [
        ({"path": "/v1/chat/completions/"}, [BODY]),
        ({"method": "PUT"}, [BODY]),
        ({"root_path": "/api"}, [BODY]),
        ({"fastapi.telemetry": object()}, [BODY]),
        ({"headers": []}, [BODY]),
        ({"headers": [(b"content-type", b"text/plain")]}, [BODY]),
        ({}, [b""]),
        ({}, [b"{nope"]),
        ({}, [b"[1]"]),
        ({}, [b'{"messages": []}']),
        ({}, [b"\xff\xfe"]),
    ],
)
def test_the_rest_goes_to_the_route_with_the_body_replayed(
    changes: dict[str, Any], pieces: list[bytes]
) -> None:
    downstream, bodies = _run(changes, [p[:3] for p in pieces] + [p[3:] for p in pieces])
    assert bodies == []
    assert len(downstream.calls) == 1
    assert b"".join(m.get("body", b"") for m in downstream.calls[0]) == b"".join(pieces)


def test_a_disconnect_while_reading_is_replayed_to_the_route() -> None:
    downstream, bodies = _run({}, [BODY[:5], BODY[5:9]])  # more_body, then a disconnect
    downstream_types = [m["type"] for m in downstream.calls[0]]
    assert bodies == []
    assert downstream_types == ["http.request", "http.request"]


class _Span(trace.NonRecordingSpan):
    def __init__(self, name: str, record: list[Any]) -> None:
        super().__init__(trace.INVALID_SPAN_CONTEXT)
        self.record = record
        record.append(("start", name))

    def set_attribute(self, key: str, value: Any) -> None:
        self.record.append((key, value))

    def update_name(self, name: str) -> None:
        self.record.append(("name", name))

    def end(self, end_time: int | None = None) -> None:
        self.record.append(("end", None))


class _Tracer(trace.Tracer):
    def __init__(self, record: list[Any]) -> None:
        self.record = record

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        return _Span(name, self.record)

    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return trace.use_span(_Span(name, self.record), end_on_exit=True)


class _Provider(trace.TracerProvider):
    def __init__(self) -> None:
        self.record: list[Any] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _Tracer(self.record)


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> _Provider:
    provider = _Provider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return provider


def test_a_traced_request_takes_the_route_and_its_span_names_it(
    server_url: str, traced: _Provider
) -> None:
    scripted.SCRIPTS["alpha"] = ["Hi", llmrelay.FinishReason("stop")]
    response = httpx.post(
        server_url + "/v1/chat/completions",
        content=BODY,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert ("http.route", "/v1/chat/completions") in traced.record
    assert ("name", "POST /v1/chat/completions") in traced.record


# -- the front: the fast path before FastAPI's own middleware -----------------------------


class _Seen:
    """A middleware added to the app: which requests went through FastAPI's stack."""

    paths: list[str]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _Seen.paths.append(scope["path"])
        await self.app(scope, receive, send)


class _BrokenStore:
    async def get(self, key: str) -> Any:
        raise RuntimeError("the store is down")

    async def put(self, key: str, states: Any) -> None:
        raise RuntimeError("the store is down")


def _through_app(
    base_config: Any, requests: list[tuple[str, str, Any]], store: Any = None, **config: Any
) -> list[httpx.Response]:
    """``requests`` ((method, path, json body)) through ``create_app`` in this process."""
    from dataclasses import replace

    from llmrelay.server import create_app

    _Seen.paths = []

    async def run() -> list[httpx.Response]:
        async with llmrelay.AsyncClient(**base_config.client_kwargs) as client:
            app = create_app(client, config=replace(base_config, **config), store=store)
            app.add_middleware(_Seen)
            transport = httpx.ASGITransport(app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                return [
                    await http.request(
                        method, path, json=body, headers={"Authorization": "Bearer k"}
                    )
                    for method, path, body in requests
                ]

    return asyncio.run(run())


CHAT = {"model": "alpha:m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
INVALID = {"model": "alpha:m", "messages": []}


@pytest.mark.parametrize("cors", [(), ("http://page.test",)])
def test_a_valid_chat_request_skips_fastapis_middleware_unless_cors_is_set(
    base_config: Any, cors: tuple[str, ...]
) -> None:
    responses = _through_app(
        base_config,
        [("POST", "/v1/chat/completions", CHAT), ("POST", "/v1/chat/completions", INVALID)],
        cors_origins=cors,
    )
    streamed, refused = responses
    assert streamed.status_code == 200
    assert "Hello" in streamed.text
    assert streamed.text.endswith("data: [DONE]\n\n")
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "messages"
    # without CORS the valid request went through the front alone, the refused one was
    # handed to the whole app (its error reply); with CORS both go through FastAPI's stack
    expected = ["/v1/chat/completions"] * (2 if cors else 1)
    assert _Seen.paths == expected


@pytest.mark.parametrize("cors", [(), ("http://page.test",)])
def test_an_unexpected_error_gets_the_same_500_through_the_front(
    base_config: Any, cors: tuple[str, ...]
) -> None:
    history = {
        **CHAT,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "more"},
        ],
    }
    (response,) = _through_app(
        base_config,
        [("POST", "/v1/chat/completions", history)],
        store=_BrokenStore(),
        cors_origins=cors,
    )
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "message": "internal server error",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert response.headers["content-type"] == "application/json"


def test_the_front_checks_the_key_and_logs_each_request_once(
    base_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="llmrelay.server.access")
    responses = _through_app(
        base_config,
        [
            ("POST", "/v1/chat/completions", CHAT),
            ("POST", "/v1/chat/completions", INVALID),
            ("GET", "/health", None),
        ],
        api_key="k",
    )
    assert [r.status_code for r in responses] == [200, 400, 200]
    lines = [r.getMessage() for r in caplog.records if r.name == "llmrelay.server.access"]
    assert [line.split(" ")[:3] for line in lines] == [
        ["POST", "/v1/chat/completions", "200"],
        ["POST", "/v1/chat/completions", "400"],
        ["GET", "/health", "200"],
    ]
    refused = _through_app(base_config, [("POST", "/v1/chat/completions", CHAT)], api_key="k2")
    assert refused[0].status_code == 401


@pytest.mark.parametrize(
    "number",
    [
        "123456789012345678901234567890",
        "-9223372036854775809",  # 19 digits, below -2**63
        "18446744073709551616",  # 2**64
        "9223372036854775807",
        "0.1",
        "-0.0",
        "1e-7",
        "2.5E+300",
    ],
)
def test_numbers_reach_the_endpoint_as_json_loads_reads_them(number: str) -> None:
    schema = '{"type": "function", "function": {"name": "f", "parameters": {"maximum": %s}}}'
    body = BODY[:-1] + b', "tools": [' + (schema % number).encode() + b"]}"
    downstream, bodies = _run({}, [body])
    assert downstream.calls == []
    (parsed,) = bodies
    value = parsed.tools[0]["function"]["parameters"]["maximum"]
    expected = json.loads(number)
    assert type(value) is type(expected)
    assert value == expected
    assert str(value) == str(expected)


@pytest.mark.parametrize("special", [b"NaN", b"Infinity", b'"\\ud800"', b'"\\u00e9"'])
def test_what_orjson_refuses_is_read_by_json_loads(special: bytes) -> None:
    body = BODY[:-1] + b', "metadata": {"k": "v"}, "user": ' + special + b"}"
    downstream, bodies = _run({}, [body])
    # json.loads reads each; the model accepts or refuses it as the route would decide
    try:
        expected = ChatCompletionRequest.model_validate(json.loads(body), from_attributes=True)
    except ValueError:
        assert bodies == []
        assert len(downstream.calls) == 1
    else:
        assert downstream.calls == []
        assert bodies == [expected]
