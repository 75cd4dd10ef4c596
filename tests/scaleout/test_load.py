"""Load, small: the server under 100 concurrent streaming clients for 3 rounds, and the
library's clients (sync from 50 threads, async with 1000 streams) leaking nothing.

``benchmarks/load.py`` is the full version (1000 clients, 10 rounds).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import llmrelay
from llmrelay.providers._openai_compat import OpenAICompatible
from tests.fakes._server import serve
from tests.fakes.openai_server import FakeOpenAI
from tests.scaleout.workers import REPO, serve_worker

MiB = 1024


def _load_driver() -> Any:
    spec = importlib.util.spec_from_file_location("llmrelay_load", REPO / "benchmarks" / "load.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_server_holds_concurrent_streams_without_mixing_losing_or_leaking(tmp_path: Path) -> None:
    load = _load_driver()
    counters = tmp_path / "counters.json"
    env = {
        "LLMRELAY_TEST_COUNTERS": str(counters),
        "LLMRELAY_TEST_TOKENS": "20",
        "LLMRELAY_TEST_PACE": "0.02",
    }
    with serve_worker(tmp_path, "load", env=env) as worker:
        report = asyncio.run(
            load.drive(
                worker.url,
                worker.pid,
                counters,
                clients=100,
                rounds=3,
                tokens=20,
                disconnect_every=10,
                round_timeout=60,
                progress=False,
            )
        )
    print("\n".join(report.lines()))
    for r in report.rounds:
        assert (r.errors, r.mixed, r.lost) == (0, 0, 0), r.error_samples
        assert r.ok == 90
        assert r.disconnected == 10  # and run_round checked the fake saw 10 cancellations
    # every client of a round was streaming at once
    assert max(r.peak_in_flight for r in report.rounds) == 100
    # no leak: memory after round 3 is within 4 MiB of after round 1 (a leak of every
    # stream's state would add about as much per round)
    assert report.after_kib[-1] - report.after_kib[0] < 4 * MiB, report.after_kib


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still {what}"
        time.sleep(0.02)


@pytest.fixture
def upstream() -> Iterator[tuple[FakeOpenAI, dict[str, Any]]]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        table = {"kind": "openai", "base_url": f"{url}/v1", "models": ["fake-model"]}
        kwargs = {
            "providers": [OpenAICompatible.from_config("local", table)],
            "api_keys": {"local": "test-key"},
            "model": "local:fake-model",
        }
        yield fake, kwargs


def test_sync_client_from_50_threads_leaks_no_socket_or_thread(
    upstream: tuple[FakeOpenAI, dict[str, Any]],
) -> None:
    fake, kwargs = upstream
    sockets, threads = _sockets(), threading.active_count()
    failures: list[BaseException] = []
    texts: list[str] = []
    with llmrelay.Client(**kwargs) as client:

        def work() -> None:
            try:
                for _ in range(3):
                    texts.append(client.complete("hi").text)
                with client.stream("hi") as stream:  # left early: closes its connection
                    for event in stream:
                        if isinstance(event, str):
                            break
            except BaseException as exc:
                failures.append(exc)

        pool = [threading.Thread(target=work) for _ in range(50)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in pool)
    assert failures == []
    assert texts == [fake.expected_text] * 150
    assert len(fake.requests) == 200
    _wait(lambda: threading.active_count() <= threads, "threads left")
    _wait(lambda: _sockets() <= sockets, "sockets open")
    assert fake.wait_closed(10)


@pytest.mark.anyio
async def test_async_client_with_1000_streams_leaks_no_socket_task_or_thread(
    upstream: tuple[FakeOpenAI, dict[str, Any]],
) -> None:
    fake, kwargs = upstream
    sockets, threads = _sockets(), threading.active_count()
    tasks = asyncio.all_tasks()

    async def one(client: llmrelay.AsyncClient, i: int) -> str:
        if i % 10 == 0:  # some leave early
            async with client.stream("hi") as stream:
                async for event in stream:
                    if isinstance(event, str):
                        return fake.expected_text
        completion = await client.complete("hi")
        return completion.text

    # 1000 connects at once to a server in this process: on a loaded machine (a parallel
    # run) some wait for the accept queue past the default 10 s connect timeout
    timeouts = llmrelay.Timeouts(connect=60)
    async with llmrelay.AsyncClient(**kwargs, timeouts=timeouts) as client:
        texts = await asyncio.gather(*(one(client, i) for i in range(1000)))
    assert texts == [fake.expected_text] * 1000
    assert len(fake.requests) == 1000

    async def settled() -> None:
        deadline = time.monotonic() + 20
        while (
            _sockets() > sockets
            or threading.active_count() > threads
            or asyncio.all_tasks() - tasks - {asyncio.current_task()}
        ):
            assert time.monotonic() < deadline, (
                f"sockets {_sockets()} > {sockets}, threads {threading.active_count()} > "
                f"{threads}, tasks {asyncio.all_tasks() - tasks}"
            )
            await asyncio.sleep(0.02)

    await settled()
    assert fake.wait_closed(10)
