"""The exchange log keeps an answer's tool calls whichever shape asked and however it was
answered: chat completions, Responses and Anthropic Messages, streamed and whole."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.server import scripted

from llmrelay.types import FinishReason, ToolCallDelta, Usage

WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CALL = {"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}


def _requests() -> list[tuple[str, dict[str, Any]]]:
    chat_tool = {"type": "function", "function": WEATHER}
    responses_tool = {"type": "function", **WEATHER}
    messages_tool = {"name": WEATHER["name"], "input_schema": WEATHER["parameters"]}
    chat = {"model": "alpha:m", "messages": [{"role": "user", "content": "Paris?"}]}
    responses = {"model": "alpha:m", "input": "Paris?"}
    messages = {**chat, "max_tokens": 50}
    return [
        ("/v1/chat/completions", {**chat, "tools": [chat_tool]}),
        ("/v1/chat/completions", {**chat, "tools": [chat_tool], "stream": True}),
        ("/v1/responses", {**responses, "tools": [responses_tool]}),
        ("/v1/responses", {**responses, "tools": [responses_tool], "stream": True}),
        ("/v1/messages", {**messages, "tools": [messages_tool]}),
        ("/v1/messages", {**messages, "tools": [messages_tool], "stream": True}),
    ]


def test_every_shape_logs_the_answers_tool_calls(
    make_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "log.db"
    monkeypatch.setenv("LLMRELAY_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("LLMRELAY_HOME", str(tmp_path / "home"))
    url = make_server()
    requests = _requests()
    for path, body in requests:
        scripted.SCRIPTS["alpha"] = [
            ToolCallDelta(0, "call_1", "get_weather", '{"city"'),
            ToolCallDelta(0, arguments=':"Paris"}'),
            Usage(9, 5, 14),
            FinishReason("tool_calls"),
        ]
        answer = httpx.post(url + path, json=body, timeout=10)
        assert answer.status_code == 200, (path, answer.text)
    rows: list[tuple[str | None]] = []
    deadline = time.monotonic() + 15
    while len(rows) < len(requests) and time.monotonic() < deadline:
        time.sleep(0.05)
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT tool_calls FROM exchanges ORDER BY id").fetchall()
    assert [json.loads(row[0] or "null") for row in rows] == [[CALL]] * len(requests)
