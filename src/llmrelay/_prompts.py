"""Prompt helpers shared by providers (pure functions, no I/O).

The plain format is the one most web chat front ends accept::

    User: hello
    Assistant: hi
    User: how are you?
    Assistant:

A conversation of one user message is sent as that message's text alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from .types import Message

__all__ = ["format_plain", "last_user_message", "split_system"]

_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def split_system(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    r"""Separate the system prompt from the conversation.

    Returns:
        ``(system, rest)``: the contents of every system message joined with ``"\\n"``
        (``""`` when there is none) and the other messages in order.
    """
    system = "\n".join(m.content for m in messages if m.role == "system")
    return system, [m for m in messages if m.role != "system"]


def format_plain(messages: Sequence[Message]) -> str:
    """Flatten a conversation into the plain ``User:/Assistant:`` prompt.

    One user message alone is returned as its bare text. Otherwise each message becomes
    ``"<Role>: <content>"`` on its own line and a final ``"Assistant:"`` line asks for the
    reply (unless the last message is an assistant turn to be continued).

    Raises:
        ValueError: if ``messages`` is empty.
    """
    if not messages:
        raise ValueError("cannot format an empty conversation")
    if len(messages) == 1 and messages[0].role == "user":
        return messages[0].content
    lines = [f"{_LABELS[m.role]}: {m.content}" for m in messages]
    if messages[-1].role != "assistant":
        lines.append("Assistant:")
    return "\n".join(lines)


def last_user_message(messages: Sequence[Message]) -> str:
    """Return the content of the last user message.

    Raises:
        ValueError: if there is no user message.
    """
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    raise ValueError("the conversation has no user message")
