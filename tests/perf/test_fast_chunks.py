"""``ChunkConverter`` builds chunks without ``model_construct``: the same objects, faster."""

from __future__ import annotations

import asyncio
from typing import Any

import openai.types.chat as oa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from llmrelay._openai import (
    ChatCompletionChunk,
    ChoiceDelta,
    ChunkChoice,
    CompletionUsage,
)
from llmrelay._wire.openai_chat import ChunkConverter
from llmrelay.types import FinishReason, ProviderInfo, Reasoning, Usage


def state(obj: Any) -> tuple[Any, ...]:
    return (
        type(obj),
        obj.__dict__ if not hasattr(obj, "choices") else None,
        obj.__pydantic_fields_set__,
        obj.__pydantic_extra__,
        obj.__pydantic_private__,
    )


def constructed(chunk: ChatCompletionChunk) -> ChatCompletionChunk:
    """The same chunk built the slow way, with ``model_construct``."""
    delta = chunk.choices[0].delta
    new_delta = ChoiceDelta.model_construct(
        role=delta.role, content=delta.content, **(delta.__pydantic_extra__ or {})
    )
    if delta.role is not None:
        new_delta.__pydantic_fields_set__ = set(delta.__pydantic_fields_set__)
    choice = chunk.choices[0]
    new_choice = ChunkChoice.model_construct(
        index=0, delta=new_delta, finish_reason=choice.finish_reason, logprobs=None
    )
    return ChatCompletionChunk.model_construct(
        id=chunk.id,
        object="chat.completion.chunk",
        created=chunk.created,
        model=chunk.model,
        choices=[new_choice],
        usage=None,
        system_fingerprint=None,
    )


@pytest.mark.parametrize(
    "events", [["a", "b", FinishReason("length")], [Reasoning("r"), "x", FinishReason("stop")]]
)
def test_chunks_equal_model_construct_and_validate_with_openai(events: list[Any]) -> None:
    converter = ChunkConverter(id="chatcmpl-1", created=5, model="m")
    for event in [*events, Usage(1, 2, 3)]:
        chunk = converter.convert(event)
        if chunk is None:
            continue
        dumped = chunk.choices[0].delta.model_dump()
        if isinstance(event, Reasoning):
            assert dumped["reasoning_content"] == event.text
        elif isinstance(event, str):
            assert dumped["content"] == event
        else:
            assert chunk.choices[0].finish_reason == event.reason
        slow = constructed(chunk)
        assert chunk == slow
        assert chunk.model_dump() == slow.model_dump()
        assert chunk.model_dump_json() == slow.model_dump_json()
        for fast, ref in (
            (chunk, slow),
            (chunk.choices[0], slow.choices[0]),
            (chunk.choices[0].delta, slow.choices[0].delta),
        ):
            assert state(fast) == state(ref)
        oa.ChatCompletionChunk.model_validate(chunk.model_dump())
        oa.ChatCompletionChunk.model_validate_json(chunk.model_dump_json())
    assert converter.convert("late").choices[0].delta.role is None  # type: ignore[union-attr]


class ReferenceConverter:
    """``ChunkConverter`` as it was before the fast construction: ``model_construct``."""

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool) -> None:
        self.id, self.created, self.model = id, created, model
        self.include_usage = include_usage
        self.first = True
        self.usage: Usage | None = None

    def chunk(self, delta: ChoiceDelta, finish: Any = None) -> ChatCompletionChunk:
        if self.first:
            delta.role = "assistant"
            self.first = False
        return ChatCompletionChunk.model_construct(
            id=self.id,
            object="chat.completion.chunk",
            created=self.created,
            model=self.model,
            choices=[
                ChunkChoice.model_construct(
                    index=0, delta=delta, finish_reason=finish, logprobs=None
                )
            ],
            usage=None,
            system_fingerprint=None,
        )

    def convert(self, event: Any) -> ChatCompletionChunk | None:
        if type(event) is str:
            return self.chunk(ChoiceDelta.model_construct(role=None, content=event))
        if isinstance(event, Reasoning):
            return self.chunk(
                ChoiceDelta.model_construct(role=None, content=None, reasoning_content=event.text)
            )
        if isinstance(event, FinishReason):
            reason = event.reason
            finish = (
                reason
                if reason in {"stop", "length", "tool_calls", "content_filter", "function_call"}
                else "stop"
            )
            return self.chunk(ChoiceDelta.model_construct(role=None, content=None), finish)
        if isinstance(event, Usage):
            self.usage = event
        return None

    def tail(self) -> list[ChatCompletionChunk]:
        if not self.include_usage or self.usage is None:
            return []
        u = self.usage
        prompt, completion = u.prompt_tokens or 0, u.completion_tokens or 0
        total = u.total_tokens if u.total_tokens is not None else prompt + completion
        return [
            ChatCompletionChunk.model_construct(
                id=self.id,
                object="chat.completion.chunk",
                created=self.created,
                model=self.model,
                choices=[],
                usage=CompletionUsage.model_construct(
                    prompt_tokens=prompt, completion_tokens=completion, total_tokens=total
                ),
                system_fingerprint=None,
            )
        ]


def deep_state(obj: Any) -> Any:
    """Type, values, fields set, extra and private of a model tree (what equality hides)."""
    if isinstance(obj, list):
        return [deep_state(item) for item in obj]
    if not isinstance(obj, BaseModel):
        return obj
    return (
        type(obj),
        {k: deep_state(v) for k, v in obj.__dict__.items()},
        obj.__pydantic_fields_set__,
        obj.__pydantic_extra__,
        obj.__pydantic_private__,
    )


class _Events:
    """Just enough of ``AsyncChatStream`` for ``AsyncChatCompletionStream``."""

    def __init__(self, events: list[Any]) -> None:
        self.items = list(events)
        self.provider = self.model = "p"

    async def __anext__(self) -> Any:
        if not self.items:
            raise StopAsyncIteration
        return self.items.pop(0)

    async def aclose(self) -> None:
        self.items.clear()


EVENTS = st.lists(
    st.one_of(
        st.sampled_from(["", "a", " w1", "é\u2028"]),
        st.builds(Reasoning, st.sampled_from(["", "think"])),
        st.builds(FinishReason, st.sampled_from(["stop", "length", "error", "tool_calls"])),
        st.builds(
            Usage,
            st.sampled_from([None, 3]),
            st.sampled_from([None, 4]),
            st.sampled_from([None, 9]),
        ),
        st.just(ProviderInfo("p", "m")),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.booleans())
def test_the_facade_stream_gives_the_reference_chunks(events: list[Any], usage: bool) -> None:
    """Chunks through ``AsyncChatCompletionStream`` (its text fast path included)."""
    from llmrelay._resources import AsyncChatCompletionStream

    args = {"id": "chatcmpl-9", "created": 7, "model": "p:m", "include_usage": usage}
    stream = AsyncChatCompletionStream(
        _Events(events),  # type: ignore[arg-type]
        ChunkConverter(**args),
    )

    async def collect() -> list[Any]:
        return [chunk async for chunk in stream]

    got = asyncio.run(collect())
    reference = ReferenceConverter(**args)
    expected = [c for c in map(reference.convert, events) if c is not None] + reference.tail()
    assert deep_state(got) == deep_state(expected)
    assert [c.model_dump_json() for c in got] == [c.model_dump_json() for c in expected]
