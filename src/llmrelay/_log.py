"""The exchange log: every chat turn, and each conversation's state, in a database.

SQLite by default (``<user dir>/logs.db``, see ``llmrelay.keys.user_dir()``: ``LLMRELAY_HOME``
or the platformdirs user data dir), any SQLAlchemy URL through ``LLMRELAY_DATABASE_URL`` (e.g.
``postgresql+psycopg://host/llmrelay``): one schema and one list of migrations
(``_log_schema``) for both. SQLite runs in WAL mode with a busy timeout and serialised writes
(``BEGIN IMMEDIATE``), so several processes can log at once without losing a row.
PostgreSQL connections (psycopg) get short bounds unless the URL sets them: a 5 s connect
timeout, TCP keep-alives and a 15 s ``tcp_user_timeout`` (a partitioned database fails the
write instead of holding it), and 15 s statement / 5 s lock timeouts. Every database failure
(locked, read-only, corrupt, unreachable, timed out) is raised as ``LogError`` with a one-line
reason; SQLAlchemy is imported only when a log is opened. Each exchange carries a ``uid``:
``add_many`` skips one whose ``uid`` is stored already, so a retried write adds no row twice.
A server writes through ``llmrelay._log_writer.LogWriter`` (a queue and a thread), never
on its response path.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._keys import user_dir
from ._setting_table import database_url as _configured_database_url
from .errors import LLMRelayError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["ExchangeLog", "LogEntry", "LogError", "database_url", "default_log_path"]

_IMPORT_LOCK = threading.Lock()
_logger = logging.getLogger("llmrelay.log")


def _import_schema() -> None:
    """Import the database layer once, under a lock.

    Threads that log for the first time at once would otherwise see a partially
    initialised SQLAlchemy.
    """
    with _IMPORT_LOCK:
        from . import _log_schema  # noqa: F401  (imports sqlalchemy)


BUSY_TIMEOUT_S = 10.0

PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
    "options": "-c statement_timeout=15s -c lock_timeout=5s",
}
"""libpq parameters every PostgreSQL (psycopg / psycopg2) connection of the log gets, unless
its URL's query sets the same name (https://www.postgresql.org/docs/current/libpq-connect.html)."""


class LogError(LLMRelayError):
    """The exchange log could not be opened, read or written (the message says why)."""


def default_log_path() -> Path:
    """``<user dir>/logs.db`` (``$LLMRELAY_HOME/logs.db`` when that is set)."""
    return user_dir() / "logs.db"


def database_url() -> str:
    """``$LLMRELAY_DATABASE_URL``, or the SQLite URL of ``default_log_path()``."""
    return _configured_database_url() or f"sqlite:///{default_log_path()}"


