"""What several server workers share, chosen by configuration.

* ``LLMRELAY_REDIS_URL``: the stateless-client conversation states live in Redis
  (``llmrelay._redis.RedisStateStore``) and, when ``ServerConfig.rate_limit`` is set, the
  rate limit is counted there; the client's provider health is shared too (the
  ``AsyncClient`` reads the same variable). Unset: everything stays in the process.
* ``LLMRELAY_DATABASE_URL``: every chat exchange is written to the exchange log
  (``llmrelay.log.ExchangeLog``, the CLI's schema and migrations; PostgreSQL with
  ``postgresql+psycopg://...``). Unset: the server logs no exchanges.

Log writes go through ``llmrelay.log.LogWriter`` (a bounded queue and one writer thread,
batched, spilled to a local file past its bound): an answer never waits on the database.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "RateLimit",
    "check_shared_config",
]


log = logging.getLogger("llmrelay.server")


def check_shared_config() -> None:
    """Check ``LLMRELAY_REDIS_URL`` and ``LLMRELAY_DATABASE_URL`` before serving.

    The Redis URL is parsed (and the ``redis`` package imported); the database is connected
    to and migrated. Redis itself is not contacted: workers run without it.

    Raises:
        llmrelay.errors.ConfigError: a missing package or an invalid Redis URL.
        llmrelay.log.LogError: the log database is not usable.
    """
    from llmrelay.settings import database_url, redis_url

    url = redis_url()
    if url:
        from llmrelay.scale import RedisStateStore

        RedisStateStore(url)  # parses the URL; connects on first use only
    database = database_url()
    if database:
        from llmrelay.log import ExchangeLog

        with ExchangeLog(database) as log:
            log.migrate()


class RateLimit:
    """Per-caller request limit: shared through Redis, or counted in this process.

    Args:
        limit: requests per ``window`` seconds and caller.
        window: window length in seconds.
        redis_url: the shared Redis, or ``None`` for a per-process count.
    """

    def __init__(self, limit: int, window: float, redis_url: str | None) -> None:
        import time

        self._clock = time.time
        self.limit = max(1, limit)
        self.window = max(0.001, window)
        self._shared: Any = None
        if redis_url:
            from llmrelay.scale import RateLimiter

            self._shared = RateLimiter(redis_url, self.limit, self.window)
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, who: str) -> float | None:
        """Count a request of ``who``: ``None`` if allowed, else seconds to wait."""
        if self._shared is not None:
            wait: float | None = await self._shared.hit(who)
            return wait
        now = self._clock()
        window = int(now // self.window)
        if len(self._counts) > 10_000:
            self._counts = {k: v for k, v in self._counts.items() if k[1] == window}
        count = self._counts.get((who, window), 0) + 1
        self._counts[(who, window)] = count
        if count <= self.limit:
            return None
        return (window + 1) * self.window - now

    async def aclose(self) -> None:
        """Close the Redis connections, if any."""
        if self._shared is not None:
            await self._shared.aclose()
