"""Running several workers: shared state in Redis (public names).

``LLMRELAY_REDIS_URL`` makes every ``AsyncClient`` share provider cool-downs
(``RedisHealth``) and the server share its conversation states (``RedisStateStore``) and
rate limit (``RateLimiter``); ``LLMRELAY_DATABASE_URL`` puts the exchange log
(``llmrelay.log``) in another database such as PostgreSQL. Needs
``pip install 'llmrelay[scale]'``. See ``docs/deployment.md``.
"""

from ._redis import (
    REDIS_URL_ENV,
    RateLimiter,
    RedisHealth,
    RedisStateStore,
    health_from_env,
    redis_url,
)

__all__ = [
    "REDIS_URL_ENV",
    "RateLimiter",
    "RedisHealth",
    "RedisStateStore",
    "health_from_env",
    "redis_url",
]
