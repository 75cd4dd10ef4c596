"""The engine's open phase and image fallback (``Engine.open_chat``, ``generate_images``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from llmrelay import (
    AsyncClient,
    FinishReason,
    ImageRequest,
    ImageResult,
    InvalidRequestError,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    Queued,
    Timeouts,
)
from tests.unit.scripted_provider import HANG, scripted

pytestmark = pytest.mark.anyio


def _chain(tmp_path: Path, *refs: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text("[aliases]\nchain = [" + ", ".join(f'"{r}"' for r in refs) + "]\n")
    return str(path)


async def test_empty_text_is_not_the_commit_point(tmp_path: Path) -> None:
    """An empty delta before a failure: the next candidate still answers."""
    down = ProviderUnavailable("down", provider="first", model="shared-model", status_code=503)
    first, _ = scripted("first", ["", down])
    second, _ = scripted("second", ["ok", FinishReason("stop")])
    config = _chain(tmp_path, "first:shared-model", "second:shared-model")
    async with AsyncClient(providers=[first, second], config_path=config, retries=0) as client:
        completion = await client.complete("hi", model="chain")
    assert completion.text == "ok"
    assert [a.outcome for a in completion.attempts] == ["failed", "ok"]


async def test_a_total_deadline_before_the_first_token_one_is_named_total() -> None:
    first, script = scripted("first", [HANG])
    timeouts = Timeouts(first_token=30, total=0.2)
    async with AsyncClient(providers=[first], timeouts=timeouts) as client:
        with pytest.raises(ProviderTimeout, match=r"total timeout of 0\.2s") as info:
            await client.complete("hi", model="first")
    assert info.value.kind == "total"
    assert script.closed == 1


async def test_a_stream_that_ends_before_any_answer_is_a_protocol_error() -> None:
    first, script = scripted("first", [])
    async with AsyncClient(providers=[first]) as client:
        with pytest.raises(ProtocolError, match="before any answer"):
            await client.complete("hi", model="first")
    assert script.closed == 1


async def test_closing_a_stream_while_queued_closes_the_waiting_candidate() -> None:
    """After a progress report the open phase holds the candidate's generator: closing
    the stream then closes it (its connection), and nothing is opened afterwards."""
    first, script = scripted("first", [Queued(position=2), HANG])
    async with AsyncClient(providers=[first]) as client:
        stream = client.stream("hi", model="first")
        assert await stream.advance() == Queued(position=2)
        assert script.closed == 0
        await stream.aclose()
        assert script.closed == 1
        assert stream.provider is None
        assert stream.attempts == []


async def test_the_open_phase_goes_on_after_a_progress_report() -> None:
    """The open phase hands out ``Queued``, then the same candidate's answer opens."""
    first, script = scripted("first", [Queued(position=0), "ok", FinishReason("stop")])
    async with AsyncClient(providers=[first]) as client:
        async with client.stream("hi", model="first") as stream:
            events = [event async for event in stream]
    assert events[0] == Queued(position=0)
    assert [e for e in events if type(e) is str] == ["ok"]
    assert script.started == 1
    assert [a.outcome for a in stream.attempts] == ["ok"]


_Base, _ = scripted("failing", images=True, models=("m",))


class _Failing(_Base):  # type: ignore[misc,valid-type]
    """Each image request fails at once with its own error (the n-th call: ERRORS[n])."""

    ERRORS: ClassVar[list[BaseException]] = []
    calls: ClassVar[int] = 0

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        index = type(self).calls
        type(self).calls += 1
        raise self.ERRORS[index]


async def test_of_several_failed_images_the_first_is_raised_and_mapped() -> None:
    _Failing.calls = 0
    _Failing.ERRORS = [
        ValueError("a provider bug"),
        InvalidRequestError("second", provider="failing", model="m"),
        ProviderUnavailable("third", provider="failing", model="m"),
    ]
    async with AsyncClient(providers=[_Failing]) as client:
        with pytest.raises(ProtocolError, match="unexpected ValueError") as info:
            await client.generate_image("a cat", model="failing:m", n=3)
    assert isinstance(info.value.__cause__, ValueError)
    assert _Failing.calls == 3  # all three had started before the first failed
