"""Is the fake olmo-api faithful? The client code olmo-api ships consumes it.

olmo-api publishes no client library; its own end-to-end tests are its client
(allenai/olmo-api ``apps/flask-api/e2e/test_threads.py``, ``e2e/base.py``, ``e2e/util.py``
at f0c14ee): ``requests.post(f"{origin}/v4/threads/", headers={X-Anonymous-User-ID},
files={...})``, ``raise_for_status()``, the second-to-last line of the body parsed as a
``Thread`` (``src/thread/thread_models.py``), a follow-up with ``parent`` = the thread's
last message. This module runs that flow against the fake with ``requests`` (the
library the e2e tests use), checks every message against ``FlatMessage``'s fields, and
checks that llmrelay reads the same reply and continues from the same message.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from llmrelay.providers.ai2 import Ai2
from llmrelay.types import ChatRequest, ConversationState, Message
from tests.fakes._server import serve
from tests.fakes.ai2 import DEFAULT_CHUNKS, FakeAi2

requests = pytest.importorskip("requests")


class _Api(BaseModel):
    # olmo-api's APIInterface: camelCase aliases; here extra keys are refused, so a key
    # the fake invents (or one it misses, below) fails the check
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Opts(_Api):
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    n: int = 1
    logprobs: int | None = None


class _FlatMessage(_Api):
    """The fields of olmo-api's ``FlatMessage`` with its computed ones (f0c14ee)."""

    id: str
    content: str
    input_parts: list[Any] | None
    creator: str
    role: str
    opts: _Opts
    root: str
    created: str
    model_id: str
    model_host: str
    agent_id: str | None
    deleted: str | None
    parent: str | None
    template: str | None
    children: list[str] | None
    completion: str | None
    final: bool
    original: str | None
    private: bool
    model_type: str | None
    finish_reason: str | None
    harmful: bool | None
    expiration_time: str | None
    labels: list[Any]
    file_urls: list[str] | None
    tool_calls: list[Any] | None
    thinking: str | None
    tool_definitions: list[Any] | None
    extra_parameters: dict[str, Any] | None
    error_code: str | None
    error_description: str | None
    error_severity: str | None
    snippet: str
    is_limit_reached: bool
    is_older_than30_days: bool


class _Thread(_Api):
    id: str
    messages: list[_FlatMessage]


def second_to_last_response_line(body: str) -> str:
    """e2e ``util.second_to_last_response_line``: the final thread."""
    return body.splitlines()[-2]


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeAi2, str]]:
    server = FakeAi2()
    with serve(server.app) as url:
        yield server, url


def test_the_e2e_flow_of_olmo_api_passes_on_the_fake(fake: tuple[FakeAi2, str]) -> None:
    server, origin = fake
    headers = {"X-Anonymous-User-ID": str(uuid.uuid4())}
    options = {"host": (None, "test_backend"), "model": (None, "olmo-2-0325-32b-instruct")}
    r = requests.post(
        f"{origin}/v4/threads/",
        headers=headers,
        files={"content": (None, "I'm a magical labrador named Murphy, who are you? "), **options},
        timeout=10,
    )
    r.raise_for_status()
    assert r.headers["content-type"].startswith("application/jsonl")
    lines = r.text.splitlines()
    assert json.loads(lines[0])["type"] == "start"
    assert json.loads(lines[-1])["type"] == "end"
    thread = _Thread.model_validate_json(second_to_last_response_line(r.text))
    assert thread.messages[0].role == "system"
    user = next(m for m in thread.messages if m.role == "user")
    assert user.content == "I'm a magical labrador named Murphy, who are you? "
    assert user.creator == headers["X-Anonymous-User-ID"]
    assert user.children is not None
    assert len(user.children) == 1
    assert user.private is True  # anonymous threads are private
    assert all(m.final for m in thread.messages)
    assert thread.messages[-1].content == "".join(DEFAULT_CHUNKS)
    # every streamed line in between is a chunk of the reply
    reply_id = thread.messages[-1].id
    chunks = [json.loads(line) for line in lines[2:-2]]
    assert all(
        c == {"content": c["content"], "message": reply_id, "type": "modelResponse"} for c in chunks
    )
    # the first thread is the same messages, not final yet
    first = _Thread.model_validate_json(lines[1])
    assert [m.id for m in first.messages] == [m.id for m in thread.messages]
    assert not any(m.final for m in first.messages)

    # a follow-up, as the e2e tests post it: no trailing slash (Flask redirects, 308)
    r = requests.post(
        f"{origin}/v4/threads",
        headers=headers,
        files={
            "content": (None, "Complete this thought: I like "),
            "parent": (None, reply_id),
            **options,
        },
        timeout=10,
    )
    r.raise_for_status()
    follow_up = _Thread.model_validate_json(second_to_last_response_line(r.text))
    assert follow_up.messages[0].role == "user"
    assert follow_up.messages[0].parent == reply_id
    # the thread as GET /v4/threads/{id} returns it
    got = _Thread.model_validate(
        requests.get(f"{origin}/v4/threads/{thread.id}", headers=headers, timeout=10).json()
    )
    assert [m.role for m in got.messages] == ["system", "user", "assistant", "user", "assistant"]
    # without the anonymous header: 401 (e2e test_fails_without_auth)
    r = requests.post(
        f"{origin}/v4/threads/", files={"content": (None, "x"), **options}, timeout=10
    )
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"code", "message"}
    assert server.received


def test_llmrelay_reads_what_the_e2e_client_reads(fake: tuple[FakeAi2, str]) -> None:
    server, url = fake

    async def ours() -> list[Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            provider = Ai2(http, endpoints={"base_url": url})
            req = ChatRequest(messages=(Message("user", "Hi"),), model="tulu3-405b")
            return [e async for e in provider.stream(req)]

    events = anyio.run(ours)
    text = "".join(e for e in events if isinstance(e, str))
    state = next(e for e in events if isinstance(e, ConversationState))
    got = server.received[-1]
    thread = server.chain(str(got.reply_id))
    assert text == thread[0]["content"]
    # the next turn continues from the thread's last message, as the e2e tests do
    assert state.data["parent"] == thread[0]["id"]
    assert state.data["anonymous_user_id"] == thread[0]["creator"]
