"""``EventStreamResponse`` without a task group: how it ends when the producer fails, the
client leaves, or the response itself is cancelled (``on_close`` runs every time)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from llmrelay.server._sse import EventStreamResponse

SCOPE = {"type": "http", "method": "POST", "path": "/", "headers": []}


class _Peer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.left = asyncio.Event()
        self.closed = 0

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def on_close(self) -> None:
        await asyncio.sleep(0)
        self.closed += 1

    def ended(self) -> bool:
        return any(m["type"] == "http.response.body" and not m.get("more_body") for m in self.sent)


@pytest.mark.anyio
async def test_a_failing_producer_leaves_the_body_unended_and_raises() -> None:
    peer = _Peer()

    async def produce(outbox: Any) -> None:
        outbox.put(b"data: 1\n\n")
        await outbox.pause()
        raise ValueError("boom")

    response = EventStreamResponse(produce, headers={}, on_close=peer.on_close)
    with anyio.fail_after(5), pytest.raises(ExceptionGroup) as raised:
        await response(SCOPE, peer.receive, peer.send)
    assert [type(e) for e in raised.value.exceptions] == [ValueError]
    assert not peer.ended()
    assert peer.closed == 1


@pytest.mark.anyio
async def test_a_client_that_leaves_cancels_the_producer() -> None:
    peer = _Peer()
    seen: list[str] = []

    async def produce(outbox: Any) -> None:
        outbox.put(b"data: 1\n\n")
        await outbox.pause()
        peer.left.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    response = EventStreamResponse(produce, headers={}, on_close=peer.on_close)
    with anyio.fail_after(5):
        await response(SCOPE, peer.receive, peer.send)
    assert seen == ["cancelled"]
    assert [m.get("body") for m in peer.sent[1:]] == [b"data: 1\n\n"]
    assert not peer.ended()
    assert peer.closed == 1


@pytest.mark.anyio
async def test_a_cancelled_response_cancels_its_tasks_and_closes() -> None:
    peer = _Peer()
    seen: list[str] = []
    started = asyncio.Event()

    async def produce(outbox: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    response = EventStreamResponse(produce, headers={}, on_close=peer.on_close)
    task = asyncio.get_running_loop().create_task(response(SCOPE, peer.receive, peer.send))
    await started.wait()
    task.cancel()
    with anyio.fail_after(5), pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
    assert peer.closed == 1


@pytest.mark.anyio
async def test_a_producer_that_returns_ends_the_body_once() -> None:
    peer = _Peer()

    async def produce(outbox: Any) -> None:
        for i in range(40):  # more than a batch
            if outbox.put(b"data: %d\n\n" % i):
                await outbox.pause()

    response = EventStreamResponse(produce, headers={}, on_close=peer.on_close)
    with anyio.fail_after(5):
        await response(SCOPE, peer.receive, peer.send)
    body = b"".join(m.get("body", b"") for m in peer.sent[1:])
    assert body == b"".join(b"data: %d\n\n" % i for i in range(40))
    assert [m.get("more_body") for m in peer.sent[1:]][-1] is False
    assert peer.closed == 1


@pytest.mark.anyio
async def test_a_failing_receive_stops_everything_and_is_raised() -> None:
    peer = _Peer()
    seen: list[str] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        raise RuntimeError("receive broke")

    async def produce(outbox: Any) -> None:
        outbox.put(b"data: 1\n\n")
        await outbox.pause()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    response = EventStreamResponse(produce, headers={}, on_close=peer.on_close)
    with anyio.fail_after(5), pytest.raises(ExceptionGroup) as raised:
        await response(SCOPE, receive, peer.send)
    assert [type(e) for e in raised.value.exceptions] == [RuntimeError]
    assert seen == ["cancelled"]
    assert not peer.ended()
    assert peer.closed == 1


@pytest.mark.anyio
async def test_a_producer_cleans_up_whole_after_the_client_leaves() -> None:
    """Its ``finally`` may wait (closing the upstream): the response cancels it once only.

    The producer is a plain asyncio task, in no anyio cancel scope: an anyio shield in
    its clean-up would hold back nothing (a native ``Task.cancel()`` passes one), so a
    second cancel from the response would cut the clean-up short.
    """
    peer = _Peer()
    seen: list[str] = []

    async def produce(outbox: Any) -> None:
        outbox.put(b"data: 1\n\n")
        await outbox.pause()
        peer.left.set()
        try:
            await asyncio.sleep(30)
        finally:
            for _ in range(3):
                await asyncio.sleep(0.01)
            seen.append("cleaned up")

    response = EventStreamResponse(produce, headers={}, on_close=peer.on_close)
    with anyio.fail_after(5):
        await response(SCOPE, peer.receive, peer.send)
    assert seen == ["cleaned up"]
    assert peer.closed == 1


@pytest.mark.anyio
async def test_on_close_is_shielded_when_the_producer_did_not_return() -> None:
    """A response cancelled by an anyio scope still runs ``on_close`` to its end."""
    peer = _Peer()
    closed: list[str] = []
    started = asyncio.Event()

    async def produce(outbox: Any) -> None:
        started.set()
        await asyncio.sleep(30)

    async def on_close() -> None:
        await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        closed.append("closed")

    response = EventStreamResponse(produce, headers={}, on_close=on_close)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                with anyio.CancelScope() as scope:
                    peer.scope = scope  # type: ignore[attr-defined]
                    await response(SCOPE, peer.receive, peer.send)

            tg.start_soon(run)
            await started.wait()
            peer.scope.cancel()  # type: ignore[attr-defined]
    assert closed == ["closed"]


def test_the_raw_headers_are_starlettes_in_a_list_of_each_responses_own() -> None:
    from starlette.responses import StreamingResponse

    async def produce(outbox: Any) -> None:
        pass

    headers = {"Cache-Control": "no-cache", "X-Llmrelay-Attempts": '[{"provider": "a"}]'}
    first = EventStreamResponse(produce, headers=dict(headers))
    second = EventStreamResponse(produce, headers=dict(headers))
    other = EventStreamResponse(produce, headers={**headers, "Cache-Control": "no-store"})
    expected = StreamingResponse(iter(()), media_type="text/event-stream", headers=headers)
    assert first.raw_headers == second.raw_headers == expected.raw_headers
    assert (b"content-type", b"text/event-stream; charset=utf-8") in first.raw_headers
    assert first.raw_headers is not second.raw_headers
    assert (b"cache-control", b"no-store") in other.raw_headers
    assert (b"cache-control", b"no-cache") not in other.raw_headers
