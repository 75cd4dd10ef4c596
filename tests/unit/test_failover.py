"""Issue 19 and issue 24 items 4-5, mechanism by mechanism, with in-process providers.

Retries and back-off, the error kinds that move on or stop, silence against progress,
``Queued`` delivered before the commit, the stall bound after the first token,
surrogates, skipped events, the rescue (continuation, regenerate-and-align, never a
prefill to a candidate that did not declare it), and the half-open probe. The sixteen
scenarios end to end are ``tests/failover``.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import anyio
import pytest

import llmrelay
from llmrelay import (
    AllProvidersFailed,
    AsyncClient,
    ContentPolicyViolation,
    ContextLengthExceeded,
    FinishReason,
    ImageResult,
    ProviderInfo,
    ProviderTimeout,
    ProviderUnavailable,
    Queued,
    RateLimitError,
    StreamInterrupted,
    Timeouts,
    TransportError,
    Usage,
    _retry,
)
from llmrelay._router import FIRST_OPEN, MemoryHealth, Router, Target
from llmrelay._stream import mend_text
from llmrelay.providers import Auth, AuthMode, Capability, Provider
from llmrelay.types import ChatRequest, Event

pytestmark = pytest.mark.anyio


class Sleep:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


def provider(name: str, *calls: list[Any], prefill: bool = False) -> type[Provider]:
    """A provider whose n-th stream plays ``calls[n]`` (the last one for the rest)."""
    plays = list(calls)

    class Played(Provider):
        label = name.title()
        endpoints = MappingProxyType({"base_url": f"https://{name}.invalid"})
        default_model = "m"
        models = ("m",)
        auth = Auth()
        capabilities = frozenset(
            {Capability.CHAT, Capability.STREAM, *([Capability.PREFILL] if prefill else [])}
        )
        received: ClassVar[list[tuple[float, ChatRequest]]] = []

        async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
            index = min(len(self.received), len(plays) - 1)
            self.received.append((time.monotonic(), request))
            for item in plays[index]:
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Sleep):
                    await anyio.sleep(item.seconds)
                elif callable(item):
                    await item()
                else:
                    yield item

    Played.name = name
    Played.__name__ = f"Played_{name}"
    return Played


def chain(tmp_path: Path, *refs: str, retries: int | None = None) -> str:
    path = tmp_path / "config.toml"
    items = ", ".join(f'"{r}"' for r in refs)
    value = f"{{models = [{items}], retries = {retries}}}" if retries is not None else f"[{items}]"
    path.write_text(f"[aliases]\nchain = {value}\n")
    return str(path)


def down(name: str = "a") -> ProviderUnavailable:
    return ProviderUnavailable("down", provider=name, model="m", status_code=503)


OK = ["fine", FinishReason("stop")]


# -- retries ---------------------------------------------------------------------------


async def test_a_transient_failure_is_retried_on_the_same_candidate_with_back_off(
    tmp_path: Path,
) -> None:
    a = provider("a", [down()], [down()], OK)
    b = provider("b", OK)
    async with AsyncClient(providers=[a, b], config_path=chain(tmp_path, "a:m", "b:m")) as c:
        completion = await c.complete("hi", model="chain")
    assert (completion.provider, completion.text) == ("a", "fine")
    assert [x.outcome for x in completion.attempts] == ["failed", "failed", "ok"]
    times = [t for t, _ in a.received]  # type: ignore[attr-defined]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert 0.25 * 0.95 <= gaps[0] <= 0.5 + 0.2  # 0.5 s x jitter [0.5, 1]
    assert 0.5 * 0.95 <= gaps[1] <= 1.0 + 0.2  # doubled
    assert b.received == []  # type: ignore[attr-defined]


async def test_retry_after_is_honoured_and_a_long_one_fails_over_at_once(tmp_path: Path) -> None:
    limited = RateLimitError("slow down", provider="a", model="m", retry_after=0.4)
    a = provider("a", [limited], OK)
    async with AsyncClient(providers=[a], retries=1) as client:
        assert (await client.complete("hi", model="a")).text == "fine"
    first, second = (t for t, _ in a.received)  # type: ignore[attr-defined]
    assert second - first >= 0.4
    too_long = RateLimitError("later", provider="a", model="m", retry_after=3600)
    a2 = provider("a", [too_long], OK)
    b = provider("b", OK)
    config = chain(tmp_path, "a:m", "b:m")
    async with AsyncClient(providers=[a2, b], config_path=config) as client:
        started = time.monotonic()
        assert (await client.complete("hi", model="chain")).provider == "b"
    assert time.monotonic() - started < 1
    assert len(a2.received) == 1  # type: ignore[attr-defined]


async def test_no_retry_waits_past_the_total_deadline() -> None:
    limited = RateLimitError("slow down", provider="a", model="m", retry_after=2)
    a = provider("a", [limited], OK)
    async with AsyncClient(providers=[a], timeouts=Timeouts(total=0.5)) as client:
        with pytest.raises(RateLimitError):
            await client.complete("hi", model="a")
    assert len(a.received) == 1  # type: ignore[attr-defined]


async def test_retries_per_provider_and_per_alias(tmp_path: Path) -> None:
    a = provider("a", [down()])
    b = provider("b", [down("b")])
    config = chain(tmp_path, "a:m", "b:m", retries=0)
    async with AsyncClient(providers=[a, b], config_path=config) as client:
        with pytest.raises(AllProvidersFailed):
            await client.complete("hi", model="chain")
        assert len(a.received) == len(b.received) == 1  # type: ignore[attr-defined]
        with pytest.raises(ProviderUnavailable):
            await client.complete("hi", model="a")  # not through the alias: 2 retries
        assert len(a.received) == 1 + 3  # type: ignore[attr-defined]
        settings = client._engine.settings
    assert settings.retries_for("a", "chain") == 0
    assert settings.retries_for("a") == 2


async def test_the_error_ending_a_chain_carries_its_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ProviderError.tries``: every request sent upstream for the call, retries and
    fallback included, a skipped candidate not (what ``x-should-retry`` is decided on)."""
    monkeypatch.setattr(_retry, "BASE_DELAY", 0.01)
    a = provider("a", [down()])
    async with AsyncClient(providers=[a], retries=2) as client:
        with pytest.raises(ProviderUnavailable) as alone:
            await client.complete("hi", model="a")
    assert alone.value.tries == 3
    b = provider("b", [down("b")])
    keyed = provider("keyed", OK)
    keyed.auth = Auth(AuthMode.REQUIRED, "KEYED_TEST_KEY")
    config = chain(tmp_path, "keyed:m", "b:m", retries=0)
    async with AsyncClient(providers=[keyed, b], config_path=config) as client:
        with pytest.raises(AllProvidersFailed) as chained:
            await client.complete("hi", model="chain")
    assert [x.outcome for x in chained.value.attempts] == ["skipped", "failed"]
    assert isinstance(chained.value.__cause__, ProviderUnavailable)
    assert chained.value.__cause__.tries == 1
    assert ProviderUnavailable("u", provider="p").tries == 1  # not from a chain


