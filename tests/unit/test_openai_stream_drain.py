"""``_openai_stream._drain``: what follows ``[DONE]`` is read within a bound, never more.

Checked on asyncio (``asyncio.timeout``) and on the other backends' way (an anyio cancel
scope, forced here by hiding the running loop): the bound holds against a body that never
ends, the rest of a body that does end is read (the connection can be reused), a transport
or protocol failure after ``[DONE]`` is ignored while any other exception, a
``TimeoutError`` raised by the read itself included, propagates, and a cancellation from
outside (a task cancel, an enclosing cancel scope) is not absorbed as the bound's expiry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from llmrelay import errors
from llmrelay.providers import _openai_stream
from llmrelay.providers._openai_stream import _drain

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "anyio"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "anyio":  # as on a backend without an asyncio loop (trio)
        monkeypatch.setattr(_openai_stream, "_running_loop", lambda: None)
    return str(request.param)


async def _forever(read: list[int]) -> AsyncIterator[bytes]:
    read.append(1)
    yield b": keep-alive"
    await asyncio.sleep(3600)
    yield b"never"  # pragma: no cover


async def _items(
    n: int, read: list[int], error: BaseException | None = None
) -> AsyncIterator[bytes]:
    for i in range(n):
        read.append(i)
        yield b"x"
        await asyncio.sleep(0)
    if error is not None:
        raise error


async def test_a_body_that_never_ends_is_left_after_the_bound(way: str) -> None:
    read: list[int] = []
    start = time.monotonic()
    with anyio.fail_after(5):
        await _drain(_forever(read), wait=0.05)
    assert read == [1]
    assert 0.04 <= time.monotonic() - start < 2


async def test_the_rest_of_a_body_is_read_to_its_end(way: str) -> None:
    read: list[int] = []
    messages = _items(5, read)
    await _drain(messages, wait=5)
    assert read == [0, 1, 2, 3, 4]
    with pytest.raises(StopAsyncIteration):
        await messages.__anext__()  # finished, not left mid-way


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadError("reset"), errors.ProtocolError("bad frame", provider="p", model="m")],
    ids=["transport", "protocol"],
)
async def test_a_failure_after_done_is_ignored(way: str, failure: BaseException) -> None:
    read: list[int] = []
    await _drain(_items(2, read, failure), wait=5)
    assert read == [0, 1]


@pytest.mark.parametrize("failure", [ValueError("bug"), TimeoutError("the read's own")])
async def test_other_exceptions_propagate(way: str, failure: BaseException) -> None:
    with pytest.raises(type(failure)):
        await _drain(_items(1, [], failure), wait=5)


async def test_a_task_cancel_from_outside_propagates(way: str) -> None:
    task = asyncio.ensure_future(_drain(_forever([]), wait=30))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_enclosing_scope_cancels_it(way: str) -> None:
    with anyio.move_on_after(0.05) as scope:
        await _drain(_forever([]), wait=30)
        pytest.fail("not cancelled")  # pragma: no cover
    assert scope.cancelled_caught


@pytest.fixture
async def timers(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The loop timers armed (``call_at``'s deadlines) while the test runs."""
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counting(when: float, *args: object, **kwargs: object) -> asyncio.TimerHandle:
        armed.append(when)
        return call_at(when, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_at", counting)
    return armed


async def test_a_body_received_whole_is_read_without_a_timer(timers: list[float]) -> None:
    # the transport says the whole body is in (BODY_DONE_EXTENSION): nothing to wait
    # for, so no bound is armed; the rest is still read to its end
    read: list[int] = []
    messages = _items(3, read)
    await _drain(messages, 5, lambda: True)
    assert read == [0, 1, 2]
    with pytest.raises(StopAsyncIteration):
        await messages.__anext__()
    assert timers == []
    # a failure in that rest is ignored as in the bounded way
    await _drain(_items(1, [], httpx.ReadError("reset")), 5, lambda: True)
    with pytest.raises(ValueError, match="bug"):
        await _drain(_items(1, [], ValueError("bug")), 5, lambda: True)


async def test_a_body_still_arriving_keeps_the_bound(timers: list[float]) -> None:
    read: list[int] = []
    with anyio.fail_after(5):
        await _drain(_forever(read), 0.05, lambda: False)
    assert read == [1]
    assert len(timers) >= 1
