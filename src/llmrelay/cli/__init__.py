"""The ``llmrelay`` command line (click + rich); it uses only the public ``llmrelay`` API.

Exit status: 0 success, 1 provider error (one line on stderr naming provider, model and
cause), 2 bad usage or configuration, 130 interrupted.
"""

from __future__ import annotations

import logging
import sys

import click

from ._chat import chat
from ._image import image
from ._listing import models, providers

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmrelay")
@click.option("-v", "--verbose", is_flag=True, help="Log diagnostics to stderr.")
def cli(verbose: bool) -> None:
    """Talk to many hosted LLM services through one interface."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="llmrelay: %(levelname)s: %(name)s: %(message)s",
    )


cli.add_command(chat)
cli.add_command(providers)
cli.add_command(models)
cli.add_command(image)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="llmrelay")
