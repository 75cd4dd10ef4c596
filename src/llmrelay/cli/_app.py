"""The ``llmrelay`` click group and its commands."""

from __future__ import annotations

import click

from ._chat import chat
from ._common import prepare_streams, verbose_option
from ._image import image
from ._keyscmd import keys
from ._listing import models, providers
from ._logs import logs
from ._serve import serve

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmrelay")
@verbose_option
def cli() -> None:
    """Talk to many hosted LLM services through one interface.

    -v (or -vv) works before or after the command.
    """
    prepare_streams()


cli.add_command(chat)
cli.add_command(logs)
cli.add_command(keys)
cli.add_command(providers)
cli.add_command(models)
cli.add_command(image)
cli.add_command(serve)
