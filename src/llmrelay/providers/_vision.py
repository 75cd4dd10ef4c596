"""Where a request's images are, and the errors that name them.

Images are ``ImagePart`` values of ``Message.content_parts``; an error about one names
the message (``param`` ``messages[i]``, OpenAI's error ``param``) and, in its text, the
part (``content[j]``) and the provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errors
from ..types import ChatRequest, ImagePart

if TYPE_CHECKING:
    from ._image_input import ImageError

__all__ = ["ImageAt", "image_error", "images_of", "refuse_images"]

ImageAt = tuple[int, int, ImagePart]
"""An image of a request: its message index, its index among the message's parts, the part."""


def images_of(request: ChatRequest) -> list[ImageAt]:
    """Every image of ``request``, in message and part order."""
    return [
        (index, part, image)
        for index, message in enumerate(request.messages)
        if message.images
        for part, image in message.image_parts
    ]


def refuse_images(
    request: ChatRequest, provider: str, reason: str, at: ImageAt | None = None
) -> errors.InvalidRequestError:
    """The error for an image ``provider`` cannot take (``at``: default the first one).

    Args:
        request: the request holding the image.
        provider: the provider's registry name.
        reason: why it cannot be taken (a sentence without a final stop).
        at: the image to name.
    """
    index, part, _ = at if at is not None else images_of(request)[0]
    return errors.InvalidRequestError(
        f"messages[{index}] has an image_url part (content[{part}]) that {provider} cannot "
        f"take: {reason}",
        provider=provider,
        model=request.model,
        param=f"messages[{index}]",
    )


def image_error(
    exc: ImageError, request: ChatRequest, provider: str, at: ImageAt
) -> errors.InvalidRequestError:
    """An ``ImageError`` about the image ``at`` as an ``InvalidRequestError`` naming it."""
    index, part, _ = at
    return errors.InvalidRequestError(
        f"messages[{index}].content[{part}] (image_url): {exc}",
        provider=provider,
        model=request.model,
        param=f"messages[{index}].content[{part}]",
    )
