"""A portal: one asyncio event loop in a daemon thread that other threads call into.

Generic (it knows nothing of chat): ``Portal.call(coro)`` runs a coroutine on the loop
and waits for it; ``Bridge(portal, source)`` turns an async iterator into a sync one.

* Each call or stream is a task created in a copy of the calling thread's context
  (``contextvars``), so context variables cross over.
* A ``BaseException`` in the waiting thread (Ctrl-C) cancels the task and waits, bounded,
  for it to end (closing what it holds) before it propagates.
* ``close()`` cancels every task in flight — each waiter then raises
  ``llmrelay.errors.ClientClosed`` — runs a final coroutine (closing connections) and
  stops the loop. Every submitted job ends, even one whose task never started, so no
  waiter is left behind (the race of ``close()`` with a first ``next()``).
* A stream is drained by one task into a ``_Channel``: events are appended under a lock
  and the consumer takes **all that is ready in one batch**; it is woken (a lock
  released) only when it waits, at once, so a burst costs one thread hand-off. The
  first content is also handed over with the GIL (see ``_Channel.put``). The task waits
  while ``limit`` events are unread (the provider's connection then waits too: TCP
  back-pressure). ``break`` (dropping the iterator), ``close()``, leaving a ``with``
  block or Ctrl-C while waiting cancels that task, which closes its source.

The loop is an ordinary asyncio loop (no ``nest_asyncio``), so the portal works the same
from scripts, worker threads, Jupyter and a running loop's thread pool. Fork safety is
the owner's: a child must not use its parent's portal (``Portal.pid``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Generic, Protocol, TypeVar

from . import errors

__all__ = ["BUFFER_LIMIT", "Bridge", "Job", "Portal"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
log = logging.getLogger("llmrelay")

CLOSE_WAIT = 10.0
"""Seconds a cancelled task is given to close what it holds before its waiter moves on."""

POLL = 0.1
"""Seconds between checks for a pending Ctrl-C while a thread waits: a SIGINT that the
kernel delivered to another thread sets Python's flag but wakes no blocked wait."""

HANDOFF = 0.002
"""Seconds the loop thread waits, at most, for a woken consumer to take the GIL when it
hands over a stream's first content (see ``_Channel.put``)."""

BUFFER_LIMIT = 1024
"""Events a stream's task reads ahead of a consumer that stops reading; then it waits."""


class Source(Protocol[T_co]):
    """What a ``Bridge`` reads: an async iterator that can be closed."""

    def __aiter__(self) -> AsyncIterator[T_co]: ...

    async def aclose(self) -> None: ...


def _acquire(lock: threading.Lock) -> None:
    """Acquire ``lock``, waking every ``POLL`` s so a pending Ctrl-C is raised here."""
    while not lock.acquire(timeout=POLL):
        pass


def _closed_error() -> errors.ClientClosed:
    return errors.ClientClosed("the llmrelay client was closed during the call")


class Job(Generic[T]):
    """A coroutine submitted to a portal, seen from other threads.

    It ends exactly once (``done`` is set): with the task's outcome, or cancelled if the
    task never started (the portal was closing or the loop stopped first).
    """

    __slots__ = (
        "_cancelled",
        "_error",
        "_guard",
        "_loop",
        "_on_end",
        "_running",
        "_value",
        "cancel_requested",
        "coro",
        "done",
        "task",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, T],
        on_end: Callable[[Job[T]], None] | None,
    ) -> None:
        self._loop = loop
        self.coro: Coroutine[Any, Any, T] | None = coro
        self._on_end = on_end
        self.task: asyncio.Task[T] | None = None
        self.done = threading.Event()
        # Held until the job ends: acquiring it is interruptible by Ctrl-C and, unlike
        # Event.wait(), an interrupt cannot leave it inconsistent.
        self._running = threading.Lock()
        self._running.acquire()
        # Re-entrant: a finalizer (``Bridge.__del__``) may cancel a job from within.
        self._guard = threading.RLock()
        self.cancel_requested = False
        self._cancelled = False
        self._value: Any = None
        self._error: BaseException | None = None

    @property
    def cancelled(self) -> bool:
        """Whether the job ended cancelled (its task, or before it started)."""
        return self._cancelled

    def end(
        self, *, value: Any = None, error: BaseException | None = None, cancelled: bool = False
    ) -> None:
        """Record the outcome (the first call wins) and release every waiter."""
        with self._guard:
            if self.done.is_set():
                return
            coro, self.coro = self.coro, None
            if coro is not None:  # never started
                coro.close()
            self._value, self._error, self._cancelled = value, error, cancelled
            self.done.set()
            self._running.release()
        if self._on_end is not None:
            self._on_end(self)

    def _settle(self, task: asyncio.Task[T]) -> None:
        if task.cancelled():
            self.end(cancelled=True)
        elif (error := task.exception()) is not None:
            self.end(error=error)
        else:
            self.end(value=task.result())

    def cancel(self) -> None:
        """Ask the task to stop (it closes what it holds); does not wait."""
        with self._guard:  # either the task exists now, or it will not start
            self.cancel_requested = True
            task = self.task
        if task is not None and not self.done.is_set():
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(task.cancel)

    def result(self) -> T:
        """Wait (interruptibly) for the job; its value, or the exception it raised.

        Raises:
            llmrelay.errors.ClientClosed: the job was cancelled (by ``Portal.close()``).
        """
        _acquire(self._running)
        self._running.release()
        if self._cancelled:
            raise _closed_error()
        if self._error is not None:
            raise self._error
        value: T = self._value
        return value


