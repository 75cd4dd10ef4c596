"""ai2 keeps the streamed chunks in a list (joined once at the final tree) instead of
concatenating them per chunk: the events are exactly those of the former ``_read``
(kept below verbatim), whatever the final tree's content says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmrelay import errors
from llmrelay.providers import ai2 as module
from llmrelay.providers.ai2 import _FINISH, Ai2, _drain, _find_reply, _text
from llmrelay.types import ConversationState, Event, FinishReason


async def reference_read(
    self: Ai2, lines: AsyncIterator[Any], model: str, anonymous_id: str
) -> AsyncGenerator[Event, None]:
    reply_id: str | None = None
    sent = ""
    async for line in lines:
        if not isinstance(line, dict):
            raise self._protocol(f"unexpected line {str(line)[:200]!r}", model)
        if "error" in line:
            raise self._stream_error(line, model)
        if "id" not in line:
            if reply_id is None:
                raise self._protocol("a chunk arrived before the message tree", model)
            content = line.get("content")
            if not isinstance(content, str) or line.get("message") != reply_id:
                raise self._protocol(f"malformed chunk {str(line)[:200]!r}", model)
            sent += content
            yield content
            continue
        reply = _find_reply(line, reply_id)
        if reply is None:
            raise self._protocol("the message tree has no assistant reply", model)
        if reply_id is None:
            reply_id = _text(reply.get("id"), "reply id", model, self.name, module._MAX_ID)
        if line.get("final") is not True:
            continue
        full = _text(reply.get("content", ""), "reply content", model, self.name)
        if len(full) > len(sent) and full.startswith(sent):
            yield full[len(sent) :]
        elif full != sent:
            module.log.warning("ai2: the final reply differs from the streamed text")
        reason = reply.get("finish_reason")
        yield ConversationState(self.name, {"anonymous_user_id": anonymous_id, "parent": reply_id})
        yield FinishReason(_FINISH.get(reason, "stop") if isinstance(reason, str) else "stop")
        await _drain(lines)
        return
    raise self._protocol("the stream ended without the final message", model)


def tree(content: str, final: bool) -> dict[str, Any]:
    reply = {"id": "r1", "role": "assistant", "content": content, "finish_reason": "stop"}
    return {"id": "u1", "role": "user", "children": [reply], "final": final}


CHUNKS = st.lists(st.sampled_from(["", " ", "a", " b", "é\u2028"]), max_size=6)


async def _lines(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def events(read: Any, items: list[Any]) -> list[Any]:
    async def run() -> list[Any]:
        async with httpx.AsyncClient() as http:
            provider = Ai2(http)
            out: list[Any] = []
            try:
                async for event in read(provider, _lines(items), "m", "anon"):
                    out.append(event)
            except errors.LLMRelayError as exc:
                out.append((type(exc).__name__, str(exc)))
            return out

    return asyncio.run(run())


@settings(max_examples=80, deadline=None)
@example(["a", " b"], "a b c", True)
@example(["a", " b"], "x", True)
@given(CHUNKS, st.sampled_from(["", "a", "a b", "a b c", " b", "x"]), st.booleans())
def test_read_gives_the_reference_events(chunks: list[str], final: str, ends: bool) -> None:
    items: list[Any] = [tree("", False)]
    items += [{"message": "r1", "content": c} for c in chunks]
    if ends:
        items.append(tree(final if final != "a b c" else "".join(chunks) + " c", True))
    assert events(Ai2._read, items) == events(reference_read, items)
