from __future__ import annotations

import pytest

from llmrelay import Message
from llmrelay._prompts import format_plain, last_user_message, split_system


def test_single_user_message_is_sent_bare() -> None:
    assert format_plain([Message("user", "  keep my spaces  ")]) == "  keep my spaces  "


def test_conversation_is_flattened_with_role_labels() -> None:
    messages = [Message("user", "hi"), Message("assistant", "hello"), Message("user", "more?")]
    assert format_plain(messages) == "User: hi\nAssistant: hello\nUser: more?\nAssistant:"


def test_trailing_assistant_turn_is_continued_not_reopened() -> None:
    messages = [Message("user", "hi"), Message("assistant", "Once upon")]
    assert format_plain(messages) == "User: hi\nAssistant: Once upon"


def test_empty_conversation_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        format_plain([])


def test_split_system_joins_every_system_message() -> None:
    system, rest = split_system(
        [Message("system", "a"), Message("user", "u"), Message("system", "b")]
    )
    assert system == "a\nb"
    assert rest == [Message("user", "u")]


def test_last_user_message() -> None:
    messages = [Message("user", "first"), Message("assistant", "x"), Message("user", "second")]
    assert last_user_message(messages) == "second"
    with pytest.raises(ValueError, match="no user message"):
        last_user_message([Message("system", "s")])
