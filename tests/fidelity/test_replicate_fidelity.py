"""Is the fake Replicate faithful?  The official ``replicate`` client consumes it.

replicate-python (``replicate.Client(base_url=...)``) talks to ``tests.fakes.replicate``
through its own streaming, polling, cancel and error code; llmrelay must get the same text,
the same errors and the same image bytes from the same fake. The product never imports
``replicate``: it is a test extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import errors
from llmrelay.providers.replicate import Replicate
from llmrelay.types import ChatRequest, FinishReason, ImageRequest, Message
from tests.fakes._server import serve
from tests.fakes.replicate import DEFAULT_TOKENS, FakeReplicate, ReplicateScript, nchan_message

replicate = pytest.importorskip("replicate")
ReplicateError = pytest.importorskip("replicate.exceptions").ReplicateError
EventSource = pytest.importorskip("replicate.stream").EventSource

MODEL = "meta/meta-llama-3-8b-instruct"
TOKEN = "r8_fidelity"


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[FakeReplicate, str]]:
    fake = FakeReplicate()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(_server: tuple[FakeReplicate, str]) -> Iterator[tuple[FakeReplicate, str]]:
    fake, url = _server
    fake.reset()
    yield fake, url
    assert fake.wait_streams_closed(5)


def official(url: str) -> Any:
    return replicate.Client(api_token=TOKEN, base_url=url)


def official_text(url: str, model: str = MODEL) -> str:
    events = list(official(url).stream(model, input={"prompt": "Hi"}))
    assert events[-1].event.value == "done"
    return "".join(str(e.data) for e in events if e.event.value == "output")


async def ours(url: str, model: str = MODEL) -> tuple[str, list[Any]]:
    async with httpx.AsyncClient() as http:
        provider = Replicate(http, endpoints={"base_url": f"{url}/v1"}, api_key=TOKEN)
        request = ChatRequest(messages=(Message("user", "Hi"),), model=model)
        events = [event async for event in provider.stream(request)]
    return "".join(e for e in events if isinstance(e, str)), events


@pytest.mark.parametrize("shape", ["2024", "2025"])
@pytest.mark.parametrize("status", [201, 202])
@pytest.mark.parametrize("done_form", ["json", "no_data"])
def test_same_text(
    fake: tuple[FakeReplicate, str], shape: Any, status: int, done_form: Any
) -> None:
    server, url = fake
    server.script = ReplicateScript(shape=shape, create_status=status, done_form=done_form)
    theirs = official_text(url)
    text, events = anyio.run(ours, url)
    assert theirs == text == "".join(DEFAULT_TOKENS)
    assert events[-1] == FinishReason("stop")


def test_2023_shape_lacks_model_that_todays_client_requires(
    fake: tuple[FakeReplicate, str],
) -> None:
    """The recorded 2023 creation body has no ``model``; replicate-python 1.x requires it
    (its maintainers hand-inserted ``model`` into the old cassettes). llmrelay reads both."""
    server, url = fake
    server.script = ReplicateScript(shape="2023")
    with pytest.raises(Exception, match="model"):
        official_text(url)
    # llmrelay reads the 2023 body, but sends no deprecated "stream" flag, and a 2023
    # service listed urls.stream only for that flag: a clear error, not a hang
    with pytest.raises(errors.ProtocolError, match=r"no urls\.stream"):
        anyio.run(ours, url)


def test_a_prediction_created_without_the_flag_streams_for_the_official_client(
    fake: tuple[FakeReplicate, str],
) -> None:
    """Today's service lists urls.stream without ``"stream": true``: replicate-python
    creates a prediction without the flag and streams it from that URL, as llmrelay does."""
    server, url = fake
    prediction = official(url).models.predictions.create(model=MODEL, input={"prompt": "Hi"})
    assert "stream" not in server.creations()[-1].json
    theirs = "".join(str(e) for e in prediction.stream())
    text, _ = anyio.run(ours, url)
    assert theirs == text == "".join(DEFAULT_TOKENS)


@pytest.mark.parametrize(
    ("end_status", "outcome"),
    [("succeeded", "stop"), ("failed", "CUDA out of memory"), ("canceled", "canceled")],
)
def test_after_a_stream_without_done_both_read_the_same_prediction(
    fake: tuple[FakeReplicate, str], end_status: Any, outcome: str
) -> None:
    """The stream ends without ``done``: replicate-python's ``predictions.get`` and
    llmrelay's single ``urls.get`` read see the same status, and llmrelay acts on it."""
    server, url = fake
    server.script = ReplicateScript(mode="end_without_done", end_status=end_status)
    client = official(url)
    prediction = client.models.predictions.create(model=MODEL, input={"prompt": "Hi"})
    list(prediction.stream())  # the official stream simply stops
    assert client.predictions.get(prediction.id).status == end_status
    if end_status == "succeeded":
        text, events = anyio.run(ours, url)
        assert text == "".join(DEFAULT_TOKENS)
        assert events[-1] == FinishReason(outcome)
    else:
        with pytest.raises(errors.ProviderError, match=outcome):
            anyio.run(ours, url)


def test_same_text_versioned_route(fake: tuple[FakeReplicate, str]) -> None:
    server, url = fake
    model = f"{MODEL}:5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"
    theirs = official_text(url, model)
    text, _ = anyio.run(ours, url, model)
    assert theirs == text
    created = [r for r in server.creations() if r.path == "/v1/predictions"]
    assert len(created) == 2
    assert all(r.json["version"] == model.split(":")[1] for r in created)


