"""One chat turn for the CLI: stream it out, time it, keep the conversation, log it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

import llmrelay

from . import _collector
from ._common import describe_error, warn
from ._text import StatusLine, queued_text

if TYPE_CHECKING:  # the exchange log loads after the first token (``TurnLog.prepare``)
    from llmrelay.log import ExchangeLog, LogEntry

__all__ = ["ChatSession", "Output", "TurnLog", "TurnOptions", "run_turn"]

logger = logging.getLogger("llmrelay.cli")
_CONTENT = (str, llmrelay.Reasoning, llmrelay.ImageResult, llmrelay.ToolCallDelta)


class TurnLog:
    """The exchange log as the CLI uses it: the first failure warns once, then logging stops.

    The database layer (SQLAlchemy) is imported when a turn is recorded, after its answer
    has been printed: importing it beside the request (a thread) competed with the request
    for the GIL and delayed the first token by more than the import itself.

    Args:
        write: whether turns are logged (``--no-log`` and ``llmrelay logs off`` turn it off).
    """

    def __init__(self, *, write: bool) -> None:
        self.write = write
        self._log: ExchangeLog | None = None
        self._prepared = False

    def _open(self) -> ExchangeLog:
        if self._log is None:
            from llmrelay.log import ExchangeLog

            self._log = ExchangeLog()
        return self._log

    def load(
        self, conversation_id: str | None
    ) -> tuple[str, dict[str, Any], LogEntry | None] | None:
        """``(id, stored data, last exchange)`` of ``conversation_id`` or of the latest one.

        Raises:
            LogError: the log cannot be read.
        """
        log = self._open()
        cid = conversation_id or log.latest_conversation_id()
        if cid is None:
            return None
        data = log.conversation(cid)
        if data is None:
            return None
        last = log.entries(limit=1, conversation_id=cid)
        return cid, data, last[0] if last else None

    def prepare(self) -> None:
        """Open the log in a background thread (once), while the answer streams.

        The SQLAlchemy import, the connection and the migration check then overlap the
        answer instead of delaying the exit after it (``ExchangeLog.open_in_background``);
        called at the first token, so the import does not compete with the request.
        """
        if self.write and not self._prepared:
            self._prepared = True
            self._open().open_in_background()

    def record(self, entry: LogEntry, conversation: dict[str, Any], name: str) -> None:
        """Log ``entry``; on a database failure warn once on stderr and stop logging."""
        if not self.write:
            return
        from llmrelay.log import LogError

        try:
            self._open().add(entry, conversation=conversation, conversation_name=name)
            logger.info("logged exchange %s to %s", entry.id, self._open().display_url)
        except LogError as exc:
            self.write = False
            warn(f"this exchange was not logged: {exc}")

    def close(self) -> None:
        """Release the database."""
        if self._log is not None:
            self._log.close()


class ChatSession:
    """The conversation carried across turns, stored in the log as its ``to_dict()``.

    An ``llmrelay.Conversation``: the messages and each provider's own state.
    """

    def __init__(self, data: dict[str, Any] | None = None, conversation_id: str | None = None):
        if data:
            self.conversation = llmrelay.Conversation.from_dict(
                {**data, "id": data.get("id") or conversation_id}
            )
        else:
            self.conversation = llmrelay.Conversation(id=conversation_id)
        self.id: str = self.conversation.id
        self.turns = 0

    def call(self, prompt: str) -> tuple[str, llmrelay.ChatParams]:
        """``(messages, keyword arguments)`` for ``client.stream`` for this turn."""
        return prompt, {"conversation": self.conversation}

    def finished(self) -> None:
        """Count a completed turn (the core appended it to the conversation)."""
        self.turns += 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form stored in the log."""
        return self.conversation.to_dict()


