"""``llmrelay providers`` and ``llmrelay models``: tables, tab-separated rows or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import click

import llmrelay
from llmrelay.catalog import LiveModel

from ._common import describe_error, fail, make_client_kwargs, verbose_option

__all__ = ["models", "print_rows", "providers"]


def print_rows(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, keep_whole: Sequence[int] = (0,)
) -> None:
    """A table on a terminal, else (or on a dumb one) tab-separated rows without a header.

    Columns in ``keep_whole`` (ids) are never wrapped nor cut; a cell of several ids gives
    one per line (``, ``-separated in the plain rows).
    """
    if sys.stdout.isatty():
        from rich.console import Console

        console = Console()
        if not console.is_dumb_terminal:  # TERM=dumb or unknown: plain rows
            _print_table(console, header, rows, keep_whole)
            return
    for row in rows:
        click.echo("\t".join(" ".join(str(c).replace("\n", ", ").split()) for c in row))


def _print_table(
    console: Any, header: Sequence[str], rows: Sequence[Sequence[str]], keep_whole: Sequence[int]
) -> None:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    table = Table()
    for index, name in enumerate(header):
        cells = [str(row[index]) for row in rows]
        if index in keep_whole:
            longest = max([len(name), *(len(line) for c in cells for line in c.splitlines())])
            table.add_column(name, no_wrap=True, min_width=longest)
        else:  # wrapped at spaces; no word shorter than 25 characters is broken
            words = [len(word) for cell in cells for word in cell.split()]
            table.add_column(name, overflow="fold", min_width=min(max([len(name), *words]), 24))
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    needed = Measurement.get(console, console.options.update_width(10_000), table).minimum
    if needed > console.width:  # wider than the terminal: let it wrap lines, never cut ids
        console = Console(width=needed)
    console.print(table, crop=False)


def _client_info() -> tuple[list[llmrelay.ProviderDescription], dict[str, list[str]]]:
    try:
        with llmrelay.Client() as client:
            return client.providers(), client.aliases()
    except llmrelay.ConfigError as exc:
        fail(str(exc), code=2)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@verbose_option
def providers(as_json: bool) -> None:
    """List providers: name, label, auth needed and whether a key is set, capabilities."""
    descriptions, _ = _client_info()
    if as_json:
        click.echo(json.dumps([asdict(d) for d in descriptions], indent=2, default=str))
        return
    rows = []
    for d in descriptions:
        auth = d.auth if not d.env_var else f"{d.auth} ({d.env_var})"
        key = "yes" if d.key_set else ("no" if d.auth != "none" else "-")
        rows.append([d.name, d.label, auth, key, ", ".join(d.capabilities), d.default_model])
    print_rows(
        ["name", "label", "auth", "key set", "capabilities", "default model"],
        rows,
        keep_whole=(0, 5),
    )


@click.command()
@click.argument("provider", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--aliases", "show_aliases", is_flag=True, help="Show each alias's resolved chain.")
@click.option(
    "--live",
    is_flag=True,
    help="Ask the service what it serves now (huggingface: the router's catalogue, with "
    "providers, context length, tool support and prices).",
)
@verbose_option
def models(provider: str | None, as_json: bool, show_aliases: bool, live: bool) -> None:
    """List models per provider, with their aliases (PROVIDER limits the list).

    With PROVIDER:MODEL (`llmrelay models hf_spaces:owner/space`), describe that model as
    it will be called: for a Space, the chat endpoint it found and each input with the
    default that is sent (set the others with `-o inputs '{"Label": value}'`).
    """
    if live:
        _live_models(provider or "huggingface", as_json)
        return
    if provider is not None and ":" in provider:
        _describe(provider, as_json)
        return
    descriptions, aliases = _client_info()
    if provider is not None:
        known = ", ".join(d.name for d in descriptions)
        descriptions = [d for d in descriptions if d.name == provider]
        if not descriptions:
            raise click.BadParameter(f"unknown provider {provider!r}; valid: {known}")
    if show_aliases:
        chains = aliases
        if provider is not None:
            chains = {
                a: c for a, c in chains.items() if any(r.startswith(f"{provider}:") for r in c)
            }
        if as_json:
            click.echo(json.dumps(chains, indent=2))
        else:
            print_rows(["alias", "candidates"], [[a, " -> ".join(c)] for a, c in chains.items()])
        return
    rows: list[dict[str, Any]] = []
    for d in descriptions:
        for model in d.models:
            rows.append(
                {
                    "provider": d.name,
                    "model": model,
                    "aliases": sorted(a for a, target in d.aliases.items() if target == model),
                    "default": model == d.default_model,
                    "reference": f"{d.name}:{model}",
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_rows(
        ["model", "aliases", "default"],
        [[r["reference"], "\n".join(r["aliases"]), "*" if r["default"] else ""] for r in rows],
        keep_whole=(0, 1),
    )


def _live_models(provider: str, as_json: bool) -> None:
    """``models PROVIDER --live``: the provider's live catalogue (``AsyncClient.live_models``)."""
    import anyio

    async def fetch() -> list[LiveModel]:
        async with llmrelay.AsyncClient(**make_client_kwargs()) as client:
            return await client.live_models(provider)

    try:
        rows = anyio.run(fetch)
    except llmrelay.UnknownProviderError as exc:
        raise click.BadParameter(str(exc)) from None
    except llmrelay.ConfigError as exc:
        fail(str(exc), code=2)
    except llmrelay.LLMRelayError as exc:
        fail(str(exc), code=1)
    if as_json:
        click.echo(json.dumps([m.to_dict() for m in rows], indent=2))
        return
    print_rows(
        ["model", "providers", "context", "tools", "vision", "price in/out ($/1M)"],
        [
            [
                m.reference,
                "\n".join(
                    o.provider + (f" ({o.status})" if o.status and o.status != "live" else "")
                    for o in m.offers
                ),
                str(m.context_length or "-"),
                "yes" if m.supports_tools else "no",
                "yes" if m.vision else "no",
                _prices(m),
            ]
            for m in rows
        ],
        keep_whole=(0, 1),
    )