@dataclass
class LogEntry:
    """One logged exchange (a chat turn).

    Attributes:
        prompt: the user's text of this turn.
        answer: the answer text shown (possibly partial when ``error`` is set).
        conversation_id: the conversation it belongs to.
        system: system prompt, if any.
        model_requested: the model reference asked for (``None``: the default).
        provider: the provider that answered (or last failed).
        model: that provider's model id.
        attempts: fallback attempts, dicts with ``provider, model, outcome, error_type, message``.
        first_token_ms: milliseconds from the request to the first content.
        duration_ms: milliseconds from the request to the end of the turn.
        usage: ``{"prompt_tokens", "completion_tokens", "total_tokens"}`` when reported.
        finish_reason: the stream's finish reason.
        error_type: error class name when the turn failed.
        error: error message when the turn failed.
        datetime_utc: ISO 8601 time of the request (set when logged).
        id: row id (set when logged).
        tool_calls: the answer's tool calls, ``{"id", "name", "arguments"}`` each (the
            arguments as the model wrote them: JSON text), or ``None``.
        uid: unique id of the exchange, 32 hex digits (set when logged or queued); a write
            whose ``uid`` is stored already adds no row (``ExchangeLog.add_many``).
    """

    prompt: str
    answer: str
    conversation_id: str | None = None
    system: str | None = None
    model_requested: str | None = None
    provider: str | None = None
    model: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    first_token_ms: int | None = None
    duration_ms: int | None = None
    usage: dict[str, int | None] | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    error: str | None = None
    datetime_utc: str | None = None
    id: int | None = None
    uid: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field."""
        return asdict(self)


_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc) or type(exc).__name__
    return " ".join(text.split())[:300]


class ExchangeLog:
    """A connection to the exchange log; migrates the schema on first use.

    Args:
        url: SQLAlchemy database URL (default ``database_url()``).

    Use as a context manager or call ``close()``. Every method raises ``LogError``.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()
        self._engine: Engine | None = None
        # one engine and one migration, whichever threads use the log first at once
        # (concurrent WAL switches and migrations fail with "database is locked")
        self._open_lock = threading.Lock()
        self._fts = False
        self._opening: threading.Thread | None = None

    @property
    def path(self) -> Path | None:
        """The SQLite file, or ``None`` for another database."""
        prefix = "sqlite:///"
        if self.url.startswith(prefix) and self.url != prefix + ":memory:":
            name = self.url[len(prefix) :].split("?", 1)[0]
            return Path(name.removeprefix("file:"))
        return None

    def __repr__(self) -> str:
        return f"ExchangeLog({self.display_url!r})"

    @property
    def display_url(self) -> str:
        """The URL with any password hidden (the file path for SQLite)."""
        if self.path is not None:
            return str(self.path)
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<invalid database URL>"

    def __enter__(self) -> ExchangeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections (after an ``open_in_background`` thread ends)."""
        opening, self._opening = self._opening, None
        if opening is not None and opening is not threading.current_thread():
            opening.join()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A transaction (SQLite: ``BEGIN IMMEDIATE``), every failure as ``LogError``."""
        import sqlite3

        from sqlalchemy.exc import SQLAlchemyError

        where = self.display_url
        try:
            engine = self._open()
            with engine.begin() as conn:
                yield conn
        except LogError:
            raise
        except (SQLAlchemyError, sqlite3.Error, OSError, ValueError) as exc:
            raise LogError(f"the log database {where} is not usable: {_reason(exc)}") from exc

    def _open(self) -> Engine:
        if self._engine is not None:
            return self._engine
        with self._open_lock:
            if self._engine is not None:
                return self._engine
            return self._open_locked()

    def _open_locked(self) -> Engine:
        _import_schema()
        from sqlalchemy import create_engine, event

        from . import _log_schema

        path = self.path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            engine = create_engine(
                self.url, connect_args={"timeout": BUSY_TIMEOUT_S, "isolation_level": None}
            )

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL
                cursor.close()

            @event.listens_for(engine, "begin")
            def _begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        else:
            engine = create_engine(
                self.url, pool_pre_ping=True, connect_args=_connect_args(self.url)
            )
        try:
            with engine.begin() as conn:
                _log_schema.migrate(conn)
                self._fts = _log_schema.has_fts(conn)
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine
        return engine

    def open_in_background(self) -> threading.Thread:
        """Import the database layer, connect and migrate in a daemon thread, started now.

        A command that writes once, at its end (``llmrelay chat``), calls this when its
        answer starts streaming, so that the import (~0.2 s of CPU), the connection and the
        migration check overlap the rest of the answer instead of delaying the exit. The
        write itself still happens where it did, in the caller's thread: it waits for this
        thread (one lock) and reuses what it opened. A failure here is not raised: the
        write opens again and raises it as ``LogError``.

        Returns:
            The started thread (``close`` waits for it).
        """
        thread = threading.Thread(target=self._open_quietly, name="llmrelay-log-open", daemon=True)
        self._opening = thread
        thread.start()
        return thread

    def _open_quietly(self) -> None:
        try:
            self._open()
        except Exception as exc:  # raised again, as LogError, by the write (it opens again)
            _logger.debug("opening the exchange log in the background failed: %s", exc)

    @staticmethod
    def preload() -> None:
        """Import the database layer (SQLAlchemy, ~0.1-0.2 s) now.

        Call it in a thread while a request is in flight, so that logging afterwards adds
        little to a command's time.
        """
        _import_schema()

    def migrate(self) -> None:
        """Create or upgrade the schema now (otherwise done on first use)."""
        with self._begin():
            pass

    def add(
        self,
        entry: LogEntry,
        *,
        conversation: Mapping[str, Any] | None = None,
        conversation_name: str | None = None,
    ) -> int:
        """Log ``entry`` (and store ``conversation``, its ``to_dict()``, in the same transaction).

        Returns the new row id; sets ``entry.id`` and ``entry.datetime_utc``.
        """
        _import_schema()
        from sqlalchemy import insert, update

        from ._log_schema import current_tables

        conversations, exchanges = current_tables()
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        values = _row(entry, now)
        with self._begin() as conn:
            if conversation is not None and entry.conversation_id is not None:
                data = json.dumps(dict(conversation), ensure_ascii=False)
                changed = conn.execute(
                    update(conversations)
                    .where(conversations.c.id == entry.conversation_id)
                    .values(data=data, model=entry.model_requested, updated_utc=now)
                ).rowcount
                if not changed:
                    conn.execute(
                        insert(conversations).values(
                            id=entry.conversation_id,
                            name=conversation_name,
                            model=entry.model_requested,
                            data=data,
                            created_utc=now,
                            updated_utc=now,
                        )
                    )
            row_id = conn.execute(insert(exchanges).values(**values)).inserted_primary_key
        entry.id = int(row_id[0]) if row_id else None
        return entry.id or 0

    def add_many(self, entries: Sequence[LogEntry]) -> None:
        """Log ``entries`` in one transaction (one multi-row insert).

        An entry whose ``uid`` is stored already is skipped (SQLite and PostgreSQL: ``ON
        CONFLICT DO NOTHING``), so writing a batch again after an unclear failure adds no
        row twice. Sets each entry's ``uid`` and ``datetime_utc`` when missing (not ``id``).

        Raises:
            LogError: nothing was written (the cause is chained).
        """
        if not entries:
            return
        _import_schema()
        from sqlalchemy import insert

        from ._log_schema import current_tables

        _, exchanges = current_tables()
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        rows = [_row(entry, now) for entry in entries]
        with self._begin() as conn:
            name = conn.dialect.name
            if name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                statement: Any = pg_insert(exchanges).on_conflict_do_nothing(index_elements=["uid"])
            elif name == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                statement = sqlite_insert(exchanges).on_conflict_do_nothing(index_elements=["uid"])
            else:
                statement = insert(exchanges)
            conn.execute(statement, rows)

    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """The stored ``Conversation.to_dict()`` of ``conversation_id``, or ``None``."""
        _import_schema()
        from sqlalchemy import select

        from ._log_schema import current_tables

        conversations, _ = current_tables()
        with self._begin() as conn:
            data = conn.execute(
                select(conversations.c.data).where(conversations.c.id == conversation_id)
            ).scalar()
        if data is None:
            return None
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise LogError(f"conversation {conversation_id} is stored damaged") from exc
        if not isinstance(value, dict):
            raise LogError(f"conversation {conversation_id} is stored damaged")
        return value

    def latest_conversation_id(self) -> str | None:
        """The conversation of the most recently logged exchange, or ``None``."""
        _import_schema()
        from sqlalchemy import select

        from ._log_schema import current_tables

        _, exchanges = current_tables()
        with self._begin() as conn:
            value = conn.execute(
                select(exchanges.c.conversation_id)
                .where(exchanges.c.conversation_id.is_not(None))
                .order_by(exchanges.c.id.desc())
                .limit(1)
            ).scalar()
        return str(value) if value is not None else None

    def entries(
        self,
        *,
        limit: int | None = 3,
        conversation_id: str | None = None,
        query: str | None = None,
    ) -> list[LogEntry]:
        """The latest ``limit`` exchanges (all when ``None``), oldest first.

        Args:
            limit: how many.
            conversation_id: only this conversation's.
            query: full-text search of prompt, system and answer (SQLite FTS5, every word
                must occur; LIKE on the whole text where FTS5 is missing).
        """
        _import_schema()
        from sqlalchemy import Integer, column, or_, select, text

        from ._log_schema import current_tables

        _, exchanges = current_tables()
        statement = select(exchanges).order_by(exchanges.c.id.desc())
        if conversation_id is not None:
            statement = statement.where(exchanges.c.conversation_id == conversation_id)
        with self._begin() as conn:
            if query:
                if self._fts:
                    match = " ".join('"' + w.replace('"', '""') + '"' for w in query.split())
                    ids = text("SELECT rowid FROM exchanges_fts WHERE exchanges_fts MATCH :q")
                    ids = ids.bindparams(q=match)
                    rowids = ids.columns(column("rowid", Integer))
                    statement = statement.where(exchanges.c.id.in_(rowids))
                else:
                    pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%") + "%"
                    pattern = pattern.replace("_", "\\_")
                    statement = statement.where(
                        or_(
                            *(
                                exchanges.c[name].ilike(pattern, escape="\\")
                                for name in ("prompt", "system", "answer")
                            )
                        )
                    )
            if limit is not None:
                statement = statement.limit(limit)
            rows = conn.execute(statement).mappings().all()
        return [_entry(dict(row)) for row in reversed(rows)]