class TurnOptions:
    """What the user asked for, the same for every turn.

    A plain class (each argument an attribute of the same name): the chat builds one
    before its first token, and a dataclass's generated methods cost more there than
    this whole class (its ``__eq__`` and ``__repr__`` were never used).

    Args:
        model: ``-m``, the model reference (``None``: the default model).
        system: ``--system``, the system prompt.
        temperature: ``--temperature``.
        max_tokens: ``--max-tokens``.
        options: ``-o`` provider options.
        events: ``--events``: every event as a JSON line.
        stream: the answer printed as it streams (``--no-stream``: at the end).
        usage: ``--usage``: the token usage on stderr.
        proxy: ``--proxy`` (named in a connection error's hint).
        schema: ``--schema``: the answer is JSON following it, printed as JSON.
        tools: ``--tool`` definitions.
        tool_emulation: ``--tool-emulation`` (``None``: the client's default).
        attachments: ``-a``: ``image_url`` parts sent with the next turn's prompt (then
            cleared).
        descriptions: the providers' descriptions named in an error's hint.
        describe: gives ``descriptions`` when an error first needs them
            (``client.providers``).
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        options: dict[str, Any] | None = None,
        events: bool = False,
        stream: bool = True,
        usage: bool = False,
        proxy: str | None = None,
        schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_emulation: bool | None = None,
        attachments: list[dict[str, Any]] | None = None,
        descriptions: list[llmrelay.ProviderDescription] | None = None,
        describe: Callable[[], list[llmrelay.ProviderDescription]] | None = None,
    ) -> None:
        self.model = model
        self.system = system
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.options: dict[str, Any] = {} if options is None else options
        self.events = events
        self.stream = stream
        self.usage = usage
        self.proxy = proxy
        self.schema = schema
        self.tools: list[dict[str, Any]] = [] if tools is None else tools
        self.tool_emulation = tool_emulation
        self.attachments: list[dict[str, Any]] = [] if attachments is None else attachments
        self.descriptions: list[llmrelay.ProviderDescription] = (
            [] if descriptions is None else descriptions
        )
        self.describe = describe

    def explain(self, exc: BaseException) -> str:
        """The error's message with what to check (see ``describe_error``)."""
        if self.describe is not None:
            describe, self.describe = self.describe, None
            try:
                self.descriptions = describe()
            except Exception as described:  # a provider that cannot load: the error
                # being explained matters more than the hint
                logger.info("cannot describe the providers: %s", described)
        return describe_error(exc, proxy=self.proxy, descriptions=self.descriptions)

    def call_kwargs(self, turn: llmrelay.ChatParams) -> llmrelay.ChatParams:
        """Keyword arguments of ``client.stream``: this turn's (``turn``) and these."""
        kwargs = turn.copy()
        kwargs["model"] = self.model
        kwargs["system"] = self.system
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        if self.options:
            kwargs["options"] = self.options
        if self.schema is not None:
            from ._schema import response_format

            kwargs["response_format"] = response_format(self.schema)
        if self.tools:
            kwargs["tools"] = self.tools
        if self.tool_emulation is not None:
            kwargs["tool_emulation"] = self.tool_emulation
        return kwargs


class Output:
    """stdout as the answer's channel; knows whether the current line is unfinished."""

    def __init__(self) -> None:
        self.open_line = False

    def write(self, text: str) -> None:
        """Write and flush ``text``."""
        if not text:
            return
        out = sys.stdout
        out.write(text)
        out.flush()
        self.open_line = not text.endswith("\n")

    def end_line(self) -> None:
        """End an unfinished line (before an error or the next prompt)."""
        if self.open_line:
            self.write("\n")

    def json(self, obj: dict[str, Any]) -> None:
        """One JSON object on its own line."""
        self.write(json.dumps(obj, ensure_ascii=False) + "\n")


_ATTEMPT_FIELDS = ("provider", "model", "outcome", "error_type", "message")


def _attempts(stream: llmrelay.AsyncChatStream) -> list[dict[str, Any]]:
    """``stream.attempts`` (``llmrelay.Attempt``) as JSON-ready dicts, without the error."""
    result = []
    for attempt in getattr(stream, "attempts", None) or ():
        fields = {name: getattr(attempt, name, None) for name in _ATTEMPT_FIELDS}
        result.append({k: v if v is None else str(v) for k, v in fields.items()})
    return result


def _error_object(exc: BaseException, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": type(exc).__name__,
        "provider": getattr(exc, "provider", None),
        "model": getattr(exc, "model", None),
        "message": message,
    }


