r"""``AsyncChatStream``: one chat turn as a closeable, collectable stream with an open phase.

Open phase (``await stream.start()``, or implicitly on first iteration): the engine
(``Engine.open_chat``) resolves the model, tries the candidates, and returns once the
first *content* event (text, reasoning or an image) has arrived — or raises. That first
content event is the commit point: before it, a retryable failure (or a missing key)
falls back to the next candidate, even if the provider already sent
``ConversationState`` or ``Usage``; after it, a failure is rescued
(``llmrelay._rescue``: a continuation or a regenerated answer that matches what was
delivered) or becomes a ``StreamInterrupted`` carrying the text so far. A server uses
``start()`` to choose its HTTP status before it sends ``200 text/event-stream``.

The order of events, the rule:

* zero or more ``Queued`` -- progress reports of the open phase, delivered as they
  arrive while the candidates are tried (``advance()`` returns them one by one); they
  do not commit: the candidate reporting may still fail and be replaced;
* ``ProviderInfo`` -- the first event of the answer, at the commit point;
* the events buffered during the open phase, then the provider's events as they arrive;
* exactly one ``FinishReason``, last.

A provider stream that ends without a ``FinishReason`` is a ``ProtocolError`` (a
``StreamInterrupted`` after content); content after the finish is dropped and logged; a
failure after the finish (a cut connection) does not undo a complete answer. Text is
valid Unicode whatever the provider sent: a UTF-16 surrogate pair split across two
deltas (JSON ``\ud83d`` then ``\ude00``) is joined, a lone surrogate becomes U+FFFD.
An event a provider could not parse and skipped (not strict) is counted in ``skipped``.

Timeouts: the first-token timeout (and, with a next candidate, the silence limit) bounds
each candidate's open phase; after the first content the stall bound
(``Timeouts.stall``) bounds each wait for the next content event; the total timeout
bounds the whole stream; the read (idle) timeout is the HTTP layer's.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from . import errors
from ._engine import Engine, Opened, OpenPhase, close_quietly, map_exception, task_lookup
from ._router import Target
from ._turn import Skipped, Turn, is_content
from .types import (
    ConversationState,
    Event,
    FinishReason,
    ImageResult,
    ProviderInfo,
    Queued,
    Reasoning,
    ToolCall,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from .types import Completion

__all__ = ["Accumulator", "AsyncChatStream", "mend_text"]

log = logging.getLogger("llmrelay")
_monotonic = time.monotonic
_SURROGATE = re.compile("[\ud800-\udfff]")


def mend_text(text: str, carry: str = "") -> tuple[str, str]:
    r"""``carry + text`` as valid Unicode, and the high surrogate to carry to the next delta.

    A UTF-16 surrogate pair split across two deltas (a JSON ``\ud83d`` ending one chunk,
    ``\ude00`` starting the next) is joined into its character; any other surrogate
    becomes U+FFFD. A high surrogate ending ``text`` is held back (returned as the carry)
    in case the next delta starts with its low half.
    """
    text = carry + text
    if not _SURROGATE.search(text):
        return text, ""
    carry = ""
    if "\ud800" <= text[-1] <= "\udbff":
        text, carry = text[:-1], text[-1]
    mended = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return mended, carry


TEXT_BLOCK = 32
"""Text deltas a stream keeps as they came before joining them into one block: the
answer it holds (for ``collect()``, the log, an interruption) then costs about a byte per
character instead of a string object per delta (~55 bytes)."""


class Accumulator:
    """Collects a turn's events into a ``Completion`` (the only such collector)."""

    __slots__ = (
        "blocks",
        "calls",
        "finish",
        "images",
        "info",
        "reasoning",
        "state",
        "text",
        "usage",
    )

    def __init__(self) -> None:
        self.text: list[str] = []
        """The latest text deltas (fewer than ``TEXT_BLOCK``); earlier ones are in ``blocks``."""
        self.blocks: list[str] = []
        self.reasoning: list[str] = []
        self.images: list[ImageResult] = []
        self.info: ProviderInfo | None = None
        self.usage: Usage | None = None
        self.state: ConversationState | None = None
        self.finish: FinishReason | None = None
        self.calls: dict[int, list[str | None]] = {}
        """Tool calls by ``index``: ``[id, name, fragment, fragment, ...]``."""

    def add(self, event: Event) -> None:
        """Record one event (text deltas are appended by the stream directly)."""
        if isinstance(event, str):
            self.text.append(event)
            if len(self.text) >= TEXT_BLOCK:
                self.compact()
        elif isinstance(event, Reasoning):
            self.reasoning.append(event.text)
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, ConversationState):
            self.state = event
        elif isinstance(event, ImageResult):
            self.images.append(event)
        elif isinstance(event, ProviderInfo):
            self.info = event
        elif isinstance(event, FinishReason):
            self.finish = event
        elif isinstance(event, ToolCallDelta):
            call = self.calls.get(event.index)
            if call is None:
                call = self.calls[event.index] = [event.id, event.name]
            else:  # a provider repeating the id or name on later deltas: first one kept
                call[0] = call[0] or event.id
                call[1] = call[1] or event.name
            call.append(event.arguments)

    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The assembled calls, in ``index`` order (fragments joined as they came)."""
        out: list[ToolCall] = []
        for index in sorted(self.calls):
            call_id, name, *fragments = self.calls[index]
            if call_id and name:
                out.append(ToolCall(call_id, name, "".join(f or "" for f in fragments)))
            else:
                log.warning("tool call %d came without an id or a name; dropped", index)
        return tuple(out)

    def compact(self) -> None:
        """Join the text deltas into one block (``text`` is emptied in place)."""
        self.blocks.append("".join(self.text))
        self.text.clear()

    def answer(self) -> str:
        """The text so far."""
        return "".join(self.blocks) + "".join(self.text)

    def completion(self, attempts: list[errors.Attempt]) -> Completion:
        """The collected ``Completion``."""
        from .types import Completion  # llmrelay.types loads it on first use

        info = self.info or ProviderInfo("", "")
        return Completion(
            text=self.answer(),
            finish_reason=self.finish.reason if self.finish else "stop",
            provider=info.provider,
            model=info.model,
            usage=self.usage,
            reasoning="".join(self.reasoning),
            state=self.state,
            images=tuple(self.images),
            attempts=tuple(attempts),
            tool_calls=self.tool_calls(),
        )


class AsyncChatStream:
    """One chat turn: an async iterable of events with an explicit open phase.

    Made by ``AsyncClient.stream()``; nothing is sent until ``start()`` or the first
    iteration. Use ``async with`` or call ``aclose()`` when stopping early: it closes the
    provider's connection (also on cancellation).

    Attributes:
        provider: registry name of the provider answering (``None`` before the open
            phase succeeded).
        model: that provider's model id (``None`` before).
        attempts: each candidate tried so far (``llmrelay.Attempt``).
    """

    __slots__ = (
        "__weakref__",
        "_acc",
        "_agen",
        "_carry",
        "_deadline",
        "_done",
        "_engine",
        "_error",
        "_loop",
        "_opened",
        "_opener",
        "_pending",
        "_rescued",
        "_serving",
        "_stall",
        "_text",
        "_total",
        "_turn",
        "_watchdog",
        "attempts",
        "model",
        "provider",
        "rescue",
        "skipped",
    )

    def __init__(self, engine: Engine, turn: Turn) -> None:
        self._engine = engine
        self._turn = turn
        self.provider: str | None = None
        self.model: str | None = None
        self.attempts: list[errors.Attempt] = []
        self.skipped = 0
        """Events the provider could not parse and skipped (not strict)."""
        self.rescue: bool = engine.settings.rescue
        """Whether a failure after the first content is rescued (``llmrelay._rescue``);
        set it before iterating to change the client's ``rescue`` setting for this stream."""
        self._acc = Accumulator()
        self._text = self._acc.text
        # a list, not a deque: it holds a few events at most (a deque's block is ~600 B)
        self._pending: list[Event] = []
        self._agen: AsyncGenerator[Event, None] | None = None
        self._opener: OpenPhase | None = None
        self._opened = False
        self._done = False
        self._error: BaseException | None = None
        self._total: float | None = None
        self._deadline: float | None = None
        self._stall: float | None = engine.settings.timeouts.stall
        self._watchdog: _Watchdog | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        """The asyncio loop the stream was opened on (``None`` before, or off asyncio)."""
        self._carry = ""
        self._rescued = 0
        self._serving: Target | None = None

    def __repr__(self) -> str:
        who = f"{self.provider}:{self.model}" if self.provider else "not started"
        return f"<AsyncChatStream {who}{' done' if self._done else ''}>"

    # -- open phase ---------------------------------------------------------------------

    async def start(self) -> AsyncChatStream:
        """Open the stream: return once the first content event arrived (idempotent).

        Progress reports (``Queued``) seen on the way are kept: iteration delivers them
        first, before ``ProviderInfo``.

        Returns:
            This stream, with ``provider``, ``model`` and ``attempts`` set.

        Raises:
            llmrelay.errors.ConfigError: unknown model or provider, missing key (single
                candidate), invalid messages.
            llmrelay.errors.ProviderError: the (single) candidate failed before content.
            llmrelay.errors.AllProvidersFailed: several candidates, none answered.
        """
        while True:
            progress = await self.advance()
            if progress is None:
                return self
            self._pending.append(progress)

    async def advance(self) -> Queued | None:
        """Run the open phase to its next progress report, or to the commit point.

        Returns:
            The next ``Queued`` (the open phase goes on at the next call), or ``None``
            once the stream is open (``provider``, ``model`` set; then at once).

        Raises:
            What ``start()`` raises.
        """
        if self._error is not None:
            raise self._error
        opener = self._opener
        if opener is None:
            if self._opened:
                return None
            self._opened = True
            total = self._engine.settings.timeouts.total
            self._total = total
            self._deadline = time.monotonic() + total if total is not None else None
            # one look-up of the loop per stream (Python 3.11's costs a getpid system
            # call): the open phase's timers and the watchdog share it
            loop = self._loop = asyncio.events._get_running_loop()
            opener = self._opener = self._engine.open_chat(
                self._turn, self.attempts, self._deadline, loop=loop
            )
        try:
            item = await opener.__anext__()
        except BaseException as exc:
            self._opener = None
            self._done = True
            self._error = exc
            await opener.aclose()
            raise
        if type(item) is Queued:
            return item
        self._opener = None
        await opener.aclose()
        assert isinstance(item, Opened)
        self._commit(item)
        return None

    def unread(self, progress: Queued) -> None:
        """Put back a progress report ``advance()`` returned: iteration delivers it next."""
        self._pending.insert(0, progress)

    def _commit(self, opened: Opened) -> None:
        """The open phase answered: ``ProviderInfo``, then the events it buffered."""
        self._agen = opened.events
        target = self._serving = opened.target
        self.provider, self.model = target.provider, target.model
        label = self._engine.registry.get(target.provider).label
        info = ProviderInfo(target.provider, target.model, label)
        self._acc.info = info
        self._pending.append(info)
        for event in opened.buffered:
            self._accept(event)

    # -- iteration ----------------------------------------------------------------------

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> Event:
        pending = self._pending
        if pending:
            return pending.pop(0)
        if self._opener is not None or not self._opened:
            progress = await self.advance()
            return progress if progress is not None else pending.pop(0)
        agen = self._agen
        if self._done or agen is None:
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        text = self._text
        acc = self._acc
        secrets = self._engine.secrets
        while True:
            # the provider's errors redact this client's keys (no call without keys)
            token = secrets.activate() if secrets._values else None
            try:
                dog = self._watchdog
                if dog is None or dog.expired:
                    dog = self._arm_watchdog()
                if dog is None:
                    if self._deadline is None and self._stall is None:
                        event = await agen.__anext__()
                    else:
                        event = await self._next_in_scope(agen)
                else:
                    # inline, not a helper coroutine: no coroutine per event
                    # (``tests/perf/test_stream_deadline.py``)
                    task = dog.current()
                    assert task is not None
                    dog.task = task
                    if not dog.since:
                        dog.since = _monotonic()  # a wait for the next content begins
                    try:
                        event = await agen.__anext__()
                    except BaseException as exc:
                        dog.task = None
                        fired = dog.fired
                        if fired:
                            dog.fired = None
                            if task.uncancel() == 0 and isinstance(exc, asyncio.CancelledError):
                                raise self._timeout(fired) from None
                        raise
                    dog.task = None
                    if dog.fired:  # the provider swallowed the cancellation
                        fired, dog.fired = dog.fired, None
                        task.uncancel()
                        raise self._timeout(fired)
            except StopAsyncIteration:
                if acc.finish is None:
                    return await self._fail(_EndedWithoutFinish(self._no_finish()))
                return self._end()
            except BaseException as exc:
                return await self._fail(exc)
            finally:
                if token is not None:
                    secrets.deactivate(token)
            if type(event) is str:
                if acc.finish is None:
                    if event.isascii() and not self._carry:
                        if dog is not None and event:
                            dog.since = 0.0  # content: the next wait restarts the stall bound
                        text.append(event)
                        if len(text) >= TEXT_BLOCK:
                            acc.compact()
                        return event
                    if dog is not None and event:
                        dog.since = 0.0
                    if self._accept(event):
                        return pending.pop(0)
                    continue
                log.warning("%s sent text after its finish; dropped", self.provider)
                continue
            if dog is not None and is_content(event):
                dog.since = 0.0
            if self._accept(event):
                return pending.pop(0)

    def _arm_watchdog(self) -> _Watchdog | None:
        """The stream's watchdog (total timeout and stall bound), or ``None``: a scope.

        On asyncio one loop timer per stream (``_Watchdog``) bounds every wait: it
        cancels the task only if the total deadline passes, or the stall bound since the
        wait for the next content began, while it waits for the provider, and
        ``__anext__`` turns the cancellation into the timeout (``Task.uncancel``, as
        ``asyncio.timeout`` does; a cancellation from elsewhere still propagates). Other
        backends, and a stream past its deadline, use one cancel scope per event (there
        any event restarts the stall bound). Without a total timeout nor a stall bound,
        neither.
        """
        dog = self._watchdog
        if dog is None:
            if self._deadline is None and self._stall is None:
                return None
            loop = self._loop
            if loop is None:  # not asyncio (trio): a scope per event
                return None
            dog = self._watchdog = _Watchdog(loop, self._deadline, self._stall)
        return None if dog.expired else dog

    async def _next_in_scope(self, agen: AsyncGenerator[Event, None]) -> Event:
        limit, kind = self._deadline, "total"
        stall = self._stall
        if stall is not None and (limit is None or time.monotonic() + stall < limit):
            limit, kind = time.monotonic() + stall, "stall"
        if limit is None:
            return await agen.__anext__()
        with anyio.move_on_after(limit - time.monotonic()) as scope:
            return await agen.__anext__()
        assert scope.cancelled_caught
        raise self._timeout(kind)

    def _timeout(self, kind: str) -> errors.ProviderTimeout:
        if kind == "stall":
            text = f"no new content for {self._stall:g}s (the stall bound)"
        else:
            text = f"total timeout of {self._total:g}s exceeded"
        return errors.ProviderTimeout(
            text, kind=kind, provider=self.provider or "", model=self.model
        )

    def _stop_watchdog(self) -> None:
        dog, self._watchdog = self._watchdog, None
        if dog is not None:
            dog.cancel()

    def _accept(self, event: Event) -> bool:
        """File an event; queue it unless it is a finish (held) or late content.

        Returns whether something was queued for the caller.
        """
        acc = self._acc
        if isinstance(event, FinishReason):
            if acc.finish is None:
                acc.finish = event
            return False
        if acc.finish is not None and (is_content(event) or type(event) is str):
            log.warning("%s sent content after its finish; dropped", self.provider)
            return False
        if type(event) is str:
            event, self._carry = mend_text(event, self._carry)
            if not event:
                return False  # only half of a surrogate pair: held for the next delta
        elif type(event) is Reasoning and _SURROGATE.search(event.text):
            mended, held = mend_text(event.text)  # no joining across reasoning deltas
            event = Reasoning(mended + ("\ufffd" if held else ""))
        elif isinstance(event, Skipped):
            self.skipped += 1
            log.warning(
                "%s: skipped an unparsable %s (%d so far)", self.provider, event.what, self.skipped
            )
            return False
        acc.add(event)
        self._pending.append(event)
        return True

    def _no_finish(self) -> errors.ProtocolError:
        return errors.ProtocolError(
            "the stream ended without a finish (the answer may be cut short)",
            provider=self.provider or "",
            model=self.model,
        )

    def _end(self) -> Event:
        """The provider's stream ended with its finish: emit it."""
        finish = self._acc.finish
        assert finish is not None
        self._agen = None
        self._stop_watchdog()
        self._done = True
        self._record_skipped()
        self._record()
        if self._carry:  # a high surrogate never completed
            self._carry = ""
            self._acc.add("\ufffd")
            self._pending.append(finish)
            return "\ufffd"
        return finish

    async def _fail(self, exc: BaseException) -> Event:
        """The provider raised (or ended without a finish): finish, rescue, or fail.

        Returns the held finish when the answer was complete, or the rescued stream's
        next event (``llmrelay._rescue``); otherwise raises the mapped error
        (``StreamInterrupted``).
        """
        if isinstance(exc, _EndedWithoutFinish):
            cause: BaseException = exc.cause
            exc = exc.cause
        else:
            mapped = map_exception(exc, self.provider or "", self.model or "")
            cause = mapped if mapped is not None else exc
        agen, self._agen = self._agen, None
        self._done = True
        self._stop_watchdog()
        if agen is not None:
            await close_quietly(agen)
        if not isinstance(cause, errors.ProviderError):
            raise exc
        finish = self._acc.finish
        if finish is not None:
            # a complete answer: a cut after the finish does not undo it
            log.warning(
                "%s failed after its finish (%s); the answer is complete", self.provider, cause
            )
            self._record_skipped()
            self._record()
            return finish
        if self.rescue and self._rescued < _MAX_RESCUES:
            from ._rescue import rescue

            self._rescued += 1
            rescued = await rescue(self._engine, self, cause)
            if rescued is not None:
                self._serving, self._agen = rescued
                self._done = False
                self._watchdog = None
                return await self.__anext__()
        raise self._interrupted(cause) from exc

    def _record_skipped(self) -> None:
        """Say in the answering attempt how many events were skipped (the exchange log)."""
        if not self.skipped:
            return
        for index in range(len(self.attempts) - 1, -1, -1):
            attempt = self.attempts[index]
            if attempt.outcome in ("ok", "rescued"):
                note = f"skipped {self.skipped} unparsable event(s)"
                message = f"{attempt.message}; {note}" if attempt.message else note
                self.attempts[index] = errors.Attempt(
                    attempt.provider, attempt.model, attempt.outcome, attempt.error_type, message
                )
                return

    def _interrupted(self, cause: errors.ProviderError) -> errors.StreamInterrupted:
        interrupted = errors.StreamInterrupted(cause, self._acc.answer())
        interrupted.__cause__ = cause
        return interrupted

    def _record(self) -> None:
        conversation = self._turn.conversation
        if conversation is not None:
            state = self._acc.state
            if state is not None and state.provider != self.provider:
                state = None
            conversation.record(self._turn.new, self._acc.answer(), state, self._acc.tool_calls())

    # -- closing and collecting ---------------------------------------------------------

    async def aclose(self) -> None:
        """Stop: close the provider's stream and its connection (idempotent)."""
        self._done = True
        self._pending.clear()
        self._stop_watchdog()
        agen, self._agen = self._agen, None
        opener, self._opener = self._opener, None
        if opener is not None:
            with anyio.CancelScope(shield=True):
                await opener.aclose()
        if agen is not None:
            with self._engine.secrets.active():
                await close_quietly(agen)

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def collect(self) -> Completion:
        """Read the rest of the stream and return the whole turn as a ``Completion``.

        Events already iterated count too. Raises what iteration raises.
        """
        async for _ in self:
            pass
        return self._acc.completion(self.attempts)

    @property
    def text(self) -> str:
        """The answer text received so far."""
        return self._acc.answer()

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls received so far, assembled.

        ``ToolCallDelta`` fragments joined, in ``index`` order; a call still without an
        id or a name is left out.
        """
        return self._acc.tool_calls()

    def reports_usage(self) -> bool:
        """Whether the answering provider reports token counts (``Capability.USAGE``).

        ``False`` before the stream opened.
        """
        if self.provider is None:
            return False
        from .providers import Capability

        return Capability.USAGE in self._engine.registry.get(self.provider).capabilities


_MAX_RESCUES = 2
"""Rescues of one stream at most (a rescued stream that breaks again is rescued once more)."""


class _EndedWithoutFinish(Exception):
    """The provider's stream ended without a finish (handled as a failure: rescued)."""

    def __init__(self, cause: errors.ProtocolError) -> None:
        self.cause = cause
        super().__init__(str(cause))