async def test_context_length_moves_on_without_a_resend_and_content_policy_stops(
    tmp_path: Path,
) -> None:
    too_long = ContextLengthExceeded(
        "too long", provider="a", model="m", code="context_length_exceeded"
    )
    a = provider("a", [too_long])
    b = provider("b", OK)
    config = chain(tmp_path, "a:m", "b:m")
    async with AsyncClient(providers=[a, b], config_path=config) as client:
        completion = await client.complete("hi", model="chain")
    assert completion.provider == "b"
    assert len(a.received) == 1  # type: ignore[attr-defined]
    refused = ContentPolicyViolation("no", provider="a", model="m", code="content_policy_violation")
    a2 = provider("a", [refused])
    b2 = provider("b", OK)
    async with AsyncClient(providers=[a2, b2], config_path=config) as client:
        with pytest.raises(ContentPolicyViolation) as info:
            await client.complete("hi", model="chain")
    assert info.value.code == "content_policy_violation"
    assert len(a2.received) == 1  # type: ignore[attr-defined]  # not retried
    assert b2.received == []  # type: ignore[attr-defined]  # not routed round


def test_the_policy_table() -> None:
    assert _retry.decide(down()) == "retry"
    assert _retry.decide(TransportError("reset", provider="a")) == "retry"
    assert _retry.decide(RateLimitError("x", provider="a")) == "retry"
    assert _retry.decide(ProviderTimeout("t", kind="silence", provider="a")) == "next"
    assert _retry.decide(ContextLengthExceeded("x", provider="a")) == "next"
    assert _retry.decide(ContentPolicyViolation("x", provider="a")) == "stop"
    assert _retry.decide(llmrelay.AuthenticationError("x", provider="a")) == "stop"
    rng = random.Random(7)
    delays = [_retry.backoff(n, down(), rng) for n in range(1, 8)]
    assert all(d is not None and d <= _retry.MAX_DELAY for d in delays)
    assert delays[0] is not None
    assert 0.25 <= delays[0] <= 0.5
    assert _retry.backoff(1, RateLimitError("x", provider="a", retry_after=3.0)) == 3.0
    assert _retry.backoff(1, RateLimitError("x", provider="a", retry_after=60.0)) is None


