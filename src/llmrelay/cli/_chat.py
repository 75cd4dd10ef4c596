"""``llmrelay chat``: stream one answer to stdout (or every event as JSON lines)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

import llmrelay

from ._common import fail, make_client_kwargs


@click.command()
@click.argument("prompt", required=False)
@click.option("-m", "--model", help="Model reference: provider:model, a provider, or a model.")
@click.option("-s", "--system", help="System prompt.")
@click.option("--temperature", type=click.FloatRange(min=0.0), help="Sampling temperature.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Maximum tokens to generate.")
@click.option(
    "--events", is_flag=True, help="Print every event as one JSON object per line (type field)."
)
@click.option("--proxy", help="http://, https:// or socks5:// proxy URL.")
@click.option("--timeout", type=click.FloatRange(min=0.001), help="Read (idle) timeout, seconds.")
def chat(
    prompt: str | None,
    model: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    events: bool,
    proxy: str | None,
    timeout: float | None,
) -> None:
    """Send PROMPT (or standard input when PROMPT is - or absent) and stream the answer.

    Only the answer text goes to stdout (followed by a newline when it lacks one);
    diagnostics go to stderr.
    """
    if prompt is None or prompt == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise click.UsageError("give a PROMPT, or pipe it on standard input")
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise click.UsageError("the prompt is empty")
    kwargs = make_client_kwargs(proxy=proxy, timeout=timeout)
    try:
        asyncio.run(
            _run(
                prompt,
                kwargs,
                model=model,
                system=system,
                temperature=temperature,
                max_tokens=max_tokens,
                events=events,
            )
        )
    except KeyboardInterrupt:
        click.echo("\nllmrelay: interrupted", err=True)
        sys.exit(130)
    except llmrelay.ConfigError as exc:
        fail(str(exc), code=2)
    except llmrelay.LLMRelayError as exc:
        fail(str(exc), code=1)


async def _run(
    prompt: str,
    client_kwargs: dict[str, Any],
    *,
    model: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    events: bool,
) -> None:
    out = sys.stdout
    last = ""
    async with llmrelay.AsyncClient(**client_kwargs) as client:
        stream = client.stream(
            prompt, model=model, system=system, temperature=temperature, max_tokens=max_tokens
        )
        try:
            async for event in stream:
                if events:
                    out.write(json.dumps(llmrelay.event_to_dict(event), ensure_ascii=False))
                    out.write("\n")
                    out.flush()
                elif isinstance(event, str) and event:
                    out.write(event)
                    out.flush()
                    last = event
        finally:
            await stream.aclose()
    if not events and last and not last.endswith("\n"):
        out.write("\n")
        out.flush()
