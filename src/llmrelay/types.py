"""Typed messages, requests and the event stream.

A chat stream is an async iterator of ``Event`` values:

* ``str`` — a text delta: the next piece of the answer, exactly as generated
  (never trimmed; a whitespace-only or repeated delta is real text);
* ``ProviderInfo`` — always first: which provider and model answer;
* ``Reasoning`` — a piece of the model's visible reasoning, when a provider exposes it;
* ``ToolCallDelta`` — a piece of a tool (function) call as the provider streamed it: the
  first for a call carries its ``id`` and ``name``, later ones argument fragments only;
* ``Usage`` — token counts, when the provider reports them;
* ``ConversationState`` — provider-side state to carry to the next turn;
* ``Queued`` — the request waits in the service's queue (position and estimate), before
  any content;
* ``ImageResult`` — a generated image;
* ``FinishReason`` — exactly one per stream, always the last event.

All event classes are frozen, slotted dataclasses: cheap to create on the token path,
hashable and safe to share between threads.

Requests for agents use the OpenAI chat-completions terms
(https://platform.openai.com/docs/api-reference/chat/create, openai-python's
``types/chat/completion_create_params.py``): function ``Tool`` definitions with a JSON
Schema, ``ToolChoice``, ``parallel_tool_calls`` and ``ResponseFormat``; messages with
role ``tool`` (``tool_call_id``) and assistant messages carrying ``ToolCall`` values.
Each type's ``from_openai`` reads OpenAI's JSON shape and ``to_openai`` writes it.

``ImageRequest``, ``Completion``, ``ProviderDescription``, ``EmbeddingRequest`` and
``EmbeddingResult`` load on first use (``llmrelay._lazy_types``; a chat's start needs
none of them): the same classes, module name, reprs and pickling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from ._lazy_types import (
        Completion,
        EmbeddingRequest,
        EmbeddingResult,
        ImageRequest,
        ProviderDescription,
    )
    from .providers._image_input import ImageFetchPolicy

__all__ = [
    "ChatRequest",
    "Completion",
    "ConversationState",
    "EmbeddingInput",
    "EmbeddingRequest",
    "EmbeddingResult",
    "Event",
    "FinishReason",
    "ImagePart",
    "ImageRequest",
    "ImageResult",
    "Message",
    "MessagesInput",
    "ProviderDescription",
    "ProviderInfo",
    "Queued",
    "Reasoning",
    "ResponseFormat",
    "Role",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "Usage",
    "event_to_dict",
    "normalize_messages",
]

_LAZY = frozenset(
    {"Completion", "EmbeddingRequest", "EmbeddingResult", "ImageRequest", "ProviderDescription"}
)
"""The classes defined in ``llmrelay._lazy_types`` and loaded on first use: a chat needs
none of them before its first token (and no field of another class names one), and each
frozen slotted dataclass costs the compilation of its generated methods when it is made."""

if not TYPE_CHECKING:  # mypy sees the classes imported above, and no catch-all

    def __getattr__(name: str) -> Any:
        """Load the classes of ``_LAZY`` on first use (PEP 562: https://peps.python.org/pep-0562/).

        ``llmrelay._lazy_types`` binds all of them here when it loads, so a later
        access is a plain attribute read.

        Raises:
            AttributeError: ``name`` is not an attribute of ``llmrelay.types``.
        """
        if name in _LAZY:
            from . import _lazy_types  # noqa: F401 - binds the classes here

            return globals()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        """This module's names, the not yet loaded classes of ``_LAZY`` included."""
        return sorted(set(globals()) | _LAZY)


Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
_ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})
_INPUT_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""OpenAI's rule for a function name (``FunctionDefinition.name``)."""
_MAX_ID = 512


