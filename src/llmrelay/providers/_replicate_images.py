"""Replicate image generation: ``Prefer: wait`` prediction, polling, bounded download.

Protocol (https://replicate.com/docs/topics/predictions/create-a-prediction, replicate-python
``replicate/run.py`` and ``replicate/prediction.py``):

* ``POST .../predictions`` with ``Prefer: wait`` (or ``wait=N``, N <= 60 seconds) blocks
  until the prediction has output or the wait ends: **201** with ``output`` filled (for
  file outputs the status may still read ``processing``: the files are all there) or
  **202** with ``status: "starting"`` (or ``processing`` without output);
* otherwise ``GET urls.get`` is polled (0.5 s, growing by half each time up to 5 s)
  until ``succeeded``, ``failed`` or ``canceled`` — never past ``request.deadline``
  (then the prediction is cancelled and ``ProviderTimeout`` raised);
* ``output`` is a URL, a ``data:`` URI, or a list of them (the first is used); the file
  is downloaded without the API token (unless it is on the API's own origin), at most
  ``MAX_IMAGE_BYTES``; its MIME type is the one its bytes' magic number shows (PNG,
  JPEG, GIF, WebP; ``_images.sniff_image``), a ``Content-Type`` that disagrees is
  overruled, and bytes that are no such image are a ``ProtocolError``.

Input mapping: ``prompt``, ``aspect_ratio``, ``width``, ``height``, ``seed``,
``negative_prompt`` (each only when given), then ``extra_input``.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
import time
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from .. import errors
from .._http import read_bounded, upstream_text
from ..types import ImageResult
from ._images import sniff_image
from ._replicate_http import Prediction, Session, parse_prediction, prediction_route

if TYPE_CHECKING:
    from ..types import ImageRequest

__all__ = ["MAX_IMAGE_BYTES", "generate", "image_input", "webp_size"]


MAX_IMAGE_BYTES = 32 * 1024 * 1024
"""Largest image accepted, in bytes."""
MAX_WAIT = 60
"""Longest ``Prefer: wait`` Replicate honours, in seconds."""
NO_DEADLINE_LIMIT = 600.0
"""How long polling goes on when the request has no deadline, in seconds."""
_TERMINAL = frozenset({"succeeded", "failed", "canceled"})


def image_input(request: ImageRequest) -> dict[str, Any]:
    """The prediction ``input`` for ``request``.

    Raises:
        llmrelay.errors.InvalidRequestError: ``extra_input`` is not a string-keyed mapping.
    """
    data: dict[str, Any] = {"prompt": request.prompt}
    for key in ("aspect_ratio", "width", "height", "seed", "negative_prompt"):
        value = getattr(request, key)
        if value is not None:
            data[key] = value
    extra = request.options.get("extra_input")
    if extra is not None:
        if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
            raise errors.InvalidRequestError(
                "option extra_input must be a mapping with string keys",
                provider="replicate",
                model=request.model,
            )
        data.update(extra)
    return data


async def generate(session: Session, base_url: str, request: ImageRequest) -> ImageResult:
    """Run an image model and return its first output image (see the module docstring)."""
    model = request.model
    url, body = prediction_route(base_url, model)
    body["input"] = image_input(request)
    deadline = request.deadline
    if deadline is None:
        deadline = time.monotonic() + NO_DEADLINE_LIMIT
    wait = max(1, min(MAX_WAIT, math.floor(deadline - time.monotonic())))
    base = session.http.timeout
    # the server holds the answer up to `wait` seconds: the idle timeout must outlast it
    read = None if base.read is None else max(base.read, wait + 10.0)
    timeout = httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)
    _, payload = await session.post_json(
        url,
        body,
        model=model,
        what="create prediction",
        headers={"prefer": "wait" if wait == MAX_WAIT else f"wait={wait}"},
        http_timeout=timeout,
    )
    prediction = parse_prediction(payload, provider=session.provider, model=model)
    if not _has_output(prediction):
        try:
            prediction = await _poll(session, prediction, model, deadline)
        except BaseException:
            # timed out, failed to poll or the caller gave up: stop paying for it
            await session.cancel(prediction.cancel, model)
            raise
    _check_outcome(prediction, session.provider, model)
    source = _first_output(prediction.output, session.provider, model)
    data, declared = await _download(session, source, model)
    mime, size = sniff_image(data, declared or "", provider=session.provider, model=model)
    if size is None and mime == "image/webp":
        size = webp_size(data)
    width, height = size if size is not None else (None, None)
    return ImageResult(data=data, mime_type=mime, seed=request.seed, width=width, height=height)


def _has_output(prediction: Prediction) -> bool:
    if prediction.status in _TERMINAL:
        return True
    # Prefer: wait answers 201 with the output filled while the status still reads
    # "processing" (replicate-python run.py treats any status but "starting" as done).
    return prediction.status != "starting" and bool(prediction.output)


async def _poll(
    session: Session, prediction: Prediction, model: str, deadline: float
) -> Prediction:
    """Poll ``urls.get`` with backoff until the prediction has ended or the deadline."""
    if prediction.get is None:
        raise errors.ProtocolError(
            "the unfinished prediction has no urls.get", provider=session.provider, model=model
        )
    delay = 0.5
    while not _has_output(prediction):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise errors.ProviderTimeout(
                f"the image was not ready in time (status "
                f"{upstream_text(prediction.status, 40) or 'unknown'!r})",
                provider=session.provider,
                model=model,
                kind="total",
            )
        await anyio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 5.0)
        payload = await session.get_json(
            prediction.get, model=model, what="get prediction", model_404=False
        )
        prediction = parse_prediction(payload, provider=session.provider, model=model)
    return prediction


def _check_outcome(prediction: Prediction, provider: str, model: str) -> None:
    if prediction.status == "failed":
        said = upstream_text(prediction.error) if isinstance(prediction.error, str) else None
        raise errors.ProviderError(
            f"the prediction failed: {said or 'no error message'}",
            provider=provider,
            model=model,
        )
    if prediction.status == "canceled":
        raise errors.ProviderError("the prediction was canceled", provider=provider, model=model)


def _first_output(output: Any, provider: str, model: str) -> str:
    first = output[0] if isinstance(output, list) and output else output
    if not isinstance(first, str) or not first.startswith(("https:", "http:", "data:")):
        raise errors.ProtocolError(
            f"the prediction's output is not a file URL (a {type(first).__name__})",
            provider=provider,
            model=model,
            body=str(output)[:2000],
        )
    return first


async def _download(session: Session, source: str, model: str) -> tuple[bytes, str | None]:
    """The file's bytes and its declared MIME type (``None`` when unknown)."""
    if source.startswith("data:"):
        return _data_uri(source, session.provider, model)
    async with session.get(source, model=model, what="download image", model_404=False) as response:
        data = await read_bounded(
            response,
            provider=session.provider,
            model=model,
            limit=MAX_IMAGE_BYTES,
            what="image",
        )
        declared = response.headers.get("content-type")
    return data, declared


def _data_uri(uri: str, provider: str, model: str) -> tuple[bytes, str | None]:
    header, sep, payload = uri[5:].partition(",")
    if not sep or len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise errors.ProtocolError(
            "bad or too large data: URI output", provider=provider, model=model
        )
    mime, _, encoding = header.partition(";")
    try:
        if encoding.endswith("base64"):
            data = base64.b64decode(payload, validate=True)
        else:
            data = urllib.parse.unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise errors.ProtocolError(
            f"undecodable data: URI output: {exc}", provider=provider, model=model
        ) from exc
    return data, mime or None


def webp_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a WebP header (``VP8X``, ``VP8 `` or ``VP8L``), else None.

    Flux models answer WebP by default; ``_images.image_size`` reads PNG, GIF and JPEG.
    """
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None
