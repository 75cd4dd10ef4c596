"""The open phase's deadline as one asyncio loop timer per wait (``Engine._next_open_event``).

It replaced an anyio cancel scope per event; these pin what the scope did: the
first-token and silence limits end in a typed timeout in bounded time and close the
provider, a cancellation from elsewhere stays a cancellation, a provider swallowing the
cancellation has timed out all the same, the timer cancels the task waiting *now* (a
progress report may hand the open phase to another task), and nothing is left scheduled.
Also the running-task lookup the stream's watchdog uses, and the router's kept routes.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import anyio
import pytest

from llmrelay import AsyncClient, Timeouts
from llmrelay.errors import AllProvidersFailed, ProviderTimeout, UnknownModelError
from llmrelay.types import FinishReason, Queued
from tests.unit.scripted_provider import HANG, Sleep, scripted

pytestmark = pytest.mark.anyio


def _cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


def _live_timers(within: float = 10.0) -> list[asyncio.TimerHandle]:
    """Timers still scheduled to fire within ``within`` seconds (our limits are short)."""
    loop = asyncio.get_running_loop()
    return [
        h
        for h in loop._scheduled  # type: ignore[attr-defined]
        if not h.cancelled() and h.when() < loop.time() + within
    ]


async def test_the_first_token_timeout_ends_the_wait_and_closes_the_provider() -> None:
    first, script = scripted("first", [HANG])
    timeouts = Timeouts(first_token=0.15, total=None)
    async with AsyncClient(providers=[first], timeouts=timeouts, retries=0) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ProviderTimeout) as info, anyio.fail_after(5):
            await client.open("hi", model="first")
        elapsed = asyncio.get_running_loop().time() - started
    assert info.value.kind == "first_token"
    assert 0.1 < elapsed < 3
    assert script.closed == script.started == 1
    assert _cancelling() == 0


async def test_an_answer_in_time_leaves_no_timer_and_no_cancellation() -> None:
    first, _ = scripted("first", [Sleep(0.01), "a", FinishReason("stop")])
    timeouts = Timeouts(first_token=5, total=None, stall=None)
    async with AsyncClient(providers=[first], timeouts=timeouts) as client:
        for _ in range(3):
            assert (await client.complete("hi", model="first")).text == "a"
        assert not _live_timers()
    assert _cancelling() == 0


async def test_an_outside_cancellation_in_the_open_phase_is_not_a_timeout() -> None:
    first, script = scripted("first", [HANG])
    timeouts = Timeouts(first_token=30, total=None)
    async with AsyncClient(providers=[first], timeouts=timeouts, retries=0) as client:
        with anyio.move_on_after(0.1) as scope:
            await client.open("hi", model="first")
        assert scope.cancelled_caught
        assert not _live_timers(60)
    assert script.closed == 1
    assert _cancelling() == 0


async def test_a_provider_swallowing_the_cancellation_times_out_before_content() -> None:
    base, script = scripted("stubborn", [])

    class Stubborn(base):  # type: ignore[misc,valid-type]
        async def stream(self, request: object):  # type: ignore[no-untyped-def,override]
            script.started += 1
            try:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(5)
                yield "late"
                yield FinishReason("stop")
            finally:
                script.closed += 1

    timeouts = Timeouts(first_token=0.15, total=None)
    async with AsyncClient(providers=[Stubborn], timeouts=timeouts, retries=0) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ProviderTimeout) as info, anyio.fail_after(5):
            await client.open("hi", model="stubborn")
    assert asyncio.get_running_loop().time() - started < 3
    assert info.value.kind == "first_token"
    assert script.closed == 1
    assert _cancelling() == 0


async def test_the_silence_limit_moves_on_and_a_progress_report_restarts_it(
    tmp_path: Path,
) -> None:
    quiet, _ = scripted("quiet", [HANG])
    queued, _ = scripted("queued", [Queued(2), Sleep(0.1), Queued(1), Sleep(0.1), "ok", HANG])
    backup, _ = scripted("backup", ["b", FinishReason("stop")])
    config = tmp_path / "config.toml"
    config.write_text('[aliases]\nchain = ["quiet:shared-model", "backup:shared-model"]\n')
    timeouts = Timeouts(first_token=30, silence=0.15, total=None)
    async with AsyncClient(
        providers=[quiet, queued, backup], config_path=str(config), timeouts=timeouts, retries=0
    ) as client:
        with anyio.fail_after(5):
            completion = await client.complete("hi", model="chain")
        assert completion.text == "b"
        assert [a.error_type for a in completion.attempts] == ["ProviderTimeout", None]
        # reports every 0.1 s keep a candidate within a 0.15 s silence limit
        config.write_text('[aliases]\nchain = ["queued:shared-model", "backup:shared-model"]\n')
    async with AsyncClient(
        providers=[quiet, queued, backup], config_path=str(config), timeouts=timeouts, retries=0
    ) as client:
        stream = await client.open("hi", model="chain")
        assert stream.provider == "queued"
        await stream.aclose()
    assert _cancelling() == 0


async def test_the_timer_cancels_the_task_waiting_now_not_the_one_that_began() -> None:
    """A progress report hands the open phase over: the next wait is another task's."""
    first, script = scripted("first", [Queued(3), HANG])
    timeouts = Timeouts(first_token=0.3, total=None)
    async with AsyncClient(providers=[first], timeouts=timeouts, retries=0) as client:
        stream = client.stream("hi", model="first")
        assert await asyncio.create_task(stream.advance()) == Queued(3)  # task A, done
        outcome: list[BaseException] = []

        async def task_b() -> None:
            try:
                await stream.advance()
            except BaseException as exc:
                outcome.append(exc)

        bystander = asyncio.create_task(asyncio.sleep(2))  # must not be cancelled
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(asyncio.create_task(task_b()), 5)
        assert asyncio.get_running_loop().time() - started < 2  # the limit, not wait_for's
        assert not bystander.cancelled()
        bystander.cancel()
        await stream.aclose()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ProviderTimeout), outcome
    assert script.closed == 1


