"""The mid-stream rescue: finish an answer whose stream broke after its first content.

``AsyncChatStream._fail`` calls ``rescue`` when a provider fails (a cut, a stall past
``Timeouts.stall``, a stream ending without its finish) after text was delivered and
before the finish, unless the stream's ``rescue`` is off. The candidates are the turn's
chain in the router's order without the broken one, then the broken one itself last
(not after a stall: a stalled service is not asked again at once). Each is tried with the
engine's open phase (same-candidate retries, silence limit, health), and answers in one
of two ways:

* **continuation** -- a candidate that declares it can continue a partial answer
  (``Provider.continues``: ``prefill = true`` for an OpenAI-compatible server, the TGI
  ``generate`` route where llmrelay renders the prompt, Replicate models fed a prompt
  template) receives the text delivered so far as the start of the assistant's turn
  (``ChatRequest.prefill``) and its stream -- only the remainder -- is delivered. One
  check guards against a server that ignored the prefill and started over: while the
  continuation's text could still be the delivered text again, it is held; if it is
  (it begins with the whole delivered text), it is aligned as a regenerated answer;
  as soon as it differs, it is a real continuation and goes out;
* **regenerate and align** -- any other candidate is asked for the whole answer; it is
  read, undelivered, until it is as long as the delivered text: if it begins with exactly
  that text, the rest of it is streamed; if it diverges (or ends shorter), it is closed
  and the next candidate tried. Two different answers are never spliced into one.

An assistant prefill is never sent to a candidate that has not declared it. Reasoning of
the rescuing candidate is not delivered (the caller has the first one's). A stream that
delivered anything but text and reasoning (an image, a tool call) is not rescued: its
content cannot be aligned. The attempts say what happened: the broken candidate's
``"interrupted"`` (with its error), each tried one's ``"failed"`` or ``"diverged"``, and
the one that completed the answer ``"rescued"`` with how (``message``). When no
candidate completes it, the stream fails with ``StreamInterrupted`` as it would have
without a rescue.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING

from . import errors
from ._engine import Engine, Opened, close_quietly
from ._router import Candidate, Target
from ._turn import is_content
from .types import Event, FinishReason, Queued, Reasoning

if TYPE_CHECKING:
    from ._stream import AsyncChatStream

__all__ = ["rescue"]

log = logging.getLogger("llmrelay")


async def rescue(
    engine: Engine, stream: AsyncChatStream, cause: errors.ProviderError
) -> tuple[Target, AsyncGenerator[Event, None]] | None:
    """The candidate and the events that complete ``stream``'s answer, or ``None``.

    The returned generator yields the rest of the answer (text, usage, state, the
    finish) and closes the rescuing provider's stream when closed. ``stream.attempts``
    is updated (see the module docstring).
    """
    acc = stream._acc
    if acc.images or acc.calls:
        log.warning("%s broke after non-text content; not rescued", stream.provider)
        return None
    delivered = acc.answer()
    target = stream._serving
    assert target is not None
    _mark_interrupted(stream.attempts, target.provider, target.model, cause)
    chain = [t for t in engine.router.resolve(stream._turn.model) if t != target]
    if not (isinstance(cause, errors.ProviderTimeout) and cause.kind in ("stall", "total")):
        chain.append(target)
    remaining: Sequence[Candidate] = [Candidate(t) for t in chain]
    log.warning(
        "%s broke after %d characters (%s); rescuing with %s",
        target,
        len(delivered),
        cause,
        ", ".join(str(c.target) for c in remaining) or "nobody",
    )
    while remaining:
        opened = await _open(engine, stream, remaining, delivered)
        if opened is None:
            return None
        index = next(i for i, c in enumerate(remaining) if c.target == opened.target)
        remaining = remaining[index + 1 :]
        if opened.prefilled:
            continued = await _continue(engine, opened, delivered)
            if continued is not None:
                how, events = continued
                _mark(stream.attempts, "rescued", how)
                return opened.target, events
            _mark(stream.attempts, "diverged", "the continuation failed before it went on")
            continue
        aligned = await _align(engine, opened, delivered)
        if aligned is not None:
            _mark(
                stream.attempts,
                "rescued",
                f"regenerated; its first {len(delivered)} characters matched the delivered text",
            )
            return opened.target, aligned
        _mark(stream.attempts, "diverged", "regenerated answer diverged from the delivered text")
    return None


async def _open(
    engine: Engine, stream: AsyncChatStream, candidates: Sequence[Candidate], delivered: str
) -> Opened | None:
    """The first of ``candidates`` to answer (continuation where declared), or ``None``."""
    opened: Opened | None = None
    opener = engine.open_chat(
        stream._turn, stream.attempts, stream._deadline, candidates=candidates, prefill=delivered
    )
    try:
        async with aclosing(opener):
            async for item in opener:
                if type(item) is Queued:
                    continue  # progress mid-answer is not delivered
                assert isinstance(item, Opened)
                opened = item
    except (errors.ProviderError, errors.AllProvidersFailed, errors.ConfigError) as exc:
        log.warning("rescue of %s:%s failed: %s", stream.provider, stream.model, exc)
        return None
    return opened


async def _continue(
    engine: Engine, opened: Opened, delivered: str
) -> tuple[str, AsyncGenerator[Event, None]] | None:
    """A continuation's events, or a restarted answer aligned (see the module docstring)."""
    agen = opened.events
    held: list[Event] = []
    received = ""
    events = _chain(opened.buffered, agen, engine)
    try:
        while delivered.startswith(received) and len(received) < len(delivered):
            try:
                event = await events.__anext__()
            except StopAsyncIteration:
                break
            held.append(event)
            if isinstance(event, FinishReason):
                break
            if type(event) is str:
                received += event
    except errors.ProviderError as exc:
        log.info("%s failed while it continued the answer: %s", opened.target, exc)
        await close_quietly(agen)
        return None
    except BaseException:
        await close_quietly(agen)
        raise
    finally:
        await events.aclose()
    if received.startswith(delivered) and delivered:
        log.warning("%s started the answer over instead of continuing it", opened.target)
        rest: list[Event] = []
        cut = len(delivered)
        for event in held:
            if type(event) is str:
                part = event[cut:] if cut < len(event) else ""
                cut = max(0, cut - len(event))
                if part:
                    rest.append(part)
            else:
                rest.append(event)
        how = f"started over; its first {len(delivered)} characters matched the delivered text"
        return how, _deliver(rest, agen)
    return f"continued after {len(delivered)} characters", _deliver(held, agen)


