"""The engine's guarantees: ProviderInfo first, one FinishReason last, fallback rules."""

from __future__ import annotations

from typing import Any

import pytest

from llmrelay import (
    AllProvidersFailed,
    AsyncClient,
    AuthenticationError,
    FinishReason,
    ProviderInfo,
    ProviderUnavailable,
    StreamInterrupted,
    Usage,
)
from llmrelay import providers as registry
from tests.unit import scripted_provider as scripted

pytestmark = pytest.mark.anyio


@pytest.fixture
def two_providers(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    monkeypatch.setattr(
        registry,
        "BUILTIN",
        {
            "first": "tests.unit.scripted_provider:First",
            "second": "tests.unit.scripted_provider:Second",
        },
    )
    import llmrelay._routing as routing

    monkeypatch.setattr(routing, "BUILTIN", registry.BUILTIN)
    scripted.SCRIPTS.clear()
    scripted.CLOSED.clear()
    return scripted.SCRIPTS


def unavailable(name: str) -> ProviderUnavailable:
    return ProviderUnavailable("down", provider=name, model="shared-model", status_code=503)


async def run(model: str = "shared") -> list[Any]:
    async with AsyncClient() as client:
        return [e async for e in client.stream("hi", model=model)]


async def test_finish_is_added_once_and_moved_last(two_providers: dict[str, list[Any]]) -> None:
    two_providers["first"] = ["a", FinishReason("length"), Usage(1, 2, 3), FinishReason("stop")]
    events = await run("first")
    assert events == [
        ProviderInfo("first", "shared-model", "First"),
        "a",
        Usage(1, 2, 3),
        FinishReason("length"),
    ]
    two_providers["first"] = ["a", "b"]
    assert (await run("first"))[-1] == FinishReason("stop")


async def test_fallback_on_retryable_error_before_text(two_providers: dict[str, list[Any]]) -> None:
    two_providers["first"] = [unavailable("first")]
    two_providers["second"] = ["from second"]
    events = await run()
    assert events[0] == ProviderInfo("second", "shared-model", "Second")
    assert events[1:] == ["from second", FinishReason("stop")]


async def test_no_fallback_on_a_non_retryable_error(two_providers: dict[str, list[Any]]) -> None:
    two_providers["first"] = [AuthenticationError("no", provider="first", status_code=401)]
    two_providers["second"] = ["never"]
    with pytest.raises(AuthenticationError):
        await run()
    assert scripted.CLOSED == ["first"]


async def test_no_fallback_after_text(two_providers: dict[str, list[Any]]) -> None:
    two_providers["first"] = ["partial ", unavailable("first")]
    two_providers["second"] = ["never"]
    with pytest.raises(StreamInterrupted) as info:
        await run()
    assert info.value.text == "partial "
    assert info.value.provider == "first"
    assert "second" not in scripted.CLOSED


async def test_all_failing_lists_each_attempt(two_providers: dict[str, list[Any]]) -> None:
    two_providers["first"] = [unavailable("first")]
    two_providers["second"] = [unavailable("second")]
    with pytest.raises(AllProvidersFailed) as info:
        await run()
    assert [name for name, _ in info.value.errors] == ["first", "second"]
    assert "first" in str(info.value)
    assert "second" in str(info.value)


async def test_early_stop_closes_the_provider_generator(
    two_providers: dict[str, list[Any]],
) -> None:
    two_providers["first"] = ["a", "b", "c"]
    async with AsyncClient() as client:
        stream = client.stream("hi", model="first")
        async for event in stream:
            if event == "a":
                break
        await stream.aclose()
    assert scripted.CLOSED == ["first"]
