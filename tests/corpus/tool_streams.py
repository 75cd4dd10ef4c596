"""The tool-call stream corpus: recorded OpenAI streams and the four LiteLLM bug shapes.

Each ``Case`` is what an OpenAI-compatible upstream sends (``payloads``, the SSE ``data``
values, replayed verbatim by ``FakeOpenAI``) and what llmrelay must give its clients:
``entries``, each ``delta.tool_calls`` entry of the output in order, as the exact compact
JSON OpenAI writes (first delta of a call ``{"index","id","type","function":{"name",
"arguments"}}``, later ones ``{"index","function":{"arguments"}}``); ``calls``, the
assembled ``(id, name, arguments)``; the finish reason and the answer text.

The LiteLLM shapes are written from the public reports (BerriAI/litellm):

* 38926 — a long call's many argument deltas collapsed into a burst when
  ``stream_options.include_usage`` is set (vLLM upstream): here 120 fragments, usage in
  its own last chunk; the fake holds the rest back after 12 payloads (``gate_after``),
  so a relay that delays deltas cannot pass.
* 39796 — a whole call (id, name, all arguments) in one delta lost its id and name; the
  upstream writes the entry's keys in another order (Gemini's), normalised to OpenAI's.
* 7621 — parallel calls merged: the upstream numbers both calls ``index`` 0 and tells
  them apart by id (Ollama, sglang); plus interleaved calls at indices 0 and 1, and the
  usage carried by the finish chunk instead of a chunk of its own.
* 20711 — argument deltas after the first dropped: continuations with ``"id": null``,
  ``"id": ""``, a repeated ``type`` and ``"name": null``, and an empty fragment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CASES", "Case", "compact", "entries_of", "recorded"]

HERE = Path(__file__).parent / "openai"


def compact(value: Any) -> str:
    """JSON as OpenAI writes it in a stream: no spaces, UTF-8 (no ``\\u`` escapes)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def recorded(name: str) -> list[str]:
    """The ``data`` payloads of a recorded stream, ``[DONE]`` included, verbatim."""
    text = (HERE / name).read_text(encoding="utf-8")
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def entries_of(payloads: list[str]) -> list[str]:
    """The ``delta.tool_calls`` entries of an OpenAI stream, each as compact JSON.

    Each is checked to appear verbatim in its payload (so these are the recorded bytes).
    """
    out: list[str] = []
    for payload in payloads:
        if payload == "[DONE]":
            continue
        chunk = json.loads(payload)
        for choice in chunk.get("choices", []):
            for entry in choice["delta"].get("tool_calls") or []:
                text = compact(entry)
                assert text in payload, (text, payload)
                out.append(text)
    return out


@dataclass
class Case:
    """One upstream stream and what llmrelay must give its clients."""

    name: str
    payloads: list[str]
    entries: list[str]
    calls: list[tuple[str, str, str]]
    finish: str = "tool_calls"
    text: str = ""
    usage: tuple[int, int, int] | None = None
    gate_after: int | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)


def _chunk(
    delta: dict[str, Any] | None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    cid: str = "chatcmpl-upstream",
) -> str:
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": 1757000000,
        "model": "fake-model",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return compact(chunk)


def _tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
    }


