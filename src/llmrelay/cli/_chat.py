"""``llmrelay chat``: one answer streamed to stdout, a continued conversation, or a chat session."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

import llmrelay

from ._common import (
    describe_error,
    fail,
    logging_enabled,
    make_client_kwargs,
    verbose_option,
)
from ._text import decode_argument, decode_bytes

if TYPE_CHECKING:  # loaded when a chat runs, not for --help (asyncio alone is ~40 ms)
    import asyncio

    from llmrelay.log import LogEntry

    from ._session import ChatSession, TurnLog, TurnOptions

__all__ = ["chat"]

logger = logging.getLogger("llmrelay.cli")


def _read_stdin(encoding: str | None) -> str:
    stream = sys.stdin
    buffer = getattr(stream, "buffer", None)
    logger.info("reading standard input")
    try:
        data = buffer.read() if buffer is not None else stream.read().encode()
    except KeyboardInterrupt:
        click.echo("\nllmrelay: interrupted", err=True)
        sys.exit(130)
    return decode_bytes(data, encoding, "standard input")


def _stdin_is_terminal() -> bool:
    return sys.stdin is None or sys.stdin.isatty()


def _assemble_prompt(prompt: str | None, encoding: str | None) -> str | None:
    """The prompt text: piped stdin first, then the argument; ``None`` for a chat session."""
    if prompt == "-":
        return _read_stdin(encoding)
    if prompt is None:
        return None if _stdin_is_terminal() else _read_stdin(encoding)
    text = decode_argument(prompt, encoding, "the prompt argument")
    if not _stdin_is_terminal():
        piped = _read_stdin(encoding)
        if piped.strip():
            text = f"{piped.rstrip(chr(10))}\n\n{text}"
    return text


@contextlib.contextmanager
def _without_httpx_cli() -> Iterator[None]:
    """While llmrelay first imports httpx, skip httpx's own command-line tool.

    ``import httpx`` runs ``from ._main import main`` inside ``try/except ImportError``:
    when click, rich and pygments are installed (click is, for this CLI) it imports
    ``httpx._main``, which imports rich and pygments (~35 ms measured here), only to
    define ``httpx.main``, the entry point of httpx's own ``httpx`` console script. A
    ``None`` entry in ``sys.modules`` makes that import raise ``ImportError`` (the import
    system's documented behaviour:
    https://docs.python.org/3/reference/import.html#the-module-cache), so httpx takes
    its own fallback branch. Why this is safe: it happens only in this command-line
    process, only if httpx is not imported yet, and nothing here calls ``httpx.main``
    (httpx's console script runs in its own process); the entry is removed right after,
    so a later ``import httpx._main`` in this process works as usual. Only the
    ``httpx.main`` attribute of this process is httpx's fallback. ``httpx._main`` is a
    private name: ``pyproject.toml`` bounds httpx's version, and
    ``tests/cli/test_httpx_cli_skip.py`` fails when httpx changes that import.
    """
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        yield
        return
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if "httpx._main" in sys.modules and sys.modules["httpx._main"] is None:
            del sys.modules["httpx._main"]


def _candidates(client: llmrelay.AsyncClient, model: str | None) -> list[str] | None:
    """What the client resolves ``model`` to (its default when ``None``), if it can."""
    try:
        candidates: list[str] = client.candidates(model)
    except llmrelay.ConfigError:
        return None  # an unknown model: the request names the error
    return candidates


async def _open_client(kwargs: dict[str, Any]) -> llmrelay.AsyncClient:
    client = llmrelay.AsyncClient(**kwargs)
    await client.__aenter__()
    client.prepare()  # httpx is imported now, inside _without_httpx_cli: a chat uses it
    return client


@click.command()
@click.argument("prompt", required=False)
@click.option("-m", "--model", help="Model reference: provider:model, a provider, or an alias.")
@click.option("-s", "--system", help="System prompt.")
@click.option(
    "-c", "--continue", "continue_", is_flag=True, help="Continue the most recent conversation."
)
@click.option("--cid", "--conversation", "cid", help="Continue the conversation with this id.")
@click.option(
    "-o",
    "--option",
    "option_pairs",
    type=(str, str),
    multiple=True,
    metavar="NAME VALUE",
    help="Provider option (see `llmrelay providers --json`), converted to its declared type.",
)
@click.option(
    "-a",
    "--attachment",
    "attachments",
    multiple=True,
    metavar="PATH|URL",
    help="An image sent with the prompt: a PNG, JPEG, WebP or GIF file, or an http(s):// or "
    "data: URL (repeatable).",
)
@click.option("--strict", is_flag=True, help="An option a provider cannot honour is an error.")
@click.option("--temperature", type=click.FloatRange(min=0.0), help="Sampling temperature.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Maximum tokens to generate.")
@click.option("--no-stream", is_flag=True, help="Print the answer when it is complete.")
@click.option("-u", "--usage", is_flag=True, help="Print token usage to stderr.")
@click.option(
    "--events", is_flag=True, help="Print every event as one JSON object per line (type field)."
)
@click.option(
    "--schema",
    "schema_text",
    help="Answer as JSON following this schema (JSON, or llm's 'name, age int, bio: text'); "
    "printed as JSON.",
)
@click.option(
    "--schema-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Like --schema, the schema read from a file.",
)
@click.option(
    "--tool",
    "tool_texts",
    multiple=True,
    metavar="JSON",
    help='A tool the model may call: {"name", "description", "parameters"}; calls are '
    "printed as JSON lines.",
)
@click.option(
    "--tool-emulation",
    is_flag=True,
    help="Emulate tools and --schema on providers without them (described in the prompt, "
    "the answer validated).",
)
@click.option("--no-log", is_flag=True, help="Do not log this exchange.")
@click.option(
    "--encoding", help="Encoding of piped input and arguments (default UTF-8), e.g. latin-1."
)
@click.option("--proxy", help="http://, https:// or socks5:// proxy URL.")
@click.option("--timeout", type=click.FloatRange(min=0.001), help="Read (idle) timeout, seconds.")
@click.option(
    "--total-timeout",
    type=click.FloatRange(min=0.001),
    help="Longest a whole answer may take, seconds (fallback included).",
)
@click.option(
    "--first-token-timeout",
    type=click.FloatRange(min=0.001),
    help="Longest wait for the first content of the answer, per candidate, seconds.",
)
@verbose_option
def chat(
    prompt: str | None,
    model: str | None,
    system: str | None,
    continue_: bool,
    cid: str | None,
    option_pairs: tuple[tuple[str, str], ...],
    attachments: tuple[str, ...],
    strict: bool,
    temperature: float | None,
    max_tokens: int | None,
    no_stream: bool,
    usage: bool,
    events: bool,
    schema_text: str | None,
    schema_file: str | None,
    tool_texts: tuple[str, ...],
    tool_emulation: bool,
    no_log: bool,
    encoding: str | None,
    proxy: str | None,
    timeout: float | None,
    total_timeout: float | None,
    first_token_timeout: float | None,
) -> None:
    """Send PROMPT and stream the answer; with no PROMPT on a terminal, chat turn by turn.

    Piped standard input comes first, then PROMPT (`cat app.py | llmrelay chat 'explain
    this'`); PROMPT `-` reads only standard input. Only the answer text goes to stdout;
    diagnostics go to stderr. Every exchange is logged (see `llmrelay logs`).
    """
    import asyncio

    from ._session import TurnLog, TurnOptions

    text = _assemble_prompt(prompt, encoding)
    if text is not None and not text.strip():
        raise click.UsageError("the prompt is empty")
    if text is None and events:
        raise click.UsageError("--events needs a PROMPT (or piped input)")
    if system is not None:
        system = decode_argument(system, encoding, "the --system argument")
    schema = _schema(schema_text, schema_file)
    options = TurnOptions(
        model=model,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        events=events,
        stream=not no_stream,
        usage=usage,
        schema=schema,
        tools=_tools(tool_texts),
        tool_emulation=True if tool_emulation else None,
        attachments=_attachments(attachments),
    )
    log = TurnLog(write=not no_log and logging_enabled())
    try:
        session, last = _session(log, continue_=continue_, cid=cid)
        if last is not None:  # a continued conversation keeps its model and system prompt
            options.model = options.model or last.model_requested
            options.system = options.system if options.system is not None else last.system
        client_kwargs = make_client_kwargs(
            proxy=proxy,
            timeout=timeout,
            total_timeout=total_timeout,
            first_token_timeout=first_token_timeout,
        )
        if strict:
            client_kwargs["strict"] = True
        with asyncio.Runner() as runner:
            _run(runner, client_kwargs, session, text, options, option_pairs, strict, log)
    except KeyboardInterrupt:
        click.echo("\nllmrelay: interrupted", err=True)
        sys.exit(130)
    finally:
        log.close()


def _attachments(values: tuple[str, ...]) -> list[dict[str, Any]]:
    """The ``-a`` images as ``image_url`` parts (``cli._attach``, imported only then)."""
    if not values:
        return []
    from ._attach import image_part

    return [image_part(value) for value in values]


def _tools(texts: tuple[str, ...]) -> list[dict[str, Any]]:
    """The ``--tool`` definitions (``cli._schema``, imported only then)."""
    if not texts:
        return []
    from ._schema import parse_tool

    return [parse_tool(text) for text in texts]


def _schema(text: str | None, path: str | None) -> dict[str, Any] | None:
    """The ``--schema`` / ``--schema-file`` schema, or ``None`` (``cli._schema`` only then)."""
    if text is not None and path is not None:
        raise click.UsageError("give --schema or --schema-file, not both")
    if text is None and path is None:
        return None
    from ._schema import parse_schema

    if path is not None:
        with open(path, "rb") as handle:
            return parse_schema(decode_bytes(handle.read(), None, path), "--schema-file")
    return parse_schema(text) if text is not None else None


def _session(
    log: TurnLog, *, continue_: bool, cid: str | None
) -> tuple[ChatSession, LogEntry | None]:
    from ._session import ChatSession

    if not (continue_ or cid):
        return ChatSession(), None
    from llmrelay.log import LogError

    try:
        loaded = log.load(cid)
    except LogError as exc:
        fail(f"cannot continue the conversation: {exc}", code=1)
    if loaded is None:
        if cid:
            fail(f"no conversation {cid!r} in the log (see `llmrelay logs`)", code=2)
        return ChatSession(), None
    logger.info("continuing conversation %s", loaded[0])
    try:
        return ChatSession(loaded[1], conversation_id=loaded[0]), loaded[2]
    except (ValueError, TypeError) as exc:
        fail(f"conversation {loaded[0]} is stored damaged: {exc}", code=1)


def _run(
    runner: asyncio.Runner,
    client_kwargs: dict[str, Any],
    session: ChatSession,
    text: str | None,
    options: TurnOptions,
    option_pairs: tuple[tuple[str, str], ...],
    strict: bool,
    log: TurnLog,
) -> None:
    from ._session import Output, run_turn

    try:
        with _without_httpx_cli():
            client = runner.run(_open_client(client_kwargs))
    except llmrelay.ConfigError as exc:
        fail(describe_error(exc), code=2)
    try:
        options.proxy = client_kwargs.get("proxy")
        if option_pairs or text is None:
            # -o values are typed by what the providers declare; a chat session shows
            # a bad alias or provider before the first line is typed
            try:
                aliases = client.aliases()
                options.descriptions = client.providers()
            except llmrelay.ConfigError as exc:
                fail(describe_error(exc), code=2)
            from ._options import resolve_options

            options.options = resolve_options(
                option_pairs,
                model=options.model,
                descriptions=options.descriptions,
                aliases=aliases,
                strict=strict,
                candidates=_candidates(client, options.model),
            )
        else:
            # one prompt without -o: describing every provider would import every
            # provider module before the request (~10 ms); only an error needs them
            options.describe = client.providers
        if text is None:
            from ._repl import repl

            repl(runner, client, session, options, log)
            return
        try:
            runner.run(run_turn(client, session, text, options, log, Output()))
        except llmrelay.ConfigError as exc:
            fail(describe_error(exc), code=2)
        except llmrelay.LLMRelayError as exc:
            fail(options.explain(exc), code=1)
    finally:
        runner.run(client.aclose())
