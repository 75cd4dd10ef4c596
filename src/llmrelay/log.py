"""The exchange log (public): ``ExchangeLog``, ``LogEntry``, ``LogError``, ``LogWriter``.

Every chat turn the CLI runs is logged here; see ``llmrelay._log`` for storage details
(SQLite by default, any SQLAlchemy URL through ``LLMRELAY_DATABASE_URL``) and
``llmrelay._log_writer`` for the server's writer (a bounded queue, batches, a spill file:
an answer never waits on the database and no accepted row is dropped silently).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._log import ExchangeLog, LogEntry, LogError, database_url, default_log_path

if TYPE_CHECKING:
    from ._log_writer import LogWriter, WriterStats, default_spill_dir

__all__ = [
    "ExchangeLog",
    "LogEntry",
    "LogError",
    "LogWriter",
    "WriterStats",
    "database_url",
    "default_log_path",
    "default_spill_dir",
]


_WRITER = frozenset({"LogWriter", "WriterStats", "default_spill_dir"})


def __getattr__(name: str) -> Any:
    # the writer (hashlib, uuid, threads: ~5 ms) is the server's; a CLI chat that logs
    # one turn through ExchangeLog never imports it
    if name in _WRITER:
        from . import _log_writer

        return getattr(_log_writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