def test_official_client_request_matches_ours(fake: tuple[FakeReplicate, str]) -> None:
    """Same route and stream headers as replicate-python; no deprecated ``stream`` flag.

    replicate-python 1.x still sends ``"stream": true`` (``replicate/stream.py``); the
    flag is deprecated (streaming is always available) and llmrelay leaves it out.
    """
    server, url = fake
    official_text(url)
    anyio.run(ours, url)
    theirs, mine = server.creations()
    assert theirs.path == mine.path
    assert theirs.json["stream"] is True
    assert "stream" not in mine.json
    assert theirs.json["input"] == mine.json["input"]
    streams = [r for r in server.requests if r.path.startswith("/v1/streams/")]
    assert len(streams) == 2
    for request in streams:
        assert request.headers["accept"] == "text/event-stream"
        assert request.headers["cache-control"] == "no-store"


def test_error_event(fake: tuple[FakeReplicate, str]) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="error_event")
    with pytest.raises(RuntimeError) as theirs:
        official_text(url)
    with pytest.raises(errors.ProviderError) as mine:
        anyio.run(ours, url)
    assert "CUDA out of memory" in str(theirs.value)
    assert "CUDA out of memory" in str(mine.value)


@pytest.mark.parametrize("status", [401, 404, 422, 429, 500])
def test_problem_errors(fake: tuple[FakeReplicate, str], status: int) -> None:
    server, url = fake
    server.script = ReplicateScript(mode="http_error", error_status=status, retry_after="0")
    with pytest.raises(ReplicateError) as theirs:
        official_text(url)
    with pytest.raises(errors.ProviderError) as mine:
        anyio.run(ours, url)
    assert theirs.value.status == mine.value.status_code == status
    assert theirs.value.detail
    assert theirs.value.detail.strip().lstrip("- ") in str(mine.value) or status == 422
    if status == 422:
        assert "input: prompt is required" in str(mine.value)


def test_cancel(fake: tuple[FakeReplicate, str]) -> None:
    server, url = fake
    client = official(url)
    prediction = client.models.predictions.create(model=MODEL, input={"prompt": "Hi"})
    prediction.cancel()
    assert server.cancels == [prediction.id]
    assert client.predictions.get(prediction.id).status == "canceled"


@pytest.mark.parametrize("image_mode", ["wait", "wait_processing", "poll"])
def test_same_image(fake: tuple[FakeReplicate, str], image_mode: Any) -> None:
    server, url = fake
    server.script = ReplicateScript(image_mode=image_mode, polls_before_done=1)
    model = "black-forest-labs/flux-schnell"
    client = official(url)
    output = client.run(model, input={"prompt": "a llama"})
    # replicate-python wraps only https:/data: strings in FileOutput; the fake is http
    theirs = replicate.helpers.FileOutput(str(output[0]), client).read()

    async def mine() -> bytes:
        async with httpx.AsyncClient() as http:
            provider = Replicate(http, endpoints={"base_url": f"{url}/v1"}, api_key=TOKEN)
            result = await provider.generate_image(ImageRequest(prompt="a llama", model=model))
        return result.data

    assert theirs == anyio.run(mine) == server.script.image_bytes


def test_stream_content_type_is_what_the_official_client_requires(
    fake: tuple[FakeReplicate, str],
) -> None:
    _, url = fake
    prediction = official(url).models.predictions.create(
        model=MODEL, input={"prompt": "Hi"}, stream=True
    )
    with httpx.stream("GET", prediction.urls["stream"]) as response:
        assert response.headers["content-type"].partition(";")[0] == "text/event-stream"
        body = response.read()
    assert body.startswith(b": hi\n\n")
    assert b"event: done\n" in body


def test_no_token_is_the_recorded_401(fake: tuple[FakeReplicate, str]) -> None:
    _, url = fake
    with pytest.raises(ReplicateError) as theirs:
        replicate.Client(api_token=None, base_url=url).models.predictions.create(
            model=MODEL, input={"prompt": "Hi"}
        )
    assert theirs.value.status == 401
    assert theirs.value.title == "Unauthenticated"
    assert theirs.value.detail == "You did not pass a valid authentication token"


# replicate-python reads lines with httpx's iter_lines, which also splits on the other
# str.splitlines() boundaries; tokens holding those cannot round-trip through it.
_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters=_LINE_BREAKS)),
        max_size=10,
    )
)
def test_official_decoder_reads_the_fakes_nchan_framing_back(tokens: list[str]) -> None:
    """The fake's framing of any tokens decodes to exactly those tokens with
    replicate-python's own SSE decoder (fed through httpx's line splitting)."""
    body = b": hi\n\n" + b"".join(
        nchan_message("output", f"1690212292:{i}", t) for i, t in enumerate(tokens)
    )
    body += nchan_message("done", "1690212292:x", "{}")
    decoder = EventSource.Decoder()
    seen = []
    for line in httpx.Response(200, content=body).iter_lines():
        event = decoder.decode(line.rstrip("\n"))
        if event is not None:
            seen.append((event.event.value, event.data))
    assert seen == [*(("output", t) for t in tokens), ("done", "{}")]
