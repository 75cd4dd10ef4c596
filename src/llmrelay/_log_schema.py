"""Schema and migrations of the exchange log, in SQLAlchemy Core (SQLite and PostgreSQL alike).

Each migration is a named function run once inside the migrating transaction; the
``_migrations`` table records the names applied (as simonw/llm's ``migrations.py`` does). A
migration's tables are defined inside it, frozen: a later schema change is a new migration,
never an edit of an old one. ``current_tables()`` describes the schema after the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    text,
)
from sqlalchemy.exc import OperationalError

__all__ = ["MIGRATIONS", "current_tables", "has_fts", "migrate"]


def _v1(metadata: MetaData) -> tuple[Table, Table]:
    conversations = Table(
        "conversations",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("name", Text),
        Column("model", Text),
        Column("data", Text, nullable=False),  # llmrelay.Conversation.to_dict() as JSON
        Column("created_utc", String(32), nullable=False),
        Column("updated_utc", String(32), nullable=False),
    )
    exchanges = Table(
        "exchanges",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("conversation_id", String(64), index=True),
        Column("datetime_utc", String(32), nullable=False),
        Column("prompt", Text, nullable=False),
        Column("system", Text),
        Column("answer", Text, nullable=False),
        Column("model_requested", Text),
        Column("provider", Text),
        Column("model", Text),
        Column("attempts", Text),  # JSON list of {provider, model, outcome, error_type, message}
        Column("first_token_ms", Integer),
        Column("duration_ms", Integer),
        Column("prompt_tokens", Integer),
        Column("completion_tokens", Integer),
        Column("total_tokens", Integer),
        Column("finish_reason", Text),
        Column("error_type", Text),
        Column("error", Text),
    )
    return conversations, exchanges


def m001_initial(conn: Connection) -> None:
    """Conversations and exchanges."""
    metadata = MetaData()
    _v1(metadata)
    metadata.create_all(conn)


_FTS = (
    "CREATE VIRTUAL TABLE exchanges_fts USING fts5("
    "prompt, system, answer, content='exchanges', content_rowid='id')",
    "CREATE TRIGGER exchanges_fts_ai AFTER INSERT ON exchanges BEGIN "
    "INSERT INTO exchanges_fts(rowid, prompt, system, answer) "
    "VALUES (new.id, new.prompt, new.system, new.answer); END",
    "CREATE TRIGGER exchanges_fts_ad AFTER DELETE ON exchanges BEGIN "
    "INSERT INTO exchanges_fts(exchanges_fts, rowid, prompt, system, answer) "
    "VALUES ('delete', old.id, old.prompt, old.system, old.answer); END",
    "CREATE TRIGGER exchanges_fts_au AFTER UPDATE ON exchanges BEGIN "
    "INSERT INTO exchanges_fts(exchanges_fts, rowid, prompt, system, answer) "
    "VALUES ('delete', old.id, old.prompt, old.system, old.answer); "
    "INSERT INTO exchanges_fts(rowid, prompt, system, answer) "
    "VALUES (new.id, new.prompt, new.system, new.answer); END",
    "INSERT INTO exchanges_fts(exchanges_fts) VALUES ('rebuild')",
)


def m002_sqlite_fts(conn: Connection) -> None:
    """Full-text index of prompt, system and answer (SQLite FTS5; other databases use LIKE)."""
    if conn.dialect.name != "sqlite":
        return
    try:
        with conn.begin_nested():
            for statement in _FTS:
                conn.execute(text(statement))
    except OperationalError:  # an SQLite built without FTS5: search falls back to LIKE
        return


def m003_exchange_uid(conn: Connection) -> None:
    """A unique ``uid`` per exchange, so a retried or replayed write never adds a row twice.

    Rows written before have ``NULL`` (a unique index allows several NULLs in SQLite and
    PostgreSQL alike).
    """
    conn.execute(text("ALTER TABLE exchanges ADD COLUMN uid VARCHAR(32)"))
    conn.execute(text("CREATE UNIQUE INDEX ix_exchanges_uid ON exchanges (uid)"))


MIGRATIONS: tuple[tuple[str, Callable[[Connection], None]], ...] = (
    ("m001_initial", m001_initial),
    ("m002_sqlite_fts", m002_sqlite_fts),
    ("m003_exchange_uid", m003_exchange_uid),
)


def current_tables() -> tuple[Table, Table]:
    """``(conversations, exchanges)`` as the last migration leaves them."""
    conversations, exchanges = _v1(MetaData())
    exchanges.append_column(Column("uid", String(32), unique=True))
    return conversations, exchanges


def _migrations_table() -> Table:
    return Table(
        "_migrations",
        MetaData(),
        Column("name", String(100), primary_key=True),
        Column("applied_utc", String(32), nullable=False),
    )


def migrate(conn: Connection) -> list[str]:
    """Apply the migrations not yet recorded, in order; return their names.

    Call inside a transaction that serialises writers (SQLite ``BEGIN IMMEDIATE``; on
    PostgreSQL an advisory transaction lock is taken here), so concurrent first runs
    migrate once.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7404281537)"))
    table = _migrations_table()
    table.create(conn, checkfirst=True)
    done = set(conn.execute(select(table.c.name)).scalars())
    applied = []
    for name, function in MIGRATIONS:
        if name in done:
            continue
        function(conn)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        conn.execute(insert(table).values(name=name, applied_utc=now))
        applied.append(name)
    return applied


def has_fts(conn: Connection) -> bool:
    """Whether the SQLite full-text index exists."""
    if conn.dialect.name != "sqlite":
        return False
    row = conn.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'exchanges_fts'")
    ).first()
    return row is not None
