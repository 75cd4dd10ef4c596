"""``client.messages``: Anthropic's Messages API over the one chat engine (anthropic's shape).

``create(**body)`` takes a Messages request body (``model``, ``max_tokens``, ``messages``,
``system``, ``tools``, ...; read by ``llmrelay._wire.anthropic``), runs it as one chat turn
through ``AsyncClient.stream`` (the same candidates, fallback, timeouts and provider
state as every chat call) and returns an ``AnthropicMessage``, or with ``stream=True`` an
opened ``AsyncMessageStream`` of Anthropic's stream events (``sse()`` for their SSE
frames: what ``llmrelay serve`` sends for ``POST /v1/messages``). ``count_tokens`` gives
an estimate. API reference: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import errors
from ._conversation import Conversation
from ._opened_stream import OpenedStream, collect_into, open_turn
from ._stream import AsyncChatStream
from ._wire._common import new_id
from ._wire.sse import AsyncSSEStream
from .types import normalize_messages

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._shape_models import AnthropicMessage, MessageStreamEvent
    from ._wire.anthropic import MessageEvents

__all__ = ["AsyncMessageStream", "AsyncMessages"]


class AsyncMessageStream(OpenedStream):
    """Anthropic stream events of one opened turn (``messages.create(stream=True)``).

    Iterate it for ``MessageStreamEvent`` objects, or ``sse()`` for the same events as
    SSE frames (not both). ``message`` is the ``AnthropicMessage`` so far.

    Attributes:
        events: the underlying ``AsyncChatStream`` (provider, model, attempts).
    """

    def __init__(self, events: AsyncChatStream, builder: MessageEvents) -> None:
        self.events = events
        self._builder = builder
        self._queue: list[dict[str, Any]] = []
        self._started = False

    @property
    def message(self) -> AnthropicMessage:
        """The ``Message`` so far."""
        from ._shape_models import AnthropicMessage

        return AnthropicMessage.model_validate(self._builder.message)

    def sse(self) -> AsyncSSEStream:
        """The events as SSE frames (``event: <type>``, ``data: <json>``), as bytes.

        From ``message_start`` to ``message_stop``
        (https://docs.anthropic.com/en/docs/build-with-claude/streaming). On an error,
        iteration raises it: send ``fail(...)``.
        """
        from ._wire.anthropic import MessageFrames

        self._started = True  # the frames start with message_start themselves
        return AsyncSSEStream(self.events, MessageFrames(self._builder))

    def fail(self, kind: str, message: str) -> bytes:
        """The ``error`` event that ends a failed stream.

        Args:
            kind: Anthropic's error type (``overloaded_error``, ``api_error``, ...).
            message: what went wrong.
        """
        from ._wire._common import frames

        return frames(self._builder.fail(kind, message))

    async def __anext__(self) -> MessageStreamEvent:
        queue = self._queue
        if not self._started:
            self._started = True
            queue.extend(self._builder.start())
        while not queue:
            if self._builder.ended:
                raise StopAsyncIteration
            queue.extend(self._builder.event(await self.events.__anext__()))
        from ._shape_models import MessageStreamEvent

        return MessageStreamEvent.model_construct(**queue.pop(0))


class AsyncMessages:
    """``client.messages`` (see the module docstring)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def chat_messages(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A Messages body's conversation as OpenAI chat messages (what the engine gets).

        The system prompt first (when there is one); each message's blocks as the
        translation of ``create`` makes them.

        Raises:
            llmrelay.errors.ConfigError: as ``create`` does for the body.
        """
        from ._wire import anthropic as wire

        request = wire.parse_request(body)
        system = [{"role": "system", "content": request.system}] if request.system else []
        return system + request.messages

    async def create(
        self, *, conversation: Conversation | None = None, **body: Any
    ) -> AnthropicMessage | AsyncMessageStream:
        """Create a message, as Anthropic's ``messages.create``.

        Args:
            conversation: an ``llmrelay.Conversation`` whose messages are the first of
                this request's (its system prompt aside; ``chat_messages`` gives them):
                only the rest are sent, with its history and provider state, and the
                turn is recorded into it. A conversation that is not such a prefix is
                refused.
            **body: the Messages request body: ``model``, ``max_tokens``, ``messages``,
                ``system``, ``tools``, ``tool_choice``, ``stop_sequences``,
                ``temperature``, ``top_p``, ``top_k``, ``stream``, ``metadata``,
                ``thinking``, ``service_tier``.

        Returns:
            ``AnthropicMessage``, or with ``stream=True`` an opened ``AsyncMessageStream``.

        Raises:
            llmrelay.errors.ConfigError: a field that is malformed, unknown or cannot be
                honoured (``param`` names it).
            Everything ``AsyncClient.stream`` raises, before any event.
        """
        from ._wire import anthropic as wire

        request = wire.parse_request(body)
        messages = request.messages
        if conversation is not None:
            messages = _after(conversation, messages)
        events = await open_turn(
            self._client,
            messages,
            model=request.model,
            system=request.system,
            conversation=conversation,
            chat=request.chat,
            origins=request.origins[len(request.messages) - len(messages) :],
        )
        builder = wire.MessageEvents(
            id=new_id("msg_"),
            model=f"{events.provider}:{events.model}",
            thinking=request.thinking,
        )
        if request.stream:
            return AsyncMessageStream(events, builder)
        await collect_into(events, builder)
        from ._shape_models import AnthropicMessage

        return AnthropicMessage.model_validate(builder.message)

    async def count_tokens(self, **body: Any) -> dict[str, int]:
        """An estimate of a Messages request's input tokens: ``{"input_tokens": n}``.

        The request's UTF-8 bytes / 4, rounded up (``llmrelay._wire.anthropic.
        estimate_tokens``): llmrelay has no tokenizer for hosted models.

        Raises:
            llmrelay.errors.ConfigError: a malformed body (``param`` names the field).
        """
        from ._wire import anthropic as wire

        return {"input_tokens": wire.estimate_tokens(wire.parse_request(body, count_only=True))}


def _after(conversation: Conversation, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages after those ``conversation`` holds (system messages aside)."""
    held = [m for m in conversation.messages if m.role != "system"]
    if not held:
        return messages
    try:
        given = normalize_messages(messages[: len(held)])
    except ValueError as exc:
        raise errors.ConfigError(f"invalid messages: {exc}", param="messages") from None
    if len(messages) <= len(held) or list(given) != held:
        raise errors.ConfigError(
            "the conversation's messages are not the first of this request's",
            param="conversation",
        )
    return messages[len(held) :]