async def test_a_timed_out_candidate_falls_back_to_the_next(tmp_path: Path) -> None:
    slow, slow_script = scripted("slow", [HANG])
    fast, _ = scripted("fast", ["ok", FinishReason("stop")])
    config = tmp_path / "config.toml"
    config.write_text('[aliases]\nchain = ["slow:shared-model", "fast:shared-model"]\n')
    timeouts = Timeouts(first_token=0.15, total=None, silence=None)
    async with AsyncClient(
        providers=[slow, fast], config_path=str(config), timeouts=timeouts, retries=0
    ) as client:
        with anyio.fail_after(5):
            completion = await client.complete("hi", model="chain")
        assert completion.text == "ok"
        assert [a.outcome for a in completion.attempts] == ["failed", "ok"]
    assert slow_script.closed == 1
    assert _cancelling() == 0


async def test_all_candidates_timing_out_is_all_providers_failed(tmp_path: Path) -> None:
    a, _ = scripted("a", [HANG])
    b, _ = scripted("b", [HANG])
    config = tmp_path / "config.toml"
    config.write_text('[aliases]\nchain = ["a:shared-model", "b:shared-model"]\n')
    timeouts = Timeouts(first_token=0.1, total=None, silence=None)
    async with AsyncClient(
        providers=[a, b], config_path=str(config), timeouts=timeouts, retries=0
    ) as client:
        with pytest.raises(AllProvidersFailed) as info, anyio.fail_after(5):
            await client.open("hi", model="chain")
    assert [at.error_type for at in info.value.attempts] == ["ProviderTimeout"] * 2


async def test_the_task_lookup_agrees_with_current_task() -> None:
    """``task_lookup`` reads asyncio's private ``_current_tasks`` on 3.11: this fails if
    a Python release changes what it holds."""
    from llmrelay._engine import task_lookup

    loop = asyncio.get_running_loop()
    lookup = task_lookup(loop)
    assert lookup() is asyncio.current_task()

    async def other() -> bool:
        return lookup() is asyncio.current_task() and lookup() is not None

    assert await asyncio.create_task(other())
    assert lookup() is asyncio.current_task()


async def test_a_route_is_kept_bounded_and_an_error_is_not() -> None:
    from llmrelay._router import ROUTE_CACHE

    models = tuple(f"m{i}" for i in range(ROUTE_CACHE + 5))
    first, _ = scripted("first", ["a", FinishReason("stop")], models=models)
    async with AsyncClient(providers=[first]) as client:
        router = client._engine.router
        assert client.candidates("first") == ["first:m0"]
        assert "first" in router._routes
        listed = router.resolve("first")
        listed.clear()  # the caller's list: the kept route is not touched
        assert client.candidates("first") == ["first:m0"]
        for _ in range(2):
            with pytest.raises(UnknownModelError):
                client.candidates("no-such-model")
        assert "no-such-model" not in router._routes
        for model in models:
            assert router.resolve(f"first:{model}")[0].model == model
            assert len(router._routes) <= ROUTE_CACHE
        client._engine._plugins_read({})  # the registry read its plugins
        assert not router._routes
        assert (await client.complete("hi", model="first:m7")).text == "a"
