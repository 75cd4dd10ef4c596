from __future__ import annotations

import json
import re

import pytest

from llmrelay import (
    ConversationState,
    FinishReason,
    ImageResult,
    Message,
    ProviderInfo,
    Reasoning,
    Usage,
    event_to_dict,
)
from llmrelay.types import normalize_messages


def test_prompt_string_becomes_one_user_message() -> None:
    assert normalize_messages("hi") == (Message("user", "hi"),)


def test_mappings_and_messages_mix() -> None:
    result = normalize_messages(
        [
            {"role": "system", "content": "s"},
            Message("user", "u"),
            {"role": "assistant", "content": ""},
        ]
    )
    assert [m.role for m in result] == ["system", "user", "assistant"]
    assert result[2].content == ""


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ([], "at least one"),
        ([{"role": "user"}], "messages[0] lacks 'content'"),
        ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id must be"),
        ([{"role": "function", "content": "x"}], "messages[0].role must be one of"),
        ([Message("user", "a"), 3], "messages[1] must be a Message"),
        ([{"role": "user", "content": 5}], "content must be a string"),
    ],
)
def test_bad_messages_name_what_is_wrong(bad: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        normalize_messages(bad)


def test_events_are_immutable() -> None:
    event = FinishReason("stop")
    with pytest.raises(AttributeError):
        event.reason = "length"  # type: ignore[misc]


def test_event_to_dict_shapes_are_json() -> None:
    events = [
        ProviderInfo("p", "m", "P"),
        "delta ",
        Reasoning("think"),
        Usage(1, 2, 3),
        ConversationState("p", {"parent": "x"}),
        ImageResult(b"\x89PNG", "image/png", seed=7),
        FinishReason("length"),
    ]
    dicts = [event_to_dict(e) for e in events]
    assert [d["type"] for d in dicts] == [
        "provider",
        "text",
        "reasoning",
        "usage",
        "state",
        "image",
        "finish",
    ]
    assert dicts[1] == {"type": "text", "text": "delta "}
    assert dicts[5]["bytes"] == 4
    assert dicts[6] == {"type": "finish", "reason": "length"}
    json.dumps(dicts)  # every shape is JSON-serialisable
    with pytest.raises(TypeError, match="not an llmrelay event"):
        event_to_dict(42)  # type: ignore[arg-type]


def test_image_bytes_not_in_repr() -> None:
    assert "PNG" not in repr(ImageResult(b"\x89PNG" * 100, "image/png"))