def test_error_classes_from_codes_and_messages() -> None:
    from llmrelay._http import error_for_status, invalid_request_class

    body = '{"error": {"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded"}}'
    exc = error_for_status(400, body, provider="p", model="m")
    assert type(exc) is ContextLengthExceeded
    assert exc.code == "context_length_exceeded"
    body = '{"error": {"message": "no", "code": "content_policy_violation"}}'
    assert type(error_for_status(400, body, provider="p", model="m")) is ContentPolicyViolation
    tgi = "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000"
    assert invalid_request_class("validation", tgi) is ContextLengthExceeded
    assert invalid_request_class(None, "prompt is too long") is ContextLengthExceeded
    assert (
        invalid_request_class(None, "temperature must be positive") is llmrelay.InvalidRequestError
    )


# -- silence and progress --------------------------------------------------------------


async def test_a_silent_candidate_is_left_after_the_silence_limit(tmp_path: Path) -> None:
    a = provider("a", [Sleep(30), *OK])
    b = provider("b", OK)
    timeouts = Timeouts(silence=0.3, first_token=20)
    config = chain(tmp_path, "a:m", "b:m")
    async with AsyncClient(providers=[a, b], config_path=config, timeouts=timeouts) as client:
        started = time.monotonic()
        completion = await client.complete("hi", model="chain")
    assert completion.provider == "b"
    assert time.monotonic() - started < 2
    failed = completion.attempts[0]
    assert failed.error_type == "ProviderTimeout"
    assert "silence" in (failed.message or "")
    assert len(a.received) == 1  # type: ignore[attr-defined]  # a silent route is not retried


async def test_progress_keeps_a_queued_candidate_and_reaches_the_caller_before_the_answer(
    tmp_path: Path,
) -> None:
    got: list[tuple[str, Any]] = []
    released = anyio.Event()

    async def wait_for_the_caller() -> None:
        await released.wait()

    queue = [Queued(3, 9, 2.0), Sleep(0.2), Queued(2, 9, 1.0), Sleep(0.2), Queued(1, 9, 0.5)]
    a = provider("a", [*queue, Sleep(0.2), Queued(0, 9, 0.0), wait_for_the_caller, *OK])
    b = provider("b", OK)
    timeouts = Timeouts(silence=0.3, first_token=20)
    config = chain(tmp_path, "a:m", "b:m")
    async with AsyncClient(providers=[a, b], config_path=config, timeouts=timeouts) as client:
        stream = client.stream("hi", model="chain")
        async for event in stream:
            got.append(("event", event))
            if event == Queued(0, 9, 0.0):
                released.set()  # the provider waits for this: the Queued came first, live
    events = [e for _, e in got]
    assert events[:4] == [
        Queued(3, 9, 2.0),
        Queued(2, 9, 1.0),
        Queued(1, 9, 0.5),
        Queued(0, 9, 0.0),
    ]
    assert events[4] == ProviderInfo("a", "m", "A")  # the answer begins at the commit
    assert events[-1] == FinishReason("stop")
    assert b.received == []  # type: ignore[attr-defined]  # progress is not silence


async def test_the_last_candidate_waits_for_the_first_token_timeout() -> None:
    a = provider("a", [Sleep(0.6), *OK])
    async with AsyncClient(providers=[a], timeouts=Timeouts(silence=0.1, first_token=5)) as client:
        assert (await client.complete("hi", model="a")).text == "fine"


async def test_start_keeps_the_progress_for_iteration() -> None:
    a = provider("a", [Queued(1, 2, None), *OK])
    async with AsyncClient(providers=[a]) as client:
        stream = await client.open("hi", model="a")
        events = [e async for e in stream]
    assert events[:2] == [Queued(1, 2, None), ProviderInfo("a", "m", "A")]


# -- the stall bound -------------------------------------------------------------------


async def test_keep_alives_do_not_reset_the_stall_bound() -> None:
    heartbeat = [Usage(1, 1, 2), Sleep(0.05)] * 100
    a = provider("a", ["partial ", *heartbeat, *OK])
    timeouts = Timeouts(stall=0.4)
    async with AsyncClient(providers=[a], timeouts=timeouts, rescue=False) as client:
        started = time.monotonic()
        with pytest.raises(StreamInterrupted) as info:
            await client.complete("hi", model="a")
    assert isinstance(info.value.cause, ProviderTimeout)
    assert info.value.cause.kind == "stall"
    assert info.value.text == "partial "
    assert 0.35 <= time.monotonic() - started < 2


