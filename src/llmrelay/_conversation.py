"""``Conversation``: the messages of a chat plus each provider's own state.

Some providers keep the conversation on their side (Ai2's ``parent`` message id, h2o's
conversation and cookie session): continuing with their ``ConversationState`` sends only
the new turn. A state is *current* only while the last answer came from that provider:
the state is stored with the index of the assistant message it belongs to, so a turn
answered by another provider makes it stale, and that provider then gets the whole
history again.

JSON round trip (messages in OpenAI's shape: an assistant's ``tool_calls``, a tool
message's ``tool_call_id``)::

    {"id": "…", "messages": [{"role", "content"}, …],
     "states": {"ai2": {"data": {…}, "index": 3}}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import FrozenInstanceError
from types import MappingProxyType
from typing import Any

from ._ids import token_hex16
from .types import ConversationState, Message, ToolCall, normalize_messages

__all__ = ["Conversation", "ProviderState"]


class ProviderState:
    """A provider's state and the index of the assistant message it belongs to.

    Immutable, compared and shown by its two fields, as a frozen dataclass would be
    (written out: a chat builds this module before its first token, and a frozen
    dataclass's generated methods cost about a millisecond there).

    Args:
        data: the provider's state (``Conversation`` keeps a read-only copy).
        index: the index in ``Conversation.messages`` of the assistant message it belongs to.
    """

    __slots__ = ("data", "index")
    __match_args__ = ("data", "index")

    data: Mapping[str, Any]
    index: int

    def __init__(self, data: Mapping[str, Any], index: int) -> None:
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, ProviderState)
        return (self.data, self.index) == (other.data, other.index)

    def __hash__(self) -> int:
        return hash((self.data, self.index))

    def __repr__(self) -> str:
        return f"ProviderState(data={self.data!r}, index={self.index!r})"

    def __reduce__(self) -> tuple[type[ProviderState], tuple[Mapping[str, Any], int]]:
        # copy and pickle through ``__init__`` (``__setattr__`` refuses)
        return ProviderState, (self.data, self.index)


class Conversation:
    """Messages plus per-provider state; pass it as ``conversation=`` to continue.

    Passing a conversation to ``stream``/``complete``/``chat.completions.create`` sends
    its messages followed by the new ones; when the answer finishes, the new messages
    and the reply are appended and the answering provider's state is stored. A failed
    or abandoned turn changes nothing.

    Args:
        messages: the history (any ``messages`` input form).
        id: a stable id (default: a new random hex id).
        states: provider -> ``ProviderState`` (or ``{"data", "index"}`` mappings).

    Raises:
        ValueError: invalid messages or states.
    """

    __slots__ = ("_states", "id", "messages")

    def __init__(
        self,
        messages: Iterable[Any] = (),
        *,
        id: str | None = None,
        states: Mapping[str, ProviderState | Mapping[str, Any]] | None = None,
    ) -> None:
        items = list(messages)
        self.messages: list[Message] = list(normalize_messages(items)) if items else []
        self.id: str = id or token_hex16()  # as uuid4().hex: 32 random hex digits
        self._states: dict[str, ProviderState] = {}
        for provider, state in (states or {}).items():
            if isinstance(state, ProviderState):
                self._states[provider] = state
                continue
            data, index = state.get("data"), state.get("index")
            if not isinstance(data, Mapping) or not isinstance(index, int):
                raise ValueError(f"states[{provider!r}] must have a 'data' object and an 'index'")
            self._states[provider] = ProviderState(MappingProxyType(dict(data)), index)

    def __repr__(self) -> str:
        return (
            f"Conversation(id={self.id!r}, messages={len(self.messages)}, "
            f"states={sorted(self._states)})"
        )

    @property
    def states(self) -> Mapping[str, ProviderState]:
        """Provider -> its stored state (current or stale), read-only."""
        return MappingProxyType(self._states)

    def state_for(self, provider: str) -> ConversationState | None:
        """``provider``'s state if it is current (it answered the last turn), else ``None``."""
        state = self._states.get(provider)
        if state is None or state.index != self._last_assistant():
            return None
        return ConversationState(provider, state.data)

    def _last_assistant(self) -> int:
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "assistant":
                return index
        return -1

    def with_system(self, system: str) -> None:
        """Set the system prompt: replace a leading system message, else insert one."""
        message = Message("system", system)
        if self.messages and self.messages[0].role == "system":
            self.messages[0] = message
        else:
            self.messages.insert(0, message)
            self._states = {k: ProviderState(v.data, v.index + 1) for k, v in self._states.items()}

    def record(
        self,
        new: Iterable[Message],
        reply: str,
        state: ConversationState | None,
        tool_calls: tuple[ToolCall, ...] = (),
    ) -> None:
        """Append a finished turn: the new messages, the reply and the provider's state.

        ``tool_calls`` are the reply's calls (the next turn answers them with
        ``role: "tool"`` messages).
        """
        self.messages.extend(new)
        self.messages.append(Message("assistant", reply, tool_calls=tool_calls))
        if state is not None:
            self._states[state.provider] = ProviderState(
                MappingProxyType(dict(state.data)), len(self.messages) - 1
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (see the module docstring); images are not kept."""
        return {
            "id": self.id,
            "messages": [_plain_message(m) for m in self.messages],
            "states": {
                name: {"data": dict(state.data), "index": state.index}
                for name, state in self._states.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conversation:
        """Rebuild a conversation from ``to_dict()`` output.

        Raises:
            ValueError: a malformed document (the message names what is wrong).
        """
        if not isinstance(data, Mapping):
            raise ValueError("a conversation must be a JSON object")
        messages = data.get("messages", [])
        states = data.get("states", {})
        if not isinstance(messages, list) or not isinstance(states, Mapping):
            raise ValueError("a conversation needs a 'messages' list and a 'states' object")
        conv_id = data.get("id")
        return cls(messages, id=str(conv_id) if conv_id else None, states=states)


def _plain_message(message: Message) -> dict[str, Any]:
    """``{"role", "content"}`` plus ``tool_calls`` / ``tool_call_id`` (no images)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [call.to_openai() for call in message.tool_calls]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out
