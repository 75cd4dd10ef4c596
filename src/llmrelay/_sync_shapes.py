"""``Client.responses`` and ``Client.messages``: the Responses and Messages facades for sync code.

Each call runs ``AsyncClient.responses`` / ``AsyncClient.messages`` on the client's loop
thread (``llmrelay._sync``): the same arguments, results and errors; a stream is iterated
from the caller's thread (``ResponseStream``, ``MessageStream``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ._portal import Bridge, Portal

if TYPE_CHECKING:
    from ._conversation import Conversation
    from ._messages import AsyncMessageStream
    from ._responses import AsyncResponseStream
    from ._shape_models import AnthropicMessage, MessageStreamEvent, Response, ResponseStreamEvent  # noqa: F401
    from ._sync import Client

__all__ = ["MessageStream", "ResponseStream"]


class ResponseStream(Bridge["ResponseStreamEvent"]):
    """Responses streaming events for sync code (``responses.create(stream=True)``).

    Iterate it; ``close()`` or ``with`` to stop early (or ``break`` and drop it).
    """

    _source: AsyncResponseStream

    def __init__(self, portal: Portal, source: AsyncResponseStream, owner: object = None) -> None:
        super().__init__(portal, source)
        self._owner = owner  # the Client stays alive while its stream is read

    @property
    def response(self) -> Response:
        """The ``response`` object so far (final once the stream ended)."""
        return self._source.response

    def __enter__(self) -> ResponseStream:
        return self


class MessageStream(Bridge["MessageStreamEvent"]):
    """Anthropic stream events for sync code (``messages.create(stream=True)``).

    Iterate it; ``close()`` or ``with`` to stop early (or ``break`` and drop it).
    """

    _source: AsyncMessageStream

    def __init__(self, portal: Portal, source: AsyncMessageStream, owner: object = None) -> None:
        super().__init__(portal, source)
        self._owner = owner

    @property
    def message(self) -> AnthropicMessage:
        """The ``Message`` so far."""
        return self._source.message

    def __enter__(self) -> MessageStream:
        return self


class _InputItems:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self,
        response_id: str,
        *,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
    ) -> dict[str, Any]:
        """``AsyncClient.responses.input_items.list`` for sync code."""
        portal, aclient = self._client._ensure()
        result: dict[str, Any] = portal.call(
            aclient.responses.input_items.list(response_id, after=after, limit=limit, order=order)
        )
        return result


class Responses:
    """``Client.responses``: ``AsyncClient.responses`` for sync code (same arguments)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.input_items = _InputItems(client)

    def create(
        self, *, conversation: Conversation | None = None, **body: Any
    ) -> Response | ResponseStream:
        """Create a response (``AsyncResponses.create``); a ``ResponseStream`` to stream."""
        portal, aclient = self._client._ensure()
        from ._responses import AsyncResponseStream

        result = portal.call(aclient.responses.create(conversation=conversation, **body))
        if isinstance(result, AsyncResponseStream):
            return ResponseStream(portal, result, self._client)
        return result

    def retrieve(self, response_id: str) -> Response:
        """A stored response (``AsyncResponses.retrieve``)."""
        portal, aclient = self._client._ensure()
        response: Response = portal.call(aclient.responses.retrieve(response_id))
        return response

    def delete(self, response_id: str) -> dict[str, Any]:
        """Forget a stored response (``AsyncResponses.delete``)."""
        portal, aclient = self._client._ensure()
        result: dict[str, Any] = portal.call(aclient.responses.delete(response_id))
        return result


class Messages:
    """``Client.messages``: ``AsyncClient.messages`` for sync code (same arguments)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self, *, conversation: Conversation | None = None, **body: Any
    ) -> AnthropicMessage | MessageStream:
        """Create a message (``AsyncMessages.create``); a ``MessageStream`` to stream."""
        portal, aclient = self._client._ensure()
        from ._messages import AsyncMessageStream

        result = portal.call(aclient.messages.create(conversation=conversation, **body))
        if isinstance(result, AsyncMessageStream):
            return MessageStream(portal, result, self._client)
        return result

    def count_tokens(self, **body: Any) -> dict[str, int]:
        """An estimate of the input tokens (``AsyncMessages.count_tokens``)."""
        portal, aclient = self._client._ensure()
        counted: dict[str, int] = portal.call(aclient.messages.count_tokens(**body))
        return counted
