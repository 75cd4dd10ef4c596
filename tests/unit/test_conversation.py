"""Conversations: per-provider state, staleness, JSON round trip, recording on finish."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmrelay import (
    AsyncClient,
    Client,
    Conversation,
    ConversationState,
    FinishReason,
    Message,
    ProviderUnavailable,
    StreamInterrupted,
)
from tests.unit.scripted_provider import scripted

pytestmark = pytest.mark.anyio


def test_state_is_current_only_while_its_provider_answered_last() -> None:
    conv = Conversation()
    conv.record([Message("user", "q1")], "a1", ConversationState("ai", {"parent": "m1"}))
    assert conv.state_for("ai") == ConversationState("ai", {"parent": "m1"})
    assert conv.state_for("other") is None
    conv.record([Message("user", "q2")], "a2", None)  # answered by another provider
    assert conv.state_for("ai") is None  # stale: ai gets the whole history again
    assert conv.states["ai"].index == 1


def test_json_round_trip_keeps_messages_ids_and_states() -> None:
    conv = Conversation([{"role": "system", "content": "be brief"}], id="c1")
    conv.record([Message("user", "hi")], "hello", ConversationState("ai", {"parent": "p"}))
    data = json.loads(json.dumps(conv.to_dict()))
    back = Conversation.from_dict(data)
    assert back.id == "c1"
    assert back.messages == conv.messages
    assert back.state_for("ai") == ConversationState("ai", {"parent": "p"})


@pytest.mark.parametrize(
    "bad",
    [[], {"messages": 3}, {"messages": [], "states": {"ai": {"data": 1, "index": 0}}}],
)
def test_a_malformed_document_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match=r"must|needs"):
        Conversation.from_dict(bad)  # type: ignore[arg-type]


async def test_a_conversation_continues_and_each_provider_gets_only_its_state(
    tmp_path: Path,
) -> None:
    first, one = scripted(
        "first", [ConversationState("first", {"turn": 1}), "from first", FinishReason("stop")]
    )
    second, two = scripted("second", ["from second", FinishReason("stop")])
    conv = Conversation()
    async with AsyncClient(providers=[first, second]) as client:
        await client.complete("q1", model="first", conversation=conv, system="sys")
        await client.complete("q2", model="first", conversation=conv)
        await client.complete("q3", model="second", conversation=conv)
        await client.complete("q4", model="first", conversation=conv)
    assert one.received[0].state is None
    assert one.received[1].state == ConversationState("first", {"turn": 1})
    assert two.received[0].state is None  # never another provider's state
    assert one.received[2].state is None  # stale after second answered
    # every request carries the whole history
    assert [m.content for m in one.received[2].messages] == [
        "sys",
        "q1",
        "from first",
        "q2",
        "from first",
        "q3",
        "from second",
        "q4",
    ]
    assert [m.role for m in conv.messages][-2:] == ["user", "assistant"]
    assert len(conv.messages) == 9


async def test_a_failed_or_abandoned_turn_changes_nothing() -> None:
    bad, _ = scripted("first", ["partial", ProviderUnavailable("x", provider="first")])
    conv = Conversation([{"role": "user", "content": "q0"}, {"role": "assistant", "content": "a0"}])
    async with AsyncClient(providers=[bad]) as client:
        with pytest.raises(StreamInterrupted):
            await client.complete("q1", model="first", conversation=conv)
        stream = client.stream("q2", model="first", conversation=conv)
        async for _ in stream:
            break
        await stream.aclose()
    assert [m.content for m in conv.messages] == ["q0", "a0"]


def test_the_sync_client_records_into_a_conversation_too() -> None:
    first, one = scripted(
        "first", [ConversationState("first", {"k": 1}), "hi", FinishReason("stop")]
    )
    conv = Conversation()
    with Client(providers=[first]) as client:
        client.complete("q1", model="first", conversation=conv)
        list(client.stream("q2", model="first", conversation=conv))
    assert one.received[1].state == ConversationState("first", {"k": 1})
    assert [m.content for m in conv.messages] == ["q1", "hi", "q2", "hi"]


async def test_an_explicit_state_reaches_only_its_provider() -> None:
    first, one = scripted("first", ["ok", FinishReason("stop")])
    async with AsyncClient(providers=[first]) as client:
        await client.complete("q", model="first", state=ConversationState("first", {"a": 1}))
        await client.complete("q", model="first", state=ConversationState("other", {"a": 1}))
    assert one.received[0].state == ConversationState("first", {"a": 1})
    assert one.received[1].state is None


def test_a_provider_state_is_immutable_and_compared_by_its_fields() -> None:
    # written out instead of a frozen dataclass (start-up cost): the same behaviour
    import copy
    import dataclasses
    from types import MappingProxyType

    from llmrelay._conversation import ProviderState

    data = MappingProxyType({"parent": "m1"})
    state = ProviderState(data, 1)
    assert state == ProviderState(data=MappingProxyType({"parent": "m1"}), index=1)
    assert state != ProviderState(data, 2)
    assert state != ProviderState(MappingProxyType({"parent": "m2"}), 1)
    assert state != (data, 1)
    assert repr(state) == "ProviderState(data=mappingproxy({'parent': 'm1'}), index=1)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.index = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del state.data  # type: ignore[misc]
    with pytest.raises(AttributeError):
        state.other = 1  # type: ignore[attr-defined]
    assert copy.copy(state) == state
    assert hash(ProviderState((), 3)) == hash(((), 3))  # (a mappingproxy is unhashable)
    match state:
        case ProviderState(found, index):
            assert (found, index) == (data, 1)
    assert Conversation(states={"ai": {"data": {"x": 1}, "index": 0}}).states["ai"] == (
        ProviderState(MappingProxyType({"x": 1}), 0)
    )