async def test_content_keeps_a_slow_stream_alive_and_a_slow_reader_is_not_a_stall() -> None:
    # gaps of 0.2 s under a 0.8 s stall bound: the margin holds on a loaded machine
    drip = [x for word in ["one ", "two ", "three "] for x in (Sleep(0.2), word)]
    a = provider("a", ["zero ", *drip, FinishReason("stop")])
    async with AsyncClient(providers=[a], timeouts=Timeouts(stall=0.8)) as client:
        assert (await client.complete("hi", model="a")).text == "zero one two three "
        stream = client.stream("hi", model="a")
        text = []
        async for event in stream:
            if isinstance(event, str):
                text.append(event)
                await anyio.sleep(1.0)  # the caller is slow: not the provider's stall
    assert "".join(text) == "zero one two three "


# -- surrogates and skipped events ------------------------------------------------------


def test_mend_text_joins_split_pairs_and_replaces_lone_surrogates() -> None:
    assert mend_text("hi \ud83d") == ("hi ", "\ud83d")
    assert mend_text("\ude00!", "\ud83d") == ("😀!", "")
    assert mend_text("a\udc00b") == ("a\ufffdb", "")
    assert mend_text("\ud800x") == ("\ufffdx", "")
    assert mend_text("plain") == ("plain", "")


async def test_a_split_emoji_arrives_whole_and_a_lone_surrogate_as_u_fffd() -> None:
    a = provider("a", ["smile \ud83d", "\ude00 and \udc00 end \ud83d", FinishReason("stop")])
    async with AsyncClient(providers=[a]) as client:
        events = [e async for e in client.stream("hi", model="a")]
        completion = await client.complete("hi", model="a")
    text = "".join(e for e in events if isinstance(e, str))
    assert text == "smile 😀 and \ufffd end \ufffd"
    assert completion.text == text
    text.encode("utf-8")  # valid Unicode
    assert events[-1] == FinishReason("stop")


# -- the rescue ------------------------------------------------------------------------

ANSWER = ["The ", "whole ", "answer ", "here."]


async def test_a_prefill_capable_candidate_continues_the_answer(tmp_path: Path) -> None:
    cut = TransportError("peer closed", provider="a", model="m")
    a = provider("a", [*ANSWER[:2], cut])
    b = provider("b", [*ANSWER[2:], FinishReason("stop")], prefill=True)
    config = chain(tmp_path, "a:m", "b:m")
    async with AsyncClient(providers=[a, b], config_path=config) as client:
        stream = client.stream("hi", model="chain")
        events = [e async for e in stream]
    assert "".join(e for e in events if isinstance(e, str)) == "".join(ANSWER)
    ((_, request),) = b.received  # type: ignore[attr-defined]
    assert request.prefill == "The whole "
    outcomes = [(x.provider, x.outcome) for x in stream.attempts]
    assert outcomes == [("a", "interrupted"), ("b", "rescued")]
    assert "continued after 10 characters" in (stream.attempts[-1].message or "")


async def test_regenerate_and_align_streams_only_the_rest(tmp_path: Path) -> None:
    cut = TransportError("peer closed", provider="a", model="m")
    a = provider("a", [*ANSWER[:2], cut])
    b = provider("b", [*ANSWER, Usage(3, 4, 7), FinishReason("stop")])
    config = chain(tmp_path, "a:m", "b:m")
    async with AsyncClient(providers=[a, b], config_path=config) as client:
        stream = client.stream("hi", model="chain")
        events = [e async for e in stream]
    texts = [e for e in events if isinstance(e, str)]
    assert "".join(texts) == "".join(ANSWER)  # nothing twice
    ((_, request),) = b.received  # type: ignore[attr-defined]
    assert request.prefill == ""
    assert request.messages[-1].role == "user"
    assert events[-1] == FinishReason("stop")
    assert Usage(3, 4, 7) in events
    assert stream.attempts[-1].outcome == "rescued"


async def test_a_diverging_answer_is_never_spliced(tmp_path: Path) -> None:
    cut = TransportError("peer closed", provider="a", model="m")
    a = provider("a", [*ANSWER[:2], cut], [*ANSWER[:1], cut])
    b = provider("b", ["Another ", "answer.", FinishReason("stop")])
    config = chain(tmp_path, "a:m", "b:m")
    async with AsyncClient(providers=[a, b], config_path=config) as client:
        stream = client.stream("hi", model="chain")
        seen: list[str] = []
        with pytest.raises(StreamInterrupted) as info:
            async for event in stream:
                if isinstance(event, str):
                    seen.append(event)
    assert "".join(seen) == "The whole " == info.value.text
    assert [x.outcome for x in stream.attempts if x.provider == "b"] == ["diverged"]


