"""The benchmarks' raw loops for the live-state providers read the answer llmrelay reads.

``benchmarks/_common.py`` repeats one recorded llmrelay stream with plain httpx, learning
the per-request state (Replicate's stream URL, h2o's cookie and conversation id) from
the answers (and the same with aiohttp, the fast transport's baseline). A wrong raw loop
would make every ratio meaningless, so each one's text is
checked against llmrelay's and the fake's script here (fakes served in a thread).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _common as c
import llmrelay
from tests.fakes._server import serve

TOKENS = 25


@pytest.mark.parametrize("name", ["replicate", "ai2", "h2o"])
def test_the_live_raw_loop_reads_the_same_text_as_llmrelay(name: str) -> None:
    scenario = next(s for s in c.live_scenarios() if s.name == name)
    assert scenario.live is not None
    rec = c.record(scenario, TOKENS)
    fake = scenario.make_fake()
    fake.ok()
    scenario.scale(fake, TOKENS)

    async def run(url: str) -> tuple[list[str], list[str]]:
        async with httpx.AsyncClient(trust_env=False) as http:
            raw = [delta async for delta in c.raw_deltas(http, url, rec)]
        async with c.aiohttp_session() as session:
            raw_aiohttp = [delta async for delta in c.raw_deltas_aiohttp(session, url, rec)]
        assert raw_aiohttp == raw
        async with llmrelay.AsyncClient(**rec.client_kwargs(url)) as client:
            ours = [
                e
                async for e in client.stream(c.PROMPT, model=scenario.model_name)
                if type(e) is str
            ]
        return raw, ours

    with serve(fake.app) as url:
        raw, ours = asyncio.run(run(url))
        with httpx.Client(trust_env=False) as http:
            raw_sync = list(c.raw_deltas_sync(http, url, rec))
    expected = "".join(c.make_chunks(TOKENS))
    assert "".join(raw) == "".join(ours) == "".join(raw_sync) == expected
    assert len(raw) == TOKENS
