"""The tool-call conformance corpus through the library, the facade and the server.

Each case (``tests/corpus/tool_streams.py``: recorded OpenAI streams, the four LiteLLM
bug shapes) is replayed by the OpenAI-compatible fake. Whatever the upstream's quirks,
the clients get OpenAI's exact shapes: every ``delta.tool_calls`` entry byte-for-byte
as expected (one per chunk, never re-chunked, merged or held back), the usage chunk last
and on its own, and the assembled calls equal to the recorded ones.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio
import httpx
import openai
import pytest

import llmrelay
from llmrelay import ToolCall, ToolCallDelta
from tests.corpus.tool_streams import CASES, Case, compact
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.anyio

MODEL = "local:fake-model"
STRUCTURED = {
    "type": "json_schema",
    "json_schema": {
        "name": "Location",
        "schema": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "temperature": {"type": "number"},
                "units": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city", "temperature", "units"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def _arguments(case: Case) -> dict[str, Any]:
    if case.tools:
        return {"tools": case.tools}
    return {"response_format": STRUCTURED}


def _replay(upstream: FakeOpenAI, case: Case) -> threading.Event | None:
    upstream.script.raw = list(case.payloads)
    if case.gate_after is None:
        return None
    gate = threading.Event()
    upstream.script.gate = gate
    upstream.script.gate_after = case.gate_after
    return gate


def _expected_events(case: Case) -> list[ToolCallDelta]:
    out = []
    for text in case.entries:
        entry = json.loads(text)
        function = entry["function"]
        out.append(
            ToolCallDelta(
                entry["index"], entry.get("id"), function.get("name"), function["arguments"]
            )
        )
    return out


def _ids(case: Case) -> str:
    return case.name


@pytest.mark.parametrize("case", CASES, ids=_ids)
async def test_library_events_and_assembled_calls(
    client: llmrelay.AsyncClient, upstream: FakeOpenAI, case: Case
) -> None:
    gate = _replay(upstream, case)
    events: list[Any] = []
    with anyio.fail_after(10):
        async with client.stream("hi", model=MODEL, **_arguments(case)) as stream:
            async for event in stream:
                events.append(event)
                calls = sum(isinstance(e, ToolCallDelta) for e in events)
                if gate is not None and calls == case.gate_after:
                    # every delta before the pause arrived while the upstream was held
                    assert not gate.is_set()
                    gate.set()
            completion = await stream.collect()
    assert [e for e in events if isinstance(e, ToolCallDelta)] == _expected_events(case)
    assert completion.tool_calls == tuple(ToolCall(*call) for call in case.calls)
    assert completion.finish_reason == case.finish
    assert completion.text == case.text
    if case.usage is not None:
        assert completion.usage == llmrelay.Usage(*case.usage)
    assert isinstance(events[-1], llmrelay.FinishReason)
    sent = upstream.requests[-1].json
    assert sent["tools" if case.tools else "response_format"] == (
        case.tools if case.tools else STRUCTURED
    )


@pytest.mark.parametrize("case", CASES, ids=_ids)
async def test_facade_chunks_in_openai_shapes(
    client: llmrelay.AsyncClient, upstream: FakeOpenAI, case: Case
) -> None:
    gate = _replay(upstream, case)
    chunks = []
    entries: list[str] = []
    with anyio.fail_after(10):
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
            **_arguments(case),
        )
        async with stream:
            async for chunk in stream:
                chunks.append(chunk)
                dumped = chunk.model_dump()
                if dumped["choices"] and dumped["choices"][0]["delta"].get("tool_calls"):
                    (entry,) = dumped["choices"][0]["delta"]["tool_calls"]
                    entries.append(compact(entry))
                    assert compact(entry) in chunk.model_dump_json()
                    if gate is not None and len(entries) == case.gate_after:
                        assert not gate.is_set()
                        gate.set()
    assert entries == case.entries
    # the openai package's own types accept every chunk
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(chunk.model_dump())
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == case.finish
    if case.usage is not None:
        usage = chunks[-1].usage
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == case.usage
        assert not stream.usage_estimated


def _frames(raw: bytes) -> list[bytes]:
    return [f for f in raw.split(b"\n\n") if f]


@pytest.mark.parametrize("case", CASES, ids=_ids)
async def test_server_frames_byte_for_byte(base_url: str, upstream: FakeOpenAI, case: Case) -> None:
    gate = _replay(upstream, case)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **_arguments(case),
    }
    frames: list[bytes] = []
    tool_frames = 0
    buffer = b""
    with anyio.fail_after(10):
        async with httpx.AsyncClient(timeout=10) as http:
            async with http.stream("POST", f"{base_url}/chat/completions", json=body) as response:
                assert response.status_code == 200
                assert response.headers.get("x-llmrelay-usage") is None  # it reports usage
                async for piece in response.aiter_bytes():
                    buffer += piece
                    *done, buffer = buffer.split(b"\n\n")
                    for frame in done:
                        frames.append(frame)
                        tool_frames += b'"tool_calls":[' in frame
                        if gate is not None and tool_frames == case.gate_after:
                            assert not gate.is_set()
                            gate.set()
    assert frames[-1] == b"data: [DONE]"
    chunks = [json.loads(f.removeprefix(b"data: ")) for f in frames[:-1]]
    sent: list[str] = []
    for frame, chunk in zip(frames, chunks, strict=False):
        calls = chunk["choices"][0]["delta"].get("tool_calls") if chunk["choices"] else None
        if calls:
            (entry,) = calls
            text = compact(entry)
            # byte-for-byte: the entry as OpenAI writes it, and nothing else in the array
            assert b'"tool_calls":[' + text.encode() + b"]" in frame
            sent.append(text)
    assert sent == case.entries
    assert chunks[-1]["choices"] == []
    assert all(c["usage"] is None for c in chunks[:-1])  # usage only in the last chunk
    assert chunks[-2]["choices"][0]["finish_reason"] == case.finish
    if case.usage is not None:
        usage = chunks[-1]["usage"]
        assert (
            usage["prompt_tokens"],
            usage["completion_tokens"],
            usage["total_tokens"],
        ) == case.usage


@pytest.mark.parametrize("case", CASES, ids=_ids)
async def test_server_non_streamed_message(base_url: str, upstream: FakeOpenAI, case: Case) -> None:
    _replay(upstream, case)
    if upstream.script.gate is not None:
        upstream.script.gate.set()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **_arguments(case)}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{base_url}/chat/completions", json=body)
    assert response.status_code == 200
    completion = openai.types.chat.ChatCompletion.model_validate(response.json())
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == case.finish
    got = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]
    assert got == case.calls
    assert message.content == (case.text if case.text or not case.calls else None)
