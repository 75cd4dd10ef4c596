"""The CLI's exchange log (``llmrelay.log``) on a real PostgreSQL: same schema, same migrations."""

from __future__ import annotations

import threading

import psycopg
import pytest

from llmrelay.log import ExchangeLog, LogEntry, LogError
from tests.scaleout.servers import Postgres, free_port


def _connect(postgres: Postgres) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=postgres.port, user="llmrelay", dbname="llmrelay", autocommit=True
    )


def test_migrations_run_once_even_from_concurrent_first_users(
    pg_url: str, postgres: Postgres
) -> None:
    failures: list[BaseException] = []
    # SQLAlchemy imported from several threads at once can fail with a partially
    # initialised module (ImportError): import it here first, as the server does at startup
    ExchangeLog.preload()

    def first_use() -> None:
        try:
            with ExchangeLog(pg_url) as log:
                log.migrate()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    with _connect(postgres) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    # m002 is SQLite's full-text index: recorded, a no-op on PostgreSQL
    assert names == ["m001_initial", "m002_sqlite_fts", "m003_exchange_uid"]
    assert tables == {"_migrations", "conversations", "exchanges"}


def test_entries_round_trip_search_and_conversations(pg_url: str) -> None:
    with ExchangeLog(pg_url) as log:
        assert log.path is None
        first = LogEntry(
            prompt="100% sure_thing",
            answer="Grüße ✓",
            conversation_id="c1",
            attempts=[{"provider": "a", "model": "m", "outcome": "failed"}],
            usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        )
        row = log.add(first, conversation={"id": "c1", "messages": []}, conversation_name="n")
        log.add(LogEntry(prompt="100 percent", answer="b", conversation_id="c1"))
        log.add(
            LogEntry(prompt="other", answer="c", conversation_id="c2"), conversation={"id": "c2"}
        )
        assert row > 0
        assert [e.prompt for e in log.entries(limit=None)] == [
            "100% sure_thing",
            "100 percent",
            "other",
        ]
        # LIKE search (no FTS on PostgreSQL) with % and _ taken literally
        assert [e.prompt for e in log.entries(query="100%")] == ["100% sure_thing"]
        assert [e.prompt for e in log.entries(query="e_t")] == ["100% sure_thing"]
        assert [e.answer for e in log.entries(query="grüße")] == ["Grüße ✓"]
        got = log.entries(conversation_id="c1", limit=1)[0]
        assert got.prompt == "100 percent"
        back = log.entries(query="sure")[0]
        assert back.usage == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        assert back.attempts == [{"provider": "a", "model": "m", "outcome": "failed"}]
        assert log.latest_conversation_id() == "c2"
        assert log.conversation("c1") == {"id": "c1", "messages": []}
        log.add(
            LogEntry(prompt="p", answer="a", conversation_id="c1"),
            conversation={"id": "c1", "v": 2},
        )
        assert log.conversation("c1") == {"id": "c1", "v": 2}


def test_concurrent_writers_lose_no_row(pg_url: str) -> None:
    with ExchangeLog(pg_url) as log:
        log.migrate()

    def writer(n: int) -> None:
        with ExchangeLog(pg_url) as log:
            for i in range(20):
                log.add(LogEntry(prompt=f"w{n}-{i}", answer="a"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with ExchangeLog(pg_url) as log:
        assert sorted(e.prompt for e in log.entries(limit=None)) == sorted(
            f"w{n}-{i}" for n in range(5) for i in range(20)
        )


def test_unreachable_database_is_a_log_error_without_the_password() -> None:
    url = f"postgresql+psycopg://user:s3cret-pw@127.0.0.1:{free_port()}/x"
    with ExchangeLog(url) as log, pytest.raises(LogError) as info:
        log.migrate()
    assert "s3cret-pw" not in str(info.value)
    assert "not usable" in str(info.value)
