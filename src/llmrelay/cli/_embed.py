"""``llmrelay embed``: embed text and print OpenAI's embeddings JSON, like ``llm embed``.

Uses only the public API (``llmrelay.AsyncClient().embeddings.create``). The texts come
from the arguments (one vector each; a single one is sent as a string, several as a
list) or, without any, from standard input (the whole of it, one vector). The output is
one JSON document on stdout: OpenAI's ``CreateEmbeddingResponse`` (``data[i].embedding``
a list of floats, or with ``--encoding base64`` the base64 of its little-endian float32
values), ``model`` naming the provider that answered.
"""

from __future__ import annotations

import sys
from typing import Any

import click

import llmrelay

from ._common import fail, make_client_kwargs

__all__ = ["embed"]


@click.command()
@click.argument("texts", nargs=-1)
@click.option("-m", "--model", required=True, help="Embedding model: provider:model or an alias.")
@click.option(
    "--encoding",
    type=click.Choice(["float", "base64"]),
    default="float",
    show_default=True,
    help="How each vector is written.",
)
@click.option("--dimensions", type=click.IntRange(min=1), help="Vector size to ask for.")
@click.option(
    "-o",
    "--option",
    "options",
    type=(str, str),
    multiple=True,
    metavar="NAME VALUE",
    help="Provider embedding option (e.g. -o normalize false); repeatable.",
)
@click.option("--proxy", help="http://, https:// or socks5:// proxy URL.")
@click.option("--timeout", type=click.FloatRange(min=0.001), help="Read (idle) timeout, seconds.")
def embed(
    texts: tuple[str, ...],
    model: str,
    encoding: str,
    dimensions: int | None,
    options: tuple[tuple[str, str], ...],
    proxy: str | None,
    timeout: float | None,
) -> None:
    """Embed TEXTS (or standard input) with MODEL and print the JSON answer."""
    items: list[str] = list(texts)
    if not items:
        if sys.stdin.isatty():
            raise click.UsageError("give TEXT arguments or pipe the text to standard input")
        items = [sys.stdin.read()]
    empty = next((i for i, text in enumerate(items) if not text), None)
    if empty is not None:
        raise click.UsageError("an empty text cannot be embedded")
    import asyncio  # not at module level: `llmrelay --help` does not need it

    kwargs = make_client_kwargs(proxy=proxy, timeout=timeout)
    try:
        text = asyncio.run(
            _embed(
                kwargs,
                items=items[0] if len(items) == 1 else items,
                model=model,
                encoding=encoding,
                dimensions=dimensions,
                options=dict(_option(name, value) for name, value in options),
            )
        )
    except KeyboardInterrupt:
        click.echo("\nllmrelay: interrupted", err=True)
        sys.exit(130)
    except llmrelay.ConfigError as exc:
        fail(str(exc), code=2)
    except llmrelay.LLMRelayError as exc:
        fail(str(exc), code=1)
    click.echo(text)


def _option(name: str, value: str) -> tuple[str, Any]:
    """``-o NAME VALUE``: ``true``/``false`` as booleans, integers as ints, else text."""
    lowered = value.lower()
    if lowered in ("true", "false"):
        return name, lowered == "true"
    if value.lstrip("-").isdigit():
        return name, int(value)
    return name, value


async def _embed(
    client_kwargs: dict[str, Any],
    *,
    items: str | list[str],
    model: str,
    encoding: str,
    dimensions: int | None,
    options: dict[str, Any],
) -> str:
    async with llmrelay.AsyncClient(**client_kwargs) as client:
        response = await client.embeddings.create(
            input=items,
            model=model,
            encoding_format="base64" if encoding == "base64" else "float",
            dimensions=dimensions,
            options=options or None,
        )
    return response.model_dump_json()
