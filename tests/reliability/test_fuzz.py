"""Fuzzing every parser and state machine: nothing but llmrelay errors, chunking-invariant.

* ``_sse.SSEDecoder`` / ``NDJSONLineDecoder``: any bytes, any chunking -> the same
  events/lines as unsplit (or ``LineTooLong``, and then never more than ``max_line``
  bytes buffered); valid streams give the same events as httpx-sse's decoder.
* ``_http.aiter_sse`` / ``aiter_ndjson`` over an ``httpx.Response``: any bytes, any
  chunking -> events or ``ProtocolError`` only.
* every provider's whole stream parser (TGI events of huggingface and h2o, Gradio queue
  messages and diffs of hf_spaces, Replicate's stream, Ai2's JSON-lines message trees,
  OpenAI chunks), end to end through the client: the fault proxy replaces the fake's
  streaming body with arbitrary bytes or arbitrary JSON frames, split anywhere -> a
  ``Completion`` or an ``LLMRelayError``, never anything else, never a hang.
* Gradio's ``apply_diff``: any value, any edits -> a value or ``ValueError`` (what the
  provider maps to ``ProtocolError``).
* chat templates: any messages -> a string (``ValueError`` only for no messages).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder
from httpx_sse._decoders import SSELineDecoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay import AsyncClient, LLMRelayError, Message, ProtocolError, Timeouts
from llmrelay._http import aiter_ndjson, aiter_sse
from llmrelay._sse import LineTooLong, NDJSONLineDecoder, SSEDecoder, SSEvent
from llmrelay._templates import TEMPLATES, fit, render
from llmrelay.providers._gradio_diff import apply_diff
from tests.fakes._server import serve
from tests.fakes.faults import FaultProxy, fault_proxy
from tests.reliability.test_fault_matrix import PROVIDERS

FAST = settings(max_examples=200, deadline=None)
E2E = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the (sorted, deduplicated) positions ``cuts``."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for point in points:
        out.append(data[last:point])
        last = point
    out.append(data[last:])
    return out


cuts_st = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)


def sse_feed(chunks: list[bytes], max_line: int = 1 << 22) -> list[SSEvent]:
    decoder = SSEDecoder(max_line)
    return [event for chunk in chunks for event in decoder.feed(chunk)]


# -- SSE and NDJSON decoders ----------------------------------------------------------------


@FAST
@given(data=st.binary(max_size=400), cuts=cuts_st)
def test_sse_any_bytes_any_chunking_same_events(data: bytes, cuts: list[int]) -> None:
    assert sse_feed(split(data, cuts)) == sse_feed([data])


sse_text = st.text(alphabet=st.sampled_from("ab:\r\n \t\x00é🚀data:event:id:retry:"), max_size=300)


@FAST
@given(text=sse_text, cuts=cuts_st)
def test_sse_field_soup_any_chunking_same_events(text: str, cuts: list[int]) -> None:
    data = text.encode()
    assert sse_feed(split(data, cuts)) == sse_feed([data])


@FAST
@given(data=st.binary(max_size=300), cuts=cuts_st, max_line=st.integers(1, 40))
def test_sse_bound_holds_under_any_chunking(data: bytes, cuts: list[int], max_line: int) -> None:
    decoder = SSEDecoder(max_line)
    try:
        for chunk in split(data, cuts):
            decoder.feed(chunk)
            assert len(decoder._buf) <= max_line  # never buffers past the bound
    except LineTooLong:
        pass


field_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
    max_size=20,
)
valid_event = st.fixed_dictionaries(
    {"data": st.lists(field_value, min_size=1, max_size=3)},
    optional={
        "event": field_value.filter(lambda v: v != ""),
        "id": field_value,
        "comment": field_value,
    },
)


def render_events(events: list[dict[str, Any]], newline: str) -> str:
    out = []
    for event in events:
        if "comment" in event:
            out.append(f":{event['comment']}{newline}")
        if "event" in event:
            out.append(f"event: {event['event']}{newline}")
        if "id" in event:
            out.append(f"id: {event['id']}{newline}")
        out += [f"data: {line}{newline}" for line in event["data"]]
        out.append(newline)
    return "".join(out)


def httpx_sse_events(chunks: list[bytes]) -> list[tuple[str, str]]:
    """What httpx-sse's line and event decoders make of the chunks (``aiter_sse``'s path)."""
    lines, decoder, text = SSELineDecoder(), HttpxSSEDecoder(), httpx._decoders.TextDecoder()
    out = []
    for chunk in chunks:
        for line in lines.decode(text.decode(chunk)):
            sse = decoder.decode(line)
            if sse is not None:
                out.append((sse.event, sse.data))
    for line in lines.decode(text.flush()) + lines.flush():
        sse = decoder.decode(line)
        if sse is not None:
            out.append((sse.event, sse.data))
    return out


@FAST
@given(
    events=st.lists(valid_event, max_size=6),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=cuts_st,
)
def test_valid_sse_matches_httpx_sse_under_any_chunking(
    events: list[dict[str, Any]], newline: str, cuts: list[int]
) -> None:
    data = render_events(events, newline).encode()
    ours = sse_feed(split(data, cuts))
    assert [(e.event, e.data) for e in ours] == httpx_sse_events(split(data, cuts[::-1]))
    assert [(e.event, e.data) for e in ours] == [
        (e.get("event", "message"), "\n".join(e["data"])) for e in events
    ]
    # an event's own id comes through (httpx-sse also repeats the last id; we do not)
    assert [e.id for e in ours] == [ev.get("id") for ev in events]


def ndjson_lines(chunks: list[bytes]) -> tuple[list[bytes], bytes | None]:
    decoder = NDJSONLineDecoder()
    lines = [line for chunk in chunks for line in decoder.feed(chunk)]
    return lines, decoder.flush()


@FAST
@given(data=st.binary(max_size=300), cuts=cuts_st)
def test_ndjson_any_bytes_any_chunking_same_lines(data: bytes, cuts: list[int]) -> None:
    lines, last = ndjson_lines(split(data, cuts))
    assert (lines, last) == ndjson_lines([data])
    assert all(line.strip() for line in lines)


def response(chunks: list[bytes], content_type: str) -> httpx.Response:
    async def body() -> Any:
        for chunk in chunks:
            yield chunk

    return httpx.Response(200, headers={"content-type": content_type}, content=body())


@FAST
@given(data=st.binary(max_size=300), cuts=cuts_st, max_line=st.integers(4, 64))
def test_aiter_sse_and_ndjson_raise_only_protocol_errors(
    data: bytes, cuts: list[int], max_line: int
) -> None:
    async def main() -> None:
        try:
            async for _ in aiter_sse(
                response(split(data, cuts), "text/event-stream"),
                provider="p",
                model="m",
                max_line=max_line,
            ):
                pass
        except ProtocolError:
            pass
        try:
            async for _ in aiter_ndjson(
                response(split(data, cuts), "application/x-ndjson"),
                provider="p",
                model="m",
                max_line=max_line,
            ):
                pass
        except ProtocolError:
            pass

    anyio.run(main)


# -- Gradio diffs and chat templates --------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)
edit = st.one_of(
    st.tuples(
        st.sampled_from(["replace", "append", "add", "delete", "bogus"]),
        st.lists(st.integers(-3, 3) | st.text(max_size=3), max_size=3),
        json_values,
    ).map(list),
    json_values,
)


@FAST
@given(value=json_values, edits=st.lists(edit, max_size=5) | json_values)
def test_gradio_diff_any_value_any_edits_value_error_only(value: Any, edits: Any) -> None:
    with contextlib.suppress(ValueError):
        apply_diff(value, edits)


messages_st = st.lists(
    st.builds(
        Message,
        role=st.sampled_from(["system", "user", "assistant"]),
        content=st.text(max_size=30),
    ),
    min_size=1,
    max_size=6,
)


@FAST
@given(
    name=st.sampled_from(sorted(TEMPLATES)),
    messages=messages_st,
    end=st.text(max_size=5),
    limit=st.integers(0, 200),
)
def test_chat_templates_render_and_fit_any_conversation(
    name: str, messages: list[Message], end: str, limit: int
) -> None:
    prompt = render(name, messages, end)
    assert isinstance(prompt, str)
    assert messages[-1].content in prompt
    fitted = fit(messages, lambda ms: render(name, ms, end), limit)
    assert messages[-1].content in fitted
    assert len(fitted) <= max(
        limit,
        len(render(name, [m for m in messages if m.role == "system"] + [messages[-1]], end))
        + 1_000,
    )


def test_chat_templates_refuse_no_messages() -> None:
    for name in TEMPLATES:
        with pytest.raises(ValueError, match=r"."):
            render(name, [])


# -- every provider's stream parser, end to end ---------------------------------------------

KEYS = [
    "token",
    "text",
    "generated_text",
    "details",
    "finish_reason",
    "special",
    "id",
    "choices",
    "delta",
    "content",
    "reasoning_content",
    "msg",
    "output",
    "data",
    "event_id",
    "success",
    "error",
    "error_type",
    "children",
    "final",
    "message",
    "role",
    "type",
    "status",
    "reason",
    "title",
    "detail",
    "usage",
    "index",
    "is_generating",
]
MSGS = ["process_generating", "process_completed", "heartbeat", "estimation", "close_stream"]
wire_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 3)
    | st.sampled_from(["", "Hi", " there", "stop", "length", "eos_token", "[DONE]", *MSGS])
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=5)
    ),
    max_leaves=15,
)
gradio_message = st.fixed_dictionaries(
    {"msg": st.sampled_from(MSGS)},
    optional={
        "event_id": st.none(),
        "success": st.booleans(),
        "output": st.fixed_dictionaries(
            {
                "data": st.lists(
                    wire_json | st.lists(st.lists(wire_json, max_size=3), max_size=2), max_size=4
                )
            }
        )
        | wire_json,
    },
)
frame = st.one_of(
    gradio_message.map(lambda v: b"data: " + json.dumps(v).encode() + b"\n\n"),
    wire_json.map(lambda v: b"data: " + json.dumps(v).encode() + b"\n\n"),
    st.tuples(
        st.sampled_from(["output", "done", "error", "message", "logs"]), st.text(max_size=8)
    ).map(lambda t: f"event: {t[0]}\ndata: {t[1]}\n\n".encode()),
    wire_json.map(lambda v: json.dumps(v).encode() + b"\n"),
    st.just(b"data: [DONE]\n\n"),
    st.binary(max_size=20),
)
bodies = st.one_of(st.binary(max_size=300).map(lambda b: [b]), st.lists(frame, max_size=8))
gradio_bodies = st.lists(
    gradio_message.map(lambda v: b"data: " + json.dumps(v).encode() + b"\n\n"), max_size=6
)
BODIES = {"hf_spaces": st.one_of(gradio_bodies, bodies)}
"""A protocol whose frames need a shape the generic frames rarely hit gets its own."""


@pytest.fixture(scope="module", params=sorted(PROVIDERS))
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, FaultProxy]]:
    fake = PROVIDERS[request.param]()
    with serve(fake.app) as url, fault_proxy(url) as proxy:
        yield request.param, fake, proxy


# the fake servers' threads may use ``random`` while hypothesis draws: not our strategy's
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@E2E
@given(data=st.data(), cuts=cuts_st)
def test_provider_streams_any_body_any_chunking_typed_outcome(
    rig: tuple[str, Any, FaultProxy], data: st.DataObject, cuts: list[int]
) -> None:
    name, fake, proxy = rig
    frames = data.draw(BODIES.get(name, bodies), label="frames")
    fake.ok()
    proxy.reset("replace")
    proxy.body = split(b"".join(frames), cuts)

    async def main() -> None:
        kwargs = fake.prepare_client_kwargs(proxy.url)
        timeouts = Timeouts(connect=5, read=5, first_token=10, total=15)
        with anyio.fail_after(30):
            async with AsyncClient(**kwargs, timeouts=timeouts) as client:
                try:
                    completion = await client.stream("Say something", model=name).collect()
                except LLMRelayError as exc:
                    errors.append(exc)
                    return
        assert isinstance(completion.text, str)

    errors: list[LLMRelayError] = []
    handler = _Unexpected()
    logger = logging.getLogger("llmrelay")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        anyio.run(main)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not handler.seen, handler.seen
    # the engine maps a provider's stray exception to ProtocolError ("unexpected KeyError
    # while reading the answer"): a provider bug here
    assert not [e for e in errors if "while reading the answer" in str(e)], errors
    assert proxy.faulted >= 1, "the body never reached the provider's stream"


class _Unexpected(logging.Handler):
    """Records the engine's "provider raised an unexpected exception" diagnostics."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "unexpected exception" in record.getMessage():
            self.seen.append(f"{record.getMessage()}: {record.exc_info and record.exc_info[1]!r}")