def _from_recording(name: str, json_name: str | None) -> Case:
    payloads = recorded(name)
    calls: dict[int, list[str]] = {}
    text = ""
    finish = "stop"
    usage = None
    for payload in payloads[:-1]:
        chunk = json.loads(payload)
        if chunk.get("usage"):
            u = chunk["usage"]
            usage = (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"])
        for choice in chunk["choices"]:
            text += choice["delta"].get("content") or ""
            finish = choice.get("finish_reason") or finish
            for entry in choice["delta"].get("tool_calls") or []:
                call = calls.setdefault(entry["index"], [entry.get("id"), "", ""])
                call[1] = call[1] or entry.get("function", {}).get("name", "")
                call[2] += entry.get("function", {}).get("arguments", "")
    assembled = [(c[0], c[1], c[2]) for _, c in sorted(calls.items())]
    if json_name is not None:  # the non-streamed recording of the same test agrees
        message = json.loads((HERE / json_name).read_text())["choices"][0]["message"]
        assert [
            (t["function"]["name"], t["function"]["arguments"]) for t in message["tool_calls"]
        ] == [(c[1], c[2]) for c in assembled]
    return Case(
        name=name,
        payloads=payloads,
        entries=entries_of(payloads),
        calls=assembled,
        finish=finish,
        text=text,
        usage=usage,
        tools=[_tool(c[1]) for c in assembled],
    )


def _long_call_with_usage() -> Case:
    """litellm 38926: 120 argument fragments, include_usage, usage chunk last."""
    body = json.dumps({"path": "notes.md", "content": "line\n" * 200})
    step = -(-len(body) // 120)
    fragments = [body[i : i + step] for i in range(0, len(body), step)]
    first = {"index": 0, "id": "chatcmpl-tool-7f3a", "type": "function"}
    first["function"] = {"name": "write_file", "arguments": ""}
    payloads = [_chunk({"role": "assistant", "content": None, "tool_calls": [first]})]
    payloads += [
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}) for f in fragments
    ]
    payloads += [
        _chunk({}, "tool_calls"),
        _chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 600, "total_tokens": 650}),
        "[DONE]",
    ]
    entries = [compact(first)] + [
        compact({"index": 0, "function": {"arguments": f}}) for f in fragments
    ]
    return Case(
        name="litellm-38926-long-call-with-usage",
        payloads=payloads,
        entries=entries,
        calls=[("chatcmpl-tool-7f3a", "write_file", body)],
        usage=(50, 600, 650),
        gate_after=12,
        tools=[_tool("write_file")],
    )


def _whole_call_in_one_delta() -> Case:
    """litellm 39796: id, name and all arguments in one delta (keys in Gemini's order)."""
    upstream = {
        "id": "call_5e3a4c25",
        "function": {"arguments": '{"city": "Paris, France"}', "name": "get_weather"},
        "type": "function",
        "index": 0,
    }
    payloads = [
        _chunk({"role": "assistant", "tool_calls": [upstream]}),
        _chunk({}, "tool_calls"),
        "[DONE]",
    ]
    expected = {
        "index": 0,
        "id": "call_5e3a4c25",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris, France"}'},
    }
    return Case(
        name="litellm-39796-whole-call-in-one-delta",
        payloads=payloads,
        entries=[compact(expected)],
        calls=[("call_5e3a4c25", "get_weather", '{"city": "Paris, France"}')],
        tools=[_tool("get_weather")],
    )


