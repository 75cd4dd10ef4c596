"""What the Responses and Anthropic Messages shapes share: request-field checks and frames.

Both shapes read a JSON request body field by field (a field that is malformed, unknown
or that llmrelay cannot honour is an ``llmrelay.errors.ConfigError`` naming it in
``param``; a field given as ``null`` is as if not given, as the SDKs' dumped models
carry ``null`` for every unset field) and write ``event: <type>`` / ``data: <json>`` SSE frames.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any, Generic, NoReturn, TypeVar

from .. import errors
from ..types import Event, FinishReason, ProviderInfo, Reasoning, ToolCallDelta, Usage

__all__ = [
    "Origin",
    "ShapeEvents",
    "ShapeFrames",
    "dumps",
    "field_error",
    "frames",
    "new_id",
    "opt_bool",
    "opt_int",
    "opt_number",
    "opt_str",
    "renamed",
    "sse_event",
    "tool_entries",
]

_LINE_BREAKS = ("\u2028", "\u2029", "\x85")

Origin = tuple[str, tuple[str, ...]]
"""Where a translated chat message came from in the client's request: the message's name
(``"input[2]"``, ``"messages[1]"``) and the name of each of its content parts, in the
chat message's order (empty for text content)."""

_CHAT_PART = re.compile(r"messages\[(\d+)\]")


def renamed(exc: BaseException, origins: list[Origin]) -> None:
    """Name a refusal of translated chat message ``messages[k]`` as the client's request does.

    The engine names the chat message it refuses (``param="messages[k]"``, and
    ``content[p]`` for a part, in the text); ``origins[k]`` says where that message and
    its parts were in the request the client sent (a Responses ``input`` item, an
    Anthropic message and its block). ``exc`` is changed in place; an error without such
    a ``param`` is left as it is.
    """
    param = getattr(exc, "param", None)
    if not isinstance(param, str):
        return
    match = _CHAT_PART.match(param)
    if match is None or int(match[1]) >= len(origins):
        return
    where, parts = origins[int(match[1])]

    def part(found: re.Match[str]) -> str:
        index = int(found[1])
        return parts[index] if index < len(parts) else f"{where}.content"

    def rename(text: str) -> str:
        return re.sub(r"content\[(\d+)\]", part, text.replace(match[0], where, 1), count=1)

    exc.param = where + param[match.end() :]  # type: ignore[attr-defined]
    if isinstance(exc, errors.ProviderError):
        exc.message = rename(exc.message)
    elif exc.args and isinstance(exc.args[0], str):
        exc.args = (rename(exc.args[0]), *exc.args[1:])


def field_error(param: str, message: str) -> NoReturn:
    """Raise the ``ConfigError`` of request field ``param`` (message prefixed by it)."""
    raise errors.ConfigError(f"{param}: {message}", param=param)


def dumps(value: Any) -> bytes:
    """Compact JSON (UTF-8, non-ASCII kept; U+2028, U+2029, U+0085 escaped).

    Raises:
        UnicodeEncodeError: a string holds a lone surrogate.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii():
        for char in _LINE_BREAKS:
            if char in text:
                text = text.replace(char, f"\\u{ord(char):04x}")
    return text.encode()


def sse_event(kind: str, payload: Any) -> bytes:
    """One SSE event: ``event: kind``, ``data: <json payload>`` and a blank line."""
    return b"event: " + kind.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


def new_id(prefix: str, *, timed: bool = True) -> str:
    """``prefix`` + 12 hex digits of the time in ms + 32 random hex digits.

    The time lets a reader tell a just-made id (whose stored record may still be on its
    way to the database) from an old one; ``timed=False`` writes zeros instead (an id
    that is never stored).
    """
    stamp = int(time.time() * 1000) if timed else 0
    return f"{prefix}{stamp:012x}{secrets.token_hex(16)}"


def id_age(value: str, prefix: str) -> float | None:
    """Seconds since an id of ``new_id(prefix)`` was made, or ``None`` for another form."""
    stamp = value[len(prefix) : len(prefix) + 12]
    if not value.startswith(prefix) or len(stamp) != 12:
        return None
    try:
        return time.time() - int(stamp, 16) / 1000
    except ValueError:
        return None


def opt_str(
    body: Mapping[str, Any], name: str, where: str = "", limit: int = 1_000_000
) -> str | None:
    """``body[name]`` if it is a string (at most ``limit`` characters) or absent/null."""
    value = body.get(name)
    if value is None or (isinstance(value, str) and len(value) <= limit):
        return value
    field_error(where + name, f"must be a string of at most {limit} characters")


def opt_bool(body: Mapping[str, Any], name: str, where: str = "") -> bool | None:
    """``body[name]`` if it is a boolean or absent/null."""
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    field_error(where + name, "must be true or false")


def opt_int(body: Mapping[str, Any], name: str, low: int, high: int, where: str = "") -> int | None:
    """``body[name]`` if it is an integer in ``[low, high]`` or absent/null."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    field_error(where + name, f"must be an integer from {low} to {high}")