class Portal:
    """An event loop in a daemon thread, running coroutines for other threads.

    Args:
        name: the loop thread's name.
    """

    def __init__(self, name: str = "llmrelay-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.closing = False
        self._lock = threading.Lock()
        self._jobs: set[Job[Any]] = set()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self._end_all()
            if self.closing:
                self.loop.close()

    def submit(
        self, coro: Coroutine[Any, Any, T], on_end: Callable[[Job[T]], None] | None = None
    ) -> Job[T]:
        """Run ``coro`` as a task in a copy of the caller's context; does not wait.

        ``on_end(job)`` is called once when the job ends, in whichever thread ends it.

        Raises:
            llmrelay.errors.ClientClosed: the portal is closed or closing.
        """
        if os.getpid() != self.pid:  # a forked child: the loop thread is the parent's
            coro.close()
            raise errors.ClientClosed("this llmrelay client belongs to the parent process")

        def ended(job: Job[T]) -> None:
            with self._lock:
                self._jobs.discard(job)
            if on_end is not None:
                on_end(job)

        job: Job[T] = Job(self.loop, coro, ended)
        context = contextvars.copy_context()

        def spawn() -> None:
            with job._guard:
                coro = job.coro
                if coro is None:  # ended meanwhile
                    return
                start = not (self.closing or job.cancel_requested)
                if start:
                    job.coro = None
                    job.task = self.loop.create_task(coro, context=context)
            task = job.task
            if task is None:
                job.end(cancelled=True)
                return
            task.add_done_callback(job._settle)
            if job.cancel_requested:  # by a finalizer run while the task was created
                task.cancel()

        with self._lock:
            if self.closing:
                coro.close()
                raise errors.ClientClosed("this llmrelay client is closed")
            self._jobs.add(job)
        try:
            self.loop.call_soon_threadsafe(spawn)
        except RuntimeError:  # the loop is closed
            job.end(cancelled=True)
            raise errors.ClientClosed("this llmrelay client is closed") from None
        return job

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it; Ctrl-C while waiting cancels it.

        Raises:
            RuntimeError: called from the loop's own thread (it would wait on itself).
            llmrelay.errors.ClientClosed: the portal was closed before or during the call.
        """
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a sync llmrelay.Client cannot be called from its own loop")
        job = self.submit(coro)
        try:
            return job.result()
        except BaseException:
            if not job.done.is_set():  # interrupted in this thread: cancel, let it close
                job.cancel()
                job.done.wait(CLOSE_WAIT)
            raise

    def close(self, final: Coroutine[Any, Any, Any] | None = None) -> None:
        """Cancel every task, run ``final`` (closing connections), stop the loop.

        Idempotent; jobs whose task never started end cancelled.
        """
        with self._lock:
            if self.closing:
                if final is not None:
                    final.close()
                return
            self.closing = True

        async def shutdown() -> None:
            with self._lock:
                tasks = [job.task for job in self._jobs if job.task is not None]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=CLOSE_WAIT)
            if final is not None:
                await final

        if threading.current_thread() is self.thread:  # a finalizer run on our own loop
            self.loop.create_task(shutdown()).add_done_callback(lambda _: self.loop.stop())
            return
        try:
            done = asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        except RuntimeError:  # the loop is already closed
            if final is not None:
                final.close()
            self._end_all()
            return
        try:
            done.result(timeout=CLOSE_WAIT + 5)
        except Exception as exc:
            log.debug("error while closing the client's connections: %r", exc)
        finally:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
            if not self.thread.is_alive():
                self.loop.close()

    def _end_all(self) -> None:
        """End every job still open once the loop has stopped: none will run again."""
        with self._lock:
            left = list(self._jobs)
        for job in left:
            job.end(cancelled=True)


class _End:
    """The last item of a channel: the source ended (``error`` is ``None``) or raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class _Channel:
    """Events handed from the loop thread (``put``) to one consumer thread (``take``).

    Appends and takes are under a lock; the consumer takes every ready item at once
    (one batch) and, when there is none, parks on a fresh lock that the next ``put``
    releases: one wake-up per batch, sent at once to a waiting consumer, none to a busy
    one. ``taken`` counts the items of batches the consumer has finished; the drain task
    waits while ``limit`` items are put and not finished.

    The first content (``urgent(item)``) is also handed over with the GIL: the loop
    thread, typically busy decoding the rest of a network read, would otherwise keep it
    for up to the interpreter's switch interval (5 ms) while the woken consumer waits
    (measured: the first text reached the consumer 5.1 ms after it was put). If the
    consumer was woken and has not run yet, the loop thread waits, GIL released, until
    it has (at most ``HANDOFF`` s). Later events are not: a burst is better handed over
    in one piece than one event per thread switch.
    """

    __slots__ = (
        "_ack",
        "_lock",
        "_loop",
        "_space",
        "_waiter",
        "ended",
        "handoff",
        "items",
        "limit",
        "put_count",
        "taken",
        "urgent",
        "wakeups",
        "woken",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limit: int,
        urgent: Callable[[Any], bool] | None,
    ) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self.items: list[Any] = []
        self.limit = limit
        self.put_count = 0  # items put (loop thread)
        self.taken = 0  # items of the batches the consumer has finished
        self._waiter: threading.Lock | None = None  # the parked consumer's lock
        self._space: asyncio.Future[None] | None = None  # the drain task waits for room
        self.urgent = urgent
        self.handoff = True  # the first content is still to be handed over
        self.woken = False  # the consumer was woken and has not run yet
        self._ack: threading.Lock | None = None  # the loop thread waits for it to run
        self.ended = False
        self.wakeups = 0

    def put(self, item: Any) -> None:
        """Append ``item`` (loop thread); wake the consumer if it waits."""
        with self._lock:
            self.items.append(item)
            self.put_count += 1
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                self.woken = True
                self.wakeups += 1
        if waiter is not None:
            waiter.release()
        if self.handoff and (self.urgent is None or self.urgent(item)):
            self.handoff = False
            self._yield_to_consumer()

    def _yield_to_consumer(self) -> None:
        with self._lock:
            if not self.woken:
                return
            ack = self._ack = threading.Lock()
            ack.acquire()
        ack.acquire(timeout=HANDOFF)
        with self._lock:
            self._ack = None

    def end(self, error: BaseException | None) -> None:
        """Put the last item (any thread); later calls do nothing."""
        with self._lock:
            if self.ended:
                return
            self.ended = True
        self.handoff = False
        self.put(_End(error))

    def full(self) -> bool:
        """Whether ``limit`` items are unread (loop thread)."""
        return self.put_count - self.taken >= self.limit

    async def room(self) -> None:
        """Wait (loop thread) while ``limit`` items are unread."""
        while True:
            with self._lock:
                if self.put_count - self.taken < self.limit:
                    return
                space = self._space = self._loop.create_future()
            await space

    def take(self, finished: int) -> list[Any]:
        """The next batch (consumer thread), waiting interruptibly for one.

        ``finished`` is the size of the batch the consumer has just gone through.
        """
        release: asyncio.Future[None] | None = None
        while True:
            with self._lock:
                self.taken += finished
                finished = 0
                if self._space is not None and self.put_count - self.taken <= self.limit // 2:
                    release, self._space = self._space, None
                items = self.items
                if items:
                    self.items = []
                    waiter = None
                else:
                    waiter = self._waiter = threading.Lock()
                    waiter.acquire()
            if release is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    self._loop.call_soon_threadsafe(_resolve, release)
                release = None
            if waiter is None:
                return items
            try:
                _acquire(waiter)
            except BaseException:  # Ctrl-C: nobody waits on this lock any more
                with self._lock:
                    if self._waiter is waiter:
                        self._waiter = None
                raise
            self._running()

    def _running(self) -> None:
        with self._lock:
            self.woken = False
            ack = self._ack
            self._ack = None
        if ack is not None:  # the loop thread waits until this thread runs
            ack.release()

    def unread(self) -> int:
        """Items put and not yet in a batch the consumer has finished."""
        return self.put_count - self.taken


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _drain(source: Source[Any], out: _Channel, closing: Callable[[], bool]) -> None:
    """Feed ``source``'s items into ``out``, close ``source``, then end ``out``."""
    put = out.put
    full = out.full
    ending: BaseException | None = None
    cancelled = False
    try:
        async for item in source:
            put(item)
            if full():  # a consumer that stopped reading: wait for it
                await out.room()
    except asyncio.CancelledError:
        cancelled = True
        if closing():
            ending = errors.ClientClosed("the llmrelay client was closed mid-stream")
    except BaseException as exc:  # delivered to the consumer thread
        ending = exc
    try:
        await source.aclose()
    except Exception as exc:  # the events were delivered; closing is best effort
        log.debug("error while closing a stream: %r", exc)
    finally:
        out.end(ending)
    if cancelled:
        raise asyncio.CancelledError


class Bridge(Generic[T]):
    """A sync iterator over an async ``source``, drained on a portal.

    The first ``next()`` starts one task that reads ``source`` into a channel; each
    ``next()`` takes from the batch in hand, or the next batch. The source's exception
    is raised in the consuming thread after the events before it. ``close()`` (or
    ``with``, or dropping the iterator, or Ctrl-C while waiting) cancels the task, which
    closes ``source``.

    Args:
        portal: the portal whose loop reads ``source``.
        source: an async iterator with ``aclose()``.
        limit: events read ahead of a consumer that stops reading.
        urgent: which item is the first *content* (handed over with the GIL); any item
            when ``None``.

    Raises (from ``next()``):
        llmrelay.errors.ClientClosed: the portal was closed before or during the stream.
    """

    def __init__(
        self,
        portal: Portal,
        source: Source[T],
        *,
        limit: int = BUFFER_LIMIT,
        urgent: Callable[[Any], bool] | None = None,
    ) -> None:
        self._portal = portal
        self._source = source
        self._channel = _Channel(portal.loop, limit, urgent)
        self._drain: Job[None] | None = None
        self._batch: list[Any] = []
        self._index = 0
        self._closed = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        batch = self._batch
        index = self._index
        if index == len(batch):
            if self._closed:
                raise StopIteration
            batch = self._refill()
            index = 0
        item = batch[index]
        self._index = index + 1
        if type(item) is _End:
            self._closed = True
            self._batch, self._index = [], 0
            if item.error is not None:
                raise item.error
            raise StopIteration
        value: T = item
        return value

    def _refill(self) -> list[Any]:
        if self._drain is None:
            self._start()
        finished = len(self._batch)
        try:
            batch = self._channel.take(finished)
        except BaseException:  # Ctrl-C while waiting: stop the stream, then propagate
            self._batch, self._index = [], 0
            self.close()
            raise
        self._batch = batch
        return batch

    def _start(self) -> None:
        channel = self._channel
        portal = self._portal

        def ended(job: Job[None]) -> None:
            # a task that never ran (or died oddly) still ends the channel
            channel.end(_closed_error() if portal.closing else None)

        # the task must not refer to this object, so dropping it runs __del__
        self._drain = portal.submit(
            _drain(self._source, channel, lambda: portal.closing), on_end=ended
        )

    def close(self) -> None:
        """Stop the stream: cancel its task and wait until its source is closed."""
        drain = self._drain
        if self._closed and (drain is None or drain.done.is_set()):
            return
        self._closed = True
        self._batch, self._index = [], 0
        if drain is None:
            if not self._portal.closing:
                with contextlib.suppress(errors.ClientClosed):
                    self._portal.call(self._source.aclose())
            return
        drain.cancel()
        drain.done.wait(CLOSE_WAIT)

    def __enter__(self) -> Bridge[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done.is_set():
            drain.cancel()