async def test_the_rescue_can_be_turned_off_and_skips_non_text_answers(tmp_path: Path) -> None:
    cut = TransportError("peer closed", provider="a", model="m")
    b = provider("b", [*ANSWER, FinishReason("stop")])
    config = chain(tmp_path, "a:m", "b:m")
    a = provider("a", [*ANSWER[:2], cut])
    async with AsyncClient(providers=[a, b], config_path=config, rescue=False) as client:
        with pytest.raises(StreamInterrupted):
            await client.complete("hi", model="chain")
        stream = client.stream("hi", model="chain")
        stream.rescue = True  # per stream
        assert (await stream.collect()).text == "".join(ANSWER)
    image = ImageResult(b"png", "image/png")
    a2 = provider("a", [image, cut])
    async with AsyncClient(providers=[a2, b], config_path=config) as client:
        with pytest.raises(StreamInterrupted):
            await client.complete("hi", model="chain")
    assert len(b.received) == 1  # type: ignore[attr-defined]  # only the per-stream rescue


async def test_a_stall_is_rescued_elsewhere_and_the_stalled_candidate_not_asked_again(
    tmp_path: Path,
) -> None:
    a = provider("a", [*ANSWER[:2], Sleep(30), *ANSWER[2:], FinishReason("stop")])
    b = provider("b", [*ANSWER, FinishReason("stop")])
    config = chain(tmp_path, "a:m", "b:m")
    async with AsyncClient(providers=[a, b], config_path=config, timeouts=Timeouts(stall=0.3)) as c:
        started = time.monotonic()
        completion = await c.complete("hi", model="chain")
    assert completion.text == "".join(ANSWER)
    assert time.monotonic() - started < 3
    assert len(a.received) == 1  # type: ignore[attr-defined]


# -- the half-open probe ---------------------------------------------------------------


class _Registry:
    def names(self) -> list[str]:
        return ["a", "b"]

    def known(self) -> list[str]:
        return ["a", "b"]

    def __contains__(self, name: object) -> bool:
        return name in ("a", "b")

    def get(self, name: str) -> Any:
        class Cls:
            default_model = "m"

            @staticmethod
            def resolve_model(model: str | None) -> str:
                return model or "m"

            @staticmethod
            def offers(model: str) -> bool:
                return False

        return Cls


async def test_a_failed_candidate_is_probed_by_one_request_then_closed_or_reopened() -> None:
    health = MemoryHealth()
    router = Router(_Registry(), aliases={"x": ("a:m", "b:m")}, cooldown=30, health=health)  # type: ignore[arg-type]
    a, b = Target("a", "m"), Target("b", "m")
    router.failed(a)
    assert [c.target for c in await router.candidates("x")] == [b, a]  # open: at the back
    health._until[a] = time.monotonic() - 0.01  # the open interval (FIRST_OPEN) is over
    first = await router.candidates("x")
    assert (first[0].target, first[0].probe) == (a, True)  # one request probes it
    second = await router.candidates("x")
    assert [c.target for c in second] == [b, a]
    assert not any(c.probe for c in second)
    router.failed(a)  # the probe failed: open again, twice as long
    assert router._interval[a] == 2 * FIRST_OPEN
    health._until[a] = time.monotonic() - 0.01
    probe = await router.candidates("x")
    assert probe[0].probe
    router.succeeded(a)  # the probe answered: closed
    assert [c.target for c in await router.candidates("x")] == [a, b]
    assert not any(c.probe for c in await router.candidates("x"))


async def test_recovery_follows_the_service_not_the_cooldown(tmp_path: Path) -> None:
    a = provider("a", [down()], [down()], OK)
    b = provider("b", OK)
    config = chain(tmp_path, "a:m", "b:m")
    async with AsyncClient(providers=[a, b], config_path=config, retries=0, cooldown=30) as c:
        assert (await c.complete("1", model="chain")).provider == "b"  # a failed: open 1 s
        assert (await c.complete("2", model="chain")).provider == "b"  # a at the back
        assert len(a.received) == 1  # type: ignore[attr-defined]
        await anyio.sleep(FIRST_OPEN + 0.05)
        probe = await c.complete("3", model="chain")  # a probed, fails again: b answers
        assert probe.provider == "b"
        assert probe.attempts[0].provider == "a"
        await anyio.sleep(2 * FIRST_OPEN + 0.05)
        # a is back, 3 s after its first failure, not after the 30 s cool-down
        assert (await c.complete("4", model="chain")).provider == "a"
        assert (await c.complete("5", model="chain")).provider == "a"  # closed
