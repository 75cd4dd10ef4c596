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
    "check_environment",
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
_OFF = {"0", "false", "no", "off"}


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


def _url_source(name: str, base_url: str) -> str:
    variable = f"LLMRELAY_{name.upper()}_BASE_URL"
    if os.environ.get(variable):
        return f"{base_url} (from {variable})"
    config = os.environ.get("LLMRELAY_CONFIG")
    return f"{base_url} (from the config file {config or 'or the default'})"


def describe_error(
    exc: BaseException,
    *,
    proxy: str | None = None,
    descriptions: Sequence[llmrelay.ProviderDescription] = (),
) -> str:
    """The error's message, plus what to check when a connection failed.

    A connection failure through a proxy blames the proxy (every connection goes through
    it); otherwise it names the base URL tried and where that URL came from.
    """
    message = str(exc) or type(exc).__name__
    proxy = proxy or os.environ.get("LLMRELAY_PROXY")
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            break
        if "Proxy" in type(cause).__name__:
            proxy = proxy or "the proxy"
            return f"the proxy {proxy} failed; check --proxy / LLMRELAY_PROXY ({message})"
        cause = cause.__cause__ or cause.__context__
    if not _connection_failed(exc):
        return message
    if proxy:
        return (
            f"could not get through the proxy {proxy}; is it running and reachable? "
            f"(check --proxy / LLMRELAY_PROXY) ({message})"
        )
    provider = getattr(exc, "provider", None)
    for description in descriptions:
        variable = f"LLMRELAY_{description.name.upper()}_BASE_URL"
        named = variable in message or "config file" in message or "default" in message
        if description.name == provider and not named:
            where = _url_source(description.name, description.base_url)
            return f"{message}; is the service running at {where}?"
    return message


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


def check_environment(environ: dict[str, str] | None = None) -> None:
    """Exit 2 on an ``LLMRELAY_*_URL`` variable that is not an http(s) URL, naming it."""
    env = os.environ if environ is None else environ
    for name, value in sorted(env.items()):
        if name.startswith("LLMRELAY_") and name.endswith("_URL") and value:
            if name == "LLMRELAY_DATABASE_URL":
                continue
            if not value.lower().startswith(("http://", "https://")):
                fail(
                    f"{name}={value!r} is not a URL: it must start with http:// or https:// "
                    f"(e.g. http://{value.split('://')[-1]})",
                    code=2,
                )


def make_client_kwargs(*, proxy: str | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Keyword arguments for ``llmrelay.AsyncClient`` / ``Client`` from CLI options."""
    kwargs: dict[str, Any] = {}
    if proxy:
        kwargs["proxy"] = proxy
    if timeout is not None:
        kwargs["timeouts"] = llmrelay.Timeouts(read=timeout)
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
    if os.environ.get("LLMRELAY_LOG", "").strip().lower() in _OFF:
        return False
    return not os.path.exists(off_marker())