def _parallel_calls_at_index_zero() -> Case:
    """litellm 7621 (and smolagents 1958): two calls, both ``index`` 0, told apart by id."""
    payloads = [
        _chunk({"role": "assistant", "content": None}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "0",
                        "type": "function",
                        "function": {"name": "search", "arguments": ""},
                    }
                ]
            }
        ),
        _chunk(
            {"tool_calls": [{"index": 0, "id": "0", "function": {"arguments": '{"query": "Emma'}}]}
        ),
        _chunk({"tool_calls": [{"index": 0, "id": "0", "function": {"arguments": ' Bull"}'}}]}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "1",
                        "type": "function",
                        "function": {"name": "search", "arguments": '{"query": '},
                    }
                ]
            }
        ),
        _chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "1", "function": {"arguments": '"Virginia Woolf"}'}}
                ]
            }
        ),
        _chunk(
            {}, "tool_calls", usage={"prompt_tokens": 9, "completion_tokens": 8, "total_tokens": 17}
        ),
        "[DONE]",
    ]
    entries = [
        {
            "index": 0,
            "id": "0",
            "type": "function",
            "function": {"name": "search", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"query": "Emma'}},
        {"index": 0, "function": {"arguments": ' Bull"}'}},
        {
            "index": 1,
            "id": "1",
            "type": "function",
            "function": {"name": "search", "arguments": '{"query": '},
        },
        {"index": 1, "function": {"arguments": '"Virginia Woolf"}'}},
    ]
    return Case(
        name="litellm-7621-parallel-calls-at-index-0",
        payloads=payloads,
        entries=[compact(e) for e in entries],
        calls=[
            ("0", "search", '{"query": "Emma Bull"}'),
            ("1", "search", '{"query": "Virginia Woolf"}'),
        ],
        usage=(9, 8, 17),
        tools=[_tool("search")],
    )


def _interleaved_parallel_calls() -> Case:
    """Parallel calls whose deltas interleave (indices 0 and 1), text before them."""
    a = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}
    b = {
        "index": 1,
        "id": "call_b",
        "type": "function",
        "function": {"name": "g", "arguments": "{"},
    }
    pieces = [
        {"index": 0, "function": {"arguments": '{"x":'}},
        {"index": 1, "function": {"arguments": '"y":2'}},
        {"index": 0, "function": {"arguments": "1}"}},
        {"index": 1, "function": {"arguments": "}"}},
    ]
    payloads = [
        _chunk({"role": "assistant", "content": "Calling both."}),
        _chunk({"tool_calls": [a]}),
        _chunk({"tool_calls": [b]}),
        *[_chunk({"tool_calls": [p]}) for p in pieces],
        _chunk({}, "tool_calls"),
        "[DONE]",
    ]
    return Case(
        name="interleaved-parallel-calls",
        payloads=payloads,
        entries=[compact(e) for e in [a, b, *pieces]],
        calls=[("call_a", "f", '{"x":1}'), ("call_b", "g", '{"y":2}')],
        text="Calling both.",
        tools=[_tool("f"), _tool("g")],
    )


def _continuations_without_id() -> Case:
    """litellm 20711 / 40069: continuations with null or empty ids, an empty fragment."""
    first = {
        "index": 0,
        "id": "chatcmpl-tool-c9Z",
        "type": "function",
        "function": {"name": "lookup", "arguments": ""},
    }
    continuations = [
        {
            "index": 0,
            "id": None,
            "type": "function",
            "function": {"name": None, "arguments": '{"k'},
        },
        {"index": 0, "id": "", "type": "function", "function": {"arguments": 'ey": '}},
        {"index": 0, "function": {"arguments": ""}},
        {"index": 0, "function": {"arguments": '"v"}'}},
    ]
    payloads = [
        _chunk({"role": "assistant", "tool_calls": [first]}),
        *[_chunk({"tool_calls": [c]}) for c in continuations],
        _chunk({}, "tool_calls"),
        "[DONE]",
    ]
    expected = [first] + [
        {"index": 0, "function": {"arguments": c["function"]["arguments"]}} for c in continuations
    ]
    return Case(
        name="litellm-20711-continuations-without-id",
        payloads=payloads,
        entries=[compact(e) for e in expected],
        calls=[("chatcmpl-tool-c9Z", "lookup", '{"key": "v"}')],
        tools=[_tool("lookup")],
    )


CASES: list[Case] = [
    _from_recording("oai-stream-parallel-tools.sse", "oai-json-parallel-tools.json"),
    _from_recording("oai-stream-pydantic-tool.sse", "oai-json-pydantic-tool.json"),
    _from_recording("oai-stream-strict-tool.sse", "oai-json-strict-tool.json"),
    _from_recording("oai-stream-nonstrict-tool.sse", None),
    _from_recording("oai-stream-structured.sse", None),
    _long_call_with_usage(),
    _whole_call_in_one_delta(),
    _parallel_calls_at_index_zero(),
    _interleaved_parallel_calls(),
    _continuations_without_id(),
]
"""Every case, recordings first."""
