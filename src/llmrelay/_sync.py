"""``Client``: the ``AsyncClient`` API for sync code, on one private event-loop thread.

One engine: every call and stream is a task on the client's own portal (``_portal``: an
event loop in a daemon thread), so the sync client works the same from scripts, worker
threads, Jupyter and a running loop's thread pool, without ``nest_asyncio``, and keeps
one connection pool. What the portal guarantees:

* a call waits for its task in the caller's thread; a ``BaseException`` there (Ctrl-C)
  cancels the task — which closes its connection — before it propagates;
* ``close()`` cancels every call and stream in flight (each then raises
  ``ClientClosed`` promptly in its thread), closes the connections, stops the loop;
* context variables of the calling thread are copied into the task;
* a stream's events are handed to the consumer in batches (one wake-up per batch, at
  once when it waits; the first content with the GIL); ``close()``, leaving a ``with``
  block, a ``break`` that drops the stream, or Ctrl-C while iterating cancels its task,
  which closes the provider's connection.

The loop thread starts at the first call or stream, not at construction (which reads and
checks the settings in the caller's thread): a ``Client`` made and never used starts no
thread. A ``Client`` that is garbage-collected unclosed is closed by a finalizer (no
thread or socket is left); a stream keeps its client alive. After ``fork``, a child
starts a fresh loop on first use (``os.register_at_fork``: the one fork-safety
mechanism).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Unpack, overload

from . import errors
from ._client import AsyncClient
from ._params import (
    ChatParams,
    CompletionCreateParams,
    ImageParams,
    ImagesGenerateParams,
    check,
    keywords,
)
from ._portal import Bridge, Portal
from ._settings import Timeouts
from ._turn import stop_sequences
from .providers import Provider
from .types import Event, ImageResult, MessagesInput, Reasoning

if TYPE_CHECKING:
    import httpx

    from ._openai import (
        ChatCompletion,
        ChatCompletionChunk,  # noqa: F401 (named in a string below)
        ImagesResponse,
        Model,
        ModelList,
    )
    from ._openai_embeddings import CreateEmbeddingResponse
    from ._resources import AsyncChatCompletionStream
    from ._router import HealthStore
    from ._stream import AsyncChatStream
    from .catalog import LiveModel
    from .types import Completion, EmbeddingResult, ProviderDescription

__all__ = ["ChatCompletionStream", "ChatStream", "Client"]

_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _any(item: object) -> bool:
    return True


_CONTENT = (str, Reasoning, ImageResult)


def _is_content(event: object) -> bool:
    return isinstance(event, _CONTENT)


class ChatStream(Bridge[Event]):
    """A chat turn's events for sync code (``Client.stream``).

    Iterate it; ``close()`` or ``with`` to stop early (or ``break`` and drop it): the
    provider's connection is closed. ``start()`` runs the open phase.

    Attributes:
        provider: registry name of the provider answering (``None`` before opening).
        model: that provider's model id.
        attempts: each candidate tried so far.

    Raises (while iterating): the errors of ``AsyncChatStream``;
    ``llmrelay.errors.ClientClosed`` when the client is closed mid-stream.
    """

    _source: AsyncChatStream
    _content = staticmethod(_is_content)
    """Whether an event is content (the first is handed over with the GIL)."""

    def __init__(self, portal: Portal, source: AsyncChatStream, owner: object = None) -> None:
        super().__init__(portal, source, urgent=self._content)
        self._owner = owner  # the Client: alive while its stream is

    @property
    def provider(self) -> str | None:
        """Registry name of the provider answering."""
        return self._source.provider

    @property
    def model(self) -> str | None:
        """That provider's model id."""
        return self._source.model

    @property
    def attempts(self) -> list[errors.Attempt]:
        """Each candidate tried so far."""
        return self._source.attempts

    def start(self) -> ChatStream:
        """Open the stream (see ``AsyncChatStream.start``); returns this stream."""
        try:
            self._portal.call(self._source.start())
        except BaseException:
            self.close()
            raise
        return self

    def collect(self) -> Completion:
        """Read the rest and return the whole turn (see ``AsyncChatStream.collect``)."""
        for _ in self:
            pass
        return self._source._acc.completion(self._source.attempts)

    def __enter__(self) -> ChatStream:
        return self


class ChatCompletionStream(Bridge["ChatCompletionChunk"]):
    """``ChatCompletionChunk`` objects for sync code (``create(stream=True)``).

    Iterate it; ``close()`` or ``with`` to stop early (or ``break`` and drop it).
    """

    _source: AsyncChatCompletionStream
    _content = staticmethod(_any)
    """Every chunk counts as content (the first is handed over with the GIL)."""

    def __init__(
        self, portal: Portal, source: AsyncChatCompletionStream, owner: object = None
    ) -> None:
        super().__init__(portal, source, urgent=self._content)
        self._owner = owner

    @property
    def provider(self) -> str | None:
        """Registry name of the provider answering."""
        return self._source.provider

    @property
    def model(self) -> str | None:
        """That provider's model id."""
        return self._source.model

    def __enter__(self) -> ChatCompletionStream:
        return self


