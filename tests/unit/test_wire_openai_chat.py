"""The one OpenAI chat encoder: chunk objects and SSE frames agree, unknown events are skipped.

``ChunkConverter`` (objects, the facade) and ``ChunkFrames`` (bytes, ``llmrelay serve``
through ``AsyncChatCompletionStream.sse()``) must give the same chunks for any stream of
events; ``AsyncSSEStream`` adds the first-frame rule, the counters the server reads and
the end of the stream.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay._wire.openai_chat import (
    FINISH_REASONS,
    ChunkConverter,
    ChunkFrames,
    finish_name,
    usage_counts,
)
from llmrelay._wire.sse import AsyncSSEStream
from llmrelay.types import (
    ConversationState,
    FinishReason,
    ImageResult,
    ProviderInfo,
    Reasoning,
    Usage,
)

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Unknown:
    """An event type no encoder knows (a later one, e.g. a queue position)."""

    position: int = 3


PNG = ImageResult(data=b"\x89PNG", mime_type="image/png")
ARGS = {"id": "chatcmpl-7", "created": 11, "model": "p:m"}

EVENTS = st.lists(
    st.one_of(
        st.text(max_size=6),
        st.sampled_from(["", " w", "é\u2028x", "\x85", '"\\']),
        st.builds(Reasoning, st.sampled_from(["", "hm", "\u2029"])),
        st.builds(FinishReason, st.sampled_from(["stop", "length", "max_new_tokens"])),
        st.builds(Usage, st.sampled_from([None, 3]), st.sampled_from([None, 4]), st.just(None)),
        st.just(ProviderInfo("p", "m")),
        st.just(ConversationState("p", {"k": 1})),
        st.just(PNG),
        st.just(Unknown()),
    ),
    max_size=10,
)


def _unescape(frame: bytes) -> bytes:
    for escaped, char in ((b"\\u2028", "\u2028"), (b"\\u2029", "\u2029"), (b"\\u0085", "\x85")):
        frame = frame.replace(escaped, char.encode())
    return frame


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.booleans())
def test_the_frames_are_the_chunks_serialised(events: list[Any], include_usage: bool) -> None:
    events = [e for e in events if not (isinstance(e, str) and _surrogate(e))]
    converter = ChunkConverter(**ARGS, include_usage=include_usage)
    frames = ChunkFrames(**ARGS, include_usage=include_usage)
    chunks = [c for c in map(converter.convert, events) if c is not None] + converter.tail()
    encoded = [f for f in map(frames.event, events) if f is not None]
    tail = frames.tail()
    if tail:
        encoded.append(tail)
    assert [_unescape(f) for f in encoded] == [
        b"data: " + c.model_dump_json().encode() + b"\n\n" for c in chunks
    ]
    for frame in encoded:  # one line each: the three separators are escaped
        assert frame[:-2].decode().splitlines() == [frame[:-2].decode()]
    finishes = [e for e in events if isinstance(e, FinishReason)]
    assert frames.finish_reason == (finish_name(finishes[-1].reason) if finishes else None)
    usages = [e for e in events if isinstance(e, Usage)]
    expected = usage_counts(usages[-1]) if usages and include_usage else None
    assert frames.sent_usage == expected


def _surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_an_event_type_without_a_chunk_form_is_skipped_by_both() -> None:
    converter = ChunkConverter(**ARGS)
    frames = ChunkFrames(**ARGS)
    for event in (Unknown(), ProviderInfo("p", "m"), ConversationState("p", {}), PNG):
        assert converter.convert(event) is None
        assert frames.event(event) is None
    # and the role still goes with the first chunk that is sent
    assert json.loads(frames.text("a")[6:])["choices"][0]["delta"]["role"] == "assistant"
    assert converter.convert("a").choices[0].delta.role == "assistant"  # type: ignore[union-attr]


def test_finish_names_are_openais_and_anything_else_is_stop() -> None:
    assert {"stop", "length", "tool_calls", "content_filter", "function_call"} == FINISH_REASONS
    for name in FINISH_REASONS:
        assert finish_name(name) == name
    assert finish_name("max_new_tokens") == "stop"
    assert finish_name("error") == "stop"


class _Events:
    """Just enough of ``AsyncChatStream`` for ``AsyncSSEStream``."""

    def __init__(self, events: list[Any], error: Exception | None = None) -> None:
        self.items = list(events)
        self.error = error
        self.text = ""
        self.provider, self.model, self.attempts = "p", "m", []
        self.closed = False

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> Any:
        if not self.items:
            if self.error is not None:
                raise self.error
            raise StopAsyncIteration
        event = self.items.pop(0)
        if isinstance(event, str):
            self.text += event
        return event

    async def aclose(self) -> None:
        self.closed = True


def _sse(events: list[Any], *, end: bool = True, usage: bool = True, **kw: Any) -> AsyncSSEStream:
    return AsyncSSEStream(
        _Events(events, **kw),  # type: ignore[arg-type]
        ChunkFrames(**ARGS, include_usage=usage),
        end=end,
    )


async def _rest(sse: AsyncSSEStream) -> list[bytes]:
    return [frame async for frame in sse]


async def test_head_is_the_first_frame_and_iteration_goes_on_after_it() -> None:
    sse = _sse(
        [ProviderInfo("p", "m"), Usage(1, 2, 3), "", "a", Unknown(), "b", FinishReason("stop")]
    )
    head = await sse.head()
    assert head is not None
    assert json.loads(head[6:])["choices"][0]["delta"]["content"] == ""
    rest = await _rest(sse)
    contents = [json.loads(f[6:])["choices"][0]["delta"].get("content") for f in rest[:2]]
    assert contents == ["a", "b"]
    assert rest[-1] == b"data: [DONE]\n\n"  # after the usage chunk
    assert b'"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}' in rest[-2]
    assert sse.deltas == 2  # non-empty text deltas only
    assert sse.finish_reason == "stop"
    assert sse.usage == Usage(1, 2, 3)
    assert sse.text == "ab"
    assert await _rest(sse) == []  # ended for good


async def test_head_stops_at_content_without_a_frame() -> None:
    sse = _sse([ProviderInfo("p", "m"), PNG, "after", FinishReason("length")], usage=False)
    assert await sse.head() is None
    frames = await _rest(sse)
    assert json.loads(frames[0][6:])["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "after",
    }
    assert frames[-1] == b"data: [DONE]\n\n"


async def test_without_end_the_caller_sends_the_end_frame() -> None:
    sse = _sse(["a", FinishReason("stop")], end=False, usage=False)
    frames = await _rest(sse)
    assert len(frames) == 2
    assert b"[DONE]" not in b"".join(frames)
    assert sse.end_frame == b"data: [DONE]\n\n"


async def test_an_error_is_raised_as_the_events_raise_it_and_close_reaches_the_events() -> None:
    boom = llmrelay.ProviderUnavailable("down", provider="p", model="m")
    sse = _sse(["a"], error=boom)
    assert await sse.head() is not None
    with pytest.raises(llmrelay.ProviderUnavailable):
        await _rest(sse)
    await sse.aclose()
    assert sse._events.closed  # type: ignore[attr-defined]


async def test_a_text_that_cannot_be_encoded_raises_and_is_not_counted_as_sent() -> None:
    sse = _sse(["\ud800", FinishReason("stop")])
    with pytest.raises(UnicodeEncodeError):
        await sse.head()
    assert (sse.text, sse.deltas) == ("", 0)
    sse = _sse(["ok", "\ud800", "never", FinishReason("stop")])
    assert await sse.head() is not None
    with pytest.raises(UnicodeEncodeError):
        await _rest(sse)
    assert (sse.text, sse.deltas) == ("ok", 1)  # what the log records: what was sent


def test_the_facade_stream_offers_the_frames_of_its_chunks() -> None:
    """``create(stream=True).sse()`` through a real client: the server's public path."""
    from llmrelay.providers import Provider
    from tests.unit.scripted_provider import scripted

    first, _ = scripted("first", ["Hel", Unknown(), "lo", Usage(2, 3, None), FinishReason("stop")])
    providers: list[type[Provider]] = [first]

    async def run() -> tuple[list[bytes], list[Any]]:
        async with llmrelay.AsyncClient(providers=providers) as client:
            params: llmrelay.CompletionCreateParams = {
                "model": "first",
                "stream_options": {"include_usage": True},
            }
            stream = await client.chat.completions.create(messages="hi", stream=True, **params)
            async with stream:
                frames = [frame async for frame in stream.sse()]
            stream = await client.chat.completions.create(messages="hi", stream=True, **params)
            async with stream:
                chunks = [chunk async for chunk in stream]
            return frames, chunks

    frames, chunks = asyncio.run(run())
    assert frames[-1] == b"data: [DONE]\n\n"
    assert len(frames) == len(chunks) + 1
    bodies = [json.loads(f[6:]) for f in frames[:-1]]
    dumped = [json.loads(c.model_dump_json()) for c in chunks]
    for body in bodies + dumped:  # one id and created per stream, not across streams
        body.pop("id"), body.pop("created")
    assert bodies == dumped
    assert [b["choices"][0]["delta"].get("content") for b in bodies[:2]] == ["Hel", "lo"]
    assert bodies[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
