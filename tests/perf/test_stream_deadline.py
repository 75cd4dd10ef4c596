"""The total timeout's single watchdog (``AsyncChatStream``): what the per-event scope did.

One loop timer per stream replaces a cancel scope per event; these pin the behaviour
that must not change: the deadline interrupts a wait, fires between events too, a
cancellation from elsewhere is still a cancellation, and nothing is left scheduled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

import anyio
import pytest

from llmrelay import AsyncClient, Timeouts
from llmrelay.errors import ProviderTimeout, StreamInterrupted
from llmrelay.types import FinishReason
from tests.unit.scripted_provider import HANG, Sleep, scripted

pytestmark = pytest.mark.anyio


async def test_the_deadline_interrupts_a_wait_and_closes_the_provider() -> None:
    first, script = scripted("first", ["a", "b", HANG])
    async with AsyncClient(providers=[first], timeouts=Timeouts(total=0.2)) as client:
        stream = client.stream("hi", model="first")
        seen = []
        with pytest.raises(StreamInterrupted) as info:
            async for event in stream:
                seen.append(event)
    assert isinstance(info.value.cause, ProviderTimeout)
    assert info.value.cause.kind == "total"
    assert info.value.text == "ab"
    assert script.closed == 1
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_deadline_passed_between_events_fails_the_next_wait() -> None:
    first, script = scripted("first", ["a", Sleep(0.01), "b", FinishReason("stop")])
    async with AsyncClient(providers=[first], timeouts=Timeouts(total=0.1)) as client:
        stream = client.stream("hi", model="first")
        await stream.start()
        assert await stream.__anext__() is not None  # ProviderInfo
        assert await stream.__anext__() == "a"
        await asyncio.sleep(0.25)  # the consumer is busy past the deadline
        with pytest.raises(StreamInterrupted) as info:
            await stream.__anext__()
    assert isinstance(info.value.cause, ProviderTimeout)
    assert script.closed == 1


async def test_an_outside_cancellation_is_not_a_timeout() -> None:
    first, script = scripted("first", ["a", HANG])
    async with AsyncClient(providers=[first], timeouts=Timeouts(total=30)) as client:
        with anyio.move_on_after(0.1) as scope:
            async for _ in client.stream("hi", model="first"):
                pass
    assert scope.cancelled_caught
    assert script.closed == 1
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_stream_within_its_deadline_leaves_no_timer() -> None:
    first, _ = scripted("first", ["a", Sleep(0.01), "b", FinishReason("stop")])
    async with AsyncClient(providers=[first], timeouts=Timeouts(total=30)) as client:
        stream = client.stream("hi", model="first")
        completion = await stream.collect()
        assert completion.text == "ab"
        assert stream._watchdog is None
        ref = weakref.ref(stream)
        del stream
        gc.collect()
        assert ref() is None
    loop = asyncio.get_running_loop()
    assert not [h for h in loop._scheduled if not h.cancelled() and h.when() > loop.time() + 10]  # type: ignore[attr-defined]


async def test_a_provider_swallowing_the_cancellation_still_times_out() -> None:
    base, _ = scripted("stubborn", ["a", FinishReason("stop")])

    class Stubborn(base):  # type: ignore[misc,valid-type]
        async def stream(self, request: object):  # type: ignore[no-untyped-def,override]
            yield "a"
            # a provider that swallows the watchdog's cancellation
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(5)
            yield "b"
            yield FinishReason("stop")

    async with AsyncClient(providers=[Stubborn], timeouts=Timeouts(total=0.2)) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(StreamInterrupted) as info:
            async for _ in client.stream("hi", model="stubborn"):
                pass
    assert asyncio.get_running_loop().time() - started < 3
    assert isinstance(info.value.cause, ProviderTimeout)
    assert info.value.cause.kind == "total"
    assert info.value.text == "a"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
