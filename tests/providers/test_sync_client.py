"""The sync Client from scripts, threads, a running loop and a forked child."""

from __future__ import annotations

import _thread
import asyncio
import contextvars
import gc
import inspect
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmrelay import (
    ChatRequest,
    Client,
    ClientClosed,
    Event,
    FinishReason,
    ProviderUnavailable,
    StreamInterrupted,
    TransportError,
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


def _wait_for(condition: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
