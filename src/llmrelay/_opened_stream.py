"""What the facade's opened streams share (chat completions, Responses, Messages).

Each wraps one opened ``AsyncChatStream`` (``events``) and converts its events to one
API's objects; the provider, the model and closing are the underlying stream's.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._conversation import Conversation
    from ._stream import AsyncChatStream
    from ._wire._common import Origin, ShapeEvents

from ._wire._common import renamed

__all__ = ["OpenedStream", "collect_into", "open_turn"]


async def open_turn(
    client: AsyncClient,
    messages: list[dict[str, Any]],
    *,
    model: str | None,
    system: str | None,
    conversation: Conversation | None,
    chat: dict[str, Any],
    origins: list[Origin] | None = None,
) -> AsyncChatStream:
    """One chat turn through ``client.stream``, its open phase done (``start()``).

    Args:
        client: the client whose candidates, fallback and settings the turn uses.
        messages: the turn's messages (OpenAI chat shape).
        model: the model reference (``None``: the client's default).
        system: the system prompt, or ``None``.
        conversation: the conversation the turn continues, or ``None``.
        chat: the other ``llmrelay.ChatParams`` the request sets.
        origins: where each of ``messages`` came from in the client's request
            (``_wire._common.Origin``): a refusal naming ``messages[k]`` then names
            that place instead (``param`` and text).

    Raises:
        Everything ``AsyncChatStream.start`` raises (the stream is closed first).
    """
    events: AsyncChatStream | None = None
    try:
        events = client.stream(
            messages, model=model, system=system, conversation=conversation, **chat
        )
        await events.start()
    except BaseException as exc:
        if events is not None:
            await events.aclose()
        if origins is not None:
            renamed(exc, origins)
        raise
    return events


async def collect_into(events: AsyncChatStream, builder: ShapeEvents) -> None:
    """Give every event of ``events`` to ``builder`` (a whole answer), then close it.

    Raises:
        Everything iterating ``events`` raises.
    """
    try:
        async for event in events:
            builder.event(event)
    finally:
        await events.aclose()


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
