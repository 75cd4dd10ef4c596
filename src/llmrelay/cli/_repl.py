"""The interactive chat (``llmrelay chat`` with no prompt on a terminal), as ``llm chat`` does.

Each line is a turn of one conversation; ``!multi`` starts multi-line input, ended by
``!end`` (``!multi TOKEN`` ... ``!end TOKEN`` when the text contains ``!end``); ``exit``,
``quit`` or Ctrl-D leave; Ctrl-C cancels the answer being streamed (or the line being typed)
and returns to the prompt. Each turn is logged.
"""

from __future__ import annotations

import asyncio
import contextlib

import click

import llmrelay

from . import _collector
from ._session import ChatSession, Output, TurnLog, TurnOptions, run_turn
from ._text import clean_error_text

__all__ = ["repl"]

PROMPT = "> "


def _read_line(prompt: str) -> str:
    return input(prompt)


def _read_turn() -> str | None:
    """One turn's text (``""`` for nothing to send), or ``None`` to leave."""
    try:
        line = _read_line(PROMPT)
    except EOFError:
        return None
    command = line.strip()
    if command in ("exit", "quit"):
        return None
    if command.startswith("!multi"):
        end = ("!end " + command[len("!multi") :].strip()).strip()
        lines: list[str] = []
        while True:
            try:
                more = _read_line("")
            except EOFError:
                break
            if more.strip() == end:
                break
            lines.append(more)
        return "\n".join(lines)
    return line


def repl(
    runner: asyncio.Runner,
    client: llmrelay.AsyncClient,
    session: ChatSession,
    options: TurnOptions,
    log: TurnLog,
) -> None:
    """Chat turn by turn until exit/quit/Ctrl-D."""
    _collector.resume()  # start-up is over: the session waits for its first line
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    click.echo(f"Chatting with {options.model or 'the default model'}", err=True)
    click.echo("Type 'exit' or 'quit' to exit", err=True)
    click.echo("Type '!multi' to enter multiple lines, then '!end' to finish", err=True)
    if session.conversation.messages:
        click.echo(f"Continuing conversation {session.id}", err=True)
    out = Output()
    while True:
        try:
            text = _read_turn()
        except KeyboardInterrupt:
            click.echo("\n(exit, quit or Ctrl-D to leave)", err=True)
            continue
        if text is None:
            click.echo("", err=True)
            return
        if not text.strip():
            continue
        try:
            runner.run(run_turn(client, session, text, options, log, out))
        except KeyboardInterrupt:
            out.end_line()
            click.echo("llmrelay: answer cancelled", err=True)
        except llmrelay.LLMRelayError as exc:
            out.end_line()
            click.echo(f"llmrelay: error: {clean_error_text(options.explain(exc))}", err=True)
