"""``client.responses`` and ``client.messages`` in the library (async and sync clients).

They run one chat turn through ``AsyncClient.stream``: the provider receives the
translated request, a stored response continues with the provider's state, and the
sync ``Client`` gives the same objects.
"""

from __future__ import annotations

from typing import Any

import pytest

import llmrelay
from llmrelay.types import ConversationState, FinishReason, Reasoning, Usage
from tests.unit.scripted_provider import scripted

pytestmark = pytest.mark.anyio


def stateful_script(turn: int) -> list[Any]:
    return [
        ConversationState("first", {"turn": turn}),
        f"answer {turn}",
        Usage(1, 2, 3),
        FinishReason("stop"),
    ]


async def test_a_stored_response_continues_with_the_providers_state() -> None:
    cls, script = scripted("first", stateful_script(1))
    async with llmrelay.AsyncClient(providers=[cls]) as client:
        first = await client.responses.create(
            model="first:shared-model", input="one", instructions="Sys."
        )
        assert first.output_text == "answer 1"
        assert script.received[-1].state is None
        script.events = stateful_script(2)
        stream = await client.responses.create(
            model="first:shared-model", input="two", previous_response_id=first.id, stream=True
        )
        kinds = [event.type async for event in stream]
        assert kinds[-1] == "response.completed"
        request = script.received[-1]
        assert request.state is not None
        assert request.state.data == {"turn": 1}
        assert [(m.role, m.content) for m in request.messages] == [
            ("user", "one"),
            ("assistant", "answer 1"),
            ("user", "two"),
        ]
        second = stream.response
        script.events = stateful_script(3)
        await client.responses.create(
            model="first:shared-model", input="three", previous_response_id=second.id
        )
        assert script.received[-1].state.data == {"turn": 2}  # type: ignore[union-attr]
        deleted = await client.responses.delete(first.id)
        assert deleted == {"id": first.id, "object": "response", "deleted": True}
        with pytest.raises(llmrelay.ConfigError) as gone:
            await client.responses.retrieve(first.id)
        assert gone.value.param == "response_id"


async def test_messages_with_a_conversation_send_only_the_new_turn() -> None:
    cls, script = scripted("first", stateful_script(1))
    async with llmrelay.AsyncClient(providers=[cls]) as client:
        conversation = llmrelay.Conversation()
        body: dict[str, Any] = {
            "model": "first:shared-model",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "one"}],
        }
        first = await client.messages.create(conversation=conversation, **body)
        assert first.text == "answer 1"
        script.events = stateful_script(2)
        body["messages"] += [
            {"role": "assistant", "content": "answer 1"},
            {"role": "user", "content": "two"},
        ]
        await client.messages.create(conversation=conversation, **body)
        assert script.received[-1].state is not None
        with pytest.raises(llmrelay.ConfigError) as wrong:
            await client.messages.create(
                conversation=conversation,
                **{**body, "messages": [{"role": "user", "content": "other"}] * 5},
            )
        assert wrong.value.param == "conversation"


def test_the_sync_client_has_both_shapes() -> None:
    cls, script = scripted("first", [Reasoning("r"), "hi", FinishReason("stop")])
    with llmrelay.Client(providers=[cls]) as client:
        response = client.responses.create(model="first:shared-model", input="x")
        assert isinstance(response, llmrelay.Response)
        assert [item["type"] for item in response.output] == ["reasoning", "message"]
        assert client.responses.retrieve(response.id).output_text == "hi"
        script.events = ["hi", FinishReason("stop")]
        with client.messages.create(
            model="first:shared-model",
            max_tokens=5,
            stream=True,
            messages=[{"role": "user", "content": "x"}],
        ) as stream:
            kinds = [event.type for event in stream]
        assert kinds[0] == "message_start"
        assert kinds[-1] == "message_stop"
        assert stream.message.text == "hi"
        assert client.messages.count_tokens(
            model="first:shared-model", messages=[{"role": "user", "content": "abcd"}]
        ) == {"input_tokens": 1}
