"""Text at the edges of the CLI: decoding what the user gives, cleaning what errors say."""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

import click

import llmrelay.settings

__all__ = [
    "InputDecodeError",
    "StatusLine",
    "clean_error_text",
    "decode_argument",
    "decode_bytes",
    "queued_text",
]

ERROR_TEXT_LIMIT = 300

# The patterns are compiled at their first use (``re.compile`` keeps them in its cache):
# a chat's first token needs none of them.
# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), and two-character escapes.
_ESCAPES = r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?"
_HTML = r"<(?:!doctype\s+html|html|head|body)\b"
_TITLE = r"<title[^>]*>([^<]*)"
_STATUS = r"\b[1-5]\d\d\b"


class InputDecodeError(click.ClickException):
    """Input bytes that are not text in the chosen encoding (exit status 2, one line)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        """``llmrelay: error: <message>`` on stderr."""
        click.echo(f"llmrelay: error: {self.format_message()}", err=True, file=file)


def _describe(what: str, encoding: str, data: bytes, start: int) -> str:
    return (
        f"{what} is not valid {encoding}: byte 0x{data[start]:02x} at offset {start}; "
        "give its encoding with --encoding (e.g. --encoding latin-1)"
    )


def decode_bytes(data: bytes, encoding: str | None, what: str) -> str:
    """Decode ``data`` (default UTF-8, a leading BOM dropped) or raise ``InputDecodeError``."""
    name = encoding or "utf-8"
    if encoding is None and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode(name)
    except UnicodeDecodeError as exc:
        raise InputDecodeError(_describe(what, name, data, exc.start)) from None
    except LookupError:
        raise InputDecodeError(f"unknown encoding {name!r} (--encoding)") from None


def decode_argument(value: str, encoding: str | None, what: str) -> str:
    """Undo the OS's undecodable-byte escapes in an argument, or explain them.

    Python gives bytes of ``argv`` that are not valid in the locale's encoding as lone
    surrogates (PEP 383). With ``encoding`` they are decoded as that encoding.
    """
    if encoding is None and not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # other lone surrogates: not from the OS, keep as they are
        return value
    return decode_bytes(data, encoding, what)


def _summarise_html(text: str) -> str:
    found = re.compile(_HTML, re.IGNORECASE).search(text)
    if found is None:
        return text
    before = text[: found.start()].rstrip(" :")
    title_match = re.compile(_TITLE, re.IGNORECASE).search(text, found.start())
    title = " ".join(title_match.group(1).split()) if title_match else ""
    for status in set(re.findall(_STATUS, before)):  # the status once
        title = re.sub(rf"\b{status}\b", "", title).strip(" -:")
    page = f"an HTML error page titled {title!r}" if title else "an HTML error page"
    return f"{before}: {page}" if before else page


def clean_error_text(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """One line of at most ``limit`` characters for a terminal.

    HTML pages are summarised (status once, the page title), terminal escapes and control
    characters removed, whitespace collapsed.
    """
    text = _summarise_html(text)
    text = re.sub(_ESCAPES, "", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queued_text(position: int | None, eta: float | None) -> str:
    """The status of a queued request: ``"queued 3rd, ~12 s"``.

    Args:
        position: requests ahead (``0``: next, shown as "1st"), or ``None``.
        eta: estimated seconds until it starts, or ``None``.
    """
    text = "queued" if position is None else f"queued {_ordinal(position + 1)}"
    if eta is not None:
        text += f", ~{eta:.0f} s" if eta >= 1 else ", <1 s"
    return text


class StatusLine:
    """One transient status line on stderr, only when stderr is a terminal.

    ``show`` rewrites the line in place; ``clear`` erases it (before the answer, an
    error or the end). On a pipe, a file or a dumb terminal it writes nothing.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        isatty = getattr(self._stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) and not llmrelay.settings.dumb_terminal()
        self._shown = False

    def show(self, text: str) -> None:
        """Replace the status with ``text`` (one line, escapes removed)."""
        if not self.enabled:
            return
        line = re.sub(_ESCAPES, "", text).replace("\r", " ").replace("\n", " ")
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the status, if one is shown."""
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False
