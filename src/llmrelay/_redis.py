"""Shared state in Redis for several workers: provider health, conversation states, rate limits.

Chosen by configuration: with ``LLMRELAY_REDIS_URL`` set (``redis://host:6379/0``), clients
share provider cool-downs and the server shares its stateless-client conversation states and
its rate limit through Redis; without it everything stays in the process. The ``redis``
package (``pip install 'llmrelay[scale]'``) is imported only when a store is created.

Every key starts with ``prefix`` (``llmrelay:`` by default) and expires by Redis's own
(wall-clock) clock, so workers on machines whose monotonic clocks differ agree:

* ``<prefix>health`` — a sorted set, member ``provider:model``, score the wall-clock
  millisecond when its cool-down ends; the set itself expires with its latest member.
* ``<prefix>state:<digest>`` — one conversation's provider states (JSON), ``SET ... PX ttl``.
* ``<prefix>rate:<who>:<window>`` — a fixed-window request counter, ``PEXPIRE`` one window.

Redis being unreachable never fails a request: health falls back to what this process
knows, a conversation state is not found (the provider starts a new conversation), and the
rate limit lets requests through; each failure is logged as a warning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _setting_table
from ._router import FORGET_AFTER, CoolDowns, Target

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "REDIS_URL_ENV",
    "RateLimiter",
    "RedisHealth",
    "RedisStateStore",
    "health_from_env",
    "redis_client",
    "redis_url",
]

REDIS_URL_ENV = "LLMRELAY_REDIS_URL"
"""Environment variable naming the shared Redis (unset: state stays in the process)."""

DEFAULT_PREFIX = "llmrelay:"
_TIMEOUT_S = 2.0
"""Socket connect/read timeout: a stalled Redis costs a request at most this much."""

RETRY_S = 1.0
"""After a failed health read, seconds before the next read is tried."""

log = logging.getLogger("llmrelay.redis")


def redis_url(env: Mapping[str, str] | None = None) -> str | None:
    """``$LLMRELAY_REDIS_URL`` or ``None`` (read by the settings layer)."""
    return _setting_table.redis_url(env)


def redis_client(url: str) -> Redis:
    """An asyncio Redis client for ``url`` (connections are opened on first use).

    Raises:
        llmrelay.errors.ConfigError: the ``redis`` package is missing or the URL is invalid.
    """
    from .errors import ConfigError

    try:
        from redis.asyncio import Redis
    except ImportError:
        raise ConfigError(
            f"{REDIS_URL_ENV} is set but the redis package is missing: "
            "pip install 'llmrelay[scale]'"
        ) from None
    try:
        client: Redis = Redis.from_url(
            url,
            socket_connect_timeout=_TIMEOUT_S,
            socket_timeout=_TIMEOUT_S,
            health_check_interval=30,
        )
    except ValueError as exc:
        raise ConfigError(f"{REDIS_URL_ENV} is not a valid Redis URL: {exc}") from None
    return client


class _Warner:
    """Logs a Redis failure once per kind until Redis answers again."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failing = False

    def failed(self, exc: BaseException) -> None:
        if not self.failing:
            self.failing = True
            log.warning("redis unavailable for %s (%s); continuing without it", self.what, exc)

    def ok(self) -> None:
        if self.failing:
            self.failing = False
            log.warning("redis available again for %s", self.what)


def _errors() -> tuple[type[BaseException], ...]:
    """What a Redis call may raise that must not fail a request.

    Everything but cancellation: besides ``RedisError`` and ``OSError``, a client used
    from another event loop raises ``RuntimeError``; shared state is advisory, so any of
    them means "go on without Redis" (logged once).
    """
    return (Exception,)


