"""``Client``: the ``AsyncClient`` methods, run on one long-lived event-loop thread.

One engine: every call is submitted to a private event loop in a daemon thread, so the
sync client works the same from plain scripts, worker threads, Jupyter and a running
loop's thread pool, without ``nest_asyncio``. A stream is drained by a single consumer
task into a thread-safe queue (an async generator must be stepped by one task: context
variables and cancel scopes break otherwise); closing the iterator early cancels that
task, which closes the connection. After ``fork`` the child starts a fresh loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from ._client import AsyncClient
from ._settings import Timeouts
from .types import Completion, Event, MessagesInput, ProviderDescription

__all__ = ["Client"]

T = TypeVar("T")
_DONE = object()
_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="llmrelay-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a sync llmrelay.Client cannot be called from its own loop")
        return self.submit(coro).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class _SyncStream(Iterator[Event]):
    """Iterator over a stream drained on the loop thread; ``close()`` stops it early.

    The queue is unbounded: the loop thread never blocks on a slow consumer (a chat
    answer is small); ``close()`` cancels the drain task and waits until the provider's
    generator, and so its connection, is closed.
    """

    def __init__(
        self, runner: _LoopThread, agen_factory: Callable[[], AsyncIterator[Event]]
    ) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._runner = runner
        self._closed = False
        self._finished = threading.Event()
        self._task: asyncio.Task[None] | None = None
        runner.loop.call_soon_threadsafe(self._spawn, agen_factory)

    def _spawn(self, agen_factory: Callable[[], AsyncIterator[Event]]) -> None:
        self._task = asyncio.ensure_future(self._drain(agen_factory))
        self._task.add_done_callback(lambda _task: self._finished.set())

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _drain(self, agen_factory: Callable[[], AsyncIterator[Event]]) -> None:
        put = self._queue.put
        try:
            async for event in agen_factory():
                put(event)
        except asyncio.CancelledError:
            put(_DONE)
            raise
        except BaseException as exc:  # delivered to the consumer thread
            put(_Raised(exc))
        else:
            put(_DONE)

    def __iter__(self) -> _SyncStream:
        return self

    def __next__(self) -> Event:
        if self._closed:
            raise StopIteration
        item = self._queue.get()
        if item is _DONE:
            self._closed = True
            raise StopIteration
        if isinstance(item, _Raised):
            self._closed = True
            raise item.exc
        event: Event = item
        return event

    def close(self) -> None:
        """Stop the stream: cancel the drain task and wait until its connection closed."""
        if self._finished.is_set():
            self._closed = True
            return
        self._closed = True
        try:
            self._runner.loop.call_soon_threadsafe(self._cancel)
        except RuntimeError:  # the loop is already closed
            return
        self._finished.wait(timeout=10)

    def __enter__(self) -> _SyncStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._finished.is_set():
            with contextlib.suppress(RuntimeError):
                self._runner.loop.call_soon_threadsafe(self._cancel)


class _Raised:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Client:
    """Synchronous client: the same methods as ``AsyncClient``, same engine.

    Args: as ``AsyncClient``.

    Use as ``with Client() as client:`` or call ``close()``. Thread-safe: calls from
    several threads run concurrently on the client's loop.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_urls: Mapping[str, str] | None = None,
        api_keys: Mapping[str, str] | None = None,
        proxy: str | None = None,
        timeouts: Timeouts | None = None,
        config_path: str | None = None,
    ) -> None:
        self._kwargs: dict[str, Any] = {
            "model": model,
            "base_urls": base_urls,
            "api_keys": api_keys,
            "proxy": proxy,
            "timeouts": timeouts,
            "config_path": config_path,
        }
        # Validate settings now, in the caller's thread, so errors surface here.
        self._runner: _LoopThread | None = None
        self._async: AsyncClient | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self._start()
        _live_clients.add(self)

    def _start(self) -> None:
        runner = _LoopThread()
        try:
            self._async = runner.run(self._make_async())
        except BaseException:
            runner.stop()
            raise
        self._runner = runner
        self._pid = os.getpid()

    async def _make_async(self) -> AsyncClient:
        return AsyncClient(**self._kwargs)

    def _ensure(self) -> tuple[_LoopThread, AsyncClient]:
        with self._lock:
            if self._closed:
                raise RuntimeError("this llmrelay.Client is closed")
            if self._pid != os.getpid() or self._runner is None or self._async is None:
                self._start()
            assert self._runner is not None
            assert self._async is not None
            return self._runner, self._async

    def _after_fork(self) -> None:
        # The parent's loop thread does not exist in the child: start afresh on next use.
        self._runner = None
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
        """Close connections and stop the loop thread; the client cannot be used after."""
        self._closed = True
        runner, client = self._runner, self._async
        self._runner = self._async = None
        if runner is not None and client is not None:
            try:
                runner.run(client.aclose())
            finally:
                runner.stop()

    def providers(self) -> list[ProviderDescription]:
        """Describe every registered provider (see ``AsyncClient.providers``)."""
        return self._ensure()[1].providers()

    def stream(
        self,
        messages: MessagesInput,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: Iterable[str] | None = None,
        state: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Iterator[Event]:
        """Stream one chat turn; see ``AsyncClient.stream`` for arguments and errors.

        Returns:
            An iterator of events; ``close()`` it (or leave a ``with`` block / ``break``
            and drop it) to stop early and close the connection.
        """
        runner, client = self._ensure()
        stop_list = tuple(stop) if stop is not None else None
        return _SyncStream(
            runner,
            lambda: client.stream(
                messages,
                model=model,
                system=system,
                temperature=temperature,
                max_tokens=max_tokens,
                top_p=top_p,
                stop=stop_list,
                state=state,
                extra=extra,
            ),
        )

    def complete(
        self,
        messages: MessagesInput,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: Iterable[str] | None = None,
        state: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Run one chat turn and collect it; see ``AsyncClient.complete``."""
        runner, client = self._ensure()
        return runner.run(
            client.complete(
                messages,
                model=model,
                system=system,
                temperature=temperature,
                max_tokens=max_tokens,
                top_p=top_p,
                stop=tuple(stop) if stop is not None else None,
                state=state,
                extra=extra,
            )
        )


def _reset_after_fork() -> None:
    for client in list(_live_clients):
        client._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
