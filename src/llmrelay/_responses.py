"""``client.responses``: OpenAI's Responses API over the one chat engine (openai-python's shape).

``create(**body)`` takes a Responses request body (``input``, ``instructions``, ``tools``,
``previous_response_id``, ...; read by ``llmrelay._wire.responses``), runs it as one chat
turn through ``AsyncClient.stream`` (the same candidates, fallback, timeouts and provider
state as every chat call), and returns a ``Response``, or with ``stream=True`` an opened
``AsyncResponseStream`` of Responses events (``sse()`` for their SSE frames: what
``llmrelay serve`` sends for ``POST /v1/responses``).

``store`` (default ``True``) keeps the response in ``AsyncResponses.store`` with the
conversation after it, each provider's own state included, so that
``previous_response_id`` continues the provider's own conversation (Ai2's parent
message, h2o's conversation, a Space's history). ``instructions`` are not inherited by a
continuation (as OpenAI documents). ``retrieve``, ``delete``, ``cancel`` and
``input_items.list`` read the store. API reference:
https://platform.openai.com/docs/api-reference/responses
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from . import errors
from ._conversation import Conversation
from ._opened_stream import OpenedStream, collect_into, open_turn
from ._response_store import MemoryResponseStore, ResponseStore, StoredResponse
from ._stream import AsyncChatStream
from ._wire._common import Origin, new_id
from ._wire.sse import AsyncSSEStream

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._shape_models import Response, ResponseStreamEvent
    from ._wire.responses import ResponseEvents, ResponsesRequest

__all__ = ["AsyncInputItems", "AsyncResponseStream", "AsyncResponses"]


class AsyncResponseStream(OpenedStream):
    """The Responses events of one opened turn (``responses.create(stream=True)``).

    Iterate it for ``ResponseStreamEvent`` objects, or ``sse()`` for the same events as
    SSE frames (not both). ``response`` is the ``Response`` so far (final once the stream
    ended); ``aclose()`` or ``async with`` stops early. A stored response is kept when the
    stream ends (or fails, through ``fail``).

    Attributes:
        events: the underlying ``AsyncChatStream`` (provider, model, attempts).
    """

    def __init__(self, events: AsyncChatStream, builder: ResponseEvents, on_end: Any) -> None:
        self.events = events
        self._builder = builder
        self._on_end = on_end
        self._queue: list[dict[str, Any]] = []
        self._started = False
        self._ended = False

    @property
    def id(self) -> str:
        """The response id (``resp_...``)."""
        return str(self._builder.response["id"])

    @property
    def response(self) -> Response:
        """The ``response`` object so far."""
        from ._shape_models import Response

        return Response.model_validate(self._builder.response)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._on_end()

    def sse(self) -> AsyncSSEStream:
        """The events as SSE frames (``event: <type>``, ``data: <json>``), as bytes.

        The body of OpenAI's streamed response
        (https://platform.openai.com/docs/api-reference/responses-streaming): from
        ``response.created`` to ``response.completed`` (or ``response.incomplete``);
        there is no ``[DONE]``. On an error, iteration raises it: send ``fail(...)``.
        """
        from ._wire.responses import ResponseFrames

        self._started = True  # the frames start with response.created themselves
        return AsyncSSEStream(self.events, ResponseFrames(self._builder, self._end))

    def fail(self, code: str, message: str) -> bytes:
        """The frames that end a failed stream: ``response.failed`` with ``error``.

        Args:
            code: the Responses error code (``server_error``, ``rate_limit_exceeded``,
                ``invalid_prompt``, ...).
            message: what went wrong.

        The failed response is stored (``store``), without a conversation to continue.
        """
        from ._wire._common import frames

        out = frames(self._builder.fail(code, message))
        self._end()
        return out

    async def __anext__(self) -> ResponseStreamEvent:
        queue = self._queue
        builder = self._builder
        if not self._started:
            self._started = True
            queue.extend(builder.start())
        while not queue:
            if builder.ended:
                self._end()
                raise StopAsyncIteration
            try:
                event = await self.events.__anext__()
            except StopAsyncIteration:
                self._end()
                raise
            queue.extend(builder.event(event))
        from ._shape_models import ResponseStreamEvent

        return ResponseStreamEvent.model_construct(**queue.pop(0))


class AsyncInputItems:
    """``client.responses.input_items``."""

    def __init__(self, responses: AsyncResponses) -> None:
        self._responses = responses

    async def list(
        self,
        response_id: str,
        *,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
    ) -> dict[str, Any]:
        """The input items of a stored response, as OpenAI lists them.

        Returns:
            ``{"object": "list", "data": [...], "first_id", "last_id", "has_more"}``.

        Raises:
            llmrelay.errors.ConfigError: no such stored response (``param``
                ``response_id``), a bad ``limit``/``order``/``after``.
        """
        if not 1 <= limit <= 100:
            raise errors.ConfigError("limit must be from 1 to 100", param="limit")
        if order not in ("asc", "desc"):
            raise errors.ConfigError("order must be asc or desc", param="order")
        record = await self._responses._record(response_id)
        items = [dict(item) for item in record.input_items]
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise errors.ConfigError(f"no input item {after!r:.80}", param="after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > limit,
        }


class AsyncResponses:
    """``client.responses`` (see the module docstring).

    Args:
        client: the ``AsyncClient`` whose engine runs the turns.
        store: where stored responses live (default: a ``MemoryResponseStore`` of this
            object); a server passes a ``DatabaseResponseStore``, shared by its workers.

    Attributes:
        store: the ``ResponseStore``.
        input_items: ``input_items.list(response_id)``.
    """

    def __init__(self, client: AsyncClient, store: ResponseStore | None = None) -> None:
        self._client = client
        self.store: ResponseStore = store if store is not None else MemoryResponseStore()
        self.input_items = AsyncInputItems(self)

    def chat_messages(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A Responses body's input as OpenAI chat messages (what the engine gets).

        The ``instructions`` first (as a system message, when given), then the input
        items as ``create`` translates them (without what ``previous_response_id``
        adds).

        Raises:
            llmrelay.errors.ConfigError: as ``create`` does for the body.
        """
        from ._wire import responses as wire

        request = wire.parse_request(body)
        system = [{"role": "system", "content": request.instructions}]
        return (system if request.instructions else []) + wire.to_messages(request.entries, None)

    def with_store(self, store: ResponseStore) -> AsyncResponses:
        """These responses, kept in ``store`` instead."""
        return AsyncResponses(self._client, store)

    async def create(
        self, *, conversation: Conversation | None = None, **body: Any
    ) -> Response | AsyncResponseStream:
        """Create a response, as OpenAI's ``responses.create``.

        Args:
            conversation: an ``llmrelay.Conversation`` to continue and record into
                (instead of ``previous_response_id``).
            **body: the Responses request body: ``input`` (a string or items),
                ``model``, ``instructions``, ``tools``, ``tool_choice``,
                ``parallel_tool_calls``, ``text`` (``format``), ``max_output_tokens``,
                ``temperature``, ``top_p``, ``stream``, ``store``,
                ``previous_response_id``, ``metadata``, ``user``,
                ``safety_identifier``, ``prompt_cache_key``; other fields of the API
                only at their defaults.

        Returns:
            ``Response``, or with ``stream=True`` an opened ``AsyncResponseStream``.

        Raises:
            llmrelay.errors.ConfigError: a field that is malformed, unknown or cannot be
                honoured (``param`` names it); an unknown ``previous_response_id``.
            Everything ``AsyncClient.stream`` raises, before any event.
        """
        from ._wire import responses as wire

        request = wire.parse_request(body)
        if conversation is not None and request.previous_response_id is not None:
            raise errors.ConfigError(
                "give previous_response_id or conversation, not both", param="conversation"
            )
        if conversation is None:
            conversation = await self._continued(request)
        found = {ref: await self._item(ref) for ref in request.references}
        origins: list[Origin] = []
        messages = wire.to_messages(request.entries, {k: v for k, v in found.items() if v}, origins)
        events = await open_turn(
            self._client,
            messages,
            model=request.model,
            system=request.instructions,
            conversation=conversation,
            chat=request.chat,
            origins=origins,
        )
        builder = wire.ResponseEvents(
            wire.base_response(
                request,
                # an unstored response's id has no time: no reader waits for its write
                id=new_id(wire.RESPONSE_ID_PREFIX, timed=request.store),
                created_at=int(time.time()),
                model=f"{events.provider}:{events.model}",
            )
        )

        def store() -> None:
            self._keep(request, builder, conversation)

        if request.stream:
            return AsyncResponseStream(events, builder, store)
        await collect_into(events, builder)
        store()
        from ._shape_models import Response

        return Response.model_validate(builder.response)

    async def _continued(self, request: ResponsesRequest) -> Conversation | None:
        """The conversation a request continues (or starts, when stored)."""
        previous = request.previous_response_id
        if previous is None:
            return Conversation() if request.store else None
        record = await self.store.get(previous)
        if record is None:
            raise errors.ConfigError(
                f"no stored response {previous!r:.80} (responses are stored with store: true)",
                param="previous_response_id",
            )
        data = record.conversation
        if data is None:
            raise errors.ConfigError(
                f"response {previous!r:.80} did not complete and cannot be continued",
                param="previous_response_id",
            )
        return _without_instructions(data)

    def _keep(
        self,
        request: ResponsesRequest,
        builder: ResponseEvents,
        conversation: Conversation | None,
    ) -> None:
        if not request.store:
            return
        response = builder.response
        data: dict[str, Any] | None = None
        if conversation is not None and response["status"] != "failed":
            data = conversation.to_dict()
            data["instructions"] = request.instructions is not None
        self.store.put(
            StoredResponse(
                id=response["id"],
                response=response,
                input_items=request.input_items,
                conversation=data,
            )
        )

    async def _item(self, item_id: str) -> Mapping[str, Any] | None:
        """The stored output item ``item_id`` (an ``item_reference``), or ``None``."""
        from ._wire.responses import item_location

        where = item_location(item_id)
        if where is None:
            return None
        record = await self.store.get(where[0])
        output = record.response.get("output", []) if record is not None else []
        if where[1] < len(output) and output[where[1]].get("id") == item_id:
            item: Mapping[str, Any] = output[where[1]]
            return item
        return None

    async def _record(self, response_id: str) -> StoredResponse:
        record = await self.store.get(response_id)
        if record is None:
            raise errors.ConfigError(f"no stored response {response_id!r:.80}", param="response_id")
        return record

    async def retrieve(self, response_id: str) -> Response:
        """A stored response.

        Raises:
            llmrelay.errors.ConfigError: none stored with that id (``param``
                ``response_id``).
        """
        from ._shape_models import Response

        return Response.model_validate((await self._record(response_id)).response)

    async def delete(self, response_id: str) -> dict[str, Any]:
        """Forget a stored response: ``{"id", "object": "response", "deleted": true}``.

        Raises:
            llmrelay.errors.ConfigError: none stored with that id.
        """
        if not await self.store.delete(response_id):
            raise errors.ConfigError(f"no stored response {response_id!r:.80}", param="response_id")
        return {"id": response_id, "object": "response", "deleted": True}

    async def cancel(self, response_id: str) -> Response:
        """Cancel a background response; llmrelay runs none, so this always refuses.

        Raises:
            llmrelay.errors.ConfigError: no such response, or (as OpenAI answers for a
                response not created with ``background: true``) it cannot be cancelled.
        """
        await self._record(response_id)
        raise errors.ConfigError(
            "only responses created with background: true can be cancelled "
            "(llmrelay runs no background responses)"
        )


def _without_instructions(data: Mapping[str, Any]) -> Conversation:
    """The stored conversation, less the instructions its first message holds."""
    if not data.get("instructions"):
        return Conversation.from_dict(data)
    messages = list(data.get("messages", []))[1:]
    states = {
        name: {"data": state["data"], "index": state["index"] - 1}
        for name, state in dict(data.get("states", {})).items()
        if state.get("index", 0) >= 1
    }
    return Conversation.from_dict({"id": data.get("id"), "messages": messages, "states": states})
