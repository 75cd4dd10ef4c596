"""``AsyncChatStream``: one chat turn as a closeable, collectable stream with an open phase.

Open phase (``await stream.start()``, or implicitly on first iteration): the engine
(``Engine.open_chat``) resolves the model, tries the candidates, and returns once the
first *content* event (text, reasoning or an image) has arrived — or raises. That first
content event is the commit point: before it, a retryable failure (or a missing key)
falls back to the next candidate, even if the provider already sent
``ConversationState`` or ``Usage``; after it, any failure is a ``StreamInterrupted``
carrying the text so far. A server uses ``start()`` to choose its HTTP status before it
sends ``200 text/event-stream``.

Iteration yields ``ProviderInfo`` first, then the events buffered during the open phase,
then the provider's events as they arrive, and exactly one ``FinishReason`` last. A
provider stream that ends without a ``FinishReason`` is a ``ProtocolError`` (a
``StreamInterrupted`` after content); content after the finish is dropped and logged; a
failure after the finish (a cut connection) does not undo a complete answer.

Timeouts: the first-token timeout bounds each candidate's open phase; the total timeout
bounds the whole stream; the read (idle) timeout is the HTTP layer's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any

import anyio

from . import errors
from ._engine import Engine, close_quietly, map_exception
from ._turn import Turn, is_content
from .types import (
    Completion,
    ConversationState,
    Event,
    FinishReason,
    ImageResult,
    ProviderInfo,
    Reasoning,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["Accumulator", "AsyncChatStream"]

log = logging.getLogger("llmrelay")
_current_task = asyncio.current_task

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
        "_deadline",
        "_done",
        "_engine",
        "_error",
        "_opened",
        "_pending",
        "_text",
        "_total",
        "_turn",
        "_watchdog",
        "attempts",
        "model",
        "provider",
    )

    def __init__(self, engine: Engine, turn: Turn) -> None:
        self._engine = engine
        self._turn = turn
        self.provider: str | None = None
        self.model: str | None = None
        self.attempts: list[errors.Attempt] = []
        self._acc = Accumulator()
        self._text = self._acc.text
        # a list, not a deque: it holds a few events at most (a deque's block is ~600 B)
        self._pending: list[Event] = []
        self._agen: AsyncGenerator[Event, None] | None = None
        self._opened = False
        self._done = False
        self._error: BaseException | None = None
        self._total: float | None = None
        self._deadline: float | None = None
        self._watchdog: _Watchdog | None = None

    def __repr__(self) -> str:
        who = f"{self.provider}:{self.model}" if self.provider else "not started"
        return f"<AsyncChatStream {who}{' done' if self._done else ''}>"

    # -- open phase ---------------------------------------------------------------------

    async def start(self) -> AsyncChatStream:
        """Open the stream: return once the first content event arrived (idempotent).

        Returns:
            This stream, with ``provider``, ``model`` and ``attempts`` set.

        Raises:
            llmrelay.errors.ConfigError: unknown model or provider, missing key (single
                candidate), invalid messages.
            llmrelay.errors.ProviderError: the (single) candidate failed before content.
            llmrelay.errors.AllProvidersFailed: several candidates, none answered.
        """
        if self._error is not None:
            raise self._error
        if self._opened:
            return self
        self._opened = True
        total = self._engine.settings.timeouts.total
        self._total = total
        self._deadline = time.monotonic() + total if total is not None else None
        try:
            opened = await self._engine.open_chat(self._turn, self.attempts, self._deadline)
        except BaseException as exc:
            self._done = True
            self._error = exc
            raise
        self._agen = opened.events
        target = opened.target
        self.provider, self.model = target.provider, target.model
        label = self._engine.registry.get(target.provider).label
        info = ProviderInfo(target.provider, target.model, label)
        self._acc.info = info
        self._pending.append(info)
        for event in opened.buffered:
            self._accept(event)
        return self

    # -- iteration ----------------------------------------------------------------------

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> Event:
        pending = self._pending
        if pending:
            return pending.pop(0)
        if not self._opened:
            await self.start()
            return pending.pop(0)
        agen = self._agen
        if self._done or agen is None:
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        text = self._text
        acc = self._acc
        secrets = self._engine.secrets
        while True:
            token = secrets.activate()  # the provider's errors redact this client's keys
            try:
                if self._deadline is None:
                    event = await agen.__anext__()
                else:
                    dog = self._watchdog
                    if dog is None or dog.expired:
                        dog = self._arm_watchdog()
                    if dog is None:
                        event = await self._next_in_scope(agen)
                    else:
                        # inline, not a helper coroutine: no coroutine per event
                        # (``tests/perf/test_stream_deadline.py``)
                        task = _current_task()
                        assert task is not None
                        dog.task = task
                        try:
                            event = await agen.__anext__()
                        except BaseException as exc:
                            dog.task = None
                            if dog.fired:
                                dog.fired = False
                                if task.uncancel() == 0 and isinstance(exc, asyncio.CancelledError):
                                    raise self._total_timeout() from None
                            raise
                        dog.task = None
                        if dog.fired:  # the provider swallowed the cancellation
                            dog.fired = False
                            task.uncancel()
                            raise self._total_timeout()
            except StopAsyncIteration:
                return self._end()
            except BaseException as exc:
                return await self._fail(exc)
            finally:
                secrets.deactivate(token)
            if type(event) is str:
                if acc.finish is None:
                    text.append(event)
                    if len(text) >= TEXT_BLOCK:
                        acc.compact()
                    return event
                log.warning("%s sent text after its finish; dropped", self.provider)
                continue
            if self._accept(event):
                return pending.pop(0)

    def _arm_watchdog(self) -> _Watchdog | None:
        """The stream's total-timeout watchdog, or ``None`` to use a cancel scope.

        On asyncio one loop timer per stream (``_Watchdog``) bounds every wait: it
        cancels the task only if the deadline passes while it waits for the provider,
        and ``__anext__`` turns the cancellation into the timeout (``Task.uncancel``, as
        ``asyncio.timeout`` does; a cancellation from elsewhere still propagates). Other
        backends, and a stream past its deadline, use one cancel scope per event.
        """
        assert self._deadline is not None
        dog = self._watchdog
        if dog is None:
            if not _on_asyncio():
                return None
            dog = self._watchdog = _Watchdog(self._deadline)
        return None if dog.expired else dog

    async def _next_in_scope(self, agen: AsyncGenerator[Event, None]) -> Event:
        assert self._deadline is not None
        with anyio.move_on_after(self._deadline - time.monotonic()) as scope:
            return await agen.__anext__()
        assert scope.cancelled_caught
        raise self._total_timeout()

    def _total_timeout(self) -> errors.ProviderTimeout:
        return errors.ProviderTimeout(
            f"total timeout of {self._total:g}s exceeded",
            kind="total",
            provider=self.provider or "",
            model=self.model,
        )

    def _stop_watchdog(self) -> None:
        dog, self._watchdog = self._watchdog, None
        if dog is not None:
            dog.handle.cancel()

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
        acc.add(event)
        self._pending.append(event)
        return True

    def _end(self) -> Event:
        """The provider's stream ended: emit the finish, or fail without one."""
        self._agen = None
        self._stop_watchdog()
        finish = self._acc.finish
        if finish is None:
            exc = errors.ProtocolError(
                "the stream ended without a finish (the answer may be cut short)",
                provider=self.provider or "",
                model=self.model,
            )
            self._done = True
            raise self._interrupted(exc)
        self._done = True
        self._record()
        return finish

    async def _fail(self, exc: BaseException) -> Event:
        """The provider raised: close it, then finish or fail.

        Returns the held finish when the answer was complete; otherwise raises the
        mapped error (``StreamInterrupted``).
        """
        agen, self._agen = self._agen, None
        self._done = True
        self._stop_watchdog()
        if agen is not None:
            await close_quietly(agen)
        mapped = map_exception(exc, self.provider or "", self.model or "")
        cause = mapped if mapped is not None else exc
        if not isinstance(cause, errors.ProviderError):
            raise exc
        finish = self._acc.finish
        if finish is not None:
            # a complete answer: a cut after the finish does not undo it
            log.warning(
                "%s failed after its finish (%s); the answer is complete", self.provider, cause
            )
            self._record()
            return finish
        raise self._interrupted(cause) from exc

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

    def reports_usage(self) -> bool:
        """Whether the answering provider reports token counts (``Capability.USAGE``).

        ``False`` before the stream opened.
        """
        if self.provider is None:
            return False
        from .providers import Capability

        return Capability.USAGE in self._engine.registry.get(self.provider).capabilities


def _on_asyncio() -> bool:
    """Whether this runs in an asyncio task (not trio, where one scope per event is used)."""
    try:
        return asyncio.current_task() is not None
    except RuntimeError:  # no running asyncio loop
        return False


class _Watchdog:
    """One loop timer for a stream's total deadline (asyncio).

    ``task`` is set only while the stream waits for its provider; the timer cancels it
    then (``fired``), and otherwise only marks the deadline ``expired``: later waits then
    run under an already expired cancel scope, exactly as before (an event the provider
    yields without waiting is still delivered). Holds no reference to the stream.
    """

    __slots__ = ("expired", "fired", "handle", "task")

    def __init__(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        self.task: asyncio.Task[Any] | None = None
        self.expired = False
        self.fired = False
        self.handle = loop.call_at(loop.time() + (deadline - time.monotonic()), self._fire)

    def _fire(self) -> None:
        self.expired = True
        task = self.task
        if task is not None:
            self.fired = True
            task.cancel()
