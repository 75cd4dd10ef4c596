"""The answer a stream holds is joined into blocks of ``TEXT_BLOCK`` deltas as it grows.

Memory per open stream: a string object per delta (~55 bytes) became about a byte per
character. Everything that reads the answer so far must still see every delta, in
order, at every point of the stream: ``text``, ``collect()``, an interruption's text and
the conversation's recorded reply.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import AsyncClient, Conversation
from llmrelay._stream import TEXT_BLOCK
from llmrelay.errors import ProviderUnavailable, StreamInterrupted
from llmrelay.types import FinishReason, Usage
from tests.unit.scripted_provider import scripted

pytestmark = pytest.mark.anyio

# delta counts around the block boundaries (0, 1, TEXT_BLOCK - 1, TEXT_BLOCK, ...)
_COUNTS = st.sampled_from(
    sorted(
        {0, 1, 2, TEXT_BLOCK - 1, TEXT_BLOCK, TEXT_BLOCK + 1, 2 * TEXT_BLOCK, 3 * TEXT_BLOCK + 5}
    )
)


def _deltas(n: int) -> list[str]:
    return [f"<{i}>" for i in range(n)]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@settings(max_examples=25, deadline=None)
@given(n=_COUNTS, usage_at=st.integers(min_value=0, max_value=3 * TEXT_BLOCK))
async def test_text_so_far_is_every_delta_in_order_at_every_step(
    anyio_backend: str, n: int, usage_at: int
) -> None:
    deltas = _deltas(max(n, 1))  # one delta at least: a stream needs content
    events: list[object] = list(deltas)
    events.insert(min(usage_at, len(events)), Usage(1, 2))  # a non-text event in between
    provider, _ = scripted("first", [*events, FinishReason("stop")])
    async with AsyncClient(providers=[provider]) as client:
        stream = client.stream("hi", model="first")
        seen: list[str] = []
        async for event in stream:
            if type(event) is str:
                seen.append(event)
                assert stream.text == "".join(seen)
                # the deltas kept as they came never reach a block's size
                assert len(stream._acc.text) < TEXT_BLOCK
        completion = await stream.collect()
    assert seen == deltas
    assert completion.text == "".join(deltas)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("n", [TEXT_BLOCK - 1, TEXT_BLOCK, 2 * TEXT_BLOCK + 3])
async def test_an_interruption_carries_every_delta_received(anyio_backend: str, n: int) -> None:
    deltas = _deltas(n)
    provider, _ = scripted("first", [*deltas, ProviderUnavailable("cut", provider="first")])
    async with AsyncClient(providers=[provider]) as client:
        with pytest.raises(StreamInterrupted) as info:
            async for _ in client.stream("hi", model="first"):
                pass
    assert info.value.text == "".join(deltas)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_conversation_records_the_whole_reply(anyio_backend: str) -> None:
    deltas = _deltas(3 * TEXT_BLOCK + 7)
    provider, _ = scripted("first", [*deltas, FinishReason("stop")])
    conversation = Conversation()
    async with AsyncClient(providers=[provider]) as client:
        async for _ in client.stream("hi", model="first", conversation=conversation):
            pass
    assert [m.content for m in conversation.messages] == ["hi", "".join(deltas)]
