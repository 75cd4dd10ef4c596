"""How often a stream asks asyncio for the running loop (Python 3.11: a ``getpid`` each).

``asyncio.get_running_loop()`` and ``asyncio.events._get_running_loop()`` check the
process id with a system call on CPython before 3.12; a stream looks the loop up once
when it opens and its open phase and watchdog share it. Counted, not timed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmrelay import AsyncClient, Timeouts
from llmrelay.types import FinishReason
from tests.unit.scripted_provider import scripted

pytestmark = pytest.mark.anyio


async def test_a_stream_looks_the_running_loop_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = scripted("first", ["a", "b", FinishReason("stop")])
    real = asyncio.events._get_running_loop
    calls: list[Any] = []

    def counting() -> Any:
        loop = real()
        calls.append(loop)
        return loop

    # a total timeout and a stall bound: the open phase's timer and the watchdog both run
    timeouts = Timeouts(first_token=30, total=30, stall=10)
    async with AsyncClient(providers=[first], timeouts=timeouts) as client:
        monkeypatch.setattr(asyncio.events, "_get_running_loop", counting)
        async with client.stream("hi", model="first") as stream:
            events = [event async for event in stream]
        monkeypatch.undo()
    assert [e for e in events if type(e) is str] == ["a", "b"]
    assert calls == [asyncio.get_running_loop()]
