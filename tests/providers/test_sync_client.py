"""The sync Client from scripts, threads, a running loop and a forked child."""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import contextvars
import gc
import inspect
import os
import signal
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmrelay import (
    ChatRequest,
    Client,
    ClientClosed,
    ConfigError,
    Event,
    FinishReason,
    ProviderInfo,
    ProviderUnavailable,
    StreamInterrupted,
    TransportError,
    _portal,
    _sync,
)
from tests.fakes.gradio_space import DEFAULT_CHUNKS, FakeSpace, SpaceScript
from tests.unit.scripted_provider import scripted

Space = tuple[FakeSpace, str]
FULL = inspect.cleandoc("".join(DEFAULT_CHUNKS))


def test_inside_a_running_loop_like_jupyter(space: Space) -> None:
    _, url = space

    async def cell() -> str:
        # a notebook cell calls the sync API while the kernel's loop is running
        with Client(base_urls={"hf_spaces": url}) as client:
            return client.complete("Hi", model="hf_spaces").text

    assert asyncio.run(cell()) == FULL


def test_from_a_running_loops_thread_pool(space: Space) -> None:
    _, url = space
    client = Client(base_urls={"hf_spaces": url})

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        jobs = [loop.run_in_executor(None, client.complete, f"q{i}") for i in range(4)]
        return [c.text for c in await asyncio.gather(*jobs)]

    try:
        assert asyncio.run(main()) == [FULL] * 4
    finally:
        client.close()


def test_concurrent_threads_share_one_client(space: Space) -> None:
    fake, url = space
    with Client(base_urls={"hf_spaces": url}) as client, ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(lambda i: client.complete(f"q{i}").text, range(8)))
    assert texts == [FULL] * 8
    assert sorted(j.json["data"][0] for j in fake.joins) == sorted(f"q{i}" for i in range(8))


