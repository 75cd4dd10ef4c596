"""The exchange log (public): ``ExchangeLog``, ``LogEntry``, ``LogError``, ``LogWriter``.

Every chat turn the CLI runs is logged here; see ``llmrelay._log`` for storage details
(SQLite by default, any SQLAlchemy URL through ``LLMRELAY_DATABASE_URL``) and
``llmrelay._log_writer`` for the server's writer (a bounded queue, batches, a spill file:
an answer never waits on the database and no accepted row is dropped silently).
"""

from ._log import ExchangeLog, LogEntry, LogError, database_url, default_log_path
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
