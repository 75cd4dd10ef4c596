"""Image helpers: request size mapping and checking returned bytes (pure functions).

``sniff_image`` trusts the bytes' magic number over the declared content type
(PNG ``89 50 4E 47``, JPEG ``FF D8 FF``, WebP ``RIFF....WEBP``, GIF ``GIF8``) and reads
the pixel size from the PNG ``IHDR`` / JPEG ``SOFn`` / GIF header when it can.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Any

from .. import errors
from .._http import protocol_error, upstream_text

if TYPE_CHECKING:
    from ..types import ImageRequest

__all__ = ["ASPECT_RATIOS", "image_parameters", "image_size", "sniff_image"]

log = logging.getLogger(__name__)

ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
}
"""Supported aspect ratios -> default (width, height) in pixels (multiples of 64, the
sizes SDXL-class models are trained at; 1344x768 is the closest to 16:9). With one side
given, the other follows the exact ratio, rounded to a multiple of 8."""


def _round8(value: float) -> int:
    return max(8, round(value / 8) * 8)


def image_parameters(request: ImageRequest) -> tuple[dict[str, Any], tuple[int | None, int | None]]:
    """Inference API ``parameters`` for ``request`` and the requested ``(width, height)``.

    ``aspect_ratio`` fills in what ``width``/``height`` leave open.

    Raises:
        llmrelay.errors.ConfigError: an unsupported aspect ratio or a non-positive size.
    """
    width, height = request.width, request.height
    for value in (width, height):
        if value is not None and value <= 0:
            raise errors.ConfigError(f"image width and height must be positive, got {value}")
    if request.aspect_ratio is not None:
        try:
            ratio_w, ratio_h = ASPECT_RATIOS[request.aspect_ratio]
        except KeyError:
            raise errors.ConfigError(
                f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}, "
                f"got {request.aspect_ratio!r}"
            ) from None
        across, down = (int(n) for n in request.aspect_ratio.split(":"))
        if width is None and height is None:
            width, height = ratio_w, ratio_h
        elif height is None and width is not None:
            height = _round8(width * down / across)
        elif width is None and height is not None:
            width = _round8(height * across / down)
    params: dict[str, Any] = {}
    if width is not None:
        params["width"] = width
    if height is not None:
        params["height"] = height
    if request.seed is not None:
        params["seed"] = request.seed
    if request.negative_prompt:
        params["negative_prompt"] = request.negative_prompt
    for name in ("guidance_scale", "num_inference_steps"):
        if request.options.get(name) is not None:
            params[name] = request.options[name]
    return params, (width, height)


def _magic(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return None


def image_size(data: bytes, mime: str) -> tuple[int, int] | None:
    """``(width, height)`` read from the image header, or ``None`` when unknown."""
    try:
        if mime == "image/png" and len(data) >= 24 and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        if mime == "image/gif" and len(data) >= 10:
            width, height = struct.unpack("<HH", data[6:10])
            return int(width), int(height)
        if mime == "image/jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    limit = min(len(data), 1 << 20)
    while index + 9 <= limit:
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return int(width), int(height)
        if length < 2:
            return None
        index += 2 + length
    return None


def sniff_image(
    data: bytes, content_type: str, *, provider: str, model: str | None
) -> tuple[str, tuple[int, int] | None]:
    """The MIME type of ``data`` (checked against ``content_type``) and its size.

    Raises:
        llmrelay.errors.ProtocolError: ``data`` is not a PNG, JPEG, WebP or GIF image
            (the error names the declared type and describes the body).
    """
    declared = content_type.partition(";")[0].strip().lower()
    actual = _magic(data)
    if actual is None:
        raise protocol_error(
            f"expected image bytes, got {upstream_text(declared, 80) or 'no content-type'}",
            data,
            provider=provider,
            model=model,
        )
    if declared != actual:
        log.info("%s: content-type %r but the bytes are %s", provider, declared, actual)
    return actual, image_size(data, actual)