def _connect_args(url: str) -> dict[str, Any]:
    """``PG_CONNECT_ARGS`` the URL does not set, for psycopg / psycopg2; else nothing."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    if parsed.get_driver_name() not in ("psycopg", "psycopg2"):
        return {}
    return {k: v for k, v in PG_CONNECT_ARGS.items() if k not in parsed.query}


def _row(entry: LogEntry, now: str) -> dict[str, Any]:
    """The ``exchanges`` row of ``entry`` (its ``uid`` and ``datetime_utc`` set if missing)."""
    entry.datetime_utc = entry.datetime_utc or now
    entry.uid = entry.uid or uuid.uuid4().hex
    values = {k: v for k, v in entry.to_dict().items() if k not in ("id", "usage", "attempts")}
    values["attempts"] = json.dumps(entry.attempts, ensure_ascii=False)
    calls = entry.tool_calls
    values["tool_calls"] = json.dumps(calls, ensure_ascii=False) if calls else None
    for name in _USAGE:
        values[name] = (entry.usage or {}).get(name)
    return values


def _entry(row: dict[str, Any]) -> LogEntry:
    values = row
    try:
        attempts = json.loads(values.pop("attempts") or "[]")
    except ValueError:
        attempts = []
    usage = {name: values.pop(name) for name in _USAGE}
    try:
        calls = json.loads(values.pop("tool_calls", None) or "null")
    except ValueError:
        calls = None
    return LogEntry(
        **values,
        tool_calls=calls if isinstance(calls, list) else None,
        attempts=attempts if isinstance(attempts, list) else [],
        usage=usage if any(v is not None for v in usage.values()) else None,
    )
