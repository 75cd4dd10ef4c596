"""Session-wide real Redis and PostgreSQL servers (skipped with the reason when absent)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scaleout.servers import (
    Postgres,
    postgres_server,
    postgres_skip_reason,
    redis_binary,
    redis_server,
)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    if redis_binary() is None:
        pytest.skip("redis-server not found: bash scripts/setup_system.sh installs it")
    with redis_server() as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_server_url) as client:
        client.flushdb()
    return redis_server_url


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    reason = postgres_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """The session's PostgreSQL database, emptied of llmrelay's tables for this test."""
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=postgres.port, user="llmrelay", dbname="llmrelay", autocommit=True
    ) as conn:
        conn.execute("DROP TABLE IF EXISTS exchanges, conversations, responses, _migrations")
    return postgres.url
