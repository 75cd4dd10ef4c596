"""The sync Client from scripts, threads, a running loop and a forked child."""

from __future__ import annotations

import asyncio
import inspect
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmrelay import Client, ProviderUnavailable, StreamInterrupted, TransportError
from tests.fakes.gradio_space import DEFAULT_CHUNKS, FakeSpace, SpaceScript

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
