"""What the Responses and Anthropic Messages shapes share: request-field checks and frames.

Both shapes read a JSON request body field by field (a field that is malformed, unknown
or that llmrelay cannot honour is an ``llmrelay.errors.ConfigError`` naming it in
``param``; a field given as ``null`` is as if not given, as the SDKs' dumped models
carry ``null`` for every unset field) and write ``event: <type>`` / ``data: <json>`` SSE frames.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any, NoReturn

from .. import errors

__all__ = [
    "dumps",
    "field_error",
    "new_id",
    "opt_bool",
    "opt_int",
    "opt_number",
    "opt_str",
    "sse_event",
]

_LINE_BREAKS = ("\u2028", "\u2029", "\x85")


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