async def run_turn(
    client: llmrelay.AsyncClient,
    session: ChatSession,
    prompt: str,
    options: TurnOptions,
    log: TurnLog,
    out: Output,
) -> LogEntry:
    """Stream one turn to ``out``, then log it (also when it fails or is interrupted).

    Raises:
        llmrelay.LLMRelayError: the turn failed (already reported on stdout with --events).
        asyncio.CancelledError / KeyboardInterrupt: interrupted (the partial answer is logged).
    """
    text, kwargs = session.call(prompt)
    messages: str | list[dict[str, Any]] = text
    if options.attachments:
        from ._attach import with_attachments

        messages, options.attachments = with_attachments(prompt, options.attachments), []
    # what the log records, gathered while the answer streams; the ``LogEntry`` (and
    # the exchange log's module) comes after the stream, off the first token's path
    provider: str | None = None
    model: str | None = None
    first_token_ms: int | None = None
    usage: dict[str, int | None] | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    error: str | None = None
    parts: list[str] = []
    calls = _Calls()
    started = time.monotonic()
    stream = client.stream(messages, **options.call_kwargs(kwargs))
    status = StatusLine()
    first = False
    try:
        async for event in stream:
            _collector.resume()  # start-up is over (see ``_collector``)
            if isinstance(event, llmrelay.Queued) and not options.events:
                status.show(queued_text(event.position, event.eta))
                continue
            status.clear()
            if first_token_ms is None and isinstance(event, _CONTENT) and event:
                first_token_ms = round((time.monotonic() - started) * 1000)
                first = True
            if isinstance(event, llmrelay.ProviderInfo):
                provider, model = event.provider, event.model
            elif isinstance(event, llmrelay.FinishReason):
                finish_reason = event.reason
            elif isinstance(event, llmrelay.Usage):
                usage = dataclasses.asdict(event)
            elif isinstance(event, llmrelay.ToolCallDelta):
                calls.add(event)
            if options.events:
                out.json(llmrelay.event_to_dict(event))
            elif isinstance(event, str):
                parts.append(event)
                if options.stream and options.schema is None:
                    out.write(event)
            if first:  # the first token is out: open the log beside the rest of the answer
                first = False
                log.prepare()
        session.finished()
    except (llmrelay.LLMRelayError, asyncio.CancelledError, KeyboardInterrupt) as exc:
        error_type = type(exc).__name__
        error = options.explain(exc) if isinstance(exc, llmrelay.LLMRelayError) else None
        provider = getattr(exc, "provider", None) or provider
        model = getattr(exc, "model", None) or model
        if options.events and isinstance(exc, llmrelay.LLMRelayError):
            out.json(_error_object(exc, error or ""))
        raise
    finally:
        _collector.resume()
        status.clear()
        await stream.aclose()
        from llmrelay.log import LogEntry

        entry = LogEntry(
            prompt=prompt,
            answer="".join(parts),
            conversation_id=session.id,
            system=options.system,
            model_requested=options.model,
            provider=provider,
            model=model,
            attempts=_attempts(stream)
            or (
                [{"provider": provider, "model": model, "outcome": "ok"}]
                if provider and error is None
                else []
            ),
            first_token_ms=first_token_ms,
            duration_ms=round((time.monotonic() - started) * 1000),
            usage=usage,
            finish_reason=finish_reason,
            error_type=error_type,
            error=error,
            tool_calls=calls.assembled(),
        )
        if not options.events:
            _print_answer(entry, options, out)
        log.record(entry, session.to_dict(), name=prompt[:80])
        _report(entry, options)
    return entry


class _Calls:
    """Tool calls assembled from their ``ToolCallDelta`` events (by ``index``)."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, delta: llmrelay.ToolCallDelta) -> None:
        call = self._calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
        call["id"] = call["id"] or delta.id
        call["name"] = call["name"] or delta.name
        call["arguments"] += delta.arguments

    def assembled(self) -> list[dict[str, Any]]:
        """``[{"id", "name", "arguments"}]`` in index order."""
        return [self._calls[index] for index in sorted(self._calls)]


def _print_answer(entry: LogEntry, options: TurnOptions, out: Output) -> None:
    """What is left to print after the stream: a held answer, the JSON, the calls."""
    if options.schema is not None and entry.error_type is None and entry.answer:
        try:
            value = json.loads(entry.answer)
        except ValueError:
            out.write(entry.answer)  # the provider's own (native) answer, as it came
            out.end_line()
            click.echo("llmrelay: the answer is not JSON", err=True)
        else:
            out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
    elif not options.stream:
        out.write(entry.answer)
    out.end_line()
    for call in entry.tool_calls or ():
        out.json({"tool_call": call})


def _report(entry: LogEntry, options: TurnOptions) -> None:
    logger.info(
        "answered by %s:%s (requested %s), first token %s ms, total %s ms, finish %s",
        entry.provider,
        entry.model,
        entry.model_requested or "the default model",
        entry.first_token_ms,
        entry.duration_ms,
        entry.finish_reason,
    )
    for attempt in entry.attempts:
        logger.info("attempt: %s", attempt)
    if options.usage and entry.error_type is None:
        usage = entry.usage or {}
        if any(v is not None for v in usage.values()):
            parts = [f"{usage.get(k)} {k.split('_')[0]}" for k in usage if usage.get(k) is not None]
            click.echo(f"Token usage: {', '.join(parts)}", err=True)
        else:
            click.echo(f"Token usage: not reported by {entry.provider}", err=True)