class _Completions:
    def __init__(self, client: Client) -> None:
        self._client = client

    @overload
    def create(
        self,
        *,
        messages: MessagesInput,
        stream: Literal[True],
        progress: bool = ...,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletionStream: ...

    @overload
    def create(
        self,
        *,
        messages: MessagesInput,
        stream: Literal[False] = ...,
        progress: bool = ...,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion: ...

    @keywords(CompletionCreateParams)
    def create(
        self,
        *,
        messages: MessagesInput,
        stream: bool = False,
        progress: bool = False,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion | ChatCompletionStream:
        """``AsyncClient.chat.completions.create`` for sync code (same arguments)."""
        portal, aclient = self._client._ensure()
        if stream:
            chunks = portal.call(
                aclient.chat.completions.create(
                    messages=messages, stream=True, progress=progress, **params
                )
            )
            return ChatCompletionStream(portal, chunks, self._client)
        result: ChatCompletion = portal.call(
            aclient.chat.completions.create(messages=messages, **params)
        )
        return result


class _Chat:
    def __init__(self, client: Client) -> None:
        self.completions = _Completions(client)


class _Images:
    def __init__(self, client: Client) -> None:
        self._client = client

    @keywords(ImagesGenerateParams)
    def generate(self, **params: Unpack[ImagesGenerateParams]) -> ImagesResponse:
        """``AsyncClient.images.generate`` for sync code (same arguments)."""
        portal, aclient = self._client._ensure()
        return portal.call(aclient.images.generate(**params))


class _Embeddings:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, **kwargs: Any) -> CreateEmbeddingResponse:
        """``AsyncClient.embeddings.create`` for sync code (same arguments)."""
        portal, aclient = self._client._ensure()
        return portal.call(aclient.embeddings.create(**kwargs))


class _Models:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> ModelList:
        """``AsyncClient.models.list`` for sync code."""
        portal, aclient = self._client._ensure()
        return portal.call(aclient.models.list())

    def retrieve(self, model: str) -> Model:
        """``AsyncClient.models.retrieve`` for sync code."""
        portal, aclient = self._client._ensure()
        return portal.call(aclient.models.retrieve(model))


class Client:
    """Synchronous client: the same methods as ``AsyncClient``, on the same engine.

    Args: as ``AsyncClient``.

    Use as ``with Client() as client:`` or call ``close()``. Thread-safe: calls from
    several threads run concurrently on the client's loop.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_urls: Mapping[str, str] | None = None,
        endpoints: Mapping[str, Mapping[str, str]] | None = None,
        api_keys: Mapping[str, str] | None = None,
        proxy: str | None = None,
        timeouts: Timeouts | None = None,
        verify: bool | str | None = None,
        strict: bool | None = None,
        cooldown: float | None = None,
        retries: int | None = None,
        rescue: bool | None = None,
        providers: Iterable[type[Provider]] | Mapping[str, type[Provider]] | None = None,
        http_client: httpx.AsyncClient | None = None,
        config_path: str | None = None,
        health: HealthStore | None = None,
        allow_image_fetch: bool | None = None,
        transport: str | None = None,
    ) -> None:
        self._kwargs: dict[str, Any] = {
            "model": model,
            "base_urls": base_urls,
            "endpoints": endpoints,
            "api_keys": api_keys,
            "proxy": proxy,
            "timeouts": timeouts,
            "verify": verify,
            "strict": strict,
            "cooldown": cooldown,
            "retries": retries,
            "rescue": rescue,
            "providers": providers,
            "http_client": http_client,
            "config_path": config_path,
            "health": health,
            "allow_image_fetch": allow_image_fetch,
            "transport": transport,
        }
        self._lock = threading.Lock()
        self._closed = False
        self._portal: Portal | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        # settings are validated now, in the caller's thread; the loop thread starts at
        # the first call that needs it
        self._async: AsyncClient | None = AsyncClient(**self._kwargs)
        self.chat = _Chat(self)
        self.images = _Images(self)
        self.embeddings = _Embeddings(self)
        self.models = _Models(self)
        from ._sync_shapes import Messages, Responses

        self.responses = Responses(self)
        self.messages = Messages(self)
        _live_clients.add(self)

    def _ensure(self) -> tuple[Portal, AsyncClient]:
        """The loop thread and the async client, started on first use (under the lock)."""
        with self._lock:
            if self._closed:
                raise errors.ClientClosed("this llmrelay.Client is closed")
            if self._async is None:  # a forked child: the parent's client stays its own
                self._async = AsyncClient(**self._kwargs)
            if self._portal is None:
                portal = Portal()
                self._portal = portal
                self._finalizer = weakref.finalize(self, _finalize, portal, self._async)
            return self._portal, self._async

    def _after_fork(self) -> None:
        # The parent's loop thread does not exist in the child: start afresh on next use.
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = None
        self._portal = None
        self._async = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Client {self._async!r}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the client (idempotent); it cannot be used after.

        Calls and streams in flight are cancelled and raise ``ClientClosed``; the
        connections are closed and the loop thread stopped.
        """
        with self._lock:
            first = not self._closed
            self._closed = True
            unstarted = self._async if first and self._portal is None else None
        if self._finalizer is not None:
            self._finalizer()
        elif unstarted is not None:
            _close_unstarted(unstarted)

    def prepare(self) -> None:
        """Build the engine and the HTTP client now (see ``AsyncClient.prepare``)."""
        self._ensure()[1].prepare()

    def providers(self) -> list[ProviderDescription]:
        """Describe every registered provider (see ``AsyncClient.providers``)."""
        return self._ensure()[1].providers()

    def aliases(self) -> dict[str, list[str]]:
        """Every alias and its resolved chain (see ``AsyncClient.aliases``)."""
        return self._ensure()[1].aliases()

    def candidates(self, model: str | None = None) -> list[str]:
        """The candidates ``model`` resolves to (see ``AsyncClient.candidates``)."""
        return self._ensure()[1].candidates(model)

    def model_vision(self, model: str | None = None) -> bool | None:
        """Whether ``model`` takes images, as known now (see ``AsyncClient.model_vision``)."""
        return self._ensure()[1].model_vision(model)

    def live_models(
        self, provider: str = "huggingface", *, refresh: bool = False
    ) -> list[LiveModel]:
        """The models ``provider``'s service lists now (see ``AsyncClient.live_models``)."""
        portal, aclient = self._ensure()
        models: list[LiveModel] = portal.call(aclient.live_models(provider, refresh=refresh))
        return models

    def embed(
        self,
        input: str | Iterable[str] | Iterable[int] | Iterable[Iterable[int]],
        *,
        model: str,
        dimensions: int | None = None,
        user: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> EmbeddingResult:
        """Embed text or token ids; see ``AsyncClient.embed``."""
        portal, aclient = self._ensure()
        return portal.call(
            aclient.embed(input, model=model, dimensions=dimensions, user=user, options=options)
        )

    def describe_model(self, model: str | None = None) -> dict[str, Any]:
        """What ``model`` will be sent; see ``AsyncClient.describe_model``."""
        portal, aclient = self._ensure()
        return portal.call(aclient.describe_model(model))

    @keywords(ChatParams)
    def stream(self, messages: MessagesInput, **params: Unpack[ChatParams]) -> ChatStream:
        """Prepare one chat turn as a ``ChatStream`` (see ``AsyncClient.stream``)."""
        portal, aclient = self._ensure()
        return ChatStream(
            portal, aclient.stream(messages, **_in_this_thread(params, "stream")), self
        )

    @keywords(ChatParams)
    def open(self, messages: MessagesInput, **params: Unpack[ChatParams]) -> ChatStream:
        """``stream(...)`` then ``start()``; see ``AsyncClient.open``."""
        return self.stream(messages, **params).start()

    @keywords(ChatParams)
    def complete(self, messages: MessagesInput, **params: Unpack[ChatParams]) -> Completion:
        """Run one chat turn and collect it; see ``AsyncClient.complete``."""
        portal, aclient = self._ensure()
        return portal.call(aclient.complete(messages, **_in_this_thread(params, "complete")))

    @keywords(ImageParams)
    def generate_image(self, prompt: str, **params: Unpack[ImageParams]) -> list[ImageResult]:
        """Generate images; see ``AsyncClient.generate_image``."""
        portal, aclient = self._ensure()
        return portal.call(aclient.generate_image(prompt, **params))


def _in_this_thread(params: ChatParams, where: str) -> ChatParams:
    """``params`` checked, with ``stop`` read in the caller's thread (a generator, say).

    (The other calls are checked by the ``AsyncClient`` method they run: its
    ``TypeError`` reaches the caller as it is.)
    """
    check(params, ChatParams, where)
    stop = params.get("stop")
    if stop is None or isinstance(stop, str | tuple):
        return params
    return {**params, "stop": stop_sequences(stop)}


def _finalize(portal: Portal, aclient: AsyncClient) -> None:
    """Close an unclosed client's loop and connections (``close()`` or garbage collection)."""
    portal.close(aclient.aclose())


def _close_unstarted(aclient: AsyncClient) -> None:
    """Close the async client of a ``Client`` whose loop thread never started.

    Nothing of it was used (no connection is open); ``aclose`` releases what its
    construction made (a proxy's HTTP client, a Redis health store) on a private event
    loop in this thread, or, when this thread already runs one, on a short-lived portal.
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(aclient.aclose())
        return
    Portal().close(aclient.aclose())


def _reset_after_fork() -> None:
    for client in list(_live_clients):
        client._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
