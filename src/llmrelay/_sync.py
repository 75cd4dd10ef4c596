"""``Client``: the ``AsyncClient`` API, run on one private event-loop thread.

One engine: every call is a task on the client's own event loop in a daemon thread (the
portal), so the sync client works the same from scripts, worker threads, Jupyter and a
running loop's thread pool, without ``nest_asyncio``, and keeps one connection pool.

* A call waits for its task in the caller's thread; a ``BaseException`` there (Ctrl-C)
  cancels the task — which closes its connection — before it propagates.
* ``close()`` cancels every call and stream in flight (each then raises
  ``ClientClosed`` promptly in its thread), closes the connections, stops the loop.
* Context variables of the calling thread are copied into the task.
* A stream is drained by one task into a bounded buffer (``_Buffer``): the consumer is
  woken only when it waits, and takes whatever arrived meanwhile without a thread
  hand-off; a consumer that stops reading stops the task after ``BUFFER_LIMIT`` events.
  ``close()``, leaving a ``with`` block, a ``break`` that drops the stream, or Ctrl-C
  while iterating cancels that task, which closes the provider's connection.
* A ``Client`` that is garbage-collected unclosed is closed by a finalizer (no thread or
  socket is left). After ``fork``, a child starts a fresh loop on first use
  (``os.register_at_fork``: the one fork-safety mechanism).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Unpack, overload

import httpx

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
from ._resources import AsyncChatCompletionStream
from ._router import HealthStore
from ._settings import Timeouts
from ._stream import AsyncChatStream
from .catalog import LiveModel
from .providers import Provider
from .types import (
    Completion,
    Event,
    ImageResult,
    MessagesInput,
    ProviderDescription,
    Reasoning,
)

if TYPE_CHECKING:
    from ._openai import (
        ChatCompletion,
        ChatCompletionChunk,  # noqa: F401 (named in a string below)
        ImagesResponse,
        Model,
        ModelList,
    )

__all__ = ["ChatCompletionStream", "ChatStream", "Client"]

T = TypeVar("T")
log = logging.getLogger("llmrelay")
_DONE = object()
_CLOSE_WAIT = 10.0
_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


class _Portal:
    """An event loop running in a daemon thread, with the tasks it runs for callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.thread = threading.Thread(target=self._run, name="llmrelay-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> _Job[T]:
        """Run ``coro`` as a task in a copy of the caller's context."""
        job: _Job[T] = _Job(self.loop)
        context = contextvars.copy_context()

        def spawn() -> None:
            if self.closing or job.cancel_requested:
                coro.close()
                job.finish(cancelled=True)
                return
            task = self.loop.create_task(coro, context=context)
            job.task = task
            self._tasks.add(task)
            task.add_done_callback(self._settle)
            task.add_done_callback(job.settle)

        try:
            self.loop.call_soon_threadsafe(spawn)
        except RuntimeError:  # the loop is closed
            coro.close()
            raise errors.ClientClosed("this llmrelay client is closed") from None
        return job

    def _settle(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait; Ctrl-C in the caller cancels it."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a sync llmrelay.Client cannot be called from its own loop")
        job = self.submit(coro)
        try:
            return job.result()
        except BaseException:
            if not job.done.is_set():  # interrupted in this thread: cancel, let it close
                job.cancel()
                job.done.wait(_CLOSE_WAIT)
            raise

    def close(self, final: Coroutine[Any, Any, Any] | None = None) -> None:
        """Cancel every task, run ``final`` (closing connections), stop the loop."""
        if self.closing:
            if final is not None:
                final.close()
            return
        self.closing = True

        async def shutdown() -> None:
            tasks = [t for t in self._tasks if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=_CLOSE_WAIT)
            if final is not None:
                await final

        if threading.current_thread() is self.thread:  # from a finalizer on our own loop
            self.loop.create_task(shutdown()).add_done_callback(lambda _: self.loop.stop())
            return
        try:
            done = asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        except RuntimeError:  # the loop is already closed
            return
        try:
            done.result(timeout=_CLOSE_WAIT + 5)
        except Exception as exc:
            log.debug("error while closing the client's connections: %r", exc)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
            if not self.thread.is_alive():
                self.loop.close()


class _Job(Generic[T]):
    """A task on the portal, seen from other threads: ``result()``, ``cancel()``, ``done``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.task: asyncio.Task[T] | None = None
        self.done = threading.Event()
        # A plain lock, held until the task ends: waiting on it is interruptible by
        # Ctrl-C and, unlike Event.wait(), an interrupt cannot corrupt it.
        self._running = threading.Lock()
        self._running.acquire()
        self.cancel_requested = False
        self._cancelled = False
        self._value: Any = None
        self._error: BaseException | None = None

    def finish(self, *, cancelled: bool = False) -> None:
        self._cancelled = cancelled
        self.done.set()
        self._running.release()

    def settle(self, task: asyncio.Task[T]) -> None:
        if task.cancelled():
            self._cancelled = True
        elif task.exception() is not None:
            self._error = task.exception()
        else:
            self._value = task.result()
        self.done.set()
        self._running.release()

    def cancel(self) -> None:
        """Ask the task to stop (it closes what it holds); does not wait."""
        self.cancel_requested = True
        task = self.task
        if task is not None and not self.done.is_set():
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(task.cancel)

    def result(self) -> T:
        """Wait (interruptibly) for the task; its result or exception.

        Raises:
            llmrelay.errors.ClientClosed: the task was cancelled by ``Client.close()``.
        """
        _acquire(self._running)
        self._running.release()
        if self._cancelled:
            raise errors.ClientClosed("the llmrelay client was closed during the call")
        if self._error is not None:
            raise self._error
        value: T = self._value
        return value


_POLL = 0.1
"""Seconds between checks for a pending Ctrl-C while a caller waits: a SIGINT that the
kernel delivered to another thread sets Python's flag but wakes no blocked wait."""


def _acquire(lock: threading.Lock) -> None:
    while not lock.acquire(timeout=_POLL):
        pass


class _Raised:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_HANDOFF = 0.002
"""Seconds the loop thread waits, at most, for a stream's consumer to take the GIL when
it hands over the first content (see ``_Buffer``)."""

BUFFER_LIMIT = 1024
"""Items a stream's drain task reads ahead of a consumer that stops reading; then it
waits (and so does the provider's connection: TCP backpressure)."""


def _any(item: Any) -> bool:
    return True


class _Buffer:
    """Events handed from the loop thread (``put``) to the consumer thread (``get``).

    A deque plus a wake-up that is sent only when the consumer waits: a burst of events
    costs one thread hand-off, not one per event, and the consumer takes what is there
    without waiting. ``waiting`` is set by the consumer before it re-checks the deque
    and blocks, and cleared by the producer after it appended: under the GIL one of the
    two sees the other's write, so no wake-up is lost; a stale wake-up token only makes
    the consumer check once more. The drain task waits while ``limit`` events are unread.
    It holds no reference to the stream object, so dropping the stream runs its
    ``__del__``.

    The first content (``urgent(item)``) is also handed over with the GIL: the loop
    thread, typically busy decoding the rest of a network read, would otherwise keep it
    for up to the interpreter's switch interval (5 ms) while the woken consumer waits
    (measured: the first text reached the consumer 5.1 ms after it was put, behind the
    open phase's ``ProviderInfo``). If the consumer was woken and has not run yet
    (``pending``), the loop thread waits, GIL released, until it has (at most
    ``_HANDOFF`` seconds), with the same two-flag protocol in the other direction.
    Later events are not: a burst is better handed over in one piece than one event per
    thread switch.
    """

    __slots__ = (
        "_loop",
        "acks",
        "handoff",
        "items",
        "limit",
        "pending",
        "space",
        "urgent",
        "waiting",
        "wake",
        "yielding",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limit: int = BUFFER_LIMIT,
        urgent: Callable[[Any], bool] = _any,
    ) -> None:
        self._loop = loop
        self.items: collections.deque[Any] = collections.deque()
        self.limit = limit
        self.waiting = False  # the consumer waits (or is about to) for a wake-up
        self.wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self.space: asyncio.Future[None] | None = None
        self.urgent = urgent
        self.handoff = True  # the first content is still to be handed over
        self.pending = False  # the consumer was woken and has not run yet
        self.yielding = False  # the producer waits for the consumer to run
        self.acks: queue.SimpleQueue[None] = queue.SimpleQueue()

    def put(self, item: Any) -> None:
        """Append ``item`` (loop thread); wake the consumer if it waits."""
        self.items.append(item)
        if self.waiting:
            self.waiting = False
            self.pending = True
            self.wake.put(None)
        if self.handoff and self.urgent(item):
            self.handoff = False
            self._yield_to_consumer()

    def _yield_to_consumer(self) -> None:
        self.yielding = True
        if self.pending:
            with contextlib.suppress(queue.Empty):
                self.acks.get(timeout=_HANDOFF)
        self.yielding = False

    async def room(self) -> None:
        """Wait (loop thread) while ``limit`` items are unread."""
        while len(self.items) >= self.limit:
            space = self._loop.create_future()
            self.space = space
            if len(self.items) < self.limit:  # the consumer took some meanwhile
                self.space = None
                return
            await space

    def get(self) -> Any:
        """The next item (consumer thread), waiting interruptibly for one."""
        items = self.items
        while True:
            try:
                item = items.popleft()
            except IndexError:
                self._wait()
                continue
            if self.space is not None:
                self._release_producer()
            return item

    def _wait(self) -> None:
        self.waiting = True
        if self.items:  # appended before the producer could see ``waiting``
            self.waiting = False
            self._running()
            return
        wake = self.wake
        while True:
            try:
                wake.get(timeout=_POLL)
            except queue.Empty:
                if self.items:  # never stall on a lost wake-up (none is known)
                    self._running()
                    return
                continue
            self._running()
            return

    def _running(self) -> None:
        self.pending = False
        if self.yielding:  # the producer waits until this thread runs
            self.yielding = False
            self.acks.put(None)

    def _release_producer(self) -> None:
        space = self.space
        if space is None or len(self.items) > self.limit // 2:
            return
        self.space = None
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self._loop.call_soon_threadsafe(_resolve, space)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _SyncStream(Generic[T]):
    """Iterate an async stream on the portal: one drain task feeds a ``_Buffer``."""

    _content: Callable[[Any], bool] = staticmethod(_any)
    """Whether an item is content (the first is handed over with the GIL)."""

    def __init__(self, portal: _Portal, source: Any) -> None:
        self._portal = portal
        self._source = source
        self._buffer: _Buffer = _Buffer(portal.loop, urgent=self._content)
        self._drain: _Job[None] | None = None
        self._closed = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        if self._drain is None:
            # the task must not refer to this object, so dropping it runs __del__
            self._drain = self._portal.submit(_drain(self._portal, self._source, self._buffer))
        try:
            item = self._buffer.get()
        except BaseException:  # Ctrl-C while waiting: stop the stream, then propagate
            self.close()
            raise
        if item is _DONE:
            self._closed = True
            raise StopIteration
        if type(item) is _Raised:
            self._closed = True
            raise item.exc
        value: T = item
        return value

    def close(self) -> None:
        """Stop the stream: cancel its task and wait until its connection is closed."""
        if self._closed and (self._drain is None or self._drain.done.is_set()):
            return
        self._closed = True
        drain = self._drain
        if drain is None:
            if not self._portal.closing:
                with contextlib.suppress(errors.ClientClosed):
                    self._portal.call(self._source.aclose())
            return
        drain.cancel()
        drain.done.wait(_CLOSE_WAIT)

    def __enter__(self) -> _SyncStream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done.is_set():
            drain.cancel()


async def _drain(portal: _Portal, source: Any, out: _Buffer) -> None:
    """Feed ``source``'s items into ``out`` (then ``_DONE`` or the error raised)."""
    put = out.put
    items = out.items
    limit = out.limit
    try:
        async for item in source:
            put(item)
            if len(items) >= limit:  # a consumer that stopped reading: wait for it
                await out.room()
    except asyncio.CancelledError:
        if portal.closing:
            put(_Raised(errors.ClientClosed("the llmrelay client was closed mid-stream")))
        else:
            put(_DONE)
        raise
    except BaseException as exc:  # delivered to the consumer thread
        put(_Raised(exc))
    else:
        put(_DONE)
    finally:
        await source.aclose()


def _is_content(event: Any) -> bool:
    return isinstance(event, _CONTENT)


_CONTENT = (str, Reasoning, ImageResult)


class ChatStream(_SyncStream[Event]):
    """A chat turn's events for sync code (``Client.stream``).

    Iterate it; ``close()`` or ``with`` to stop early (or ``break`` and drop it): the
    provider's connection is closed. ``start()`` runs the open phase.

    Attributes:
        provider: registry name of the provider answering (``None`` before opening).
        model: that provider's model id.
        attempts: each candidate tried so far.
    """

    _source: AsyncChatStream
    _content = staticmethod(_is_content)

    def __init__(self, portal: _Portal, source: AsyncChatStream) -> None:
        super().__init__(portal, source)

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


class ChatCompletionStream(_SyncStream["ChatCompletionChunk"]):
    """``ChatCompletionChunk`` objects for sync code (``create(stream=True)``)."""

    _source: AsyncChatCompletionStream

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
            return ChatCompletionStream(portal, chunks)
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
        }
        self._lock = threading.Lock()
        self._closed = False
        self._portal: _Portal | None = None
        self._async: AsyncClient | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._start()  # settings are validated now, in the caller's thread
        self.chat = _Chat(self)
        self.images = _Images(self)
        self.models = _Models(self)
        _live_clients.add(self)

    def _start(self) -> None:
        portal = _Portal()
        try:
            aclient = portal.call(self._make_async())
        except BaseException:
            portal.close()
            raise
        self._portal, self._async = portal, aclient
        self._finalizer = weakref.finalize(self, _finalize, portal, aclient)

    async def _make_async(self) -> AsyncClient:
        return AsyncClient(**self._kwargs)

    def _ensure(self) -> tuple[_Portal, AsyncClient]:
        with self._lock:
            if self._closed:
                raise errors.ClientClosed("this llmrelay.Client is closed")
            if self._portal is None or self._async is None:  # a forked child
                self._start()
            assert self._portal is not None
            assert self._async is not None
            return self._portal, self._async

    def _after_fork(self) -> None:
        # The parent's loop thread does not exist in the child: start afresh on next use.
        if self._finalizer is not None:
            self._finalizer.detach()
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
            self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    def providers(self) -> list[ProviderDescription]:
        """Describe every registered provider (see ``AsyncClient.providers``)."""
        return self._ensure()[1].providers()

    def aliases(self) -> dict[str, list[str]]:
        """Every alias and its resolved chain (see ``AsyncClient.aliases``)."""
        return self._ensure()[1].aliases()

    def candidates(self, model: str | None = None) -> list[str]:
        """The candidates ``model`` resolves to (see ``AsyncClient.candidates``)."""
        return self._ensure()[1].candidates(model)

    def live_models(
        self, provider: str = "huggingface", *, refresh: bool = False
    ) -> list[LiveModel]:
        """The models ``provider``'s service lists now (see ``AsyncClient.live_models``)."""
        portal, aclient = self._ensure()
        models: list[LiveModel] = portal.call(aclient.live_models(provider, refresh=refresh))
        return models

    def describe_model(self, model: str | None = None) -> dict[str, Any]:
        """What ``model`` will be sent; see ``AsyncClient.describe_model``."""
        portal, aclient = self._ensure()
        return portal.call(aclient.describe_model(model))

    @keywords(ChatParams)
    def stream(self, messages: MessagesInput, **params: Unpack[ChatParams]) -> ChatStream:
        """Prepare one chat turn as a ``ChatStream`` (see ``AsyncClient.stream``)."""
        portal, aclient = self._ensure()
        return ChatStream(portal, aclient.stream(messages, **_in_this_thread(params, "stream")))

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
    if stop is None or isinstance(stop, tuple):
        return params
    return {**params, "stop": tuple(stop)}


def _finalize(portal: _Portal, aclient: AsyncClient) -> None:
    """Close an unclosed client's loop and connections (``close()`` or garbage collection)."""
    portal.close(aclient.aclose())


def _reset_after_fork() -> None:
    for client in list(_live_clients):
        client._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
