"""The ``llmrelay`` click group; each command's module is imported when it is used."""

from __future__ import annotations

import importlib

import click

from . import _collector
from ._common import prepare_streams, verbose_option

__all__ = ["COMMANDS", "cli"]

COMMANDS: dict[str, str] = {
    "chat": "._chat:chat",
    "embed": "._embed:embed",
    "image": "._image:image",
    "keys": "._keyscmd:keys",
    "logs": "._logs:logs",
    "models": "._listing:models",
    "providers": "._listing:providers",
    "serve": "._serve:serve",
}
"""Command name -> ``"module:attribute"`` (relative to this package) of its click command."""


class _LazyGroup(click.Group):
    """A group that imports a command's module only when that command is looked up.

    ``llmrelay chat`` then loads neither the image, keys, listing nor serve modules
    (~8 ms); ``--help`` looks every command up, as before. This is click's documented
    pattern: https://click.palletsprojects.com/en/stable/complex/#lazily-loading-subcommands
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            # not a command: load them all, so click's "did you mean" sees every name
            for name in COMMANDS:
                self.get_command(ctx, name)
        if target is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module, __package__), attribute)
        self.add_command(command, cmd_name)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmrelay")
@verbose_option
def cli() -> None:
    """Talk to many hosted LLM services through one interface.

    -v (or -vv) works before or after the command.
    """
    prepare_streams()
    if click.get_current_context().invoked_subcommand != "chat":
        _collector.resume()  # the chat resumes it at its first event or prompt
