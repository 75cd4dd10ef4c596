"""``/v1/messages`` against the real ``anthropic`` SDK (``messages.create``, ``messages.stream``).

The server runs the scripted providers; the SDK checks the events and maps the errors
by Anthropic's status codes and error types. A client resending the whole history
continues Ai2's own thread, as chat completions do.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest
from tests.contract.fake_ai2 import Ai2ContractFake
from tests.fakes._server import serve
from tests.server import scripted
from tests.server.conftest import run_app

import llmrelay
from llmrelay.providers import Capability
from llmrelay.server import ServerConfig, create_app
from llmrelay.types import FinishReason, Reasoning, ToolCallDelta, Usage

needs_tools_engine = pytest.mark.skipif(
    not hasattr(Capability, "TOOLS"),
    reason="tools reach a provider with the tool-calling engine (agent branch)",
)


@pytest.fixture
def claude(server_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server_url, api_key="unused", max_retries=0, timeout=20)


WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def test_create_sends_every_field(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="alpha:m",
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}],
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        # the SDK no longer types them; older clients (and the API) send them
        extra_body={"temperature": 0.4, "top_p": 0.8},
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello, world!"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 3)
    request = scripted.LOG["alpha"].requests[-1]
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "Say hi"),
    ]
    assert (request.max_tokens, request.stop, request.temperature, request.top_p) == (
        64,
        ("END",),
        0.4,
        0.8,
    )


def test_a_stream_with_thinking(claude: anthropic.Anthropic) -> None:
    scripted.SCRIPTS["alpha"] = [
        Reasoning("Hmm."),
        "Hel",
        "lo",
        Usage(3, 2, 5),
        FinishReason("length"),
    ]
    with claude.messages.stream(
        model="alpha:m",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "hi"}],
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds
    assert "text" in kinds
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Hmm."  # type: ignore[union-attr]
    assert final.content[1].text == "Hello"  # type: ignore[union-attr]
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 2


def test_a_tool_use_from_the_model(claude: anthropic.Anthropic) -> None:
    scripted.SCRIPTS["alpha"] = [
        "Let me look.",
        ToolCallDelta(0, "toolu_1", "get_weather", '{"city":'),
        ToolCallDelta(0, arguments='"Paris"}'),
        FinishReason("tool_calls"),
    ]
    with claude.messages.stream(
        model="alpha:m",
        max_tokens=100,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    text, use = final.content
    assert text.type == "text"
    assert text.text == "Let me look."
    assert use.type == "tool_use"
    assert (use.id, use.name, use.input) == ("toolu_1", "get_weather", {"city": "Paris"})


@needs_tools_engine
def test_a_tool_use_round_trip(claude: anthropic.Anthropic) -> None:
    scripted.SCRIPTS["alpha"] = [
        ToolCallDelta(0, "toolu_1", "get_weather", '{"city":"Paris"}'),
        FinishReason("tool_calls"),
    ]
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = claude.messages.create(
        model="alpha:m", max_tokens=100, tools=[WEATHER], messages=history
    )
    request = scripted.LOG["alpha"].requests[-1]
    assert [tool.name for tool in request.tools] == ["get_weather"]
    history += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "22 C"}],
        },
    ]
    scripted.SCRIPTS["alpha"] = scripted.ok_script("Sunny, 22 C.")
    second = claude.messages.create(
        model="alpha:m", max_tokens=100, tools=[WEATHER], messages=history
    )
    assert second.content[0].text == "Sunny, 22 C."  # type: ignore[union-attr]
    request = scripted.LOG["alpha"].requests[-1]
    assert [m.role for m in request.messages] == ["user", "assistant", "tool"]
    assert request.messages[1].tool_calls[0].arguments == '{"city":"Paris"}'
    assert request.messages[2].tool_call_id == "toolu_1"


def test_errors_in_anthropic_shape(claude: anthropic.Anthropic, server_url: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(
            model="nope:m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(
            model="alpha:m", max_tokens=5, messages=[{"role": "system", "content": "x"}]
        )  # type: ignore[typeddict-item]
    assert bad.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages[0].role: must be user or assistant",
        },
    }
    scripted.SCRIPTS["alpha"] = [
        llmrelay.RateLimitError("slow down", provider="alpha", model="m", retry_after=7)
    ]
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude.messages.create(
            model="alpha:m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.response.headers["retry-after"] == "7"
    scripted.SCRIPTS["alpha"] = [llmrelay.ProviderUnavailable("down", provider="alpha", model="m")]
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude.messages.create(
            model="alpha:m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    # after the first event: an error event ends the stream, and the SDK raises it
    scripted.SCRIPTS["alpha"] = ["partial", scripted.Pause(0.05), RuntimeError("cut")]
    with pytest.raises(anthropic.APIStatusError) as cut:
        with claude.messages.stream(
            model="alpha:m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            for _ in stream:
                pass
    assert cut.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_the_server_key_as_x_api_key(make_server: Any) -> None:
    url = make_server(api_key="s3cret")
    ok = anthropic.Anthropic(base_url=url, api_key="s3cret", max_retries=0)
    assert ok.messages.create(
        model="alpha:m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    ).content
    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic.Anthropic(base_url=url, api_key="wrong", max_retries=0).messages.create(
            model="alpha:m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.body["type"] == "error"  # type: ignore[index]
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    body = {"model": "alpha:m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    # the anthropic SDKs of 2026 send a bearer token; Claude Code and older SDKs x-api-key
    for headers in ({"Authorization": "Bearer s3cret"}, {"x-api-key": "s3cret"}):
        assert httpx.post(f"{url}/v1/messages", headers=headers, json=body).status_code == 200
    wrong = httpx.post(f"{url}/v1/messages", headers={"x-api-key": "wrong"}, json=body)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"


def test_count_tokens(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(
        model="alpha:m", messages=[{"role": "user", "content": "x" * 40}]
    )
    assert counted.input_tokens == 10


def test_a_resent_history_continues_ai2s_thread() -> None:
    fake = Ai2ContractFake()
    with serve(fake.app) as upstream:
        fake.ok()
        config = ServerConfig(client_kwargs=fake.prepare_client_kwargs(upstream))
        with run_app(create_app(config=config)) as url:
            claude = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, timeout=20)
            history: list[Any] = [{"role": "user", "content": "Hello"}]
            first = claude.messages.create(model="ai2", max_tokens=100, messages=history)
            assert fake.fake.received[-1].parent is None
            history += [
                {"role": "assistant", "content": first.content[0].text},  # type: ignore[union-attr]
                {"role": "user", "content": "More"},
            ]
            with claude.messages.stream(model="ai2", max_tokens=100, messages=history) as stream:
                stream.get_final_message()
            received = fake.fake.received
            assert received[-2].reply_id is not None
            assert received[-1].parent == received[-2].reply_id
            assert received[-1].field("content") == "More"
        assert fake.wait_closed(5)


def test_too_many_messages_apply_to_every_shape(make_server: Any) -> None:
    url = make_server(max_messages=2)
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}] * 2
    reply = httpx.post(
        f"{url}/v1/messages", json={"model": "alpha:m", "max_tokens": 5, "messages": messages}
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
    reply = httpx.post(f"{url}/v1/responses", json={"model": "alpha:m", "input": messages})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "input"
    assert scripted.LOG["alpha"].requests == []


def test_both_shapes_fall_back_count_and_log_as_chat(
    make_server: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fallback, ``/metrics`` and the exchange log treat the two shapes as chat (one engine)."""
    import json
    import sqlite3
    import time

    db = tmp_path / "log.db"
    monkeypatch.setenv("LLMRELAY_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("LLMRELAY_HOME", str(tmp_path / "home"))
    url = make_server()
    down = llmrelay.ProviderUnavailable(
        "alpha is down", provider="alpha", model="m", status_code=503
    )
    scripted.SCRIPTS["alpha"] = [down]
    reply = httpx.post(url + "/v1/responses", json={"model": "chain", "input": "one"}, timeout=10)
    assert reply.status_code == 200
    assert (reply.json()["model"], reply.json()["output"][0]["content"][0]["text"]) == (
        "beta:m",
        "Hello, world!",
    )
    with httpx.stream(
        "POST",
        url + "/v1/messages",
        json={
            "model": "chain",
            "max_tokens": 10,
            "stream": True,
            "messages": [{"role": "user", "content": "two"}],
        },
        timeout=10,
    ) as streamed:
        assert streamed.status_code == 200
        body = streamed.read().decode()
    assert "event: message_stop" in body
    assert '"model":"beta:m"' in body
    assert scripted.LOG["alpha"].opened == 2  # each shape tried alpha first

    def metric(name: str, **labels: str) -> float:
        text = httpx.get(url + "/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((name + "{", name + " "))
            and all(f'{k}="{v}"' in line for k, v in labels.items())
        )

    for endpoint in ("responses", "messages"):
        assert (
            metric(
                "llmrelay_server_requests_total", endpoint=endpoint, provider="beta", status="200"
            )
            == 1
        ), endpoint
    deadline = time.monotonic() + 10
    while metric("llmrelay_log_written_rows_total") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT prompt, answer, provider, model_requested, attempts FROM exchanges ORDER BY id"
        ).fetchall()
    assert [row[:4] for row in rows] == [
        ("one", "Hello, world!", "beta", "chain"),
        ("two", "Hello, world!", "beta", "chain"),
    ]
    # the streamed answer's attempts (a JSON answer logs none, as chat's JSON answers)
    assert [a["provider"] for a in json.loads(rows[1][4])] == ["alpha", "beta"]


def test_images_in_both_shapes_reach_a_vision_model_only(
    make_server: Any, base_config: ServerConfig
) -> None:
    import base64

    png = "data:image/png;base64," + base64.b64encode(scripted.PNG).decode()
    kwargs = {**base_config.client_kwargs, "providers": [*scripted.ALL, scripted.Seer]}
    url = make_server(client_kwargs=kwargs)
    scripted.SCRIPTS["seer"] = scripted.ok_script("A dot.")
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": png, "detail": "low"},
    ]
    body = {"input": [{"role": "user", "content": content}]}
    reply = httpx.post(url + "/v1/responses", json={"model": "seer:m", **body}, timeout=10)
    assert reply.status_code == 200, reply.text
    (message,) = scripted.LOG["seer"].requests[-1].messages
    assert message.content == "What is this?"
    assert message.images == (png,)
    assert [(image.url, image.detail) for _, image in message.image_parts] == [(png, "low")]
    refused = httpx.post(url + "/v1/responses", json={"model": "alpha:m", **body}, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] is not None
    assert scripted.LOG["alpha"].requests == []

    block = {"type": "image", "source": {"type": "base64", "media_type": "image/png"}}
    block["source"]["data"] = png.partition(",")[2]  # type: ignore[index]
    messages = [{"role": "user", "content": [block, {"type": "text", "text": "And this?"}]}]
    answer = httpx.post(
        url + "/v1/messages",
        json={"model": "seer:m", "max_tokens": 10, "messages": messages},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    (message,) = scripted.LOG["seer"].requests[-1].messages
    assert message.content == "And this?"
    assert message.images == (png,)
    refused = httpx.post(
        url + "/v1/messages",
        json={"model": "alpha:m", "max_tokens": 10, "messages": messages},
        timeout=10,
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert "alpha" in refused.json()["error"]["message"]