def _where(where: str, detail: str) -> ValueError:
    return ValueError(f"{where}{detail}")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One assembled tool (function) call of an assistant message.

    The OpenAI form (``ChatCompletionMessageFunctionToolCall``) is
    ``{"id", "type": "function", "function": {"name", "arguments"}}``.

    Attributes:
        id: the call's id (``call_...``); a ``role: "tool"`` message answers it by
            ``tool_call_id``.
        name: the function's name.
        arguments: the arguments as the model wrote them: JSON text, normally an
            object, never parsed or re-serialised by llmrelay (it may be invalid JSON
            when the model erred; ``strict`` schemas make that rare).
        type: always ``"function"``.

    Raises:
        ValueError: an empty ``id`` or ``name``, or non-string fields.
    """

    id: str
    name: str
    arguments: str = ""
    type: Literal["function"] = "function"

    def __post_init__(self) -> None:
        for key in ("id", "name", "arguments"):
            if not isinstance(getattr(self, key), str):
                raise ValueError(f"tool call {key} must be a string")
        if not self.id or not self.name:
            raise ValueError("a tool call needs an id and a name")
        if self.type != "function":
            raise ValueError(f"tool call type must be 'function'; got {self.type!r:.40}")

    def to_openai(self) -> dict[str, Any]:
        """``{"id", "type": "function", "function": {"name", "arguments"}}``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    @classmethod
    def from_openai(cls, value: Any, where: str = "tool_call") -> ToolCall:
        """A ``ToolCall`` from OpenAI's shape (or a ``ToolCall``).

        Raises:
            ValueError: a malformed call, naming ``where`` and what is wrong (a
                ``custom`` tool call is not supported).
        """
        if isinstance(value, ToolCall):
            return value
        if not isinstance(value, Mapping):
            raise _where(where, " must be an object")
        kind = value.get("type", "function")
        if kind != "function":
            raise _where(where, f".type {kind!r:.40} is not supported (only 'function')")
        function = value.get("function")
        if not isinstance(function, Mapping):
            raise _where(where, ".function must be an object")
        call_id, name = value.get("id"), function.get("name")
        arguments = function.get("arguments", "")
        if not isinstance(call_id, str) or not call_id or len(call_id) > _MAX_ID:
            raise _where(where, ".id must be a non-empty string")
        if not isinstance(name, str) or not name:
            raise _where(where, ".function.name must be a non-empty string")
        if arguments is None:
            arguments = ""
        if not isinstance(arguments, str):
            raise _where(where, ".function.arguments must be a string (JSON text)")
        return cls(call_id, name, arguments)


