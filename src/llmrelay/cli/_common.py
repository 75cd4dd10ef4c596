"""Helpers shared by the CLI commands: failing cleanly, verbosity, client options."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click

import llmrelay

from ._text import clean_error_text

__all__ = [
    "describe_error",
    "fail",
    "logging_enabled",
    "make_client_kwargs",
    "off_marker",
    "prepare_streams",
    "verbose_option",
    "warn",
]

F = TypeVar("F", bound=Callable[..., Any])
_VERBOSE_KEY = "llmrelay.verbose"


def warn(message: str) -> None:
    """Print ``llmrelay: warning: <message>`` on one stderr line."""
    click.echo(f"llmrelay: warning: {clean_error_text(message)}", err=True)


def fail(message: str, *, code: int) -> NoReturn:
    """Print ``llmrelay: error: <message>`` on one stderr line and exit with ``code``."""
    click.echo(f"llmrelay: error: {clean_error_text(message)}", err=True)
    sys.exit(code)


def _connection_failed(exc: BaseException) -> bool:
    if isinstance(exc, llmrelay.AllProvidersFailed):
        return False
    if isinstance(exc, llmrelay.TransportError):
        return True
    return isinstance(exc, llmrelay.ProviderTimeout) and "connect" in str(exc).lower()


def _service_hint(message: str, description: llmrelay.ProviderDescription) -> str | None:
    """``is the service running at URL (where it came from)?``, unless the message says it."""
    source = description.endpoint_sources.get("base_url")
    if source is not None and source.startswith("LLMRELAY_") and source in message:
        return None  # the variable is named already
    if source is None and "the default" in message:
        return None
    where = f"from {source}" if source else "the default"
    return f"is the service running at {description.base_url} ({where})?"


def _proxy_failed(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            return False
        if "Proxy" in type(cause).__name__:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def describe_error(
    exc: BaseException,
    *,
    proxy: str | None = None,
    descriptions: Sequence[llmrelay.ProviderDescription] = (),
) -> str:
    """The error's message, plus what to check when a connection failed.

    A connection failure through a proxy blames the proxy (every connection goes through
    it): ``proxy`` (the ``--proxy`` URL) or, from the failing provider's description,
    where the client's proxy was set (never its URL). Otherwise it names the base URL
    tried and where that URL came from.
    """
    message = str(exc) or type(exc).__name__
    provider = getattr(exc, "provider", None)
    description = next((d for d in descriptions if d.name == provider), None)
    if proxy is None and description is not None and description.proxy_source:
        proxy = f"set by {description.proxy_source}"
    who = f"the proxy {proxy}" if proxy else "the proxy"
    check = "check --proxy / LLMRELAY_PROXY / proxy in the config file"
    if _proxy_failed(exc):
        return f"{who} failed; {check} ({message})"
    if not _connection_failed(exc):
        return message
    if proxy:
        return f"could not get through {who}; is it running and reachable? ({check}) ({message})"
    hint = _service_hint(message, description) if description is not None else None
    return f"{message}; {hint}" if hint else message


def prepare_streams() -> None:
    """Never crash on text the terminal cannot encode (a lone surrogate from a server)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError, io.UnsupportedOperation):
                stream.reconfigure(errors="replace")


class _Formatter(logging.Formatter):
    """``llmrelay: warning: text`` like the CLI's own lines; with -v also level and logger."""

    def __init__(self, *, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.verbose:
            return f"llmrelay: {record.levelname}: {record.name}: {text}"
        return f"llmrelay: {record.levelname.lower()}: {text}"


def _configure_logging(level: int) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_llmrelay", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(verbose=level > 0))
    handler._llmrelay = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if level >= 2 else logging.WARNING)
    logging.getLogger("llmrelay").setLevel(
        logging.DEBUG if level >= 2 else logging.INFO if level == 1 else logging.WARNING
    )
    for name in ("httpx", "httpcore", "hpack"):
        logging.getLogger(name).setLevel(logging.DEBUG if level >= 2 else logging.WARNING)


def _verbosity(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    root = ctx.find_root()
    total = int(root.meta.get(_VERBOSE_KEY, 0)) + (value or 0)
    root.meta[_VERBOSE_KEY] = total
    _configure_logging(total)


def verbose_option(function: F) -> F:
    """``-v`` (llmrelay's decisions at INFO) / ``-vv`` (+ HTTP wire detail), on any command."""
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        is_eager=True,
        callback=_verbosity,
        help="Log llmrelay's decisions to stderr; -vv adds HTTP wire detail.",
    )(function)


def make_client_kwargs(
    *,
    proxy: str | None = None,
    timeout: float | None = None,
    total_timeout: float | None = None,
    first_token_timeout: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``llmrelay.AsyncClient`` / ``Client`` from CLI options.

    ``timeout`` is the read (idle) timeout; ``total_timeout`` bounds a whole answer and
    ``first_token_timeout`` the wait for its first content, per candidate (seconds;
    ``None``: the configured value).
    """
    kwargs: dict[str, Any] = {}
    if proxy:
        kwargs["proxy"] = proxy
    given = {
        name: value
        for name, value in (
            ("read", timeout),
            ("total", total_timeout),
            ("first_token", first_token_timeout),
        )
        if value is not None
    }
    if given:
        kwargs["timeouts"] = llmrelay.Timeouts(**given)
    return kwargs


def off_marker() -> str:
    """The file whose presence means ``llmrelay logs off`` ran."""
    from llmrelay.keys import user_dir

    return str(user_dir() / "logs-off")


def logging_enabled() -> bool:
    """Logging is on unless ``LLMRELAY_LOG`` is 0/false/no/off or ``llmrelay logs off`` ran.

    Here rather than in ``_logs`` so that a chat decides without importing the log's
    module (``llmrelay.log`` and sqlite3, ~3 ms) before its first token.
    """
    from llmrelay.settings import log_enabled

    return log_enabled() and not os.path.exists(off_marker())
