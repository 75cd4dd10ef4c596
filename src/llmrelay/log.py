"""The exchange log (public): ``ExchangeLog``, ``LogEntry``, ``LogError``, ``default_log_path``.

Every chat turn the CLI runs is logged here; see ``llmrelay._log`` for storage details
(SQLite by default, any SQLAlchemy URL through ``LLMRELAY_DATABASE_URL``).
"""

from ._log import ExchangeLog, LogEntry, LogError, database_url, default_log_path

__all__ = ["ExchangeLog", "LogEntry", "LogError", "database_url", "default_log_path"]
