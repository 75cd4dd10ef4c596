"""``llmrelay keys``: keys in a file only the user can read, and where each key comes from."""

from __future__ import annotations

import re
import sys

import click

import llmrelay
from llmrelay.keys import delete_key, keys_path, load_keys, save_key

from ._common import fail, verbose_option
from ._listing import print_rows

__all__ = ["keys"]


@click.group()
@verbose_option
def keys() -> None:
    """Manage provider keys (stored in keys.json, mode 0600; see `llmrelay keys path`)."""


@keys.command()
def path() -> None:
    """Print where keys are stored."""
    click.echo(str(keys_path()))


def _known_providers() -> list[llmrelay.ProviderDescription]:
    try:
        with llmrelay.Client() as client:
            return client.providers()
    except llmrelay.ConfigError as exc:
        fail(str(exc), code=2)


@keys.command(name="set")
@click.argument("provider")
@click.option("--value", help="The key (avoid: it stays in your shell history).", hidden=True)
def set_(provider: str, value: str | None) -> None:
    """Store PROVIDER's key: typed at a hidden prompt, or read from standard input."""
    names = [d.name for d in _known_providers()]
    if provider not in names:
        click.echo(
            f"llmrelay: warning: {provider!r} is not a known provider (known: "
            f"{', '.join(names)}); storing the key anyway",
            err=True,
        )
    if value is None:
        if sys.stdin is not None and not sys.stdin.isatty():
            value = sys.stdin.readline()
        else:
            try:
                value = click.prompt(f"Key for {provider}", hide_input=True, err=True)
            except click.Abort:
                click.echo("llmrelay: interrupted", err=True)
                sys.exit(130)
    value = (value or "").strip()
    if not value:
        raise click.UsageError("the key is empty; nothing stored")
    try:
        file = save_key(provider, value)
    except llmrelay.ConfigError as exc:
        fail(str(exc), code=2)
    click.echo(f"Stored the key for {provider} in {file}", err=True)


@keys.command()
@click.argument("provider")
def remove(provider: str) -> None:
    """Remove PROVIDER's stored key."""
    try:
        removed = delete_key(provider)
    except llmrelay.ConfigError as exc:
        fail(str(exc), code=2)
    if not removed:
        fail(f"no key stored for {provider!r} in {keys_path()}", code=1)


def _source(description: llmrelay.ProviderDescription) -> str:
    """Where the client found the provider's key (an environment variable says so)."""
    source = description.key_source or ""
    return f"environment ({source})" if re.fullmatch(r"[A-Z][A-Z0-9_]*", source) else source


@keys.command(name="list")
def list_() -> None:
    """List which providers have a key and where it comes from (never the key)."""
    try:
        stored = load_keys()
    except llmrelay.ConfigError as exc:
        fail(str(exc), code=2)
    rows = []
    names = set()
    for description in _known_providers():
        names.add(description.name)
        source = _source(description)
        if source:
            rows.append([description.name, source])
        elif description.auth != "none":
            rows.append([description.name, f"no key ({description.auth})"])
    rows += [[name, f"keys file ({keys_path()})"] for name in sorted(set(stored) - names)]
    print_rows(["provider", "key from"], rows)
