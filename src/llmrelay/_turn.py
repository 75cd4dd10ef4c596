"""A chat turn as the caller asked for it (``Turn``), and what counts as content.

``Turn.build`` turns a chat call's messages and ``llmrelay.ChatParams`` into the one
request model the engine tries on each candidate (``llmrelay._engine``); ``is_content``
says which events are the commit point of a stream (non-empty text or reasoning, an
image): before the first, a candidate may still be replaced.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import errors
from ._conversation import Conversation
from ._params import ChatParams, ImageParams
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


@dataclass(slots=True)
class Turn:
    """One chat turn as the caller asked for it, before a provider is chosen.

    Read-only by convention, not frozen: one is made per request, and a frozen
    dataclass's ``__init__`` stores each field through ``object.__setattr__``
    (https://docs.python.org/3/library/dataclasses.html#frozen-instances), ~4 µs more
    for these 13 fields on CPython 3.11.

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
        _check_types(params)
        try:
            new = normalize_messages(messages)
        except ValueError as exc:
            raise errors.ConfigError(f"invalid messages: {exc}", param="messages") from None
        conversation = params.get("conversation")
        state = params.get("state")
        if state is not None and not isinstance(state, ConversationState):
            raise errors.ConfigError(
                "state must be a ConversationState (from a previous turn)", param="state"
            )
        given_tools = params.get("tools")
        tools = _tools(given_tools) if given_tools is not None else ()
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
            asked=dict(asked) if asked else {},
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


def _check_types(params: ChatParams) -> None:
    """Refuse a parameter of the wrong type before it reaches a provider's request.

    (Typed callers have mypy; this is for the rest: ``temperature="hot"`` would
    otherwise go to the service as a string, ``options="x"`` fail deep inside.)

    Raises:
        ConfigError: ``param`` names the parameter.
    """
    for name in ("model", "system"):
        value = params.get(name)
        if value is not None and not isinstance(value, str):
            raise errors.ConfigError(
                f"{name} must be a string, not {type(value).__name__}", param=name
            )
    _check_options(params.get("options"))
    conversation = params.get("conversation")
    if conversation is not None and not isinstance(conversation, Conversation):
        raise errors.ConfigError(
            "conversation must be an llmrelay.Conversation", param="conversation"
        )


def _check_options(options: object) -> None:
    """Refuse ``options`` that are not a mapping of option names (``param="options"``)."""
    if options is not None and (
        not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options)
    ):
        raise errors.ConfigError("options must be a mapping of option names", param="options")


def check_image_types(params: ImageParams) -> dict[str, Any]:
    """``generate_image``'s parameters, each of its type (as ``_check_types`` for chat).

    Returns:
        The parameters given, with an integer of another ``numbers.Integral`` type
        (numpy's ``int64``) as a Python ``int`` (a provider's JSON encoder writes only
        those).

    Raises:
        ConfigError: ``param`` names the parameter: ``model``, ``aspect_ratio`` or
            ``negative_prompt`` not a string; ``n``, ``width``, ``height`` or ``seed``
            not an integer (``width``/``height`` below 1); ``options`` not a mapping.
    """
    checked: dict[str, Any] = dict(params)
    for name in ("model", "aspect_ratio", "negative_prompt"):
        value = params.get(name)
        if value is not None and not isinstance(value, str):
            raise errors.ConfigError(
                f"{name} must be a string, not {type(value).__name__}", param=name
            )
    for name in ("n", "width", "height", "seed"):
        value = _integer(params, name)
        if value is None:
            continue
        if name in ("width", "height") and value < 1:
            raise errors.ConfigError(f"{name} must be at least 1 pixel; got {value}", param=name)
        checked[name] = value
    _check_options(params.get("options"))
    return checked


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


def _number(params: ChatParams, name: str) -> int | float | None:
    """Sampling parameter ``name``: a finite real number, or ``None``.

    A ``numbers.Real`` of another type (numpy's ``float32``) becomes a Python ``float``.

    Raises:
        ConfigError: ``param=name``: a ``bool``, a non-number, NaN or an infinity.
    """
    value: object = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise errors.ConfigError(f"{name} must be a number, not {type(value).__name__}", param=name)
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        raise errors.ConfigError(f"{name} must be a finite number", param=name)
    return number


def _integer(params: ChatParams | ImageParams, name: str) -> int | None:
    """An integer parameter (``max_tokens``, ``seed``, an image's ``n``), or ``None``.

    A ``numbers.Integral`` of another type (numpy's ``int64``) becomes a Python ``int``.

    Raises:
        ConfigError: ``param=name``: a ``bool`` or a non-integer (``1.5``, ``"9"``).
    """
    value = params.get(name)
    if value is None or type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise errors.ConfigError(
            f"{name} must be an integer, not {type(value).__name__}", param=name
        )
    return int(value)


def _given(params: ChatParams) -> dict[str, Any]:
    """The generation parameters given (name -> value; ``None`` and no stops left out).

    Raises:
        ConfigError: a parameter of the wrong type (``param`` names it).
    """
    given: dict[str, Any] = {}
    for name, read in _GENERATION:
        if params.get(name) is not None:  # most calls give none: no reader runs
            value = read(params, name)
            if value is not None and value != ():
                given[name] = value
    return given


def _stop(params: ChatParams, name: str) -> tuple[str, ...] | None:
    return stop_sequences(params.get("stop"))


_GENERATION: tuple[tuple[str, Callable[[ChatParams, str], Any]], ...] = (
    ("temperature", _number),
    ("max_tokens", _integer),
    ("top_p", _number),
    ("stop", _stop),
    ("seed", _integer),
    ("frequency_penalty", _number),
    ("presence_penalty", _number),
)
"""The generation parameters in the order ``Turn.parameters`` keeps them, each with the
function that checks and converts it."""


def is_content(event: Event) -> bool:
    """Whether ``event`` is content: non-empty text or reasoning, an image, a tool call."""
    if type(event) is str:
        return bool(event)
    if isinstance(event, Reasoning):
        return bool(event.text)
    return isinstance(event, ImageResult | ToolCallDelta)