async def _align(
    engine: Engine, opened: Opened, delivered: str
) -> AsyncGenerator[Event, None] | None:
    """``opened``'s answer past ``delivered`` if it begins with it, else ``None`` (closed)."""
    agen = opened.events
    if not delivered:
        return _deliver(opened.buffered, agen)
    held: list[Event] = []
    received = ""
    events = _chain(opened.buffered, agen, engine)
    try:
        while len(received) < len(delivered):
            try:
                event = await events.__anext__()
            except StopAsyncIteration:
                event = None
            if event is None or isinstance(event, FinishReason):
                log.info("%s: the regenerated answer ended too soon", opened.target)
                await close_quietly(agen)
                return None
            if type(event) is str:
                received += event
                if not delivered.startswith(received[: len(delivered)]):
                    log.info("%s: the regenerated answer diverged", opened.target)
                    await close_quietly(agen)
                    return None
            elif not isinstance(event, Reasoning):
                if is_content(event):  # an image where text was delivered: cannot align
                    await close_quietly(agen)
                    return None
                held.append(event)
    except errors.ProviderError as exc:
        log.info("%s failed while its answer was aligned: %s", opened.target, exc)
        await close_quietly(agen)
        return None
    except BaseException:
        await close_quietly(agen)
        raise
    finally:
        await events.aclose()  # leaves ``agen`` open: it is ``agen`` itself that is kept
    rest = received[len(delivered) :]
    return _deliver([*([rest] if rest else []), *held], agen)


async def _chain(
    first: list[Event], agen: AsyncGenerator[Event, None], engine: Engine
) -> AsyncGenerator[Event, None]:
    for event in first:
        yield event
    while True:
        with engine.secrets.active():
            try:
                event = await agen.__anext__()
            except StopAsyncIteration:
                return
        yield event


async def _deliver(
    first: list[Event], agen: AsyncGenerator[Event, None]
) -> AsyncGenerator[Event, None]:
    """``first``, then ``agen``'s events, without reasoning; closes ``agen`` at the end."""
    try:
        for event in first:
            if not isinstance(event, Reasoning):
                yield event
        async for event in agen:
            if not isinstance(event, Reasoning):
                yield event
    finally:
        await close_quietly(agen)


def _mark_interrupted(
    attempts: list[errors.Attempt], provider: str, model: str, cause: errors.ProviderError
) -> None:
    """The broken candidate's last ``"ok"`` (or ``"rescued"``) becomes ``"interrupted"``."""
    for index in range(len(attempts) - 1, -1, -1):
        attempt = attempts[index]
        if (attempt.provider, attempt.model) == (provider, model) and attempt.outcome in (
            "ok",
            "rescued",
        ):
            attempts[index] = errors.Attempt(
                provider, model, "interrupted", type(cause).__name__, str(cause), cause
            )
            return
    attempts.append(
        errors.Attempt(provider, model, "interrupted", type(cause).__name__, str(cause), cause)
    )


def _mark(attempts: list[errors.Attempt], outcome: str, message: str) -> None:
    """The last attempt (the rescuing candidate's ``"ok"``) becomes ``outcome``."""
    last = attempts[-1]
    attempts[-1] = errors.Attempt(last.provider, last.model, outcome, None, message)  # type: ignore[arg-type]
