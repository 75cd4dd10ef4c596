"""The parsers' fast paths give exactly what their general paths gave.

``ChunkParser.feed`` (OpenAI chunks) and ``TokenStream.feed`` (TGI events) answer the
plain content chunk without the general shape checks. The references below are the
``feed`` methods as they were before the fast paths (verbatim but for the error texts,
which now describe a malformed frame instead of quoting it; calling the same general
code after parsing); random chunks of every shape, valid or not, must give the same
events, the same errors and the same parser state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmrelay import errors
from llmrelay._http import loads
from llmrelay.providers._openai_stream import ChunkParser, _usage, error_from_payload
from llmrelay.providers._tgi import TokenStream
from llmrelay.types import Event


def reference_chunk_feed(self: ChunkParser, data: str) -> list[Event]:
    """``ChunkParser.feed`` before the fast path."""
    if self.done or not data.strip():
        return []
    if data.strip() == "[DONE]":
        self.done = True
        return []
    chunk = loads(data, provider=self.provider, model=self.model, what="stream chunk")
    if not isinstance(chunk, Mapping):
        raise self._protocol("stream chunk is not an object", data)
    if "error" in chunk and chunk["error"] is not None:
        raise error_from_payload(chunk, provider=self.provider, model=self.model)
    out: list[Event] = []
    choices = chunk.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise self._protocol("'choices' is not a list", data)
    if choices:
        choice = choices[0]
        if not isinstance(choice, Mapping):
            raise self._protocol("a choice is not an object", data)
        out += self._choice(choice)
    usage = _usage(chunk.get("usage"))
    if usage is not None:
        out.append(usage)
    return out


def reference_token_feed(self: TokenStream, data: str) -> list[Event]:
    """``TokenStream.feed`` before the fast path."""
    if not data.strip() or self.finished:
        return []
    event = loads(data, provider=self.provider, model=self.model, what="stream event")
    if not isinstance(event, Mapping):
        raise self._protocol("stream event is not an object", data)
    if event.get("error") is not None:
        raise error_from_payload(event, provider=self.provider, model=self.model)
    token = event.get("token")
    if not isinstance(token, Mapping) or not isinstance(token.get("text"), str):
        raise self._protocol("stream event without a token", data)
    out: list[Event] = []
    self._last_special = token.get("special") is True
    if not self._last_special and token["text"]:
        out.append(token["text"])
        self._tail = (self._tail + token["text"])[-256:]
    if event.get("generated_text") is not None or event.get("details") is not None:
        self.finished = True
        details = event.get("details")
        reason = details.get("finish_reason") if isinstance(details, Mapping) else None
        if isinstance(reason, str):
            self.reason = _FINISH.get(reason, reason)
    return out


_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}
ABSENT = object()


def _maybe(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {key: v}))


def _merged(*parts: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


TEXT = st.sampled_from(["", " ", "w1", " w2", "</s>", "<|endoftext|>", "é\u2028x"])
ODD = st.sampled_from([None, 5, True, [], {}, {"x": 1}, 1.5])
DELTA = _merged(
    _maybe("role", st.sampled_from(["assistant", None])),
    _maybe("content", st.one_of(TEXT, ODD)),
    _maybe("reasoning_content", st.one_of(TEXT, ODD)),
    _maybe("reasoning", st.one_of(TEXT, ODD)),
)
CHOICE = st.one_of(
    _merged(
        _maybe("index", st.sampled_from([0, 1])),
        _maybe("delta", st.one_of(DELTA, ODD)),
        _maybe(
            "finish_reason",
            st.one_of(st.sampled_from(["stop", "length", "eos_token", "tool_calls", "odd"]), ODD),
        ),
    ),
    ODD,
)
USAGE = st.one_of(
    ODD,
    st.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": st.sampled_from([1, None, True]),
            "completion_tokens": st.just(2),
            "total_tokens": st.just(3),
        },
    ),
)
CHUNK = _merged(
    _maybe("object", st.sampled_from(["chat.completion.chunk", "text_completion"])),
    _maybe("choices", st.one_of(st.lists(CHOICE, max_size=2), ODD, st.just("x"))),
    _maybe("usage", USAGE),
    _maybe("error", st.one_of(st.just({"message": "m", "type": "server_error"}), ODD)),
)
DATA = st.one_of(
    CHUNK.map(json.dumps),
    st.sampled_from(["[DONE]", " [DONE] ", "", "  ", "{", '"x"', "[1]", "{}", ' {"choices": []}']),
)


def outcome(feed: Any, parser: Any, items: list[str]) -> list[Any]:
    result: list[Any] = []
    for data in items:
        try:
            result.append(("ok", feed(parser, data)))
        except errors.LLMRelayError as exc:
            result.append(("error", type(exc).__name__, str(exc), getattr(exc, "body", None)))
        state = dict(vars(parser))
        if isinstance(parser, TokenStream) and not parser.stop:
            del state["_tail"]  # kept for stop sequences only (end() is compared below)
        result.append(state)
    return result


@settings(max_examples=600, deadline=None)
@example(['{"choices": [{"delta": {"content": "a", "reasoning": "r"}}]}'])
@example(['{"choices": [{"delta": {"content": "a", "reasoning_content": "r"}}]}'])
@example(['{"choices": [{"delta": {"content": "a"}}], "usage": {}}'])
@example(['{"choices": [{"delta": {"content": "a"}, "finish_reason": "stop"}]}'])
@example(['{"choices": [{"delta": {"content": "a"}}], "error": {"message": "m"}}'])
@given(st.lists(DATA, min_size=1, max_size=6))
def test_chunk_parser_fast_path_equals_the_reference(items: list[str]) -> None:
    fast = outcome(ChunkParser.feed, ChunkParser("p", "m"), items)
    reference = outcome(reference_chunk_feed, ChunkParser("p", "m"), items)
    assert fast == reference


RAW_DATA = st.one_of(
    DATA.map(lambda text: text.encode("utf-8", "surrogatepass")),
    DATA.map(lambda text: text.encode()[:-2] + b"\xff" + text.encode()[-2:]),  # invalid UTF-8
    st.sampled_from([b'{"choices":[{"delta":{"content":"\xe2\x80"}}]}', b"\xef\xbb\xbf{}"]),
)


@settings(max_examples=600, deadline=None)
@example([b'{"choices": [{"delta": {"content": "a\xff"}}]}'], True)
@example([b'{"choices": "' + b"x" * 5000 + b'"}'], True)  # the error keeps the whole text
@example([b'{"choices": [{"delta": {"content": "a"}}]', b"[DONE]"], False)
@given(st.lists(RAW_DATA, min_size=1, max_size=6), st.booleans())
def test_chunk_parser_reads_bytes_as_their_text(items: list[bytes], strict: bool) -> None:
    """``feed(bytes)`` (``aiter_sse_data``'s data) is ``feed`` of the decoded text."""
    as_bytes = outcome(ChunkParser.feed, ChunkParser("p", "m", strict=strict), items)
    texts = [item.decode("utf-8", "replace") for item in items]
    as_text = outcome(ChunkParser.feed, ChunkParser("p", "m", strict=strict), texts)
    assert as_bytes == as_text


TOKEN = _merged(
    _maybe("id", st.just(7)),
    _maybe("text", st.one_of(TEXT, ODD)),
    _maybe("special", st.one_of(st.booleans(), ODD)),
)
TGI_EVENT = _merged(
    _maybe("index", st.just(1)),
    _maybe("token", st.one_of(TOKEN, ODD)),
    _maybe("generated_text", st.one_of(TEXT, ODD)),
    _maybe(
        "details",
        st.one_of(
            ODD, st.sampled_from([{"finish_reason": "length"}, {"finish_reason": "eos_token"}])
        ),
    ),
    _maybe("error", st.one_of(st.just("boom"), ODD)),
    _maybe("error_type", st.sampled_from(["overloaded", "validation"])),
)
TGI_DATA = st.one_of(TGI_EVENT.map(json.dumps), st.sampled_from(["", " ", "{", "[]", ' {"a": 1}']))


@settings(max_examples=600, deadline=None)
@example(['{"token": {"text": "a", "special": true}}', '{"token": {"text": "b"}}'], ())
@example(['{"token": {"text": "a"}, "details": {}}'], ())
@example(['{"token": {"text": " w2"}}', '{"token": {"text": ""}, "generated_text": "x"}'], ("w2",))
@given(st.lists(TGI_DATA, min_size=1, max_size=6), st.sampled_from([(), ("a",), ("w2", "")]))
def test_token_stream_fast_path_equals_the_reference(
    items: list[str], stop: tuple[str, ...]
) -> None:
    fast = TokenStream("p", "m", stop)
    reference = TokenStream("p", "m", stop)
    assert outcome(TokenStream.feed, fast, items) == outcome(reference_token_feed, reference, items)
    ends = []
    for parser in (fast, reference):
        try:
            ends.append(parser.end())
        except errors.ProtocolError as exc:
            ends.append(str(exc))
    assert ends[0] == ends[1]
