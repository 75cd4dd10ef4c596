"""The ``llmrelay`` command line (click + rich); it uses only the public ``llmrelay`` API.

Exit status: 0 success, 1 provider error (one line on stderr naming provider, model and
cause), 2 bad usage or configuration, 130 interrupted. This module stays light: the
commands load inside ``main()``, so Ctrl-C while they load ends quietly with status 130.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _collector

__all__ = ["cli", "main"]


def _interrupted() -> None:
    try:
        sys.stderr.write("\nllmrelay: interrupted\n")
        sys.stderr.flush()
    finally:
        sys.exit(130)


def main(args: list[str] | None = None) -> None:
    """Console-script entry point (``llmrelay``, ``python -m llmrelay``)."""
    _collector.pause()  # while the command starts (see ``_collector``)
    try:
        import click

        from ._app import cli as group

        try:
            code = group.main(args=args, prog_name="llmrelay", standalone_mode=False)
        except click.exceptions.Abort:
            _interrupted()
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)
    except KeyboardInterrupt:
        _interrupted()
    finally:
        _collector.resume()


def __getattr__(name: str) -> Any:
    """``llmrelay.cli.cli``: the click group (loaded on first use)."""
    if name == "cli":
        from ._app import cli

        return cli
    raise AttributeError(f"module 'llmrelay.cli' has no attribute {name!r}")
