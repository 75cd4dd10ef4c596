"""``client.chat.completions``, ``client.images`` and ``client.models`` (openai-python's shape).

They are thin: ``create`` builds a turn with the client's ``stream()`` arguments, opens it
(so errors before the first content raise from ``create`` itself, as an HTTP status would
from OpenAI) and converts events with the one OpenAI chat encoder
(``llmrelay._wire.openai_chat``): chunk objects, or with ``sse()`` their SSE frames.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Unpack, cast, overload

from . import errors
from ._fields import split_fields
from ._opened_stream import OpenedStream
from ._params import ChatParams, CompletionCreateParams, ImagesGenerateParams, check, keywords
from ._stream import AsyncChatStream
from ._turn import Turn
from ._wire.sse import AsyncSSEStream
from .types import MessagesInput, ProviderInfo, Usage

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._openai import (
        ChatCompletion,
        ChatCompletionChunk,
        ImagesResponse,
        Model,
        ModelList,
    )
    from ._wire.openai_chat import ChunkConverter, ChunkFrames

# pydantic (behind ``llmrelay._openai`` and ``llmrelay._wire``) is imported on first use
# of these resources, not with the client: the CLI's start-up never pays for it.

__all__ = [
    "AsyncChat",
    "AsyncChatCompletionStream",
    "AsyncChatCompletions",
    "AsyncImages",
    "AsyncModels",
    "parse_size",
]

log = logging.getLogger("llmrelay")

_SAME_NAME = frozenset(
    (
        "model",
        "temperature",
        "top_p",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "options",
        "conversation",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
    )
)
"""``create``'s parameters that ``AsyncClient.stream`` takes as they are (``ChatParams``);
``max_tokens`` (or ``max_completion_tokens``) and ``stop`` are mapped."""

_openai_chat: Any = None
"""``llmrelay._wire.openai_chat`` once loaded (pydantic: on first use, not with the client;
an import statement per request costs a few microseconds)."""


def _load_openai_chat() -> Any:
    global _openai_chat
    from ._wire import openai_chat

    _openai_chat = openai_chat
    return openai_chat


class AsyncChatCompletionStream(OpenedStream):
    """``ChatCompletionChunk`` objects of one opened turn (``create(stream=True)``).

    Iterate it (``async for chunk in stream``), or ``sse()`` for the same chunks as
    Server-Sent Events bytes (not both); ``aclose()`` or ``async with`` to stop early
    (closes the provider's connection). ``events`` is the underlying ``AsyncChatStream``
    (provider, model, attempts). Made by ``create(stream=True, progress=True)`` while the
    turn is still queued, ``provider`` and ``model`` are ``None`` until it answers; its
    chunks begin then (the ``model`` they report is the one that answers).
    """

    def __init__(
        self,
        events: AsyncChatStream,
        converter: ChunkConverter | None = None,
        *,
        id: str = "",
        created: int = 0,
        include_usage: bool = False,
    ) -> None:
        self.events = events
        self._converter = converter
        if converter is not None:
            id, created, include_usage = converter.id, converter.created, converter.include_usage
        self._id = id
        self._created = created
        self._include_usage = include_usage
        self._tail: list[ChatCompletionChunk] | None = None
        self._frames: Any = None

    @property
    def usage_estimated(self) -> bool:
        """Whether the usage chunk sent holds an estimate (the provider reported none).

        See ``llmrelay._usage`` for how it is counted.
        """
        frames = self._frames
        if frames is not None:
            return bool(frames.usage_estimated)
        converter = self._converter
        return converter is not None and converter.usage_estimated

    @property
    def reports_usage(self) -> bool:
        """Whether the answering provider reports token counts as a rule.

        When it does not, a usage chunk holds llmrelay's estimate.
        """
        return self.events.reports_usage()

    def _convert(self) -> ChunkConverter:
        """The chunk converter, made once the turn is open (its model is known)."""
        converter = self._converter
        if converter is None:
            openai_chat = _openai_chat or _load_openai_chat()
            events = self.events  # not ``self``: no reference cycle through the converter
            converter = self._converter = openai_chat.ChunkConverter(
                id=self._id,
                created=self._created,
                model=f"{self.events.provider}:{self.events.model}",
                include_usage=self._include_usage,
                estimate=lambda: _estimate(events),
            )
        return converter

    def sse(self, *, end: bool = True) -> AsyncSSEStream:
        """The chunks as SSE frames: ``data: {chunk}`` and a blank line, as bytes.

        The frames are what ``chunk.model_dump_json()`` of each chunk of this stream
        writes (the same id, ``created`` and model; U+2028, U+2029 and U+0085 escaped),
        then the usage chunk (``include_usage``), then ``data: [DONE]`` — the body of
        OpenAI's streamed response
        (https://platform.openai.com/docs/api-reference/chat-streaming).

        Args:
            end: end with ``data: [DONE]``; ``False`` leaves it to the caller
                (``AsyncSSEStream.end_frame``), e.g. to store the turn first.

        Returns:
            ``AsyncSSEStream``: iterate it for the frames; an error is raised as
            iterating this stream raises it.
        """
        openai_chat = _openai_chat or _load_openai_chat()  # pydantic: loaded on first use

        events = self.events  # not ``self``: no reference cycle through ``_frames``

        def frames() -> ChunkFrames:
            made: ChunkFrames = openai_chat.ChunkFrames(
                id=self._id,
                created=self._created,
                model=f"{self.events.provider}:{self.events.model}",
                include_usage=self._include_usage,
                estimate=lambda: _estimate(events),
            )
            self._frames = made
            return made

        if self.events.provider is None:  # still queued: the encoder is made at the commit
            return AsyncSSEStream(self.events, frames, end=end)
        return AsyncSSEStream(self.events, frames(), end=end)

    @property
    def id(self) -> str:
        """The completion id every chunk carries."""
        return self._id

    async def __anext__(self) -> ChatCompletionChunk:
        tail = self._tail
        if tail is not None:
            if tail:
                return tail.pop(0)
            raise StopAsyncIteration
        converter = self._converter
        events = self.events
        while True:
            try:
                event = await events.__anext__()
            except StopAsyncIteration:
                self._tail = self._convert().tail()
                return await self.__anext__()
            if type(event) is str:  # the token path: ``convert`` without its type tests
                assert converter is not None
                return converter.text(event)
            if converter is None:
                if type(event) is not ProviderInfo:
                    continue  # a progress report: no chunk form
                converter = self._convert()
            chunk = converter.convert(event)
            if chunk is not None:
                return chunk


class AsyncChatCompletions:
    """``client.chat.completions``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @overload
    async def create(
        self,
        *,
        messages: MessagesInput,
        stream: Literal[False] = ...,
        progress: bool = ...,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        messages: MessagesInput,
        stream: Literal[True],
        progress: bool = ...,
        **params: Unpack[CompletionCreateParams],
    ) -> AsyncChatCompletionStream: ...

    @keywords(CompletionCreateParams)
    async def create(
        self,
        *,
        messages: MessagesInput,
        stream: bool = False,
        progress: bool = False,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion | AsyncChatCompletionStream:
        """Create a chat completion, as OpenAI's ``chat.completions.create``.

        Args:
            messages: OpenAI-shaped messages (roles ``system``, ``developer``, ``user``,
                ``assistant``; string or list-of-parts content).
            stream: return an ``AsyncChatCompletionStream`` of chunks (already opened:
                errors before the first content raise here).
            progress: llmrelay's: with ``stream``, return as soon as the turn reports
                progress (its service queued it: a ``Queued`` event) rather than at
                its first content; errors after that are raised by iteration, as they
                would come in-band after an HTTP response started, and ``sse()`` begins
                with a comment frame per report. A server uses it to keep a proxy's
                connection alive while a request waits in a queue.
            **params: ``llmrelay.CompletionCreateParams``: ``model`` (a model reference,
                ``provider:model``, alias, ...; default: the client's), ``temperature``,
                ``top_p``, ``max_tokens`` (``max_completion_tokens`` wins),
                ``max_completion_tokens`` (OpenAI's newer name for ``max_tokens``),
                ``stop`` (a stop sequence or a list of them), ``seed``,
                ``stream_options`` (``{"include_usage": true}`` adds a final usage
                chunk), ``conversation`` (an ``llmrelay.Conversation`` to continue and
                record into), ``options`` (provider-specific options).

        Returns:
            ``ChatCompletion``, or with ``stream=True`` an ``AsyncChatCompletionStream``.

        Raises:
            TypeError: a keyword ``create`` does not take.
            Everything ``AsyncClient.stream`` raises, before any chunk.
        """
        check(params, CompletionCreateParams, "create")
        if not isinstance(stream, bool):
            raise errors.ConfigError(
                f"stream must be true or false, not {type(stream).__name__}", param="stream"
            )
        stop = params.get("stop")
        max_tokens = params.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = params.get("max_tokens")
        stream_options = params.get("stream_options") or {}
        if type(stream_options) is not dict and not isinstance(stream_options, Mapping):
            raise errors.ConfigError("stream_options must be an object", param="stream_options")
        asked, ignored = split_fields(params)
        if ignored:
            log.debug("ignored (harmless): %s", ", ".join(ignored))
        # the chat parameters given, under their own names (an absent one reads as None)
        chat = cast(ChatParams, {k: v for k, v in params.items() if k in _SAME_NAME})
        if max_tokens is not None:
            chat["max_tokens"] = max_tokens
        if stop is not None:
            chat["stop"] = [stop] if isinstance(stop, str) else stop
        self._client._check_open()
        events = AsyncChatStream(self._client._engine, Turn.build(messages, chat, asked))
        include_usage = bool(stream_options.get("include_usage"))
        try:
            if stream and progress:
                queued = await events.advance()
                if queued is not None:
                    events.unread(queued)  # delivered first, by iteration
            else:
                await events.start()
        except BaseException:
            await events.aclose()
            raise
        openai_chat = _openai_chat or _load_openai_chat()
        completion_id = openai_chat.new_completion_id()
        created = int(time.time())
        if stream:
            return AsyncChatCompletionStream(
                events, id=completion_id, created=created, include_usage=include_usage
            )
        name = f"{events.provider}:{events.model}"
        try:
            completion = await events.collect()
        finally:
            await events.aclose()
        if completion.usage is None:  # OpenAI clients rely on usage: count it
            completion = dataclasses.replace(
                completion, usage=_estimate(events), usage_estimated=True
            )
        result: ChatCompletion = openai_chat.to_chat_completion(
            completion, id=completion_id, created=created, model=name
        )
        return result


def _estimate(events: AsyncChatStream) -> Usage:
    """The estimated usage of a turn (``llmrelay._usage``)."""
    from ._usage import estimate_usage

    acc = events._acc
    return estimate_usage(events._turn.messages, acc.answer(), acc.tool_calls(), events.model)


class AsyncChat:
    """``client.chat`` (holds ``completions``)."""

    def __init__(self, client: AsyncClient) -> None:
        self.completions = AsyncChatCompletions(client)


def parse_size(size: str | None) -> tuple[int | None, int | None]:
    """``"1024x768"`` -> ``(1024, 768)``; ``None`` -> ``(None, None)``.

    Raises:
        llmrelay.errors.ConfigError: any other form.
    """
    if size is None:
        return None, None
    width, sep, height = size.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not 0 < int(width) <= 8192:
        raise errors.ConfigError(
            f"size must be WIDTHxHEIGHT in pixels, e.g. 1024x1024; got {size!r}"
        )
    if not 0 < int(height) <= 8192:
        raise errors.ConfigError(f"size must be WIDTHxHEIGHT in pixels; got {size!r}")
    return int(width), int(height)


class AsyncImages:
    """``client.images``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @keywords(ImagesGenerateParams)
    async def generate(self, **params: Unpack[ImagesGenerateParams]) -> ImagesResponse:
        """Generate ``n`` images, as OpenAI's ``images.generate`` (``b64_json`` only).

        Args:
            **params: ``llmrelay.ImagesGenerateParams``: ``prompt`` (required),
                ``model``, ``n`` (1 to 10), ``size`` (``"WIDTHxHEIGHT"``),
                ``response_format`` (``"b64_json"``), ``seed``, ``negative_prompt``,
                ``aspect_ratio``, ``options``.

        Raises:
            TypeError: a keyword ``generate`` does not take, or no ``prompt``.
            llmrelay.errors.ConfigError: a bad ``size``/``n``/``response_format``.
            Otherwise what ``AsyncClient.generate_image`` raises.
        """
        check(params, ImagesGenerateParams, "generate")
        if params.get("response_format", "b64_json") != "b64_json":
            raise errors.ConfigError("only response_format='b64_json' is supported")
        width, height = parse_size(params.get("size"))
        images = await self._client.generate_image(
            params["prompt"],
            model=params.get("model"),
            n=params.get("n", 1),
            width=width,
            height=height,
            aspect_ratio=params.get("aspect_ratio"),
            seed=params.get("seed"),
            negative_prompt=params.get("negative_prompt"),
            options=params.get("options"),
        )
        from ._openai import to_images_response

        return to_images_response(images)


class AsyncModels:
    """``client.models``: model references and aliases as OpenAI model objects."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> ModelList:
        """Every ``provider:model`` and alias as OpenAI model objects.

        Chat, image and embedding models alike. ``owned_by`` is the provider (for an
        alias, the first of its chain). No network: the built-in lists.
        """
        from ._openai import Model, ModelList

        data: list[Model] = []
        for description in self._client.providers():
            for model in (*description.models, *description.embedding_models):
                data.append(Model(id=f"{description.name}:{model}", owned_by=description.name))
        for alias, chain in self._client.aliases().items():
            owner = chain[0].partition(":")[0] if chain else "alias"
            data.append(Model(id=alias, owned_by=owner))
        return ModelList(data=data)

    async def retrieve(self, model: str) -> Model:
        """The model object for a reference or alias.

        Raises:
            llmrelay.errors.UnknownModelError / UnknownProviderError: it does not resolve.
        """
        from ._openai import Model

        targets = self._client._engine.router.resolve(model)
        return Model(id=model, owned_by=targets[0].provider)