# -- the server's request models and routes ---------------------------------------------------

request_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "model",
                    "messages",
                    "role",
                    "content",
                    "type",
                    "text",
                    "image_url",
                    "url",
                    "stream",
                    "stream_options",
                    "include_usage",
                    "temperature",
                    "top_p",
                    "max_tokens",
                    "max_completion_tokens",
                    "stop",
                    "seed",
                    "n",
                    "prompt",
                    "size",
                    "response_format",
                    "conversation",
                    "options",
                    "name",
                ]
            )
            | st.text(max_size=4),
            inner,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@FAST
@given(payload=request_json)
def test_server_request_models_raise_only_validation_errors(payload: Any) -> None:
    pytest.importorskip("llmrelay.server")
    import pydantic

    from llmrelay.server._schemas import ChatCompletionRequest, ImageGenerationRequest

    for model in (ChatCompletionRequest, ImageGenerationRequest):
        with contextlib.suppress(pydantic.ValidationError):
            model.model_validate(payload)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    pytest.importorskip("llmrelay.server")
    import threading
    import time

    import uvicorn

    from llmrelay import FinishReason
    from llmrelay.server import ServerConfig, create_app
    from tests.fakes._server import TestServer
    from tests.unit.scripted_provider import scripted

    provider, _ = scripted("alpha", ["Hello", FinishReason("stop")], images=True)
    config = ServerConfig(client_kwargs={"providers": [provider], "model": "alpha"})
    server = TestServer(
        uvicorn.Config(create_app(config=config), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield f"http://127.0.0.1:{server.port}"
    server.should_exit = True
    thread.join(10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=request_json, path=st.sampled_from(["/v1/chat/completions", "/v1/images/generations"])
)
def test_server_routes_answer_any_json_with_a_client_error_or_an_answer(
    server_url: str, payload: Any, path: str
) -> None:
    with httpx.Client(timeout=30) as http:
        response = http.post(server_url + path, json=payload)
    assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error"), dict), body
        assert isinstance(body["error"].get("message"), str)


TRANSPORT_FREE = frozenset(
    {
        "test_sse_any_bytes_any_chunking_same_events",
        "test_sse_field_soup_any_chunking_same_events",
        "test_sse_bound_holds_under_any_chunking",
        "test_valid_sse_matches_httpx_sse_under_any_chunking",
        "test_ndjson_any_bytes_any_chunking_same_lines",
        "test_aiter_sse_and_ndjson_raise_only_protocol_errors",
        "test_gradio_diff_any_value_any_edits_value_error_only",
        "test_chat_templates_render_and_fit_any_conversation",
        "test_chat_templates_refuse_no_messages",
        "test_server_request_models_raise_only_validation_errors",
    }
)
"""Tests that send nothing over HTTP (decoders, diffs, templates, request models): run
once, on the default transport (``tests/reliability/conftest.py`` deselects the rest)."""


def deselect(item: pytest.Item) -> bool:
    """Whether ``item`` is the aiohttp run of a test that sends nothing over HTTP."""
    params = getattr(item, "callspec", None)
    if params is None or params.params.get("transport") != "aiohttp":
        return False
    return getattr(item, "originalname", "") in TRANSPORT_FREE