def test_errors_reach_the_calling_thread(space: Space) -> None:
    fake, url = space
    with Client(base_urls={"hf_spaces": url}) as client:
        fake.script = SpaceScript(join_status=503)
        with pytest.raises(ProviderUnavailable):
            client.complete("Hi")
        fake.script = SpaceScript(mode="disconnect", fail_after=3)
        received = []
        with pytest.raises(StreamInterrupted) as info:
            for event in client.stream("Hi"):
                received.append(event)
        assert isinstance(info.value.cause, TransportError)
        assert "".join(e for e in received if isinstance(e, str)) == info.value.text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_fresh_loop(space: Space) -> None:
    _, url = space
    with Client(base_urls={"hf_spaces": url}) as client:
        assert client.complete("parent").text == FULL
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                os.close(read_fd)
                text = client.complete("child").text
                os.write(write_fd, text.encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            child_text = pipe.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child_text == FULL
        # the parent's client still works after the fork
        assert client.complete("parent again").text == FULL


def test_a_closed_client_says_so(space: Space) -> None:
    _, url = space
    client = Client(base_urls={"hf_spaces": url})
    assert client.complete("Hi").text == FULL
    client.close()
    client.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        client.complete("Hi")


# -- the bridge's guarantees (core v2) ------------------------------------------------


def test_break_and_drop_closes_the_connection_within_a_second(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(hold_open=True)
    with Client(base_urls={"hf_spaces": url}) as client:
        for event in client.stream("Hi", model="hf_spaces"):
            if isinstance(event, str):
                break  # the stream object is dropped here: nothing refers to it
        assert fake.wait_streams_closed(1.0)


def _interrupt_when(condition: Callable[[], bool]) -> threading.Thread:
    """Raise KeyboardInterrupt in the main thread once ``condition()`` holds."""

    def watch() -> None:
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        _thread.interrupt_main()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_during_complete_cancels_the_request(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(hold_open=True)
    with Client(base_urls={"hf_spaces": url}) as client:
        watcher = _interrupt_when(lambda: fake.open_streams == 1)
        with pytest.raises(KeyboardInterrupt):
            client.complete("Hi", model="hf_spaces")
        watcher.join()
        assert fake.wait_streams_closed(2)
        # the client still works after an interrupted call
        fake.script = SpaceScript()
        assert client.complete("again").text == FULL


def test_ctrl_c_while_iterating_cancels_the_stream(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(hold_open=True)
    with Client(base_urls={"hf_spaces": url}) as client:
        stream = client.stream("Hi", model="hf_spaces")
        with pytest.raises(KeyboardInterrupt):
            _interrupt_when(lambda: fake.open_streams == 1)
            for _ in stream:
                pass
        assert fake.wait_streams_closed(2)


def test_close_during_a_stream_makes_it_raise_promptly(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(hold_open=True)
    client = Client(base_urls={"hf_spaces": url})
    outcome: list[BaseException] = []

    def consume() -> None:
        try:
            for _ in client.stream("Hi", model="hf_spaces"):
                pass
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=consume)
    worker.start()
    assert _wait_for(lambda: fake.open_streams == 1)
    started = time.monotonic()
    client.close()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert time.monotonic() - started < 5
    assert len(outcome) == 1
    assert isinstance(outcome[0], ClientClosed)
    assert fake.wait_streams_closed(2)


def test_close_during_complete_makes_it_raise_promptly(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(hold_open=True)
    client = Client(base_urls={"hf_spaces": url})
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(client.complete, "Hi")
        assert _wait_for(lambda: fake.open_streams == 1)
        client.close()
        with pytest.raises(ClientClosed):
            job.result(timeout=5)
    assert fake.wait_streams_closed(2)


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def test_context_variables_cross_the_bridge() -> None:
    seen: list[str] = []
    first, _ = scripted("first", ["ok", FinishReason("stop")])

    class Peek(first):  # type: ignore[valid-type,misc]
        async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
            seen.append(REQUEST_ID.get())
            async for event in super().stream(request):
                yield event

    with Client(providers=[Peek]) as client:
        REQUEST_ID.set("r-42")
        client.complete("hi", model="first")
        list(client.stream("hi", model="first"))
    assert seen == ["r-42", "r-42"]


def _loop_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "llmrelay-loop")


def test_unclosed_clients_leave_no_threads_or_sockets(space: Space) -> None:
    _, url = space
    before = _loop_threads()
    for _ in range(30):
        client = Client(base_urls={"hf_spaces": url})
        client.complete("Hi")
        del client
    gc.collect()
    assert _wait_for(lambda: _loop_threads() == before)


def test_construction_starts_no_thread_until_the_first_call(space: Space) -> None:
    _, url = space
    before = _loop_threads()
    client = Client(base_urls={"hf_spaces": url})
    assert _loop_threads() == before  # made, not used: no loop thread
    assert client.complete("Hi").text == FULL
    assert _loop_threads() == before + 1
    client.close()
    assert _wait_for(lambda: _loop_threads() == before)


def test_a_bad_setting_is_refused_at_construction_in_the_caller_s_thread() -> None:
    before = _loop_threads()
    with pytest.raises(ConfigError, match="transport"):
        Client(transport="carrier-pigeon")
    assert _loop_threads() == before


def test_a_client_closed_unused_closes_its_async_client_and_starts_no_loop() -> None:
    client = Client()
    aclient = client._async
    assert aclient is not None
    before = _loop_threads()
    client.close()
    client.close()  # idempotent
    assert aclient._closed  # its aclose ran (on a private loop of this thread)
    assert _loop_threads() == before
    with pytest.raises(ClientClosed):
        client.complete("Hi")


def test_a_client_closed_unused_inside_a_running_loop_still_closes() -> None:
    async def main() -> bool:
        client = Client()
        aclient = client._async
        assert aclient is not None
        client.close()  # this thread runs a loop: aclose runs on a short-lived portal
        return bool(aclient._closed)

    assert asyncio.run(main())


def _wait_for(condition: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# -- the stream buffer: batched hand-off, bounded read-ahead ---------------------------


class _Boom(Exception):
    pass


class _Source:
    """An async stream of ``0 .. n-1`` (then ``error``, if any) counting what it yielded."""

    def __init__(
        self,
        n: int,
        error: BaseException | None = None,
        *,
        pause_every: int = 64,
        first_after: float = 0.0,
        gap: float = 0.0,
    ) -> None:
        self.n = n
        self.gap = gap
        self.error = error
        self.pause_every = pause_every
        self.first_after = first_after
        self.produced = 0
        self.closed = False

    def __aiter__(self) -> _Source:
        return self

    async def __anext__(self) -> int:
        if self.produced == self.n:
            if self.error is not None:
                raise self.error
            raise StopAsyncIteration
        if self.produced == 0 and self.first_after:
            await asyncio.sleep(self.first_after)  # the consumer is waiting by then
        if self.gap:
            await asyncio.sleep(self.gap)  # one event at a time: the consumer waits for each
        self.produced += 1
        if self.pause_every and self.produced % self.pause_every == 0:
            await asyncio.sleep(0)  # let the loop run other things, as a socket read does
        return self.produced - 1

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def portal() -> Iterator[_portal.Portal]:
    p = _portal.Portal()
    yield p
    p.close()


def _stream(portal: _portal.Portal, source: _Source, limit: int) -> _portal.Bridge[int]:
    return _portal.Bridge(portal, source, limit=limit)


def _queued(stream: _portal.Bridge[int]) -> int:
    """Items the drain task has handed over that ``next()`` has not returned yet."""
    return stream._channel.unread() - stream._index


@pytest.mark.timeout(30)
def test_a_burst_is_handed_over_in_order_with_one_wake_up(portal: _portal.Portal) -> None:
    source = _Source(500, _Boom("after the last item"))
    stream = _stream(portal, source, limit=10_000)
    wake = stream._channel  # counts the wake-ups it sends (``wakeups``)
    assert next(stream) == 0  # the consumer may have waited: at most one wake-up
    assert _wait_for(lambda: _queued(stream) == 500)  # the rest, and the error
    received = [0]
    with pytest.raises(_Boom, match="after the last item"):
        for item in stream:
            received.append(item)
    assert received == list(range(500))
    assert wake.wakeups <= 1  # the 499 events that piled up cost no thread hand-off
    assert source.closed
    with pytest.raises(StopIteration):  # ended: stays ended
        next(stream)


@pytest.mark.timeout(30)
def test_a_consumer_that_stops_reading_bounds_the_read_ahead(portal: _portal.Portal) -> None:
    source = _Source(5000)
    stream = _stream(portal, source, limit=100)
    assert next(stream) == 0
    time.sleep(0.3)  # the drain task runs ahead until the buffer is full, then waits
    assert 100 <= source.produced <= 102
    received = [0, *stream]  # reading resumes it, in order, to the end
    assert received == list(range(5000))
    assert source.closed


@pytest.mark.timeout(30)
def test_dropping_a_stream_whose_buffer_is_full_closes_its_source(
    portal: _portal.Portal,
) -> None:
    source = _Source(5000)
    stream = _stream(portal, source, limit=50)
    next(stream)
    assert _wait_for(lambda: source.produced >= 50)
    del stream  # the drain task waits for room: cancelled, it closes the source
    gc.collect()
    assert _wait_for(lambda: source.closed, timeout=1)
    assert source.produced <= 52


@pytest.mark.timeout(30)
def test_a_slow_consumer_gets_every_event_in_order(portal: _portal.Portal) -> None:
    # consumer and producer race on an almost-empty buffer: no event lost or reordered
    source = _Source(3000, _Boom("end"))
    stream = _stream(portal, source, limit=7)
    received: list[int] = []
    with pytest.raises(_Boom):
        for item in stream:
            received.append(item)
            if item % 97 == 0:
                time.sleep(0.001)
    assert received == list(range(3000))


@pytest.mark.timeout(30)
def test_client_stream_delivers_a_long_scripted_answer_in_order() -> None:
    words = [f"w{i} " for i in range(3000)]
    provider, _ = scripted("many", [*words, FinishReason("stop")])
    with Client(providers=[provider]) as client:
        events = list(client.stream("hi", model="many"))
    assert [e for e in events if isinstance(e, str)] == words
    assert events[-1] == FinishReason("stop")


@pytest.mark.timeout(30)
def test_the_first_event_reaches_a_waiting_consumer_before_the_loop_reads_on(
    portal: _portal.Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the loop thread, busy with a burst, hands the GIL to the consumer it woke instead of
    # keeping it for the interpreter's switch interval (a generous bound here: no timing)
    monkeypatch.setattr(_portal, "HANDOFF", 10.0)
    source = _Source(1_000_000, pause_every=0, first_after=0.05)
    stream = _stream(portal, source, limit=10_000_000)
    assert next(stream) == 0
    assert source.produced < 100  # without the hand-over: thousands, read meanwhile
    stream.close()
    assert source.closed


@pytest.mark.timeout(30)
def test_the_first_content_behind_a_metadata_event_is_handed_over_too(
    portal: _portal.Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the consumer, woken for the metadata event, has not run yet when the first content
    # follows in the same read: the loop thread lets it run before reading on
    monkeypatch.setattr(_portal, "HANDOFF", 10.0)
    source = _Source(1_000_000, pause_every=0, first_after=0.05)
    # 0 stands for ProviderInfo: content is from 1 on
    stream = _portal.Bridge(portal, source, limit=10_000_000, urgent=lambda item: item >= 1)
    assert next(stream) == 0
    assert next(stream) == 1
    assert source.produced < 100  # without the hand-over: thousands, read meanwhile
    stream.close()
    assert source.closed


def test_chat_stream_hands_over_text_not_provider_info() -> None:
    assert _sync.ChatStream._content("a")
    assert not _sync.ChatStream._content(ProviderInfo("p", "m"))
    assert _sync.ChatCompletionStream._content(object())


# -- the portal: every job ends, the close race, a stream keeps its client -------------


@pytest.mark.timeout(60)
def test_close_racing_the_first_next_never_hangs() -> None:
    # issue 24: close() while another thread's first next() starts the stream's task
    # (the task was refused by the closing loop and the consumer waited for ever)
    provider, _ = scripted("race", ["a", "b", FinishReason("stop")])
    for _ in range(60):
        client = Client(providers=[provider])
        stream = client.stream("hi", model="race")
        outcome: list[object] = []
        barrier = threading.Barrier(2)

        def consume(
            stream: _sync.ChatStream = stream,
            outcome: list[object] = outcome,
            barrier: threading.Barrier = barrier,
        ) -> None:
            barrier.wait()
            try:
                outcome.append(next(stream))
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=consume, daemon=True)
        worker.start()
        barrier.wait()
        client.close()
        worker.join(timeout=5)
        assert not worker.is_alive(), "next() hung after close()"
        (result,) = outcome
        assert isinstance(result, ProviderInfo | ClientClosed | StopIteration), result


@pytest.mark.timeout(60)
def test_close_racing_complete_never_hangs() -> None:
    provider, _ = scripted("race", ["a", FinishReason("stop")])
    with ThreadPoolExecutor(1) as pool:
        for _ in range(40):
            client = Client(providers=[provider])
            job = pool.submit(client.complete, "hi", model="race")
            client.close()
            with contextlib.suppress(ClientClosed):
                assert job.result(timeout=5).text == "a"


async def _forever() -> None:
    await asyncio.Event().wait()


def _hold(portal: _portal.Portal) -> threading.Event:
    """Keep the portal's loop thread busy until the returned event is set."""
    gate = threading.Event()
    portal.loop.call_soon_threadsafe(gate.wait, 5)
    return gate


def test_a_job_refused_by_a_closing_portal_ends_at_once() -> None:
    # the job's task was still to be started when close() began: it ends cancelled
    # right away, not when the loop stops (close() is still running its final step)
    portal = _portal.Portal()
    gate = _hold(portal)
    ended: list[bool] = []
    job = portal.submit(_forever(), on_end=lambda j: ended.append(j.cancelled))
    finish = threading.Event()

    async def final() -> None:
        await asyncio.to_thread(finish.wait, 10)

    closer = threading.Thread(target=portal.close, args=(final(),), daemon=True)
    closer.start()
    assert _wait_for(lambda: portal.closing)
    gate.set()
    assert job.done.wait(5)
    assert closer.is_alive()  # still in its final step
    finish.set()
    closer.join(timeout=5)
    assert ended == [True]
    with pytest.raises(ClientClosed):
        job.result()


async def _stubborn() -> None:
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)


def test_a_task_that_ignores_cancellation_still_ends_its_waiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_portal, "CLOSE_WAIT", 0.2)
    portal = _portal.Portal()
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            portal.call(_stubborn())
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    assert _wait_for(lambda: bool(portal._jobs) and next(iter(portal._jobs)).task is not None)
    portal.close()
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ClientClosed)


def test_close_before_the_loop_starts_a_streams_task_ends_the_stream() -> None:
    # next() submitted the drain task; close() began before the loop started it
    portal = _portal.Portal()
    stream = _stream(portal, _Source(5), limit=100)
    gate = _hold(portal)
    outcome: list[object] = []

    def consume() -> None:
        try:
            outcome.append(next(stream))
        except BaseException as exc:
            outcome.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    assert _wait_for(lambda: stream._drain is not None)
    closer = threading.Thread(target=portal.close, daemon=True)
    closer.start()
    assert _wait_for(lambda: portal.closing)
    gate.set()
    consumer.join(timeout=5)
    closer.join(timeout=5)
    assert not consumer.is_alive(), "next() hung"
    assert len(outcome) == 1
    assert isinstance(outcome[0], ClientClosed)


def test_a_closed_portal_refuses_new_work_and_streams_say_so(portal: _portal.Portal) -> None:
    source = _Source(10)
    stream = _stream(portal, source, limit=100)
    portal.close()
    with pytest.raises(ClientClosed):
        portal.call(_forever())
    with pytest.raises(ClientClosed):
        next(stream)


def test_a_stream_keeps_its_client_alive_and_then_lets_it_go() -> None:
    # the client is not referenced by the caller: its stream keeps it (and its loop)
    provider, _ = scripted("alone", ["x", "y", FinishReason("stop")])
    before = _loop_threads()
    stream = Client(providers=[provider]).stream("hi", model="alone")
    gc.collect()  # the client is garbage now unless its stream refers to it
    events = list(stream)
    del stream
    assert [e for e in events if isinstance(e, str)] == ["x", "y"]
    gc.collect()
    assert _wait_for(lambda: _loop_threads() == before)


@pytest.mark.timeout(30)
def test_a_waiting_consumer_is_woken_for_each_later_event(portal: _portal.Portal) -> None:
    # events that arrive one at a time while the consumer waits: each wakes it (no
    # polling fallback exists, so a missed wake-up would hang here)
    source = _Source(20, _Boom("last"), gap=0.003)
    stream = _stream(portal, source, limit=100)
    received = []
    with pytest.raises(_Boom):
        for item in stream:
            received.append(item)
    assert received == list(range(20))
    assert 1 <= stream._channel.wakeups <= 21


# -- a real SIGINT while the consumer waits --------------------------------------------


@pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="SIGINT is not Python's here (a background run ignores it)",
)
@pytest.mark.timeout(30)
def test_a_real_sigint_interrupts_a_consumer_waiting_for_its_wake_up(
    portal: _portal.Portal,
) -> None:
    source = _Source(1, first_after=60)  # the consumer waits for a minute
    stream = _stream(portal, source, limit=10)

    def interrupt() -> None:
        time.sleep(0.2)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):  # before the source's minute is up
        next(stream)
    assert _wait_for(lambda: source.closed)  # Ctrl-C cancelled the task, which closed it
