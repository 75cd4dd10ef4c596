"""``ChunkConverter`` builds chunks without ``model_construct``: the same objects, faster."""

from __future__ import annotations

from typing import Any

import openai.types.chat as oa
import pytest

from llmrelay._openai import (
    ChatCompletionChunk,
    ChoiceDelta,
    ChunkChoice,
    ChunkConverter,
)
from llmrelay.types import FinishReason, Reasoning, Usage


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
