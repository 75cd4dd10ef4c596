"""The server's conversation memory tells tool histories apart."""

from __future__ import annotations

from llmrelay.server._schemas import ChatMessage


def _call(arguments: str) -> dict[str, object]:
    return {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}


def test_the_memory_key_includes_tool_calls_and_the_call_answered() -> None:
    plain = ChatMessage(role="assistant", content="")
    one = ChatMessage(role="assistant", content=None, tool_calls=[_call('{"a":1}')])
    two = ChatMessage(role="assistant", content=None, tool_calls=[_call('{"a":2}')])
    assert len({plain.key(), one.key(), two.key()}) == 3
    first = ChatMessage(role="tool", content="42", tool_call_id="call_1")
    second = ChatMessage(role="tool", content="42", tool_call_id="call_2")
    assert first.key() != second.key()
    assert ChatMessage(role="user", content="hi").key() == "hi"
    assert one.to_input() == {"role": "assistant", "content": "", "tool_calls": [_call('{"a":1}')]}
    assert first.to_input() == {"role": "tool", "content": "42", "tool_call_id": "call_1"}
