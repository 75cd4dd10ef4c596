"""What the server's cheaper per-request paths keep: metrics series, access-log records."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

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
    assert seconds.endswith("s") and float(seconds[:-1]) >= 0
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
