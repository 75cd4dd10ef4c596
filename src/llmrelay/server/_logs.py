"""Log redaction: upstream URLs never reach the server's log output.

Provider errors can carry an upstream address in their message, and the library logs
failed attempts with that message. ``install_redaction()`` puts a filter on llmrelay's
and uvicorn's loggers that rewrites each record's message (and traceback text) with every
URL replaced by ``<url>``. Keys never appear in the first place: the HTTP layer keeps
headers out of errors, and the server never logs headers.
"""

from __future__ import annotations

import logging

from ._errors import URL_PATTERN

__all__ = ["RedactURLs", "install_redaction", "redact_root_handlers"]

_LOGGERS = ("llmrelay", "uvicorn.error")


class RedactURLs(logging.Filter):
    """Replace URLs in a record's message and traceback text by ``<url>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place (once); always keep it."""
        if getattr(record, "llmrelay_redacted", False):
            return True
        message = record.getMessage()
        # every URL has "://": the pattern's scan (most of this filter's cost) only then
        record.msg = URL_PATTERN.sub("<url>", message) if "://" in message else message
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = URL_PATTERN.sub("<url>", text)
        record.llmrelay_redacted = True
        return True


def install_redaction(*names: str) -> None:
    """Add ``RedactURLs`` to llmrelay's, uvicorn's and the named loggers (idempotent).

    A logger's filters see only records logged on it, so llmrelay's own child loggers
    that exist now (providers log under their module name) are covered too.
    """
    manager = logging.Logger.manager
    children = [n for n in list(manager.loggerDict) if n.startswith("llmrelay.")]
    for name in (*_LOGGERS, *children, *names):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactURLs) for f in logger.filters):
            logger.addFilter(RedactURLs())


def redact_root_handlers() -> None:
    """Add ``RedactURLs`` to the root logger's handlers (for ``llmrelay serve``).

    Every record they emit, from any logger (provider loggers created later included),
    is redacted; ``llmrelay serve`` owns the process's logging, a library user does not.
    """
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactURLs) for f in handler.filters):
            handler.addFilter(RedactURLs())
