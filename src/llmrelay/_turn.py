"""A chat turn as the caller asked for it (``Turn``), and what counts as content.

``Turn.build`` turns a chat call's messages and ``llmrelay.ChatParams`` into the one
request model the engine tries on each candidate (``llmrelay._engine``); ``is_content``
says which events are the commit point of a stream (non-empty text or reasoning, an
image): before the first, a candidate may still be replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
    ResponseFormat,
    Tool,
    ToolCallDelta,
    ToolChoice,
    normalize_messages,
)

T = TypeVar("T")

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
        tools: the function tools offered.
        tool_choice: whether and which tool must be called, or ``None``.
        parallel_tool_calls: whether several calls may come at once, or ``None``.
        response_format: the answer's form, or ``None``.
        asked: OpenAI fields to forward to a provider that ``forwards`` them, or to
            refuse (``llmrelay._fields``), name -> value.
        tool_emulation: the call's ``tool_emulation`` (``None``: the setting decides).
    """

    messages: tuple[Message, ...]
    new: tuple[Message, ...]
    model: str | None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    conversation: Conversation | None = None
    state: ConversationState | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    asked: Mapping[str, Any] = field(default_factory=dict)
    tool_emulation: bool | None = None

    @classmethod
    def build(
        cls,
        messages: MessagesInput,
        params: ChatParams,
        asked: Mapping[str, Any] | None = None,
    ) -> Turn:
        """The turn of a chat call: ``messages`` and the call's ``llmrelay.ChatParams``.

        The system prompt goes first (with a conversation: replaces its own), after the
        conversation's history; parameters left ``None`` are not given. ``asked``: the
        OpenAI fields ``chat.completions.create`` could not map (``Turn.asked``).

        Raises:
            llmrelay.errors.ConfigError: invalid messages, tools, ``tool_choice`` or
                ``response_format`` (``param`` names the field), or a ``state`` that is
                not a ``ConversationState``.
        """
        try:
            new = normalize_messages(messages)
        except ValueError as exc:
            raise errors.ConfigError(f"invalid messages: {exc}", param="messages") from None
        conversation = params.get("conversation")
        state = params.get("state")
        if state is not None and not isinstance(state, ConversationState):
            raise errors.ConfigError("state must be a ConversationState (from a previous turn)")
        tools = _tools(params.get("tools"))
        tool_choice = _typed(params.get("tool_choice"), ToolChoice.from_openai, "tool_choice")
        if tool_choice is not None and tool_choice.mode in ("required", "function"):
            names = {tool.name for tool in tools}
            if tool_choice.name is not None and tool_choice.name not in names:
                raise errors.ConfigError(
                    f"tool_choice names {tool_choice.name!r}, which is not among the tools",
                    param="tool_choice",
                )
            if not tools:
                raise errors.ConfigError(
                    f"tool_choice {tool_choice.mode!r} needs tools", param="tool_choice"
                )
        parallel = params.get("parallel_tool_calls")
        if parallel is not None and not isinstance(parallel, bool):
            raise errors.ConfigError(
                "parallel_tool_calls must be a boolean", param="parallel_tool_calls"
            )
        return cls(
            messages=_history(new, conversation, params.get("system")),
            new=new,
            model=params.get("model"),
            parameters=_given(params),
            options=dict(params.get("options") or {}),
            conversation=conversation,
            state=state,
            tools=tools,
            # without tools there is nothing to choose or run in parallel
            tool_choice=tool_choice if tools else None,
            parallel_tool_calls=parallel if tools else None,
            response_format=_typed(
                params.get("response_format"), ResponseFormat.from_openai, "response_format"
            ),
            asked=dict(asked or {}),
            tool_emulation=_emulation_flag(params.get("tool_emulation")),
        )


def _emulation_flag(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise errors.ConfigError(
            "tool_emulation must be True, False or None", param="tool_emulation"
        )
    return value


def _history(
    new: tuple[Message, ...], conversation: Conversation | None, system: str | None
) -> tuple[Message, ...]:
    """Everything a turn sends: the system prompt, the conversation's history, ``new``."""
    if conversation is not None:
        if system:
            conversation.with_system(system)
        return (*conversation.messages, *new)
    return (Message("system", system), *new) if system else new


def _tools(value: Any) -> tuple[Tool, ...]:
    """The ``tools`` argument as ``Tool`` values (names unique)."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise errors.ConfigError("tools must be a list of tools", param="tools")
    tools: list[Tool] = []
    for index, item in enumerate(value):
        try:
            tools.append(Tool.from_openai(item, f"tools[{index}]"))
        except ValueError as exc:
            raise errors.ConfigError(f"invalid tools: {exc}", param=f"tools[{index}]") from None
    names = [tool.name for tool in tools]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise errors.ConfigError(f"tools: {duplicate!r} is defined twice", param="tools")
    return tuple(tools)


def _typed(value: Any, parse: Callable[[Any, str], T], param: str) -> T | None:
    if value is None:
        return None
    try:
        return parse(value, param)
    except ValueError as exc:
        raise errors.ConfigError(str(exc), param=param) from None


def stop_sequences(stop: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``stop`` as a tuple of stop sequences (``None`` when not given).

    A bare string is one sequence, as OpenAI's ``stop`` reads it
    (https://platform.openai.com/docs/api-reference/chat/create#chat-create-stop), never
    its characters; any other iterable is read once, in the caller's thread.

    Raises:
        ConfigError: ``param="stop"``: not a string or an iterable of strings, or an
            empty sequence among them (no service stops on ``""``).
    """
    if stop is None:
        return None
    if isinstance(stop, str):
        stops: tuple[object, ...] = (stop,)
    elif isinstance(stop, bytes | Mapping) or not isinstance(stop, Iterable):
        raise errors.ConfigError(
            f"stop must be a string or a list of strings, not {type(stop).__name__}",
            param="stop",
        )
    else:
        stops = tuple(stop)
    for index, item in enumerate(stops):
        if not isinstance(item, str):
            raise errors.ConfigError(
                f"stop[{index}] must be a string, not {type(item).__name__}", param="stop"
            )
        if not item:
            raise errors.ConfigError(f"stop[{index}] is empty", param="stop")
    return stops  # type: ignore[return-value]


def _given(params: ChatParams) -> dict[str, Any]:
    """The generation parameters given (name -> value; ``None`` and no stops left out)."""
    given = (
        ("temperature", params.get("temperature")),
        ("max_tokens", params.get("max_tokens")),
        ("top_p", params.get("top_p")),
        ("stop", stop_sequences(params.get("stop"))),
        ("seed", params.get("seed")),
        ("frequency_penalty", params.get("frequency_penalty")),
        ("presence_penalty", params.get("presence_penalty")),
    )
    return {name: value for name, value in given if value is not None and value != ()}


def is_content(event: Event) -> bool:
    """Whether ``event`` is content: non-empty text or reasoning, an image, a tool call."""
    if type(event) is str:
        return bool(event)
    if isinstance(event, Reasoning):
        return bool(event.text)
    return isinstance(event, ImageResult | ToolCallDelta)
