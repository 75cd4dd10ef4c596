"""Helpers shared by the CLI commands."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

import llmrelay


def fail(message: str, *, code: int) -> NoReturn:
    """Print ``llmrelay: error: <message>`` on one stderr line and exit with ``code``."""
    click.echo(f"llmrelay: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def make_client_kwargs(*, proxy: str | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Keyword arguments for ``llmrelay.AsyncClient`` / ``Client`` from CLI options."""
    kwargs: dict[str, Any] = {}
    if proxy:
        kwargs["proxy"] = proxy
    if timeout is not None:
        kwargs["timeouts"] = llmrelay.Timeouts(read=timeout)
    return kwargs
