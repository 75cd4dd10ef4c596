"""What several server workers share, chosen by configuration.

* ``LLMRELAY_REDIS_URL``: the stateless-client conversation states live in Redis
  (``llmrelay._redis.RedisStateStore``) and, when ``ServerConfig.rate_limit`` is set, the
  rate limit is counted there; the client's provider health is shared too (the
  ``AsyncClient`` reads the same variable). Unset: everything stays in the process.
* ``LLMRELAY_DATABASE_URL``: every chat exchange is written to the exchange log
  (``llmrelay.log.ExchangeLog``, the CLI's schema and migrations; PostgreSQL with
  ``postgresql+psycopg://...``). Unset: the server logs no exchanges.

Log writes run in worker threads after the answer went out; a failing database costs a
warning, never an answer, and at most ``MAX_PENDING`` writes wait (later ones are dropped
with a warning).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.to_thread

__all__ = [
    "MAX_PENDING",
    "ExchangeWriter",
    "RateLimit",
    "check_shared_config",
]

MAX_PENDING = 1000

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


class ExchangeWriter:
    """Writes ``LogEntry`` rows to an ``ExchangeLog`` from worker threads.

    Args:
        url: SQLAlchemy URL of the log database.
    """

    def __init__(self, url: str) -> None:
        from llmrelay.log import ExchangeLog

        self.log = ExchangeLog(url)
        self._limiter = anyio.CapacityLimiter(4)
        self._pending = 0
        self._failing = False

    def __repr__(self) -> str:
        return f"<ExchangeWriter {self.log.display_url}>"

    async def open(self) -> None:
        """Connect and migrate now, so a bad URL shows at startup (raises ``LogError``)."""
        await anyio.to_thread.run_sync(self.log.migrate)

    async def write(self, entry: Any) -> None:
        """Log ``entry`` (a ``LogEntry``); failures are logged, never raised."""
        from llmrelay.log import LogError

        if self._pending >= MAX_PENDING:
            log.warning("exchange log: %d writes pending; one exchange not logged", self._pending)
            return
        self._pending += 1
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.log.add, entry, limiter=self._limiter)
        except LogError as exc:
            if not self._failing:
                log.warning("exchange log: %s", exc)
            self._failing = True
        else:
            self._failing = False
        finally:
            self._pending -= 1

    async def aclose(self) -> None:
        """Release the database connections."""
        await anyio.to_thread.run_sync(self.log.close)


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
