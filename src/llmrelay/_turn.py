"""A chat turn as the caller asked for it (``Turn``), and what counts as content.

``Turn.build`` turns a chat call's messages and ``llmrelay.ChatParams`` into the one
request model the engine tries on each candidate (``llmrelay._engine``); ``is_content``
says which events are the commit point of a stream (non-empty text or reasoning, an
image): before the first, a candidate may still be replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors
from ._conversation import Conversation
from ._params import ChatParams
from .types import (
    ConversationState,
    Event,
    ImageResult,
    Message,
    MessagesInput,
    Reasoning,
    normalize_messages,
)

__all__ = ["SKIPPED", "Skipped", "Turn", "is_content"]


@dataclass(frozen=True, slots=True)
class Skipped:
    """Internal marker a provider yields for an event it could not parse and skipped.

    Never delivered to a caller: the stream counts it (``AsyncChatStream.skipped``),
    logs a warning and records it in the answering attempt. Providers skip only when
    the request is not ``strict`` (which keeps the ``ProtocolError``).
    """

    what: str = "event"


SKIPPED = Skipped()


@dataclass(frozen=True, slots=True)
class Turn:
    """One chat turn as the caller asked for it, before a provider is chosen.

    Attributes:
        messages: everything to send (conversation history, then the new messages).
        new: the new messages of this turn (what a conversation records).
        model: the model reference, or ``None`` for the default.
        parameters: the generation parameters given (name -> value, no ``None``).
        options: provider-specific options.
        conversation: the conversation to continue and record into, or ``None``.
        state: an explicit provider state (without a conversation), or ``None``.
    """

    messages: tuple[Message, ...]
    new: tuple[Message, ...]
    model: str | None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    conversation: Conversation | None = None
    state: ConversationState | None = None

    @classmethod
    def build(cls, messages: MessagesInput, params: ChatParams) -> Turn:
        """The turn of a chat call: ``messages`` and the call's ``llmrelay.ChatParams``.

        The system prompt goes first (with a conversation: replaces its own), after the
        conversation's history; parameters left ``None`` are not given.

        Raises:
            llmrelay.errors.ConfigError: invalid messages, or a ``state`` that is not a
                ``ConversationState``.
        """
        try:
            new = normalize_messages(messages)
        except ValueError as exc:
            raise errors.ConfigError(f"invalid messages: {exc}") from None
        conversation = params.get("conversation")
        state = params.get("state")
        if state is not None and not isinstance(state, ConversationState):
            raise errors.ConfigError("state must be a ConversationState (from a previous turn)")
        return cls(
            messages=_history(new, conversation, params.get("system")),
            new=new,
            model=params.get("model"),
            parameters=_given(params),
            options=dict(params.get("options") or {}),
            conversation=conversation,
            state=state,
        )


def _history(
    new: tuple[Message, ...], conversation: Conversation | None, system: str | None
) -> tuple[Message, ...]:
    """Everything a turn sends: the system prompt, the conversation's history, ``new``."""
    if conversation is not None:
        if system:
            conversation.with_system(system)
        return (*conversation.messages, *new)
    return (Message("system", system), *new) if system else new


def _given(params: ChatParams) -> dict[str, Any]:
    """The generation parameters given (name -> value; ``None`` and no stops left out)."""
    stop = params.get("stop")
    given = (
        ("temperature", params.get("temperature")),
        ("max_tokens", params.get("max_tokens")),
        ("top_p", params.get("top_p")),
        ("stop", tuple(stop) if stop is not None else None),
        ("seed", params.get("seed")),
    )
    return {name: value for name, value in given if value is not None and value != ()}


def is_content(event: Event) -> bool:
    """Whether ``event`` is content: non-empty text or reasoning, or an image."""
    if type(event) is str:
        return bool(event)
    if isinstance(event, Reasoning):
        return bool(event.text)
    return isinstance(event, ImageResult)