class _Watchdog:
    """One loop timer for a stream's total deadline and stall bound (asyncio).

    ``task`` is set only while the stream waits for its provider; ``since`` is when the
    wait for the next content began (``0.0``: content just came, the next wait sets
    it). The timer fires at the deadline or at ``since + stall``, whichever is sooner,
    and re-arms itself when content came meanwhile (no timer operation per event). At
    the deadline it cancels a waiting task (``fired = "total"``) and otherwise only marks
    it ``expired``: later waits then run under an already expired cancel scope, exactly
    as before (an event the provider yields without waiting is still delivered). A stall
    cancels only a waiting task (``fired = "stall"``): time the caller spends between
    reads never counts. Holds no reference to the stream.
    """

    __slots__ = (
        "current",
        "deadline",
        "expired",
        "fired",
        "handle",
        "loop",
        "since",
        "stall",
        "task",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None, stall: float | None
    ) -> None:
        self.loop = loop
        self.current = task_lookup(loop)
        """The running task (``asyncio.current_task``, cheaper)."""
        self.task: asyncio.Task[Any] | None = None
        self.expired = False
        self.fired: str | None = None
        self.deadline = deadline
        self.stall = stall
        self.since = _monotonic()
        self.handle: asyncio.TimerHandle | None = None
        self._arm(self.since)

    def _arm(self, now: float) -> None:
        when = self.deadline
        if self.stall is not None:
            due = (self.since or now) + self.stall
            if when is None or due < when:
                when = due
        if when is None:
            self.handle = None
            return
        loop = self.loop
        self.handle = loop.call_at(loop.time() + (when - _monotonic()), self._fire)

    def _fire(self) -> None:
        now = _monotonic()
        task = self.task
        if self.deadline is not None and now >= self.deadline:
            self.expired = True
            if task is not None:
                self.fired = "total"
                task.cancel()
            return
        since = self.since
        stall = self.stall
        if stall is None:
            self._arm(now)  # pragma: no cover - armed for the deadline only
            return
        if task is not None and since:
            if now - since >= stall:
                self.fired = "stall"
                task.cancel()
                return
            self._arm(now)  # content came meanwhile: due at since + stall
            return
        # not waiting for the provider (the caller is busy): look again a bound later
        self.since = 0.0
        self._arm(now)

    def cancel(self) -> None:
        """Stop the timer."""
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.cancel()
