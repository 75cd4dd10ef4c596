"""What the facade's opened streams share (chat completions, Responses, Messages).

Each wraps one opened ``AsyncChatStream`` (``events``) and converts its events to one
API's objects; the provider, the model and closing are the underlying stream's.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from ._stream import AsyncChatStream

__all__ = ["OpenedStream"]


class OpenedStream:
    """An opened turn's events in one API's shape (a base class; subclasses iterate).

    Attributes:
        events: the underlying ``AsyncChatStream`` (provider, model, attempts).
    """

    events: AsyncChatStream

    @property
    def provider(self) -> str | None:
        """Registry name of the provider answering."""
        return self.events.provider

    @property
    def model(self) -> str | None:
        """That provider's model id."""
        return self.events.model

    def __aiter__(self) -> Self:
        return self

    async def aclose(self) -> None:
        """Stop early and close the provider's connection."""
        await self.events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
