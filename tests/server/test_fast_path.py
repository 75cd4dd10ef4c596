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
