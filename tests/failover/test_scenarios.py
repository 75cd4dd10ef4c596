"""Each failoverbench scenario against llmrelay, as a library and as a server (short timings).

The fault wall answers in a few seconds (``fault_wall.SHORT``); llmrelay runs with
timeouts scaled alike (silence and stall bounds of 0.4 s, first token 3 s) and its
default retries, cool-down and rescue. Every scenario must score ``pass``; the
catalogue's real timings are run by ``benchmarks/failover.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import llmrelay
from tests.failover.harness import IDS, Library, Server, System, config_file, run_scenario
from tests.fakes.fault_wall import SHORT, FaultWall, fault_wall

pytestmark = pytest.mark.anyio

TIMEOUTS = llmrelay.Timeouts(connect=2, first_token=3, silence=0.4, stall=0.4)


@pytest.fixture(scope="module")
def wall() -> Iterator[FaultWall]:
    with fault_wall(SHORT) as running:
        yield running


@pytest.fixture(scope="module")
def config(wall: FaultWall, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return config_file(tmp_path_factory.mktemp("failover"), wall)


@pytest.fixture(params=["library", "server"])
async def system(request: pytest.FixtureRequest, config: Path) -> AsyncIterator[System]:
    made: System = (Library if request.param == "library" else Server)(config, timeouts=TIMEOUTS)
    try:
        yield made
    finally:
        await made.aclose()


@pytest.mark.parametrize("sid", IDS)
async def test_scenario_passes(system: System, wall: FaultWall, sid: str) -> None:
    result = await run_scenario(system, wall, sid, sequence=(12, 0.25))
    assert result.verdict == "pass", result.line() + f" {result.checks}"


async def test_s10_strict_keeps_the_error_and_the_skip_is_recorded(
    config: Path, wall: FaultWall
) -> None:
    strict = Library(config, timeouts=TIMEOUTS, strict=True)
    try:
        call = await strict.call("wall:s10")
    finally:
        await strict.aclose()
    assert not call.ok
    assert "not valid JSON" in (call.error or "")
    async with llmrelay.AsyncClient(config_path=str(config), timeouts=TIMEOUTS) as client:
        stream = client.stream("hi", model="wall:s10")
        completion = await stream.collect()
    assert stream.skipped == 1
    assert "skipped 1 unparsable event" in (completion.attempts[-1].message or "")


async def test_the_server_relays_the_provider_code_and_counts_skipped_events(
    config: Path, wall: FaultWall
) -> None:
    server = Server(config, timeouts=TIMEOUTS)
    try:
        for model, code in (
            ("wall:s12", "context_length_exceeded"),
            ("s13", "content_policy_violation"),
        ):
            call = await server.call(model)
            assert (call.ok, call.code) == (False, code)
            assert call.error
            assert call.error.startswith("HTTP 400")
        assert (await server.call("wall:s10")).ok
        metrics = (await server.http.get("/metrics")).text
    finally:
        await server.aclose()
    skipped = [
        line
        for line in metrics.splitlines()
        if line.startswith("llmrelay_server_skipped_events_total")
    ]
    assert skipped
    assert float(skipped[0].rsplit(" ", 1)[1]) == 1
