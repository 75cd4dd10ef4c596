"""ai2 and h2o through ``llmrelay.AsyncClient`` with ``llmrelay.Conversation``: what the
fakes received on each turn of a three-turn conversation, concurrency, errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import llmrelay
from llmrelay import errors
from llmrelay.providers.ai2 import Ai2
from llmrelay.providers.h2o import MODELS, H2o, h2o_prompt
from tests.fakes._server import serve
from tests.fakes.ai2 import DEFAULT_CHUNKS, Ai2Script, FakeAi2
from tests.fakes.h2o import COOKIE_NAME, DEFAULT_TOKENS, FakeH2o, H2oScript

pytestmark = pytest.mark.anyio
AI2_REPLY = "".join(DEFAULT_CHUNKS)
H2O_REPLY = "".join(DEFAULT_TOKENS)


@pytest.fixture(scope="module")
def _ai2() -> Iterator[tuple[FakeAi2, str]]:
    fake = FakeAi2()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(scope="module")
def _h2o() -> Iterator[tuple[FakeH2o, str]]:
    fake = FakeH2o()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def ai2(_ai2: tuple[FakeAi2, str]) -> Iterator[tuple[FakeAi2, str]]:
    _ai2[0].reset()
    yield _ai2
    assert _ai2[0].wait_closed(5)


@pytest.fixture
def h2o(_h2o: tuple[FakeH2o, str]) -> Iterator[tuple[FakeH2o, str]]:
    _h2o[0].reset()
    yield _h2o
    assert _h2o[0].wait_closed(5)


def client(**base_urls: str) -> llmrelay.AsyncClient:
    return llmrelay.AsyncClient(base_urls=base_urls, providers=[Ai2, H2o])


def roundtrip(conversation: llmrelay.Conversation) -> llmrelay.Conversation:
    """Through JSON, as a caller storing the conversation between turns would."""
    return llmrelay.Conversation.from_dict(json.loads(json.dumps(conversation.to_dict())))


async def test_ai2_three_turns(ai2: tuple[FakeAi2, str]) -> None:
    fake, url = ai2
    conversation = llmrelay.Conversation()
    async with client(ai2=url) as llm:
        for text in ["first", "second", "third"]:
            completion = await llm.complete(text, model="ai2:tulu3-405b", conversation=conversation)
            assert completion.text == AI2_REPLY
            assert completion.finish_reason == "stop"
            conversation = roundtrip(conversation)
    first, second, third = fake.received
    assert uuid.UUID(str(first.anonymous_user_id)).version == 4
    assert first.anonymous_user_id == second.anonymous_user_id == third.anonymous_user_id
    assert (first.parent, first.field("content")) == (None, "first")
    assert (second.parent, second.field("content")) == (first.reply_id, "second")
    assert (third.parent, third.field("content")) == (second.reply_id, "third")
    assert [(m.role, m.content) for m in conversation.messages] == [
        ("user", "first"),
        ("assistant", AI2_REPLY),
        ("user", "second"),
        ("assistant", AI2_REPLY),
        ("user", "third"),
        ("assistant", AI2_REPLY),
    ]


async def test_ai2_first_turn_of_a_conversation_with_history_sends_it_flattened(
    ai2: tuple[FakeAi2, str],
) -> None:
    fake, url = ai2
    conversation = llmrelay.Conversation(
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    )
    async with client(ai2=url) as llm:
        await llm.complete("c", model="ai2", conversation=conversation)
    assert fake.received[0].field("content") == "User: a\nAssistant: b\nUser: c\nAssistant:"
    assert fake.received[0].parent is None


async def test_ai2_whitespace_deltas_reach_the_caller(ai2: tuple[FakeAi2, str]) -> None:
    _, url = ai2
    async with client(ai2=url) as llm:
        events = [e async for e in llm.stream("hi", model="ai2:olmoe-0125")]
    texts = [e for e in events if isinstance(e, str)]
    assert " " in texts
    assert "  " in texts
    assert "".join(texts) == AI2_REPLY
    assert events[-1] == llmrelay.FinishReason("stop")


async def test_ai2_missing_final_is_an_error_not_a_success(ai2: tuple[FakeAi2, str]) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="no_final")
    conversation = llmrelay.Conversation()
    async with client(ai2=url) as llm:
        with pytest.raises(errors.LLMRelayError) as info:
            await llm.complete("hi", model="ai2", conversation=conversation)
    assert _cause(info.value, errors.ProtocolError)
    assert conversation.messages == []  # a failed turn changes nothing


async def test_ai2_overloaded_before_text_is_retryable(ai2: tuple[FakeAi2, str]) -> None:
    fake, url = ai2
    fake.script = Ai2Script(mode="error_line", reason="model overloaded", fault_after=0)
    async with client(ai2=url) as llm:
        with pytest.raises(errors.LLMRelayError) as info:
            await llm.complete("hi", model="ai2")
    found = _cause(info.value, errors.ProviderUnavailable)
    assert found is not None
    assert found.retryable


async def test_h2o_three_turns(h2o: tuple[FakeH2o, str]) -> None:
    fake, url = h2o
    conversation = llmrelay.Conversation()
    async with client(h2o=url) as llm:
        for text in ["first", "second", "third"]:
            completion = await llm.complete(text, model="h2o:falcon-7b", conversation=conversation)
            assert completion.text == H2O_REPLY
            conversation = roundtrip(conversation)
    posts = fake.of("POST", "/conversation/")
    assert [r.method + " " + r.path.split("/")[1] for r in fake.received[:3]] == [
        "GET ",
        "POST settings",
        "POST conversation",
    ]
    assert len(fake.of("GET", "/")) == 1  # one session for the three turns
    session = posts[0].session
    assert session
    assert [p.session for p in posts] == [session] * 3
    assert len({p.path for p in posts}) == 1
    assert [p.json["inputs"] for p in posts] == [
        h2o_prompt([llmrelay.Message("user", "first")]),
        "second",
        "third",
    ]
    assert fake.settings[session]["activeModel"] == MODELS["falcon-7b"]
    assert fake.deleted == []  # kept: the conversation continues
    assert [(m.role, m.content) for m in conversation.messages][-2:] == [
        ("user", "third"),
        ("assistant", H2O_REPLY),
    ]


async def test_two_concurrent_h2o_chats_never_share_a_session(h2o: tuple[FakeH2o, str]) -> None:
    fake, url = h2o
    fake.script = H2oScript(first_byte_delay=0.2)
    a, b = llmrelay.Conversation(), llmrelay.Conversation()
    async with client(h2o=url) as llm:
        for _ in range(2):
            await asyncio.gather(
                llm.complete("to falcon", model="h2o:falcon-7b", conversation=a),
                llm.complete("to llama", model="h2o:llama-13b", conversation=b),
            )
    sessions: dict[str, set[str]] = {}
    for post in fake.of("POST", "/conversation/"):
        conversation = fake.conversations[post.path.removeprefix("/conversation/")]
        assert conversation.session == post.session
        sessions.setdefault(conversation.model, set()).add(str(post.session))
    assert set(sessions) == {MODELS["falcon-7b"], MODELS["llama-13b"]}
    assert all(len(s) == 1 for s in sessions.values())
    falcon, llama = sessions[MODELS["falcon-7b"]], sessions[MODELS["llama-13b"]]
    assert falcon.isdisjoint(llama)
    assert fake.settings[next(iter(falcon))]["activeModel"] == MODELS["falcon-7b"]
    assert fake.settings[next(iter(llama))]["activeModel"] == MODELS["llama-13b"]


async def test_h2o_ndjson_format_through_the_client(h2o: tuple[FakeH2o, str]) -> None:
    fake, url = h2o
    fake.script = H2oScript(format="ndjson")
    async with client(h2o=url) as llm:
        completion = await llm.complete("hi", model="h2o")
    assert completion.text == H2O_REPLY
    assert completion.state is not None
    assert completion.state.data["cookie"].startswith(f"{COOKIE_NAME}=")


@pytest.mark.parametrize(
    ("script", "error_type"),
    [
        (H2oScript(mode="http_error", step="message", status=410), errors.ModelNotFoundError),
        (H2oScript(mode="error_payload", fault_after=0), errors.ProviderUnavailable),
        (H2oScript(mode="no_final"), errors.ProtocolError),
    ],
    ids=["410", "overloaded", "no-final"],
)
async def test_h2o_errors_through_the_client_delete_the_conversation(
    h2o: tuple[FakeH2o, str], script: H2oScript, error_type: type[errors.ProviderError]
) -> None:
    fake, url = h2o
    fake.script = script
    async with client(h2o=url) as llm:
        with pytest.raises(errors.LLMRelayError) as info:
            await llm.complete("hi", model="h2o")
    assert _cause(info.value, error_type)
    assert fake.wait_deleted(5)


def _cause(error: BaseException, kind: type[errors.ProviderError]) -> errors.ProviderError | None:
    """``error`` itself, its ``cause`` (StreamInterrupted) or an attempt's error, if ``kind``."""
    candidates: list[Any] = [error, getattr(error, "cause", None), error.__cause__]
    for attempt in getattr(error, "attempts", None) or getattr(error, "errors", None) or []:
        candidates.extend(
            attempt if isinstance(attempt, tuple) else [getattr(attempt, "error", attempt)]
        )
    for candidate in candidates:
        if isinstance(candidate, kind):
            return candidate
    return None
