"""The Node SDKs against ``llmrelay serve`` on loopback: ``@anthropic-ai/sdk`` (Messages) and
the Vercel AI SDK's default ``openai(model)`` provider (the Responses API).

The packages are installed in ``tests/node`` by ``scripts/setup_node.sh`` (run by
``scripts/setup_system.sh``); without Node or them the tests are skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.server import scripted

from llmrelay.types import FinishReason, Reasoning, ToolCallDelta, Usage

NODE_DIR = Path(__file__).parent.parent / "node"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "ai").is_dir(),
    reason="Node or tests/node/node_modules missing (run scripts/setup_node.sh)",
)


def node(script: str, url: str, case: str) -> Any:
    assert NODE is not None
    done = subprocess.run(
        [NODE, script, url, "test-key", case],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- @anthropic-ai/sdk ----------------------------------------------------------------


def test_anthropic_node_create(server_url: str) -> None:
    message = node("anthropic_sdk.mjs", server_url, "create")["message"]
    assert message["content"] == [{"type": "text", "text": "Hello, world!"}]
    assert message["stop_reason"] == "end_turn"
    request = scripted.LOG["alpha"].requests[-1]
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "Say hi"),
    ]
    assert request.max_tokens == 50


def test_anthropic_node_stream(server_url: str) -> None:
    result = node("anthropic_sdk.mjs", server_url, "stream")
    assert "".join(result["text"]) == "Hello, world!"
    assert result["events"][0] == "message_start"
    assert result["events"][-1] == "message_stop"
    assert result["message"]["usage"]["output_tokens"] == 3


def test_anthropic_node_tool_use(server_url: str) -> None:
    scripted.SCRIPTS["alpha"] = [
        ToolCallDelta(0, "toolu_9", "get_weather", '{"ci'),
        ToolCallDelta(0, arguments='ty":"Paris"}'),
        FinishReason("tool_calls"),
    ]
    result = node("anthropic_sdk.mjs", server_url, "tool")
    [use] = result["message"]["content"]
    assert use == {
        "type": "tool_use",
        "id": "toolu_9",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert result["message"]["stop_reason"] == "tool_use"
    assert result["json"][-1] == {"city": "Paris"}


def test_anthropic_node_error(server_url: str) -> None:
    error = node("anthropic_sdk.mjs", server_url, "error")["error"]
    assert error["name"] == "NotFoundError"
    assert error["status"] == 404
    assert error["body"]["type"] == "error"
    assert error["body"]["error"]["type"] == "not_found_error"


# -- the Vercel AI SDK: openai(model) speaks the Responses API --------------------------


def test_ai_sdk_generate_text(base_url: str) -> None:
    result = node("ai_sdk.mjs", base_url, "generate")
    assert result["text"] == "Hello, world!"
    assert result["finishReason"] == "stop"
    assert result["responseId"].startswith("resp_")
    assert result["usage"]["inputTokens"] == 5
    assert result["usage"]["outputTokens"] == 3
    request = scripted.LOG["alpha"].requests[-1]
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "Say hi"),
    ]
    assert request.temperature == 0.3


def test_ai_sdk_stream_text(base_url: str) -> None:
    scripted.SCRIPTS["alpha"] = [
        Reasoning("Hm."),
        "Hel",
        "lo",
        Usage(1, 2, 3),
        FinishReason("stop"),
    ]
    result = node("ai_sdk.mjs", base_url, "stream")
    assert result["text"] == "Hello"
    assert result["finishReason"] == "stop"
    assert "text-delta" in result["parts"]
    assert "error" not in result["parts"]


def test_ai_sdk_tool_call(base_url: str) -> None:
    scripted.SCRIPTS["alpha"] = [
        ToolCallDelta(0, "call_7", "get_weather", '{"city":"Paris"}'),
        FinishReason("tool_calls"),
    ]
    result = node("ai_sdk.mjs", base_url, "tool")
    assert result["finishReason"] == "tool-calls"
    assert result["toolCalls"] == [
        {"toolCallId": "call_7", "toolName": "get_weather", "input": {"city": "Paris"}}
    ]


def test_ai_sdk_error(base_url: str) -> None:
    error = node("ai_sdk.mjs", base_url, "error")["error"]
    assert error["statusCode"] == 404


def test_ai_sdk_multi_turn_sends_item_references(base_url: str) -> None:
    result = node("ai_sdk.mjs", base_url, "multiturn")
    assert result["second"] == "Hello, world!"
    item_id = result["sent"][0]["content"][0]["providerOptions"]["openai"]["itemId"]
    assert item_id.startswith("msg_")  # sent back as {"type": "item_reference", "id": ...}
    request = scripted.LOG["alpha"].requests[-1]
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "My name is Ann."),
        ("assistant", "Hello, world!"),
        ("user", "Who am I?"),
    ]
