"""The engine's guarantees, with scripted providers registered through ``providers=``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from llmrelay import (
    AllProvidersFailed,
    AsyncClient,
    Attempt,
    AuthenticationError,
    ConversationState,
    FinishReason,
    InvalidRequestError,
    MissingCredentialsError,
    ProtocolError,
    ProviderInfo,
    ProviderTimeout,
    ProviderUnavailable,
    Reasoning,
    StreamInterrupted,
    Timeouts,
    UnknownModelError,
    Usage,
)
from llmrelay.providers import Provider
from tests.unit.scripted_provider import HANG, scripted

pytestmark = pytest.mark.anyio


def unavailable(name: str) -> ProviderUnavailable:
    return ProviderUnavailable("down", provider=name, model="shared-model", status_code=503)


def chain_config(tmp_path: Path, *refs: str) -> str:
    path = tmp_path / "config.toml"
    items = ", ".join(f'"{r}"' for r in refs)
    path.write_text(f"[aliases]\nchain = [{items}]\n")
    return str(path)


async def run(providers: list[type[Provider]], model: str = "first", **kwargs: Any) -> list[Any]:
    client_kwargs = {
        k: kwargs.pop(k)
        for k in list(kwargs)
        if k in ("config_path", "timeouts", "retries", "rescue")
    }
    async with AsyncClient(providers=providers, **client_kwargs) as client:
        return [e async for e in client.stream("hi", model=model, **kwargs)]


async def test_finish_is_held_to_the_end_and_given_once() -> None:
    first, _ = scripted(
        "first", ["a", FinishReason("length"), Usage(1, 2, 3), FinishReason("stop")]
    )
    events = await run([first])
    assert events == [
        ProviderInfo("first", "shared-model", "First"),
        "a",
        Usage(1, 2, 3),
        FinishReason("length"),
    ]


async def test_a_stream_without_finish_is_an_error_never_a_silent_stop() -> None:
    first, _ = scripted("first", ["partial"])
    with pytest.raises(StreamInterrupted) as info:
        await run([first])
    assert isinstance(info.value.cause, ProtocolError)
    assert info.value.text == "partial"
    empty, _ = scripted("first", [])
    with pytest.raises(ProtocolError, match="without a finish"):
        await run([empty])


async def test_content_after_the_finish_is_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, _ = scripted("first", ["a", FinishReason("stop"), "late", Reasoning("late")])
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        events = await run([first])
    assert events[1:] == ["a", FinishReason("stop")]
    assert "after its finish" in caplog.text


async def test_a_failure_after_the_finish_keeps_the_complete_answer() -> None:
    first, script = scripted("first", ["whole", FinishReason("stop"), unavailable("first")])
    events = await run([first])
    assert events[1:] == ["whole", FinishReason("stop")]
    assert script.closed == 1


async def test_commit_point_is_the_first_content_event(tmp_path: Path) -> None:
    # state and usage before the failure do not stop the fallback
    state = ConversationState("first", {"session": "s1"})
    first, _ = scripted("first", [state, Usage(5, 0, 5), unavailable("first")])
    second, _ = scripted("second", ["from second", FinishReason("stop")])
    config = chain_config(tmp_path, "first:shared-model", "second:shared-model")
    events = await run([first, second], model="chain", config_path=config)
    assert events == [
        ProviderInfo("second", "shared-model", "Second"),
        "from second",
        FinishReason("stop"),
    ]


async def test_no_fallback_on_a_non_retryable_error(tmp_path: Path) -> None:
    first, one = scripted("first", [AuthenticationError("no", provider="first", status_code=401)])
    second, two = scripted("second", ["never", FinishReason("stop")])
    config = chain_config(tmp_path, "first:shared-model", "second:shared-model")
    with pytest.raises(AuthenticationError):
        await run([first, second], model="chain", config_path=config)
    assert (one.closed, two.started) == (1, 0)


async def test_no_fallback_after_text_without_rescue(tmp_path: Path) -> None:
    first, _ = scripted("first", ["partial ", unavailable("first")])
    second, two = scripted("second", ["never", FinishReason("stop")])
    config = chain_config(tmp_path, "first:shared-model", "second:shared-model")
    with pytest.raises(StreamInterrupted) as info:
        await run([first, second], model="chain", config_path=config, rescue=False)
    assert info.value.text == "partial "
    assert info.value.provider == "first"
    assert two.started == 0


async def test_a_missing_key_is_skipped_and_recorded(tmp_path: Path) -> None:
    first, one = scripted("first", ["never"], key_required=True)
    second, _ = scripted("second", ["ok", FinishReason("stop")])
    config = chain_config(tmp_path, "first:shared-model", "second:shared-model")
    async with AsyncClient(providers=[first, second], config_path=config) as client:
        stream = client.stream("hi", model="chain")
        completion = await stream.collect()
    assert completion.text == "ok"
    assert one.started == 0
    assert [(a.provider, a.outcome) for a in completion.attempts] == [
        ("first", "skipped"),
        ("second", "ok"),
    ]
    assert completion.attempts[0].error_type == "MissingCredentialsError"
    assert "FIRST_TOKEN" in (completion.attempts[0].message or "")


async def test_a_single_candidate_without_key_is_a_config_error() -> None:
    first, _ = scripted("first", ["never"], key_required=True)
    with pytest.raises(MissingCredentialsError, match="FIRST_TOKEN"):
        await run([first])


async def test_all_failing_lists_each_attempt(tmp_path: Path) -> None:
    first, _ = scripted("first", [unavailable("first")])
    second, _ = scripted("second", [unavailable("second")])
    third, _ = scripted("third", ["x"], key_required=True)
    config = chain_config(tmp_path, "first:shared-model", "third", "second:shared-model")
    with pytest.raises(AllProvidersFailed) as info:
        await run([first, second, third], model="chain", config_path=config, retries=0)
    attempts = info.value.attempts
    assert [(a.provider, a.model, a.outcome, a.error_type) for a in attempts] == [
        ("first", "shared-model", "failed", "ProviderUnavailable"),
        ("third", "shared-model", "skipped", "MissingCredentialsError"),
        ("second", "shared-model", "failed", "ProviderUnavailable"),
    ]
    assert all(a.message for a in attempts)
    text = str(info.value)
    assert "first:shared-model" in text
    assert "second:shared-model" in text
    assert attempts[0] == Attempt(
        "first", "shared-model", "failed", "ProviderUnavailable", attempts[0].message
    )


async def test_health_moves_a_failing_candidate_back_for_its_cooldown(tmp_path: Path) -> None:
    first, one = scripted("first", [unavailable("first")])
    second, two = scripted("second", ["ok", FinishReason("stop")])
    config = chain_config(tmp_path, "first:shared-model", "second:shared-model")
    async with AsyncClient(
        providers=[first, second], config_path=config, cooldown=1000, retries=0
    ) as client:
        assert (await client.complete("a", model="chain")).provider == "second"
        assert one.started == 1
        again = await client.complete("b", model="chain")
        # first is cooling down: second is tried first and answers; first not retried
        assert again.provider == "second"
        assert one.started == 1
        assert [a.provider for a in again.attempts] == ["second"]
    # health is per client: a new client tries first again
    async with AsyncClient(providers=[first, second], config_path=config, retries=0) as other:
        await other.complete("c", model="chain")
    assert one.started == 2
    # without a cool-down the order never changes
    async with AsyncClient(
        providers=[first, second], config_path=config, cooldown=0, retries=0
    ) as client:
        await client.complete("d", model="chain")
        await client.complete("e", model="chain")
    assert one.started == 4
    assert two.started == 5


async def test_a_bare_model_several_providers_offer_is_not_a_chain() -> None:
    first, _ = scripted("first", [unavailable("first")])
    second, two = scripted("second", ["never", FinishReason("stop")])
    with pytest.raises(ProviderUnavailable):
        await run([first, second], model="shared-model")
    assert two.started == 0


async def test_early_stop_closes_the_provider_generator() -> None:
    first, script = scripted("first", ["a", "b", HANG])
    async with AsyncClient(providers=[first]) as client:
        stream = client.stream("hi", model="first")
        async for event in stream:
            if event == "a":
                break
        await stream.aclose()
    assert script.closed == 1


async def test_start_returns_at_the_first_content_with_the_provider_known() -> None:
    first, script = scripted("first", [Usage(1, 0, 1), "first words", HANG])
    async with AsyncClient(providers=[first]) as client:
        stream = client.stream("hi", model="first")
        assert stream.provider is None
        await stream.start()
        assert (stream.provider, stream.model) == ("first", "shared-model")
        assert [a.outcome for a in stream.attempts] == ["ok"]
        events = [await stream.__anext__() for _ in range(3)]
        assert events == [
            ProviderInfo("first", "shared-model", "First"),
            Usage(1, 0, 1),
            "first words",
        ]
        await stream.aclose()
    assert script.closed == 1


async def test_start_raises_before_any_content() -> None:
    first, _ = scripted("first", [ConversationState("first", {}), unavailable("first")])
    async with AsyncClient(providers=[first]) as client:
        stream = client.stream("hi", model="first")
        with pytest.raises(ProviderUnavailable):
            await stream.start()
        with pytest.raises(ProviderUnavailable):  # the same error again, nothing re-sent
            await stream.start()


async def test_first_token_timeout_ends_a_stream_of_heartbeats_and_falls_back(
    tmp_path: Path,
) -> None:
    # a provider that only sends non-content events (a queue's heartbeats) and stalls
    first, one = scripted("first", [Usage(0, 0, 0), HANG])
    second, _ = scripted("second", ["ok", FinishReason("stop")])
    config = chain_config(tmp_path, "first:shared-model", "second:shared-model")
    async with AsyncClient(
        providers=[first, second], config_path=config, timeouts=Timeouts(first_token=0.2)
    ) as client:
        completion = await client.complete("hi", model="chain")
    assert completion.text == "ok"
    assert completion.attempts[0].error_type == "ProviderTimeout"
    assert one.closed == 1
    async with AsyncClient(providers=[first], timeouts=Timeouts(first_token=0.2)) as client:
        with pytest.raises(ProviderTimeout) as info:
            await client.complete("hi", model="first")
    assert info.value.kind == "first_token"


async def test_total_timeout_bounds_the_whole_stream() -> None:
    first, script = scripted("first", ["some", HANG])
    async with AsyncClient(providers=[first], timeouts=Timeouts(total=0.3)) as client:
        with pytest.raises(StreamInterrupted) as info:
            await client.complete("hi", model="first")
    assert isinstance(info.value.cause, ProviderTimeout)
    assert info.value.cause.kind == "total"
    assert info.value.text == "some"
    assert script.closed == 1


async def test_an_unexpected_exception_from_a_provider_is_typed() -> None:
    first, _ = scripted("first", [KeyError("choices")])
    with pytest.raises(ProtocolError, match="KeyError"):
        await run([first])
    after_text, _ = scripted("first", ["x", IndexError("list index out of range")])
    with pytest.raises(StreamInterrupted) as info:
        await run([after_text])
    assert isinstance(info.value.cause, ProtocolError)


async def test_unsupported_parameters_are_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, script = scripted("first", ["ok", FinishReason("stop")], parameters=("temperature",))
    with caplog.at_level(logging.WARNING, logger="llmrelay"):
        await run([first], temperature=0.5, top_p=0.9, stop=["x"])
    request = script.received[0]
    assert request.temperature == 0.5
    assert request.top_p is None
    assert request.stop == ()
    assert "first does not take top_p, stop" in caplog.text


async def test_strict_makes_unsupported_parameters_an_error() -> None:
    first, script = scripted("first", ["ok", FinishReason("stop")], parameters=())
    async with AsyncClient(providers=[first], strict=True) as client:
        with pytest.raises(InvalidRequestError, match="does not take max_tokens"):
            await client.complete("hi", model="first", max_tokens=5)
        with pytest.raises(InvalidRequestError, match="option 'bogus'"):
            await client.complete("hi", model="first", options={"bogus": 1})
    assert script.started == 0


async def test_an_image_part_to_a_provider_without_vision_names_the_message() -> None:
    first, script = scripted("first", ["ok", FinishReason("stop")])
    messages = [
        {"role": "developer", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is "},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
            ],
        },
    ]
    async with AsyncClient(providers=[first]) as client:
        with pytest.raises(InvalidRequestError, match=r"messages\[1\] has an image_url part"):
            await client.complete(messages, model="first")
    assert script.started == 0


async def test_unknown_model_names_the_closest_valid_names() -> None:
    first, _ = scripted("first", [])
    with pytest.raises(UnknownModelError) as info:
        await run([first], model="shared-modl")
    assert "closest: first:shared-model" in str(info.value)
    assert "first:shared-model" in info.value.valid
    with pytest.raises(UnknownModelError) as info:
        await run([first], model="nope")
    assert "`llmrelay models` lists them" in str(info.value)


async def test_chat_request_carries_every_part_of_the_turn() -> None:
    """Each field the turn sets reaches ``ChatRequest`` (only defaults are left out)."""
    from llmrelay import Conversation, Message
    from llmrelay._router import Target
    from llmrelay._turn import Turn
    from llmrelay.providers import Capability, Option

    first, _ = scripted(
        "first",
        parameters=(
            "temperature",
            "max_tokens",
            "top_p",
            "stop",
            "seed",
            "frequency_penalty",
            "presence_penalty",
        ),
        options={"mode": Option(str)},
    )

    class Full(first):  # type: ignore[misc,valid-type]
        capabilities = frozenset({*first.capabilities, Capability.VISION})
        forwards = frozenset({"reasoning_effort"})

    tool = {"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}
    conversation = Conversation()
    state = ConversationState("first", {"id": "c1"})
    conversation.record((Message("user", "hi"),), "earlier", state, ())
    params: dict[str, Any] = {
        "temperature": 0.5,
        "max_tokens": 9,
        "top_p": 0.8,
        "stop": ["x"],
        "seed": 4,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "options": {"mode": "m"},
        "conversation": conversation,
        "tools": [tool],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
    }
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "see"}, image]}]
    turn = Turn.build(messages, params, {"reasoning_effort": "low"})  # type: ignore[arg-type]
    async with AsyncClient(providers=[Full], strict=True, allow_image_fetch=True) as client:
        request = client._engine.chat_request(Target("first", "shared-model"), turn, 12.5, "pre")
    assert request.messages == turn.messages
    assert (request.model, request.deadline, request.prefill) == ("shared-model", 12.5, "pre")
    assert (request.temperature, request.max_tokens, request.top_p) == (0.5, 9, 0.8)
    assert (request.stop, request.seed) == (("x",), 4)
    assert (request.frequency_penalty, request.presence_penalty) == (0.1, 0.2)
    assert dict(request.options) == {"mode": "m"}
    assert request.state == state
    assert [t.name for t in request.tools] == ["look"]
    assert request.tool_choice is not None
    assert request.tool_choice.mode == "required"
    assert request.parallel_tool_calls is False
    assert request.response_format == turn.response_format is not None
    assert dict(request.passthrough) == {"reasoning_effort": "low"}
    assert request.strict is True
    assert request.image_fetch is not None