class RedisHealth(CoolDowns):
    """``HealthStore`` shared by every client that uses the same Redis.

    ``failed`` (synchronous, called by the router) records the cool-down in this process at
    once and writes it to Redis in the background; ``refresh()`` (awaited by the engine
    before it orders candidates) merges the cool-downs other workers wrote. ``flush()``
    waits for the background writes; ``aclose()`` flushes and closes the connections.

    The half-open probe (``llmrelay._router``) is shared too: a failure stays in the set
    after its cool-down ends (``suspect``) until a worker sees the candidate answer
    (``recovered``: removed) or ``FORGET_AFTER`` passes; ``claim_probe`` takes the one
    probe for every worker with ``SET key NX PX`` (a lease), and falls back to this
    process's own claim when Redis cannot be reached. ``cooling`` and ``suspect`` read
    this process's copy (as of the last ``refresh``).

    Args:
        redis: an asyncio ``redis.asyncio.Redis`` client or a Redis URL.
        prefix: key prefix (several deployments can share one Redis).
        owns_client: close ``redis`` in ``aclose()`` (default: when made from a URL).
    """

    def __init__(
        self, redis: Redis | str, *, prefix: str = DEFAULT_PREFIX, owns_client: bool | None = None
    ) -> None:
        self._owns = isinstance(redis, str) if owns_client is None else owns_client
        self._redis = redis_client(redis) if isinstance(redis, str) else redis
        self._key = prefix + "health"
        self._until: dict[Target, float] = {}
        self._probes: dict[Target, float] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._refreshing: asyncio.Task[None] | None = None
        self._retry_at = 0.0  # after a failed read, the next one waits until then
        self._warn = _Warner("provider health")

    def __repr__(self) -> str:
        return f"<RedisHealth key={self._key!r}>"

    def failed(self, target: Target, until: float) -> None:
        """Cool ``target`` down until ``until`` (monotonic) here and, soon, in Redis."""
        if until > self._until.get(target, 0.0):
            self._until[target] = until
        self._probes.pop(target, None)
        remaining = until - time.monotonic()
        if remaining <= 0:
            return
        self._background(self._write(str(target), remaining))

    def _background(self, work: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (never the case inside the engine): local only
            work.close()
            return
        task = loop.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def claim_probe(self, target: Target, lease: float) -> bool:
        """Take the one probe of ``target`` for every worker, for ``lease`` seconds."""
        now = time.monotonic()
        try:
            taken = await self._redis.set(
                self._probe_key(str(target)), "1", nx=True, px=max(1, int(lease * 1000))
            )
        except _errors() as exc:
            self._warn.failed(exc)
            if self._probes.get(target, 0.0) > now:
                return False
            self._probes[target] = now + lease
            return True
        self._warn.ok()
        return bool(taken)

    def recovered(self, target: Target) -> None:
        """It answered: forget the failure here and, soon, in Redis (the probe too)."""
        self._until.pop(target, None)
        self._probes.pop(target, None)
        self._background(self._forget(str(target)))

    def _probe_key(self, member: str) -> str:
        return f"{self._key}:probe:{member}"

    async def _forget(self, member: str) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self._key, member)
                pipe.delete(self._probe_key(member))
                await pipe.execute()
        except _errors() as exc:
            self._warn.failed(exc)
        else:
            self._warn.ok()

    async def _write(self, member: str, remaining: float) -> None:
        now_ms = int(time.time() * 1000)
        until_ms = now_ms + math.ceil(remaining * 1000)
        forget_ms = int(FORGET_AFTER * 1000)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(self._key, {member: until_ms}, gt=True)
                pipe.zremrangebyscore(self._key, "-inf", now_ms - forget_ms)
                pipe.delete(self._probe_key(member))  # the probe (if it was one) is over
                # the set lives as long as its latest member is remembered
                pipe.pexpireat(self._key, until_ms + forget_ms, gt=True)
                pipe.pexpireat(self._key, until_ms + forget_ms, nx=True)
                await pipe.execute()
        except _errors() as exc:
            self._warn.failed(exc)
        else:
            self._warn.ok()

    async def refresh(self) -> None:
        """Merge the cool-downs recorded in Redis (concurrent callers share one read).

        After a failed read, reads pause for ``RETRY_S`` seconds (requests then go by what
        this process knows), so a stalled Redis does not cost every request a timeout.
        """
        if time.monotonic() < self._retry_at:
            return
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = asyncio.get_running_loop().create_task(self._read())
        await asyncio.shield(task)

    async def _read(self) -> None:
        now_ms = int(time.time() * 1000)
        since = now_ms - int(FORGET_AFTER * 1000)
        try:
            rows: list[Any] = list(
                await self._redis.zrangebyscore(self._key, since + 1, "+inf", withscores=True)
            )
        except _errors() as exc:
            self._warn.failed(exc)
            self._retry_at = time.monotonic() + RETRY_S
            return
        self._warn.ok()
        mono = time.monotonic()
        for raw, score in rows:
            member = raw.decode() if isinstance(raw, bytes) else str(raw)
            provider, sep, model = member.partition(":")
            if not sep:
                continue
            target = Target(provider, model)
            until = mono + (float(score) - now_ms) / 1000.0
            if until > self._until.get(target, 0.0):
                self._until[target] = until

    async def flush(self) -> None:
        """Wait until every cool-down recorded so far has been written to Redis."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def aclose(self) -> None:
        """Flush, then close the connections (when this store made them)."""
        await self.flush()
        task = self._refreshing
        if task is not None and not task.done():
            await asyncio.gather(task, return_exceptions=True)
        if self._owns:
            await self._redis.aclose()


def health_from_env(env: Mapping[str, str] | None = None) -> RedisHealth | None:
    """A ``RedisHealth`` for ``$LLMRELAY_REDIS_URL``, or ``None`` when it is unset.

    Raises:
        llmrelay.errors.ConfigError: the URL is set but unusable (package missing, invalid).
    """
    url = redis_url(env)
    return RedisHealth(url) if url else None


class RedisStateStore:
    """The server's ``StateStore`` in Redis: one key per remembered turn, ``ttl`` seconds.

    Args:
        redis: an asyncio Redis client or a Redis URL.
        ttl: seconds a remembered state stays valid.
        prefix: key prefix.
        max_bytes: states larger than this (as JSON) are not stored.
    """

    def __init__(
        self,
        redis: Redis | str,
        *,
        ttl: float = 3600.0,
        prefix: str = DEFAULT_PREFIX,
        max_bytes: int = 1024 * 1024,
    ) -> None:
        self._owns = isinstance(redis, str)
        self._redis = redis_client(redis) if isinstance(redis, str) else redis
        self._prefix = prefix + "state:"
        self._ttl_ms = max(1, int(ttl * 1000))
        self._max = max_bytes
        self._warn = _Warner("conversation states")

    def __repr__(self) -> str:
        return f"<RedisStateStore prefix={self._prefix!r}>"

    async def get(self, key: str) -> Mapping[str, Any] | None:
        """The states stored under ``key``, or ``None`` (missing, expired, damaged, no Redis)."""
        try:
            blob = await self._redis.get(self._prefix + key)
        except _errors() as exc:
            self._warn.failed(exc)
            return None
        self._warn.ok()
        if blob is None or len(blob) > self._max:
            return None
        try:
            value = json.loads(blob)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def put(self, key: str, states: Mapping[str, Any]) -> None:
        """Store ``states`` under ``key`` for ``ttl`` seconds (dropped when too large)."""
        blob = json.dumps(states, separators=(",", ":"))
        if len(blob) > self._max:
            log.warning(
                "conversation state of %d bytes not stored (limit %d)", len(blob), self._max
            )
            return
        try:
            await self._redis.set(self._prefix + key, blob, px=self._ttl_ms)
        except _errors() as exc:
            self._warn.failed(exc)
        else:
            self._warn.ok()

    async def aclose(self) -> None:
        """Close the connections (when this store made them)."""
        if self._owns:
            await self._redis.aclose()


class RateLimiter:
    """A fixed-window request limit shared through Redis: ``limit`` per ``window`` seconds.

    Args:
        redis: an asyncio Redis client or a Redis URL.
        limit: requests allowed per window and caller.
        window: window length in seconds.
        prefix: key prefix.
    """

    def __init__(
        self, redis: Redis | str, limit: int, window: float = 60.0, *, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self._owns = isinstance(redis, str)
        self._redis = redis_client(redis) if isinstance(redis, str) else redis
        self._prefix = prefix + "rate:"
        self.limit = max(1, limit)
        self._window_ms = max(1, int(window * 1000))
        self._warn = _Warner("the rate limit")

    async def hit(self, who: str) -> float | None:
        """Count a request of ``who``: ``None`` if allowed, else seconds to the next window."""
        now_ms = int(time.time() * 1000)
        window = now_ms // self._window_ms
        key = f"{self._prefix}{who}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.pexpire(key, self._window_ms, nx=True)
                count, _ = await pipe.execute()
        except _errors() as exc:
            self._warn.failed(exc)
            return None
        self._warn.ok()
        if int(count) <= self.limit:
            return None
        return ((window + 1) * self._window_ms - now_ms) / 1000.0

    async def aclose(self) -> None:
        """Close the connections (when this limiter made them)."""
        if self._owns:
            await self._redis.aclose()
