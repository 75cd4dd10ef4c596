"""Streams through the server: fallback, in-band errors, disconnects, curl, LangChain."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from typing import Any

import httpx
import openai
import pytest
from tests.server import scripted
from tests.server.scripted import HOLD, Pause

import llmrelay

HI = [{"role": "user", "content": "hi"}]


def _unavailable(provider: str) -> llmrelay.ProviderUnavailable:
    return llmrelay.ProviderUnavailable(
        f"{provider} is down", provider=provider, model="m", status_code=503
    )


def _frames(text: str) -> list[str]:
    return [block[len("data: ") :] for block in text.split("\n\n") if block.startswith("data: ")]


def test_fallback_first_503_second_answers(base_url: str) -> None:
    scripted.SCRIPTS["alpha"] = [_unavailable("alpha")]
    sdk = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    completion = sdk.chat.completions.create(model="chain", messages=HI)
    assert completion.choices[0].message.content == "Hello, world!"
    assert "beta" in completion.model
    scripted.SCRIPTS["alpha"] = [_unavailable("alpha")]
    stream = sdk.chat.completions.create(model="chain", messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello, world!"
    assert scripted.LOG["alpha"].opened == 2
    assert scripted.LOG["beta"].opened == 2


def test_fallback_failure_after_text_is_an_in_band_error(server_url: str) -> None:
    scripted.SCRIPTS["alpha"] = ["Partial", _unavailable("alpha")]
    response = httpx.post(
        server_url + "/v1/chat/completions",
        json={"model": "chain", "messages": HI, "stream": True},
        timeout=10,
    )
    assert response.status_code == 200
    frames = _frames(response.text)
    assert "[DONE]" not in frames
    *chunks, last = frames
    assert (
        "".join(
            c["choices"][0]["delta"].get("content") or ""
            for c in map(json.loads, chunks)
            if c["choices"]
        )
        == "Partial"
    )
    error = json.loads(last)["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert "alpha is down" in error["message"]
    # each rescue (two at most) asked beta for the whole answer: it did not begin with
    # "Partial", so it was never spliced in; alpha, asked again, matched and broke again
    assert scripted.LOG["beta"].opened == 2


def test_all_fail_is_502_listing_each_attempt(base_url: str) -> None:
    scripted.SCRIPTS["alpha"] = [_unavailable("alpha")]
    scripted.SCRIPTS["beta"] = [_unavailable("beta")]
    sdk = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as info:
            sdk.chat.completions.create(model="chain", messages=HI, stream=stream)
        assert info.value.status_code == 502
        body = info.value.body
        assert isinstance(body, dict)
        assert body["code"] == "all_providers_failed"
        attempts = body["attempts"]
        assert [a["provider"] for a in attempts] == ["alpha", "beta"]
        assert all(a["error_type"] == "ProviderUnavailable" for a in attempts)
        assert "alpha is down" in body["message"]
        assert "beta is down" in body["message"]


def _left(server_url: str) -> int:
    """Requests counted with status 499 (the client left) in ``/metrics``."""
    text = httpx.get(server_url + "/metrics", timeout=10).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("llmrelay_server_requests_total{") and 'status="499"' in line
    )


def test_client_disconnect_closes_the_upstream_stream(server_url: str) -> None:
    scripted.SCRIPTS["alpha"] = ["first words", HOLD]
    left = _left(server_url)
    body = json.dumps({"model": "alpha:m", "messages": HI, "stream": True}).encode()
    port = int(server_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b"first words" not in received:
            data = sock.recv(65536)
            assert data, "the server closed the stream early"
            received += data
        assert scripted.LOG["alpha"].closed == 0
    # the socket is closed: the upstream stream must be closed at once (it is held open)
    assert scripted.LOG["alpha"].wait_closed(5), "the provider's stream stayed open"
    # and the stream's clean-up ran to its end: counted as 499, no longer in flight
    deadline = time.monotonic() + 5
    while _left(server_url) == left and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _left(server_url) == left + 1
    metrics = httpx.get(server_url + "/metrics", timeout=10).text
    assert "llmrelay_server_streams_in_flight 0.0" in metrics


def test_metrics_count_requests_errors_and_streams(server_url: str) -> None:
    def scrape() -> str:
        return httpx.get(server_url + "/metrics", timeout=10).text

    def value(text: str, name: str, **labels: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())
        )

    before = scrape()
    httpx.post(server_url + "/v1/chat/completions", json={"model": "alpha:m", "messages": HI})
    httpx.post(
        server_url + "/v1/chat/completions",
        json={"model": "alpha:m", "messages": HI, "stream": True},
    )
    scripted.SCRIPTS["alpha"] = [llmrelay.RateLimitError("slow", provider="alpha", model="m")]
    httpx.post(server_url + "/v1/chat/completions", json={"model": "alpha:m", "messages": HI})
    after = scrape()
    assert value(after, "llmrelay_server_requests_total", provider="alpha", status="200") == (
        value(before, "llmrelay_server_requests_total", provider="alpha", status="200") + 2
    )
    assert value(
        after, "llmrelay_server_errors_total", provider="alpha", error_type="RateLimitError"
    ) == (
        value(before, "llmrelay_server_errors_total", provider="alpha", error_type="RateLimitError")
        + 1
    )
    assert value(after, "llmrelay_server_streamed_deltas_total", provider="alpha") >= (
        value(before, "llmrelay_server_streamed_deltas_total", provider="alpha") + 3
    )
    assert "llmrelay_server_time_to_first_token_seconds_bucket" in after
    assert "llmrelay_server_request_duration_seconds_bucket" in after
    assert "llmrelay_server_streams_in_flight 0.0" in after


def test_streams_in_flight_gauge(server_url: str) -> None:
    scripted.SCRIPTS["alpha"] = ["x", HOLD]
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            server_url + "/v1/chat/completions",
            json={"model": "alpha:m", "messages": HI, "stream": True},
        ) as response,
    ):
        chunks = response.iter_bytes()  # kept: a dropped iterator closes the connection
        next(chunks)
        assert "llmrelay_server_streams_in_flight 1.0" in http.get(server_url + "/metrics").text
    assert scripted.LOG["alpha"].wait_closed(5)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl(server_url: str) -> None:
    scripted.SCRIPTS["alpha"] = ["Hi", Pause(0.01), " there", llmrelay.FinishReason("stop")]
    out = subprocess.run(
        [
            "curl",
            "-sN",
            "--fail-with-body",
            server_url + "/v1/chat/completions",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"model": "alpha:m", "messages": HI, "stream": True}),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    frames = _frames(out)
    assert frames[-1] == "[DONE]"
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in map(json.loads, frames[:-1])
        if c["choices"]
    )
    assert text == "Hi there"
    plain = subprocess.run(
        [
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
            server_url + "/v1/chat/completions",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"model": "zz:zz", "messages": HI}),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, status = plain.rsplit("\n", 1)
    assert status == "404"
    assert json.loads(body)["error"]["code"] == "model_not_found"


def test_langchain_chat_openai_streams(base_url: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="alpha:m", base_url=base_url, api_key="x", max_retries=0, streaming=True)  # type: ignore[arg-type]
    pieces = [chunk.content for chunk in llm.stream("hi")]
    assert "".join(str(p) for p in pieces) == "Hello, world!"
    assert len([p for p in pieces if p]) == 3
    answer = llm.invoke([("system", "be brief"), ("human", "hi")])
    assert answer.content == "Hello, world!"
    sent = scripted.LOG["alpha"].requests[-1].messages
    assert [m.role for m in sent] == ["system", "user"]


def test_conversation_state_comes_back_for_stateless_clients(base_url: str) -> None:
    sdk = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    log = scripted.LOG["stateful"]
    history: list[Any] = [{"role": "user", "content": "first"}]
    for turn in (1, 2, 3):
        stream = turn == 2
        if stream:
            text = "".join(
                c.choices[0].delta.content or ""
                for c in sdk.chat.completions.create(
                    model="stateful:m", messages=history, stream=True
                )
                if c.choices
            )
        else:
            text = (
                sdk.chat.completions.create(model="stateful:m", messages=history)
                .choices[0]
                .message.content
            )
        received = log.requests[-1].state
        if turn == 1:
            assert received is None
        else:
            assert received is not None
            assert received.data["turn"] == turn - 1
        history += [
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"turn {turn + 1}"},
        ]
    # an edited history (another answer than the one given) does not match: no state
    edited = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "forged"},
        {"role": "user", "content": "next"},
    ]
    sdk.chat.completions.create(model="stateful:m", messages=edited)
    assert log.requests[-1].state is None


@pytest.mark.anyio
async def test_stream_closed_when_the_client_goes_while_a_frame_is_written(
    base_config: Any,
) -> None:
    """The write fails (client gone) while the frame generator sits at ``yield``: no
    cancellation reaches the provider, so the server must close the stream itself."""
    import anyio

    from llmrelay.server import create_app

    scripted.SCRIPTS["alpha"] = ["one", "two", HOLD]
    async with llmrelay.AsyncClient(**base_config.client_kwargs) as client:
        app = create_app(client)
        body = json.dumps({"model": "alpha:m", "messages": HI, "stream": True}).encode()
        sent: list[dict[str, Any]] = []
        request_done = False

        async def receive() -> dict[str, Any]:
            nonlocal request_done
            if not request_done:
                request_done = True
                return {"type": "http.request", "body": body, "more_body": False}
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                raise OSError("client went away")

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "server": ("127.0.0.1", 1),
            "client": ("127.0.0.1", 2),
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "app": app,
        }
        with anyio.fail_after(10):
            await app(scope, receive, send)
        assert sent[0]["status"] == 200
        assert scripted.LOG["alpha"].closed == scripted.LOG["alpha"].opened == 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