@dataclass(frozen=True, slots=True)
class Tool:
    """A function tool the model may call (OpenAI's ``ChatCompletionFunctionTool``).

    OpenAI form: ``{"type": "function", "function": {"name", "description"?,
    "parameters"?, "strict"?}}``.

    Attributes:
        name: the function name: letters, digits, ``_`` and ``-``, at most 64.
        description: what the function does, for the model; ``None`` when not given.
        parameters: the arguments' JSON Schema (an object schema), or ``None`` (no
            arguments declared).
        strict: OpenAI's structured-outputs flag for the arguments, or ``None`` when
            not given (sent only when given).

    Raises:
        ValueError: an invalid name, description or parameters.
    """

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    strict: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TOOL_NAME.match(self.name):
            raise ValueError(
                f"a tool name is 1 to 64 letters, digits, '_' or '-'; got {self.name!r:.80}"
            )
        if self.description is not None and not isinstance(self.description, str):
            raise ValueError("a tool description must be a string")
        if self.parameters is not None and not isinstance(self.parameters, Mapping):
            raise ValueError("a tool's parameters must be a JSON Schema object")
        if self.strict is not None and not isinstance(self.strict, bool):
            raise ValueError("a tool's strict must be true or false")

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's tool object (absent fields left out)."""
        function: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            function["description"] = self.description
        if self.parameters is not None:
            function["parameters"] = _plain(self.parameters)
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}

    @classmethod
    def from_openai(cls, value: Any, where: str = "tools[0]") -> Tool:
        """A ``Tool`` from OpenAI's shape (or a ``Tool``).

        Raises:
            ValueError: a malformed tool or another tool ``type`` (``custom``), naming
                ``where``.
        """
        if isinstance(value, Tool):
            return value
        if not isinstance(value, Mapping):
            raise _where(where, " must be an object")
        kind = value.get("type")
        if kind != "function":
            raise _where(where, f".type must be 'function'; got {kind!r:.40}")
        function = value.get("function")
        if not isinstance(function, Mapping):
            raise _where(where, ".function must be an object")
        try:
            return cls(
                name=function.get("name"),  # type: ignore[arg-type]
                description=function.get("description"),
                parameters=function.get("parameters"),
                strict=function.get("strict"),
            )
        except ValueError as exc:
            raise _where(where, f".function: {exc}") from None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Whether and which tool the model must call (OpenAI's ``tool_choice``).

    OpenAI form: ``"auto"``, ``"none"``, ``"required"``, or
    ``{"type": "function", "function": {"name"}}`` (``mode="function"``).

    Attributes:
        mode: ``"auto"`` (the model decides), ``"none"`` (no call), ``"required"`` (at
            least one call), ``"function"`` (a call of ``name``).
        name: the function to call, with ``mode="function"``; else ``None``.

    Raises:
        ValueError: an unknown mode, or a name missing or given where it does not belong.
    """

    mode: Literal["auto", "none", "required", "function"]
    name: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "none", "required", "function"):
            raise ValueError(
                "tool_choice must be auto, none, required or a named function; "
                f"got {self.mode!r:.40}"
            )
        if (self.mode == "function") != (self.name is not None):
            raise ValueError("a named tool_choice needs a function name (and only it has one)")

    def to_openai(self) -> str | dict[str, Any]:
        """``"auto"``/``"none"``/``"required"`` or ``{"type": "function", ...}``."""
        if self.mode == "function":
            return {"type": "function", "function": {"name": self.name}}
        return self.mode

    @classmethod
    def from_openai(cls, value: Any, where: str = "tool_choice") -> ToolChoice:
        """A ``ToolChoice`` from OpenAI's shape (or a ``ToolChoice``).

        Raises:
            ValueError: anything else (``allowed_tools`` and ``custom`` choices are not
                supported), naming ``where``.
        """
        if isinstance(value, ToolChoice):
            return value
        if isinstance(value, str):
            if value in ("auto", "none", "required"):
                return cls(value)  # type: ignore[arg-type]
            raise _where(where, f" must be auto, none, required or a function; got {value!r:.40}")
        if isinstance(value, Mapping) and value.get("type") == "function":
            function = value.get("function")
            name = function.get("name") if isinstance(function, Mapping) else None
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                raise _where(where, ".function.name must be a tool name")
            return cls("function", name)
        kind = value.get("type") if isinstance(value, Mapping) else type(value).__name__
        raise _where(
            where, f" of type {kind!r:.40} is not supported (auto, none, required, function)"
        )


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """The form of the answer (OpenAI's ``response_format``).

    OpenAI form: ``{"type": "text"}``, ``{"type": "json_object"}``, or
    ``{"type": "json_schema", "json_schema": {"name", "description"?, "schema"?,
    "strict"?}}``.

    Attributes:
        type: ``"text"``, ``"json_object"`` (any JSON object) or ``"json_schema"``.
        name: the schema's name (``json_schema``; letters, digits, ``_``, ``-``).
        schema: the JSON Schema the answer must follow (``json_schema``), or ``None``.
        strict: OpenAI's strict schema adherence, or ``None`` when not given.
        description: what the format is for, or ``None``.

    Raises:
        ValueError: an unknown type, a schema part given for another type, a bad name.
    """

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: Mapping[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.type not in ("text", "json_object", "json_schema"):
            raise ValueError(
                "response_format type must be text, json_object or json_schema; "
                f"got {self.type!r:.40}"
            )
        if self.type == "json_schema":
            if not isinstance(self.name, str) or not _TOOL_NAME.match(self.name):
                raise ValueError(
                    "a json_schema response format needs a name (letters, digits, _ -)"
                )
            if self.schema is not None and not isinstance(self.schema, Mapping):
                raise ValueError("a json_schema response format's schema must be an object")
            if self.strict is not None and not isinstance(self.strict, bool):
                raise ValueError("a json_schema response format's strict must be true or false")
        elif (self.name, self.schema, self.strict, self.description) != (None,) * 4:
            raise ValueError(f"a {self.type} response format takes no schema")

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's ``response_format`` object (absent fields left out)."""
        if self.type != "json_schema":
            return {"type": self.type}
        spec: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            spec["description"] = self.description
        if self.schema is not None:
            spec["schema"] = _plain(self.schema)
        if self.strict is not None:
            spec["strict"] = self.strict
        return {"type": "json_schema", "json_schema": spec}

    @classmethod
    def from_openai(cls, value: Any, where: str = "response_format") -> ResponseFormat:
        """A ``ResponseFormat`` from OpenAI's shape (or a ``ResponseFormat``).

        Raises:
            ValueError: a malformed format, naming ``where``.
        """
        if isinstance(value, ResponseFormat):
            return value
        if not isinstance(value, Mapping):
            raise _where(where, " must be an object with a type")
        kind = value.get("type")
        try:
            if kind != "json_schema":
                return cls(kind)  # type: ignore[arg-type]  # checked by __post_init__
            spec = value.get("json_schema")
            if not isinstance(spec, Mapping):
                raise ValueError("json_schema must be an object")
            return cls(
                "json_schema",
                name=spec.get("name"),
                schema=spec.get("schema"),
                strict=spec.get("strict"),
                description=spec.get("description"),
            )
        except ValueError as exc:
            raise _where(where, f": {exc}") from None


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a schema (read-only mappings and tuples made plain)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An ``image_url`` content part of a message (OpenAI's ``ChatCompletionContentPartImage``).

    OpenAI form: ``{"type": "image_url", "image_url": {"url", "detail"?}}``
    (https://platform.openai.com/docs/guides/images-vision).

    Attributes:
        url: an ``https://`` / ``http://`` URL or a ``data:image/...;base64,`` URL.
        detail: OpenAI's fidelity hint (``"auto"``, ``"low"``, ``"high"``) as the caller
            gave it, or ``None`` when not given (then it is not sent).

    Raises:
        ValueError: an empty or non-string ``url``, or a ``detail`` that is not a short
            string.
    """

    url: str
    detail: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url:
            raise ValueError("an image part needs a url")
        if self.detail is not None and (
            not isinstance(self.detail, str) or not 0 < len(self.detail) <= 32
        ):
            raise ValueError(
                f"an image part's detail must be a short string; got {self.detail!r:.40}"
            )

    def to_openai(self) -> dict[str, Any]:
        """``{"type": "image_url", "image_url": {"url", "detail"?}}``."""
        image: dict[str, Any] = {"url": self.url}
        if self.detail is not None:
            image["detail"] = self.detail
        return {"type": "image_url", "image_url": image}


ContentPart: TypeAlias = "str | ImagePart"
"""One part of a message's content, in order: a text part's text or an ``ImagePart``."""


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message, in the OpenAI chat-completions shape.

    Attributes:
        role: ``"system"``, ``"user"``, ``"assistant"`` or ``"tool"`` (OpenAI's
            ``"developer"`` is accepted on input and stored as ``"system"``).
        content: the message text (text parts of a list-of-parts content, joined); may
            be empty for an assistant message that only calls tools.
        images: the URLs (``https://`` or ``data:``) of the message's ``image_url``
            parts, in order; a provider without ``Capability.VISION`` refuses them.
        tool_calls: an assistant message's tool calls, in order (``ToolCall``).
        tool_call_id: a ``tool`` message's answer to that call id (required there).
        parts: the content as given when it is a list of parts with images: each text
            part's text and each ``ImagePart`` (with its ``detail``) in their order;
            ``content`` and ``images`` are derived from it (given alone, they are
            filled in). Empty otherwise: then the content is ``content`` followed by
            ``images`` (``content_parts``).

    Raises:
        ValueError: on an unknown role, a non-string content, tool calls on a message
            that is not the assistant's, a ``tool`` message without ``tool_call_id``,
            or ``parts`` that disagree with ``content``/``images``.
    """

    role: Role
    content: str
    images: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    parts: tuple[ContentPart, ...] = ()

    def __post_init__(self) -> None:
        if self.parts:
            self._check_parts()
        if self.role not in _ROLES:
            raise ValueError(
                "message role must be one of system, developer, user, assistant, tool; "
                f"got {self.role!r}"
            )
        if not isinstance(self.content, str):
            raise ValueError(f"message content must be a string; got {type(self.content).__name__}")
        if self.tool_calls:
            if self.role != "assistant":
                raise ValueError("only an assistant message carries tool_calls")
            if not all(isinstance(call, ToolCall) for call in self.tool_calls):
                raise ValueError("tool_calls must be ToolCall values")
        if self.role == "tool":
            if not isinstance(self.tool_call_id, str) or not self.tool_call_id:
                raise ValueError("a tool message needs the tool_call_id it answers")
        elif self.tool_call_id is not None:
            raise ValueError("only a tool message carries a tool_call_id")

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat message: ``{"role", "content"}`` and its tool fields.

        ``tool_calls`` or ``tool_call_id`` when set; a message with images has a list
        of parts, text and ``image_url`` parts in their order (``content_parts``, each
        image's ``detail`` kept). An assistant message that only calls tools has
        ``"content": null``, as OpenAI writes it.
        """
        content: Any = self.content
        if self.images:
            content = [
                part.to_openai() if isinstance(part, ImagePart) else {"type": "text", "text": part}
                for part in self.content_parts
            ]
        out: dict[str, Any] = {"role": self.role, "content": content}
        if self.tool_calls:
            if not self.content and not self.images:
                out["content"] = None
            out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out

    @property
    def content_parts(self) -> tuple[ContentPart, ...]:
        """The content as parts in order.

        ``parts`` when given, else the text (when not empty) followed by an
        ``ImagePart`` per URL of ``images``.
        """
        if self.parts:
            return self.parts
        head: tuple[ContentPart, ...] = (self.content,) if self.content else ()
        return head + tuple(ImagePart(url) for url in self.images)

    @property
    def image_parts(self) -> tuple[tuple[int, ImagePart], ...]:
        """Each image of the message with its index among ``content_parts``."""
        return tuple(
            (j, part) for j, part in enumerate(self.content_parts) if isinstance(part, ImagePart)
        )

    def _check_parts(self) -> None:
        """Fill ``content``/``images`` from ``parts``, or check that they agree."""
        if not all(isinstance(part, (str, ImagePart)) for part in self.parts):
            raise ValueError("message parts must be strings (text) or ImagePart values")
        text = "".join(part for part in self.parts if isinstance(part, str))
        urls = tuple(part.url for part in self.parts if isinstance(part, ImagePart))
        if not self.content and not self.images:
            object.__setattr__(self, "content", text)
            object.__setattr__(self, "images", urls)
        elif (self.content, tuple(self.images)) != (text, urls):
            raise ValueError("a message's content and images must be those of its parts")


MessagesInput: TypeAlias = (
    "str | Message | Mapping[str, Any] | Iterable[Message | Mapping[str, Any]]"
)
"""What the clients accept as ``messages``: a prompt string (one user message), one
``Message``, one ``{"role", "content"}`` mapping (OpenAI's shape, with ``tool_calls``
or ``tool_call_id``), or an iterable of those."""


def _content_of(index: int, content: Any) -> tuple[str, tuple[str, ...], tuple[ContentPart, ...]]:
    """Text, image URLs and (with images) the parts in order of an OpenAI ``content``."""
    if isinstance(content, str):
        return content, (), ()
    if content is None:
        return "", (), ()
    if not isinstance(content, (list, tuple)):
        raise ValueError(
            f"messages[{index}].content must be a string or a list of parts; "
            f"got {type(content).__name__}"
        )
    parts: list[ContentPart] = []
    for j, part in enumerate(content):
        where = f"messages[{index}].content[{j}]"
        if isinstance(part, str):
            parts.append(part)
            continue
        if not isinstance(part, Mapping):
            raise ValueError(f"{where} must be a content part object")
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            detail = image.get("detail") if isinstance(image, Mapping) else None
            if not isinstance(url, str) or not url:
                raise ValueError(f"{where} (image_url) has no url")
            try:
                parts.append(ImagePart(url, detail))
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        else:
            raise ValueError(f"{where} has an unsupported type {kind!r} (text or image_url)")
    text = "".join(part for part in parts if isinstance(part, str))
    images = tuple(part.url for part in parts if isinstance(part, ImagePart))
    return text, images, tuple(parts) if images else ()


def normalize_messages(messages: Any) -> tuple[Message, ...]:
    """Turn any accepted ``messages`` input into a tuple of ``Message``.

    Args:
        messages: a prompt string, a ``Message``, a ``{"role", "content"}`` mapping or an
            iterable of messages/mappings (OpenAI chat-completions shape: roles
            ``system``, ``developer`` (stored as system), ``user``, ``assistant``,
            ``tool``; ``content`` a string or a list of ``text`` / ``image_url``
            parts (text parts joined into ``content``; with images, every part kept
            in order in ``Message.parts``, each image's ``detail`` too), ``null`` or
            absent for an assistant message with ``tool_calls``; an assistant's
            ``tool_calls`` (OpenAI's function tool-call objects), a tool message's
            ``tool_call_id``; other keys such as ``name`` are ignored).

    Returns:
        A non-empty tuple of ``Message``.

    Raises:
        ValueError: if the input is empty or an item is not a valid message; the error
            names the item's index and what is wrong.
    """
    if isinstance(messages, str):
        return (Message("user", messages),)
    if type(messages) is list:  # the usual shape: no ABC checks (a few µs per call)
        pass
    elif isinstance(messages, (Message, Mapping)):
        messages = [messages]
    elif isinstance(messages, bytes) or not isinstance(messages, Iterable):
        raise ValueError(
            "messages must be a string, a message or a list of messages, not "
            f"{type(messages).__name__}"
        )
    out: list[Message] = []
    for index, item in enumerate(messages):
        if type(item) is dict:
            out.append(_message_of(index, item))
            continue
        if isinstance(item, Message):
            out.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ValueError(
                f"messages[{index}] must be a Message or a mapping with 'role' and "
                f"'content'; got {type(item).__name__}"
            )
        out.append(_message_of(index, item))
    if not out:
        raise ValueError("messages must contain at least one message")
    return tuple(out)


def _message_of(index: int, item: Mapping[str, Any]) -> Message:
    """One OpenAI-shaped message mapping as a ``Message``."""
    role = item.get("role")
    if "role" not in item:
        raise ValueError(f"messages[{index}] lacks 'role'")
    if not isinstance(role, str) or role not in _INPUT_ROLES:
        raise ValueError(
            f"messages[{index}].role must be one of system, developer, user, assistant, "
            f"tool; got {role!r:.40}"
        )
    raw_calls = item.get("tool_calls")
    calls: tuple[ToolCall, ...] = ()
    if raw_calls is not None and role == "assistant":
        if not isinstance(raw_calls, (list, tuple)):
            raise ValueError(f"messages[{index}].tool_calls must be a list")
        calls = tuple(
            ToolCall.from_openai(call, f"messages[{index}].tool_calls[{j}]")
            for j, call in enumerate(raw_calls)
        )
    elif raw_calls:
        raise ValueError(f"messages[{index}].tool_calls: only an assistant message has them")
    if "content" not in item and not calls:
        raise ValueError(f"messages[{index}] lacks 'content'")
    text, images, parts = _content_of(index, item.get("content"))
    call_id = item.get("tool_call_id")
    if role == "tool":
        if not isinstance(call_id, str) or not call_id or len(call_id) > _MAX_ID:
            raise ValueError(
                f"messages[{index}].tool_call_id must be the id of the call it answers"
            )
    elif call_id is not None:
        raise ValueError(f"messages[{index}].tool_call_id: only a tool message has one")
    return Message(
        _INPUT_ROLES[role],  # type: ignore[arg-type]
        text,
        images,
        tool_calls=calls,
        tool_call_id=call_id if role == "tool" else None,
        parts=parts,
    )


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a provider receives: messages plus generation parameters.

    Parameters the provider does not declare (``Provider.parameters``) have already
    been dropped by the engine (``None`` / ``()``).

    Attributes:
        messages: the whole conversation, oldest first (system messages included).
        model: the provider's own model id (aliases already resolved).
        temperature: sampling temperature (provider range, usually 0..2), or ``None``.
        max_tokens: upper bound on generated tokens, or ``None``.
        top_p: nucleus-sampling mass in (0, 1], or ``None``.
        stop: stop sequences.
        seed: random seed, or ``None``.
        state: this provider's own state from the previous turn, only while it is
            current (the last answer came from this provider), else ``None``; with it,
            a provider that keeps server-side state sends only the new turn.
        options: provider-specific options, only the names the provider declares.
        deadline: ``time.monotonic()`` value by which the first content (or the whole
            answer, whichever is sooner) is due, or ``None``: a provider that waits
            (a model loading, a Space waking) waits no longer than this.
        strict: the client's ``strict`` setting: a part of the request the provider
            finds it cannot deliver (a system prompt a Space has no input for) is an
            ``InvalidRequestError`` instead of a warning.
        image_fetch: how the provider may fetch an ``http(s)`` image URL itself when
            its service cannot take the URL (``llmrelay._image_fetch.ImageFetchPolicy``:
            size cap, timeout, public addresses only), or ``None``: never (the client's
            ``allow_image_fetch`` setting; off by default). A service that takes URLs
            gets the URL unfetched either way.
        tools: the function tools the model may call (``Tool``), in order; empty: none.
        tool_choice: whether and which tool must be called, or ``None`` (the
            service's default: ``auto`` with tools).
        parallel_tool_calls: whether the model may call several tools in one turn, or
            ``None`` (the service's default).
        response_format: the form of the answer (JSON object or schema), or ``None``
            (text).
        frequency_penalty: OpenAI's frequency penalty (-2..2), or ``None``.
        presence_penalty: OpenAI's presence penalty (-2..2), or ``None``.
        passthrough: OpenAI chat-completions fields (``reasoning_effort``,
            ``logit_bias`` ...) to send verbatim; only those the provider ``forwards``.

    The engine sends ``tools``, ``tool_choice``, ``parallel_tool_calls`` and
    ``response_format`` only to a provider (and model) that declares it can honour
    them; otherwise the request is refused before anything is sent.
        prefill: the start of the assistant's answer, to be continued (a mid-stream
            rescue); ``""`` for a new answer. Only a provider whose
            ``Provider.continues(model)`` is true ever receives one: it sends the text
            as the beginning of the assistant's turn and streams only what follows.
    """

    messages: tuple[Message, ...]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    state: ConversationState | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    deadline: float | None = None
    strict: bool = False
    image_fetch: ImageFetchPolicy | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    passthrough: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    prefill: str = ""


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """First event of every stream: who answers.

    Attributes:
        provider: registry name, e.g. ``"hf_spaces"``.
        model: the provider's own model id, e.g. ``"Qwen/Qwen2-72B-Instruct"``.
        label: human-readable provider label.
    """

    provider: str
    model: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A delta of visible model reasoning (not part of the answer text)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call, exactly as the provider streamed it.

    The calls of one answer are told apart by ``index`` (0, 1, ... in the order they
    start; parallel calls may interleave). The first delta of a call carries its ``id``
    and ``name`` (and maybe a first argument fragment, even all of them); later deltas
    of that call carry only an ``arguments`` fragment. Fragments are never joined, split
    or delayed: concatenated in order they give the call's arguments (JSON text). The
    OpenAI encoders write each as one ``choices[0].delta.tool_calls`` entry
    (``ChoiceDeltaToolCall``: the first with ``id``, ``type: "function"`` and
    ``function.name``, later ones ``function.arguments`` only).

    Attributes:
        index: the call's position in the answer's calls.
        id: the call id, on the call's first delta only; else ``None``.
        name: the function name, on the call's first delta only; else ``None``.
        arguments: an arguments fragment (``""`` when the delta carries none).
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class FinishReason:
    """Why generation ended; exactly one per stream, always last.

    Attributes:
        reason: an OpenAI ``finish_reason`` value: ``"stop"`` (natural end or stop
            sequence), ``"length"`` (token limit), ``"tool_calls"`` (the answer is
            tool calls to run, ``ToolCallDelta`` events), ``"content_filter"``.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the provider (``None`` where unknown)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Queued:
    """The request is waiting in the service's queue; may repeat as the queue moves.

    Sent before any content by providers whose service queues requests (a Gradio
    Space's ``estimation`` message:
    https://www.gradio.app/guides/querying-gradio-apps-with-curl). It is not content:
    the first-token timeout keeps running while a request is queued.

    Attributes:
        position: requests ahead of this one (``0``: it is next), when known.
        queue_size: requests in the queue, when known.
        eta: estimated seconds until this request starts, when known.
    """

    position: int | None
    queue_size: int | None = None
    eta: float | None = None


@dataclass(frozen=True, slots=True)
class ConversationState:
    """Provider-side state to send back on the next turn (JSON-serialisable ``data``).

    Attributes:
        provider: registry name of the provider the state belongs to.
        data: JSON-serialisable mapping, opaque to callers.
    """

    provider: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ImageResult:
    """A generated image; saving it is the caller's choice.

    Attributes:
        data: the encoded image bytes.
        mime_type: e.g. ``"image/png"``.
        seed: the seed used, when known.
        width: width in pixels, when known.
        height: height in pixels, when known.
    """

    data: bytes = field(repr=False)
    mime_type: str
    seed: int | None = None
    width: int | None = None
    height: int | None = None


Event: TypeAlias = (
    str
    | ProviderInfo
    | Reasoning
    | ToolCallDelta
    | FinishReason
    | Usage
    | ConversationState
    | ImageResult
    | Queued
)


def event_to_dict(event: Event) -> dict[str, Any]:
    """Render an event as a JSON-ready dict with a ``type`` field.

    Shapes: ``{"type": "text", "text"}``, ``{"type": "provider", "provider", "model",
    "label"}``, ``{"type": "reasoning", "text"}``, ``{"type": "finish", "reason"}``,
    ``{"type": "usage", "prompt_tokens", "completion_tokens", "total_tokens"}``,
    ``{"type": "state", "provider", "data"}``, ``{"type": "image", "mime_type", "bytes",
    "seed"}`` (``bytes`` is the image size; the data itself is not included),
    ``{"type": "queued", "position", "queue_size", "eta"}``,
    ``{"type": "tool_call", "index", "id", "name", "arguments"}`` (``id`` and ``name``
    ``null`` after a call's first delta).

    Raises:
        TypeError: if ``event`` is not an event.
    """
    if isinstance(event, str):
        return {"type": "text", "text": event}
    if isinstance(event, ProviderInfo):
        return {
            "type": "provider",
            "provider": event.provider,
            "model": event.model,
            "label": event.label,
        }
    if isinstance(event, Reasoning):
        return {"type": "reasoning", "text": event.text}
    if isinstance(event, ToolCallDelta):
        return {
            "type": "tool_call",
            "index": event.index,
            "id": event.id,
            "name": event.name,
            "arguments": event.arguments,
        }
    if isinstance(event, FinishReason):
        return {"type": "finish", "reason": event.reason}
    if isinstance(event, Usage):
        return {
            "type": "usage",
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
            "total_tokens": event.total_tokens,
        }
    if isinstance(event, ConversationState):
        return {"type": "state", "provider": event.provider, "data": dict(event.data)}
    if isinstance(event, ImageResult):
        return {
            "type": "image",
            "mime_type": event.mime_type,
            "bytes": len(event.data),
            "seed": event.seed,
        }
    if isinstance(event, Queued):
        return {
            "type": "queued",
            "position": event.position,
            "queue_size": event.queue_size,
            "eta": event.eta,
        }
    raise TypeError(f"not an llmrelay event: {type(event).__name__}")


EmbeddingInput: TypeAlias = str | tuple[str, ...] | tuple[int, ...] | tuple[tuple[int, ...], ...]
"""What is embedded, in OpenAI's four forms (``input`` of ``POST /v1/embeddings``): one
text, several texts, one token array, or several token arrays (token ids of the model's
own tokenizer)."""
