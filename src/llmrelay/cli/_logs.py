"""``llmrelay logs``: the exchange log — recent exchanges, search, path, on/off."""

from __future__ import annotations

import contextlib
import json
import os
import sys

import click

from llmrelay.log import ExchangeLog, LogEntry, LogError, database_url

from ._common import fail, logging_enabled, off_marker, verbose_option

__all__ = ["logs"]


def _print_markdown(entries: list[LogEntry]) -> None:
    for entry in entries:
        model = f"{entry.provider}:{entry.model}" if entry.provider else entry.model_requested
        click.echo(f"# {entry.datetime_utc}    conversation: {entry.conversation_id}")
        click.echo(
            f"\nModel: **{model}**"
            + (f" (asked: {entry.model_requested})" if entry.model_requested else "")
        )
        if entry.system:
            click.echo(f"\n## System\n\n{entry.system}")
        click.echo(f"\n## Prompt\n\n{entry.prompt}")
        click.echo(f"\n## Response\n\n{entry.answer}")
        if entry.error_type:
            click.echo(f"\n## Error\n\n{entry.error_type}: {entry.error or ''}")
        timing = f"first token {entry.first_token_ms} ms, total {entry.duration_ms} ms"
        if entry.usage:
            used = ", ".join(f"{k} {v}" for k, v in entry.usage.items() if v is not None)
            timing += f", usage: {used}"
        click.echo(f"\n_{timing}; finish: {entry.finish_reason}_\n")


@click.group(invoke_without_command=True)
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="How many recent exchanges (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--cid", "--conversation", "cid", help="Only this conversation's exchanges.")
@click.option("-c", "--current", is_flag=True, help="Only the most recent conversation.")
@click.option("-q", "--query", help="Full-text search of prompts, system prompts and answers.")
@verbose_option
@click.pass_context
def logs(
    ctx: click.Context,
    count: int,
    as_json: bool,
    cid: str | None,
    current: bool,
    query: str | None,
) -> None:
    """Show logged exchanges, oldest first (the latest 3 by default)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        with ExchangeLog() as log:
            if current:
                cid = log.latest_conversation_id()
            entries = log.entries(limit=count or None, conversation_id=cid, query=query)
    except LogError as exc:
        fail(str(exc), code=1)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False))
    else:
        _print_markdown(entries)


@logs.command()
def path() -> None:
    """Print where the log is (the SQLite file, or the database URL without password)."""
    click.echo(ExchangeLog(database_url()).display_url)


@logs.command()
def status() -> None:
    """Say whether logging is on, where, and how many exchanges it holds."""
    state = "on" if logging_enabled() else "off"
    log = ExchangeLog()
    click.echo(f"Logging is {state} for all prompts")
    click.echo(f"Found log database at {log.display_url}")
    try:
        with log:
            click.echo(f"Number of exchanges logged:\t{len(log.entries(limit=None))}")
    except LogError as exc:
        fail(str(exc), code=1)


@logs.command()
def on() -> None:
    """Log exchanges (the default)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(off_marker())


@logs.command()
def off() -> None:
    """Stop logging exchanges (--no-log does it for one command)."""
    marker = off_marker()
    os.makedirs(os.path.dirname(marker), mode=0o700, exist_ok=True)
    with open(marker, "w", encoding="utf-8"):
        pass
    if sys.stderr.isatty():
        click.echo("Logging is off; `llmrelay logs on` turns it back on", err=True)
