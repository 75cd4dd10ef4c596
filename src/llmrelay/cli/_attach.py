"""``llmrelay chat -a/--attachment``: images sent with the prompt, as simonw's ``llm -a``.

An attachment is an ``http(s)://`` URL or a ``data:`` URL (sent as it is: the provider
fetches it, or llmrelay does for a provider that takes only bytes), or a local file,
sent as a ``data:`` URL of its bytes, its type from its name (PNG, JPEG, WebP, GIF: the
types OpenAI's vision input takes, https://platform.openai.com/docs/guides/images-vision).
Each becomes an ``image_url`` content part after the prompt's text part, in the order
given; the library checks the bytes against the type and the size before anything is
sent, and a provider without vision refuses the message, naming it.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from typing import Any

import click

__all__ = ["MAX_FILE_BYTES", "image_part", "with_attachments"]

MAX_FILE_BYTES = 20 * 1024 * 1024
"""The largest file read (bytes): OpenAI's per-image limit for vision input."""

_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")


def image_part(value: str) -> dict[str, Any]:
    """The ``image_url`` content part of one ``--attachment`` (URL or file path).

    Raises:
        click.BadParameter: a file that cannot be read, is larger than
            ``MAX_FILE_BYTES``, or whose name is not of an image type above.
    """
    if value.startswith(("https://", "http://", "data:")):
        return {"type": "image_url", "image_url": {"url": value}}
    kind, _ = mimetypes.guess_type(value, strict=False)
    if kind not in _TYPES:
        raise click.BadParameter(
            f"{value!r:.200} is not a PNG, JPEG, WebP or GIF file (by its name) or an "
            "http(s):// or data: URL",
            param_hint="'-a' / '--attachment'",
        )
    try:
        with open(value, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_FILE_BYTES:
                raise click.BadParameter(
                    f"{value!r:.200} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                    param_hint="'-a' / '--attachment'",
                )
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {value!r:.200}: {exc.strerror or exc}",
            param_hint="'-a' / '--attachment'",
        ) from None
    if len(data) > MAX_FILE_BYTES:  # grew while read
        raise click.BadParameter(
            f"{value!r:.200} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
            param_hint="'-a' / '--attachment'",
        )
    encoded = base64.b64encode(data).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{kind};base64,{encoded}"}}


def with_attachments(prompt: str, parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """The turn's ``messages`` input: ``prompt``, or one user message of it and ``parts``."""
    if not parts:
        return prompt
    return [{"role": "user", "content": [{"type": "text", "text": prompt}, *parts]}]