def _prices(model: LiveModel) -> str:
    """The cheapest offer's input/output price, or ``-`` when none is given."""
    priced = [o for o in model.offers if o.input_price is not None and o.output_price is not None]
    if not priced:
        return "-"
    best = min(priced, key=lambda o: (o.input_price or 0.0, o.output_price or 0.0))
    return f"{best.input_price:g} / {best.output_price:g} ({best.provider})"


async def _describe_model(reference: str) -> dict[str, Any]:
    async with llmrelay.AsyncClient(**make_client_kwargs()) as client:
        return await client.describe_model(reference)


def _describe(reference: str, as_json: bool) -> None:
    """Print what ``reference`` will be sent (``AsyncClient.describe_model``)."""
    import asyncio

    try:
        described = asyncio.run(_describe_model(reference))
    except llmrelay.ConfigError as exc:
        fail(describe_error(exc), code=2)
    except llmrelay.LLMRelayError as exc:
        fail(describe_error(exc), code=1)
    if as_json:
        click.echo(json.dumps(described, indent=2, ensure_ascii=False, default=str))
        return
    inputs = described.get("inputs")
    if inputs is None:  # a provider that declares, not discovers
        for key, value in described.items():
            click.echo(f"{key}: {json.dumps(value, ensure_ascii=False, default=str)}")
        return
    name = described.get("api_name")
    endpoint = f"/{name}" if name else "(unnamed)"
    click.echo(f"{described['provider']}:{described['model']} at {described.get('url')}"
               f" (Gradio {described.get('gradio_version') or 'unknown'})")  # fmt: skip
    click.echo(f"endpoint {endpoint}, fn_index {described.get('fn_index')}, "
               f"{described.get('visibility')}; reply from its {described.get('reply')} output"
               + (f"; history as {described['history_format']}"
                  if described.get("history_format") else "; no history input"))  # fmt: skip
    rows = [
        [str(i), item["role"], item["component"], item["label"] or "",
         "" if item["role"] in ("message", "history") else
         json.dumps(item["default"], ensure_ascii=False, default=str)]
        for i, item in enumerate(inputs, 1)
    ]  # fmt: skip
    print_rows(["#", "role", "component", "label", "default"], rows, keep_whole=(0, 1, 2))
    labels = [item["label"] for item in inputs if item["role"] == "input" and item["label"]]
    if labels:
        example = json.dumps({labels[0]: "…"}, ensure_ascii=False)
        click.echo(f"set the other inputs by label: -o inputs '{example}'")
