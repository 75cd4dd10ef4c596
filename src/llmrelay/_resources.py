"""``client.chat.completions``, ``client.images`` and ``client.models`` (openai-python's shape).

They are thin: ``create`` builds a turn with the client's ``stream()`` arguments, opens it
(so errors before the first content raise from ``create`` itself, as an HTTP status would
from OpenAI) and converts events with ``llmrelay._openai``'s one converter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from . import errors
from ._stream import AsyncChatStream

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._conversation import Conversation
    from ._openai import (
        ChatCompletion,
        ChatCompletionChunk,
        ChunkConverter,
        ImagesResponse,
        Model,
        ModelList,
    )

# pydantic (behind ``llmrelay._openai``) is imported on first use of these resources,
# not with the client: the CLI's start-up never pays for it.

__all__ = [
    "AsyncChat",
    "AsyncChatCompletionStream",
    "AsyncChatCompletions",
    "AsyncImages",
    "AsyncModels",
    "parse_size",
]


class AsyncChatCompletionStream:
    """``ChatCompletionChunk`` objects of one opened turn (``create(stream=True)``).

    Iterate it (``async for chunk in stream``); ``aclose()`` or ``async with`` to stop
    early (closes the provider's connection). ``events`` is the underlying
    ``AsyncChatStream`` (provider, model, attempts).
    """

    def __init__(self, events: AsyncChatStream, converter: ChunkConverter) -> None:
        self.events = events
        self._converter = converter
        self._tail: list[ChatCompletionChunk] | None = None

    @property
    def provider(self) -> str | None:
        """Registry name of the provider answering."""
        return self.events.provider

    @property
    def model(self) -> str | None:
        """That provider's model id."""
        return self.events.model

    @property
    def id(self) -> str:
        """The completion id every chunk carries."""
        return self._converter.id

    def __aiter__(self) -> AsyncChatCompletionStream:
        return self

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
                self._tail = converter.tail()
                return await self.__anext__()
            if type(event) is str:  # the token path: ``convert`` without its type tests
                return converter.text(event)
            chunk = converter.convert(event)
            if chunk is not None:
                return chunk

    async def aclose(self) -> None:
        """Stop early and close the provider's connection."""
        await self.events.aclose()

    async def __aenter__(self) -> AsyncChatCompletionStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncChatCompletions:
    """``client.chat.completions``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @overload
    async def create(
        self,
        *,
        messages: Any,
        model: str | None = ...,
        stream: Literal[False] = ...,
        temperature: float | None = ...,
        top_p: float | None = ...,
        max_tokens: int | None = ...,
        max_completion_tokens: int | None = ...,
        stop: str | Iterable[str] | None = ...,
        seed: int | None = ...,
        stream_options: Mapping[str, Any] | None = ...,
        conversation: Conversation | None = ...,
        options: Mapping[str, Any] | None = ...,
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        messages: Any,
        model: str | None = ...,
        stream: Literal[True],
        temperature: float | None = ...,
        top_p: float | None = ...,
        max_tokens: int | None = ...,
        max_completion_tokens: int | None = ...,
        stop: str | Iterable[str] | None = ...,
        seed: int | None = ...,
        stream_options: Mapping[str, Any] | None = ...,
        conversation: Conversation | None = ...,
        options: Mapping[str, Any] | None = ...,
    ) -> AsyncChatCompletionStream: ...

    async def create(
        self,
        *,
        messages: Any,
        model: str | None = None,
        stream: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        stop: str | Iterable[str] | None = None,
        seed: int | None = None,
        stream_options: Mapping[str, Any] | None = None,
        conversation: Conversation | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> ChatCompletion | AsyncChatCompletionStream:
        """Create a chat completion, as OpenAI's ``chat.completions.create``.

        Args:
            messages: OpenAI-shaped messages (roles ``system``, ``developer``, ``user``,
                ``assistant``; string or list-of-parts content).
            model: a model reference (``provider:model``, alias, ...); default: the client's.
            stream: return an ``AsyncChatCompletionStream`` of chunks (already opened:
                errors before the first content raise here).
            temperature: sampling temperature.
            top_p: nucleus sampling mass.
            max_tokens: maximum tokens to generate (``max_completion_tokens`` wins).
            max_completion_tokens: OpenAI's newer name for ``max_tokens``.
            stop: a stop sequence or a list of them.
            seed: random seed.
            stream_options: ``{"include_usage": true}`` adds a final usage chunk.
            conversation: an ``llmrelay.Conversation`` to continue and record into.
            options: provider-specific options.

        Returns:
            ``ChatCompletion``, or with ``stream=True`` an ``AsyncChatCompletionStream``.

        Raises:
            Everything ``AsyncClient.stream`` raises, before any chunk.
        """
        events = self._client.stream(
            messages,
            model=model,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_completion_tokens if max_completion_tokens is not None else max_tokens,
            stop=[stop] if isinstance(stop, str) else stop,
            seed=seed,
            options=options,
            conversation=conversation,
        )
        include_usage = bool((stream_options or {}).get("include_usage"))
        try:
            await events.start()
        except BaseException:
            await events.aclose()
            raise
        from . import _openai

        completion_id = _openai.new_completion_id()
        created = int(time.time())
        name = f"{events.provider}:{events.model}"
        if stream:
            converter = _openai.ChunkConverter(
                id=completion_id, created=created, model=name, include_usage=include_usage
            )
            return AsyncChatCompletionStream(events, converter)
        try:
            completion = await events.collect()
        finally:
            await events.aclose()
        return _openai.to_chat_completion(completion, id=completion_id, created=created, model=name)


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

    async def generate(
        self,
        *,
        prompt: str,
        model: str | None = None,
        n: int = 1,
        size: str | None = None,
        response_format: Literal["b64_json"] = "b64_json",
        seed: int | None = None,
        negative_prompt: str | None = None,
        aspect_ratio: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> ImagesResponse:
        """Generate ``n`` images, as OpenAI's ``images.generate`` (``b64_json`` only).

        Raises:
            llmrelay.errors.ConfigError: a bad ``size``/``n``/``response_format``.
            Otherwise what ``AsyncClient.generate_image`` raises.
        """
        if response_format != "b64_json":
            raise errors.ConfigError("only response_format='b64_json' is supported")
        width, height = parse_size(size)
        images = await self._client.generate_image(
            prompt,
            model=model,
            n=n,
            width=width,
            height=height,
            aspect_ratio=aspect_ratio,
            seed=seed,
            negative_prompt=negative_prompt,
            options=options,
        )
        from ._openai import to_images_response

        return to_images_response(images)


class AsyncModels:
    """``client.models``: model references and aliases as OpenAI model objects."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> ModelList:
        """Every ``provider:model`` and alias as OpenAI model objects.

        ``owned_by`` is the provider (for an alias, the first of its chain). No network:
        the built-in lists.
        """
        from ._openai import Model, ModelList

        data: list[Model] = []
        for description in self._client.providers():
            for model in description.models:
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
