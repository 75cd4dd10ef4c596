"""RedisHealth, RedisStateStore and RateLimiter against a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

import llmrelay
from llmrelay import errors
from llmrelay._router import FORGET_AFTER, PROBE_LEASE, Target
from llmrelay.scale import RateLimiter, RedisHealth, RedisStateStore
from tests.unit.scripted_provider import scripted

pytestmark = pytest.mark.anyio

TOML = '[aliases]\npair = ["flaky:shared-model", "steady:shared-model"]\n'


def _client(tmp_path, health=None, **kw):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(TOML)
    return llmrelay.AsyncClient(config_path=str(path), health=health, **kw)


async def test_cooldown_written_by_one_health_is_seen_by_another(redis_url: str) -> None:
    one, two = RedisHealth(redis_url), RedisHealth(redis_url)
    target = Target("flaky", "m:with:colons")
    try:
        one.failed(target, time.monotonic() + 30)
        assert one.cooling(target, time.monotonic())  # at once, locally
        assert not two.cooling(target, time.monotonic())
        await one.flush()
        await two.refresh()
        assert two.cooling(target, time.monotonic())
        assert not two.cooling(Target("flaky", "m"), time.monotonic())
        # wall-clock expiry: the sorted set holds the end as epoch milliseconds and expires
        raw = aioredis.Redis.from_url(redis_url)
        score = await raw.zscore("llmrelay:health", "flaky:m:with:colons")
        assert score is not None
        assert abs(score / 1000 - (time.time() + 30)) < 2
        ttl = await raw.pttl("llmrelay:health")  # kept FORGET_AFTER past its end (half-open)
        assert 25_000 + FORGET_AFTER * 1000 < ttl <= 30_000 + FORGET_AFTER * 1000
        await raw.aclose()
    finally:
        await one.aclose()
        await two.aclose()


async def test_expired_cooldowns_are_not_read_back(redis_url: str) -> None:
    one, two = RedisHealth(redis_url), RedisHealth(redis_url)
    target = Target("flaky", "m")
    try:
        one.failed(target, time.monotonic() + 0.05)
        await one.flush()
        deadline = time.monotonic() + 5
        while one.cooling(target, time.monotonic()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await two.refresh()
        assert not two.cooling(target, time.monotonic())
    finally:
        await one.aclose()
        await two.aclose()


async def test_two_clients_share_a_cooldown_through_redis(tmp_path, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    flaky, flaky_script = scripted(
        "flaky", [errors.ProviderUnavailable("down", provider="flaky", model="shared-model")]
    )
    steady, _ = scripted("steady", ["hello", llmrelay.types.FinishReason("stop")])
    h1, h2 = RedisHealth(redis_url), RedisHealth(redis_url)
    a = _client(tmp_path, h1, providers=[flaky, steady], retries=0)
    b = _client(tmp_path, h2, providers=[flaky, steady], retries=0)
    try:
        first = await a.complete("hi", model="pair")
        assert first.text == "hello"
        assert [x.outcome for x in first.attempts] == ["failed", "ok"]
        await h1.flush()
        second = await b.complete("hi", model="pair")
        assert [(x.provider, x.outcome) for x in second.attempts] == [("steady", "ok")]
        assert len(flaky_script.received) == 1  # the other client never tried it
    finally:
        await a.aclose()
        await b.aclose()
        await h1.aclose()
        await h2.aclose()


async def test_one_probe_for_every_worker_then_the_circuit_closes_for_all(redis_url: str) -> None:
    one, two = RedisHealth(redis_url), RedisHealth(redis_url)
    target = Target("flaky", "m")
    try:
        one.failed(target, time.monotonic() + 0.05)
        await one.flush()
        await asyncio.sleep(0.1)
        await two.refresh()
        now = time.monotonic()
        assert not two.cooling(target, now)
        assert two.suspect(target, now)
        claims = await asyncio.gather(
            one.claim_probe(target, PROBE_LEASE), two.claim_probe(target, PROBE_LEASE)
        )
        assert sorted(claims) == [False, True]  # one probe among the workers
        one.recovered(target)  # the probe answered
        await one.flush()
        fresh = RedisHealth(redis_url)
        await fresh.refresh()
        assert not fresh.suspect(target, time.monotonic())
        await fresh.aclose()
        assert await one.claim_probe(target, PROBE_LEASE)  # the probe lease went with it
    finally:
        await one.aclose()
        await two.aclose()


async def test_client_uses_redis_from_the_environment(
    tmp_path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LLMRELAY_REDIS_URL", redis_url)
    flaky, _ = scripted(
        "flaky", [errors.ProviderUnavailable("down", provider="flaky", model="shared-model")]
    )
    steady, _ = scripted("steady", ["hello", llmrelay.types.FinishReason("stop")])
    a = _client(tmp_path, providers=[flaky, steady])
    try:
        await a.complete("hi", model="pair")
    finally:
        await a.aclose()  # flushes the pending write and closes its connections
    raw = aioredis.Redis.from_url(redis_url)
    try:
        assert await raw.zscore("llmrelay:health", "flaky:shared-model") is not None
    finally:
        await raw.aclose()


async def test_unreachable_redis_costs_no_request(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    from tests.scaleout.servers import free_port

    health = RedisHealth(f"redis://127.0.0.1:{free_port()}/0")
    flaky, _ = scripted(
        "flaky", [errors.ProviderUnavailable("down", provider="flaky", model="shared-model")]
    )
    steady, _ = scripted("steady", ["hello", llmrelay.types.FinishReason("stop")])
    client = _client(tmp_path, health, providers=[flaky, steady])
    try:
        assert (await client.complete("hi", model="pair")).text == "hello"
        # the local cool-down still holds: the second call goes to steady first
        second = await client.complete("hi", model="pair")
        assert [x.provider for x in second.attempts] == ["steady"]
    finally:
        await client.aclose()
        await health.aclose()
    assert "redis unavailable for provider health" in caplog.text


async def test_state_store_round_trip_and_expiry(redis_url: str) -> None:
    store = RedisStateStore(redis_url, ttl=0.2)
    try:
        assert await store.get("k") is None
        await store.put("k", {"ai2": {"parent": "x"}})
        assert await store.get("k") == {"ai2": {"parent": "x"}}
        other = RedisStateStore(redis_url)
        assert await other.get("k") == {"ai2": {"parent": "x"}}  # another worker sees it
        await other.aclose()
        deadline = time.monotonic() + 5
        while await store.get("k") is not None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        await store.aclose()


async def test_state_store_ignores_damaged_and_oversized_values(redis_url: str) -> None:
    store = RedisStateStore(redis_url, max_bytes=100)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.set("llmrelay:state:bad", b"{not json")
        await raw.set("llmrelay:state:list", b"[1]")
        assert await store.get("bad") is None
        assert await store.get("list") is None
        await store.put("big", {"x": "y" * 200})
        assert await raw.exists("llmrelay:state:big") == 0
    finally:
        await raw.aclose()
        await store.aclose()


async def test_rate_limiter_is_shared(redis_url: str) -> None:
    one, two = RateLimiter(redis_url, 3, 60), RateLimiter(redis_url, 3, 60)
    try:
        assert [await one.hit("a"), await two.hit("a"), await one.hit("a")] == [None] * 3
        wait = await two.hit("a")
        assert wait is not None
        assert 0 < wait <= 60
        assert await one.hit("b") is None  # per caller
    finally:
        await one.aclose()
        await two.aclose()


async def test_unreachable_redis_loses_states_and_limits_but_fails_nothing(caplog) -> None:  # type: ignore[no-untyped-def]
    from tests.scaleout.servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    store, limiter = RedisStateStore(url), RateLimiter(url, 1, 60)
    try:
        await store.put("k", {"a": 1})
        assert await store.get("k") is None
        assert [await limiter.hit("a") for _ in range(3)] == [None] * 3  # fails open
    finally:
        await store.aclose()
        await limiter.aclose()
    assert "redis unavailable for conversation states" in caplog.text
    assert "redis unavailable for the rate limit" in caplog.text