def opt_number(
    body: Mapping[str, Any], name: str, low: float, high: float, where: str = ""
) -> float | None:
    """``body[name]`` if it is a number in ``[low, high]`` or absent/null."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return float(value)
    field_error(where + name, f"must be a number from {low:g} to {high:g}")


def tool_entries(value: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """A request's ``tools`` entries, each with its ``param`` path (``tools[2]``).

    Absent/null gives none. Each entry is checked as it is reached (so the first bad one
    is the one named).

    Raises:
        llmrelay.errors.ConfigError: not a list of at most 128 entries, or an entry that
            is not an object.
    """
    if value is None:
        return
    if not isinstance(value, list) or len(value) > 128:
        field_error("tools", "must be a list of at most 128 tools")
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, Mapping):
            field_error(where, "must be an object")
        yield where, tool


def frames(events: list[dict[str, Any]]) -> bytes:
    """``events`` as SSE frames (``event: <type>`` and ``data: <json>``)."""
    return b"".join(sse_event(event["type"], event) for event in events)


class ShapeEvents:
    """What a shape's event builder shares: ``event(e)`` sends each event to its method.

    A subclass (``MessageEvents``, ``ResponseEvents``) writes the shape's events (dicts)
    in ``start``, ``text``, ``text_frame``, ``reasoning``, ``tool_call`` and ``finish``,
    and keeps ``ended`` and ``_usage`` (the last ``Usage``, reported with the finish).
    """

    ended: bool
    _usage: Usage | None

    def start(self) -> list[dict[str, Any]]:
        """The events that open the stream."""
        raise NotImplementedError

    def text(self, delta: str) -> list[dict[str, Any]]:
        """The events of a text delta."""
        raise NotImplementedError

    def text_frame(self, delta: str) -> bytes | None:
        """The one SSE frame of a text delta when it is quick to write, else ``None``."""
        raise NotImplementedError

    def reasoning(self, delta: str) -> list[dict[str, Any]]:
        """The events of a reasoning delta."""
        raise NotImplementedError

    def tool_call(self, delta: ToolCallDelta) -> list[dict[str, Any]]:
        """The events of a tool-call fragment."""
        raise NotImplementedError

    def finish(self, reason: str) -> list[dict[str, Any]]:
        """The events that end the stream (``reason`` is llmrelay's finish reason)."""
        raise NotImplementedError

    def event(self, event: Event) -> list[dict[str, Any]]:
        """The events of any llmrelay event (none for those without a form)."""
        if type(event) is str:
            return self.text(event)
        if isinstance(event, Reasoning):
            return self.reasoning(event.text)
        if isinstance(event, ToolCallDelta):
            return self.tool_call(event)
        if isinstance(event, Usage):
            self._usage = event
            return []
        if isinstance(event, FinishReason):
            return self.finish(event.reason)
        return []  # provider info, state, queue position, images: no form in these shapes


E = TypeVar("E", bound=ShapeEvents)


class ShapeFrames(Generic[E]):
    """A shape's builder's events as SSE frames (an ``llmrelay._wire.sse.SSEEncoder``).

    ``ProviderInfo`` (the stream's first event) gives ``start()``'s events; the finish
    gives the closing events and the terminal one, so there is no end frame.

    Args:
        events: the stream's builder.

    Attributes:
        finish_reason: the shape's name of the finish sent, once sent.
        sent_usage: the usage reported with the finish, if any.
    """

    end_frame = b""

    def __init__(self, events: E) -> None:
        self.events = events
        self.finish_reason: str | None = None
        self.sent_usage: Usage | None = None

    def text(self, text: str) -> bytes:
        """The frame(s) of a text delta.

        Raises:
            UnicodeEncodeError: ``text`` holds a lone surrogate.
        """
        frame = self.events.text_frame(text)
        if frame is not None:
            return frame
        return frames(self.events.text(text))

    def event(self, event: Event) -> bytes | None:
        """The frames of any other event, or ``None`` when it makes none."""
        if isinstance(event, ProviderInfo):
            return frames(self.events.start())
        if isinstance(event, Usage):
            self.sent_usage = event
        out = self.events.event(event)
        if isinstance(event, FinishReason):
            self.finish_reason = self._finish_name()
            self._ended()
        return frames(out) if out else None

    def tail(self) -> bytes:
        """Nothing: the terminal event was sent with the finish."""
        return b""

    def _finish_name(self) -> str:
        """The shape's name of the finish just made."""
        raise NotImplementedError

    def _ended(self) -> None:
        """Called once the finish's events were made."""
