"""``llmrelay providers`` and ``llmrelay models``: what is available, as tables or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

import llmrelay

from ._common import fail


def _descriptions() -> list[llmrelay.ProviderDescription]:
    try:
        with llmrelay.Client() as client:
            return client.providers()
    except llmrelay.ConfigError as exc:
        fail(str(exc), code=2)


def _table(*columns: str) -> Any:
    """A rich table whose cells wrap instead of being cut with an ellipsis."""
    from rich.table import Table

    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def providers(as_json: bool) -> None:
    """List providers: name, label, auth needed and whether a key is set, capabilities."""
    descriptions = _descriptions()
    if as_json:
        click.echo(json.dumps([asdict(d) for d in descriptions], indent=2))
        return
    from rich.console import Console

    table = _table("name", "label", "auth", "key set", "capabilities", "default model")
    for d in descriptions:
        auth = d.auth if not d.env_var else f"{d.auth} ({d.env_var})"
        key = "yes" if d.key_set else ("no" if d.auth != "none" else "-")
        table.add_row(d.name, d.label, auth, key, ", ".join(d.capabilities), d.default_model)
    Console().print(table)


@click.command()
@click.argument("provider", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models(provider: str | None, as_json: bool) -> None:
    """List models per provider, with their aliases (PROVIDER limits the list)."""
    descriptions = _descriptions()
    if provider is not None:
        descriptions = [d for d in descriptions if d.name == provider]
        if not descriptions:
            names = ", ".join(d.name for d in _descriptions())
            raise click.BadParameter(f"unknown provider {provider!r}; valid: {names}")
    rows = []
    for d in descriptions:
        for model in d.models:
            aliases = sorted(alias for alias, target in d.aliases.items() if target == model)
            rows.append(
                {
                    "provider": d.name,
                    "model": model,
                    "aliases": aliases,
                    "default": model == d.default_model,
                    "reference": f"{d.name}:{model}",
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console

    table = _table("provider", "model", "aliases", "default")
    for row in rows:
        table.add_row(
            str(row["provider"]),
            str(row["model"]),
            ", ".join(row["aliases"]),  # type: ignore[arg-type]
            "*" if row["default"] else "",
        )
    Console().print(table)
