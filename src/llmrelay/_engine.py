"""The engine a client owns: settings, the shared HTTP client, registry, router, providers.

It turns a caller's turn into per-candidate ``ChatRequest`` objects (dropping the
parameters a provider does not take, with a warning, or refusing them when strict),
instantiates providers once per client, and runs the fallback policy shared by chat
streams, rescues and image generation (``TrialLoop``):

* candidates are tried in the router's order (``Router.candidates``: healthy ones
  first, a half-open one as the probe); one whose key is missing is *skipped*
  (recorded, not fatal);
* after a failure ``llmrelay._retry.decide`` says what follows: a transient failure
  (429, 5xx, a reset) is retried on the same candidate, up to its ``retries``
  (``Settings.retries_for``; none for a probe), after a back-off with jitter or the
  server's ``Retry-After``, within the deadline; a timeout, a context-length refusal or
  another retryable failure moves to the next candidate; a content-policy refusal or a
  non-retryable error ends the chain. A retryable failure also opens the candidate's
  circuit, an answer closes it;
* when nothing answered, the single error is raised as is when there was one
  candidate, else ``AllProvidersFailed`` listing every attempt.

The chat open phase (``open_chat``) runs each candidate up to its first *content* event
(text, reasoning or an image) or its finish, under the first-token deadline: that event
is the commit point. Before it a candidate's failure falls back to the next one (even if
it already sent ``ConversationState`` or ``Usage``); after it, the stream
(``llmrelay._stream``) owns the provider's generator, the finish rules and the
interruption (and ``llmrelay._rescue`` the rescue). ``open_chat`` is an async iterator
(``OpenPhase``): progress reports (``Queued``) come out of it as they arrive, before the
``Opened`` that commits, so a caller can show a queue position while it waits. A
progress report also restarts the *silence* limit: a candidate with a next one behind
it that reports nothing for ``Timeouts.silence`` seconds is given up
(``ProviderTimeout(kind="silence")``) without waiting for the whole first-token
timeout. A request with tools or a JSON response format that the provider cannot
honour natively is emulated
(``llmrelay._emulation``) when the call or the ``tool_emulation`` setting asks for it,
else refused before anything is sent. ``generate_images`` runs the same policy for
images: ``n`` requests to one candidate at a time, in a task group (one failure cancels
its siblings).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import httpx

from . import _retry, errors
from ._http import map_httpx_error
from ._redact import Secrets
from ._registry import Registry
from ._router import Candidate, HealthStore, Router, Target
from ._settings import ProviderSettingsSpec, Settings
from ._turn import Turn, is_content
from .providers import AuthMode, Capability, Provider
from .types import ChatRequest, Event, FinishReason, ImageResult, Queued

if TYPE_CHECKING:
    from .types import ImageRequest

__all__ = [
    "Engine",
    "OpenPhase",
    "Opened",
    "Trial",
    "TrialLoop",
    "close_quietly",
    "map_exception",
    "task_lookup",
]

log = logging.getLogger("llmrelay")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Opened:
    """A candidate that answered the open phase.

    Attributes:
        target: the candidate (provider and model).
        events: the provider's event generator, positioned after ``buffered`` (the
            caller closes it).
        buffered: the events read up to and including the first content event or the
            finish (``ConversationState``, ``Usage``, ... may come before).
    """

    target: Target
    events: AsyncGenerator[Event, None]
    buffered: list[Event]
    prefilled: bool = False
    """The candidate received ``ChatRequest.prefill``: its text continues it."""


@dataclass(slots=True)
class Trial:
    """One attempt of one candidate, handed out by ``TrialLoop.next``.

    The caller runs the attempt and, on failure, sets ``error`` before asking for the
    next trial (the loop decides: retry, next candidate, or stop); on success it calls
    ``Engine.answered`` and stops asking.
    """

    target: Target
    probe: bool = False
    has_next: bool = False
    started: float = field(default_factory=time.monotonic)
    error: errors.ProviderError | None = None


class Engine:
    """Shared machinery of one client (see the module docstring).

    Args:
        settings: resolved settings.
        registry: the client's providers.
        http: the shared ``httpx.AsyncClient``.
        health: where candidate cool-downs are kept (default: in this client's memory).
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        http: httpx.AsyncClient,
        health: HealthStore | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.http = http
        self.router = Router(
            registry,
            aliases=settings.aliases,
            default=settings.model,
            cooldown=settings.cooldown,
            health=health,
        )
        self._providers: dict[str, Provider] = {}
        self.secrets = Secrets()
        """The keys this client sends: active while its provider code runs."""
        registry.on_read(self._plugins_read)

    def _plugins_read(self, specs: Mapping[str, ProviderSettingsSpec]) -> None:
        """Resolve the endpoints and keys of plugins the registry read after the settings."""
        self.settings = self.settings.with_providers(specs)
        self.router.forget_routes()  # a reference may now name a plugin

    def provider(self, name: str) -> Provider:
        """The client's instance of provider ``name`` (created on first use).

        Raises:
            llmrelay.errors.MissingCredentialsError: a required key is missing.
        """
        provider = self._providers.get(name)
        if provider is None:
            cls = self.registry.get(name)
            key = self.settings.api_key_for(name)
            self.secrets.add(key)  # redacted from this client's errors from now on
            provider = cls(
                self.http,
                endpoints=self.settings.endpoints_for(name),
                api_key=key,
            )
            self._providers[name] = provider
        return provider

    def missing_key(self, name: str) -> errors.MissingCredentialsError | None:
        """The error for a provider whose required key is missing, else ``None``."""
        cls = self.registry.get(name)
        if cls.auth.mode is AuthMode.REQUIRED and not self.settings.api_key_for(name):
            return errors.MissingCredentialsError(name, cls.auth.env_var)
        return None

    def deadline(self, started: float, total_deadline: float | None) -> float | None:
        """The first-content deadline of one attempt (``time.monotonic()`` based)."""
        first = self.settings.timeouts.first_token
        limit = started + first if first is not None else None
        if total_deadline is not None and (limit is None or total_deadline < limit):
            return total_deadline
        return limit

    def chat_request(
        self, target: Target, turn: Turn, deadline: float | None, prefill: str = ""
    ) -> ChatRequest:
        """The request ``target``'s provider receives for ``turn``.

        ``prefill``: see ``ChatRequest.prefill`` (the caller checks
        ``Provider.continues`` first).

        Raises:
            llmrelay.errors.InvalidRequestError: an image part for a provider without
                vision, an OpenAI field it does not forward (``param`` names it), or
                (strict) a parameter or option it does not take.
        """
        cls = self.registry.get(target.provider)
        # only what differs from ``ChatRequest``'s defaults is passed: a frozen
        # dataclass's keyword arguments cost, and most requests set few of its 20 fields
        fields: dict[str, Any] = {}
        if turn.asked:
            fields["passthrough"] = self._forwarded(cls, target, turn)
        if Capability.VISION not in cls.capabilities:
            self._refuse_images(target, turn)
        if turn.parameters or turn.options:
            params = self._supported(cls, target, turn.parameters, turn.options)
            if "stop" in params:
                params["stop"] = tuple(params["stop"])
            fields.update(params)
            fields["options"] = {k: v for k, v in turn.options.items() if k in cls.options}
        if turn.conversation is not None:
            fields["state"] = turn.conversation.state_for(target.provider)
        elif turn.state is not None and turn.state.provider == target.provider:
            fields["state"] = turn.state
        if self.settings.strict:
            fields["strict"] = True
        if turn.tools:
            fields["tools"] = turn.tools
        if turn.tool_choice is not None:
            fields["tool_choice"] = turn.tool_choice
        if turn.parallel_tool_calls is not None:
            fields["parallel_tool_calls"] = turn.parallel_tool_calls
        if turn.response_format is not None:
            fields["response_format"] = turn.response_format
        if self.settings.allow_image_fetch:
            from .providers._image_input import ImageFetchPolicy  # only for image fetching

            fields["image_fetch"] = ImageFetchPolicy()
        if prefill:
            fields["prefill"] = prefill
        return ChatRequest(messages=turn.messages, model=target.model, deadline=deadline, **fields)

    @staticmethod
    def _refuse_images(target: Target, turn: Turn) -> None:
        """Refuse a turn with an image part for a provider without vision.

        Raises:
            llmrelay.errors.InvalidRequestError: ``param`` names the message as the
                caller gave it: its own ``messages[i]``, or the conversation's.
        """
        earlier = len(turn.messages) - len(turn.new)  # the system prompt, the history
        for index, message in enumerate(turn.messages):
            if message.images:
                part = message.image_parts[0][0]
                where, param = (
                    (f"messages[{index - earlier}]",) * 2
                    if index >= earlier
                    else (f"the conversation's message {index}", "conversation")
                )
                raise errors.InvalidRequestError(
                    f"{where} has an image_url part (content[{part}]), and "
                    f"{target.provider} cannot take images",
                    provider=target.provider,
                    model=target.model,
                    param=param,
                )

    @staticmethod
    def _forwarded(cls: type[Provider], target: Target, turn: Turn) -> dict[str, Any]:
        """The OpenAI fields of ``turn.asked`` the provider forwards; refuses any other."""
        for name in turn.asked:
            if name not in cls.forwards:
                from ._fields import refusal_reason  # only to explain a refusal

                raise errors.InvalidRequestError(
                    f"{target.provider} cannot honour {name}: {refusal_reason(name)}",
                    provider=target.provider,
                    model=target.model,
                    param=name,
                )
        return dict(turn.asked)

    def image_request(
        self, target: Target, prompt: str, fields: Mapping[str, Any], deadline: float | None
    ) -> ImageRequest:
        """The image request ``target``'s provider receives.

        Raises:
            llmrelay.errors.InvalidRequestError: the provider cannot generate images, or
                (strict) an option it does not take.
        """
        cls = self.registry.get(target.provider)
        if Capability.IMAGES not in cls.capabilities:
            raise errors.InvalidRequestError(
                f"{target.provider} cannot generate images",
                provider=target.provider,
                model=target.model,
            )
        options = dict(fields.get("options") or {})
        self._supported(cls, target, {}, options)
        from .types import ImageRequest  # llmrelay.types loads it on first use

        return ImageRequest(
            prompt=prompt,
            model=target.model,
            width=fields.get("width"),
            height=fields.get("height"),
            aspect_ratio=fields.get("aspect_ratio"),
            seed=fields.get("seed"),
            negative_prompt=fields.get("negative_prompt"),
            options={k: v for k, v in options.items() if k in cls.options},
            deadline=deadline,
        )

    def _supported(
        self,
        cls: type[Provider],
        target: Target,
        parameters: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        dropped = [name for name in parameters if name not in cls.parameters]
        dropped += [f"option {name!r}" for name in options if name not in cls.options]
        if dropped:
            text = f"{target.provider} does not take {', '.join(dropped)}" + (
                "" if self.settings.strict else "; ignored"
            )
            if self.settings.strict:
                first = next((name for name in parameters if name not in cls.parameters), None)
                raise errors.InvalidRequestError(
                    text + " (strict mode)",
                    provider=target.provider,
                    model=target.model,
                    param=first or "options",
                )
            log.warning("%s", text)
        return {k: v for k, v in parameters.items() if k in cls.parameters}

    async def run_candidates(
        self,
        ref: str | None,
        attempt: Callable[[Target, Provider], Awaitable[T]],
        attempts: list[errors.Attempt],
        deadline: float | None = None,
    ) -> tuple[Target, T]:
        """Try ``ref``'s candidates with ``attempt`` under the fallback policy.

        ``attempts`` is filled in as candidates are tried (the caller keeps it).

        Returns:
            The target that answered and what ``attempt`` returned.

        Raises:
            llmrelay.errors.ConfigError: an unresolvable reference; a missing key when
                there is only one candidate.
            llmrelay.errors.ProviderError: the only candidate's error, or a
                non-retryable error of the first candidate tried.
            llmrelay.errors.AllProvidersFailed: several candidates, none answered.
        """
        trials = TrialLoop(self, ref, attempts, deadline)
        while True:
            trial = await trials.next()
            target = trial.target
            try:
                provider = self.provider(target.provider)  # its key joins self.secrets
                with self.secrets.active():
                    result = await attempt(target, provider)
            except errors.ProviderError as exc:
                trial.error = exc
                continue
            self.answered(trial, attempts)
            return target, result

    def answered(
        self, trial: Trial, attempts: list[errors.Attempt], message: str | None = None
    ) -> None:
        """Record that ``trial`` answered: its attempt is ``"ok"``, its circuit closes."""
        target = trial.target
        attempts.append(errors.Attempt(target.provider, target.model, "ok", None, message))
        self.router.succeeded(target)
        if log.isEnabledFor(logging.INFO):  # the elapsed time only when it is logged
            log.info("%s answered in %.3fs", target, time.monotonic() - trial.started)

    def _explain(self, exc: errors.ProviderError, target: Target) -> None:
        """Add where the URL came from to a connection failure (what to fix)."""
        if not isinstance(exc, errors.TransportError | errors.ProviderTimeout):
            return
        if isinstance(exc, errors.ProviderTimeout) and exc.kind != "connect":
            return
        source = self.settings.endpoint_sources.get((target.provider, "base_url"))
        try:
            url = self.provider(target.provider).base_url
        except errors.LLMRelayError:  # pragma: no cover - it was instantiated already
            return
        where = f"set by {source}" if source else "the default"
        if self.settings.proxy:
            where += "; through the configured proxy"
        exc.message = f"{exc.message} (base URL {url}, {where})"
        exc.args = (exc.message,)

    # -- the chat open phase ----------------------------------------------------------

    def open_chat(
        self,
        turn: Turn,
        attempts: list[errors.Attempt],
        total_deadline: float | None,
        *,
        candidates: Sequence[Candidate] | None = None,
        prefill: str = "",
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> OpenPhase:
        """Try ``turn``'s candidates until one yields content or its finish.

        An async iterator (``OpenPhase``; ``aclose()`` it): it yields each progress
        report (``Queued``) as it arrives, then one ``Opened`` (the commit point), and
        ends. The caller owns the ``Opened`` generator once it has it (closing this one
        afterwards leaves it open).

        Args:
            turn: the chat turn.
            attempts: filled in as candidates are tried (the caller keeps it).
            total_deadline: when the whole turn must end (``time.monotonic()``), or
                ``None``; each candidate also has the first-token timeout and, with a
                next candidate behind it, the silence limit.
            candidates: the candidates to try instead of the turn's (a rescue's).
            prefill: the answer so far, sent to the candidates that continue a partial
                answer (``Provider.continues``; ``Opened.prefilled``), never to others.
            loop: the running asyncio loop when the caller knows it (``None``: looked
                up here; off asyncio there is none).

        Raises:
            llmrelay.errors.ConfigError / ProviderError / AllProvidersFailed: as
                ``run_candidates``; a candidate without content in time fails with
                ``ProviderTimeout`` (``kind`` ``first_token``, ``silence`` or
                ``total``), one that ends without content or finish with
                ``ProtocolError``.
        """
        return OpenPhase(self, turn, attempts, total_deadline, candidates, prefill, loop)

    async def _next_open_event(self, wait: _OpenWait, agen: AsyncGenerator[Event, None]) -> Event:
        """The candidate's next event in the open phase, within its deadline.

        Raises the candidate's failure as a ``ProviderError`` (mapped; a timeout as
        ``ProviderTimeout``); the caller closes ``agen``. On asyncio one loop timer
        bounds the wait (``_wait_until``), elsewhere an anyio scope.
        """
        target = wait.target
        limit, why = wait.deadline, wait.kind
        quiet = wait.quiet
        if quiet is not None and (limit is None or quiet < limit):
            limit, why = quiet, "silence"
        try:
            secrets = self.secrets
            token = secrets.activate() if secrets._values else None
            try:
                if limit is None:
                    event = await agen.__anext__()
                elif wait.task is not None and (task := wait.task()) is not None:
                    event = await _wait_until(agen, limit, task)
                else:
                    with anyio.move_on_after(limit - time.monotonic()) as scope:
                        event = await agen.__anext__()
                    if scope.cancelled_caught:
                        event = _TIMED_OUT
            finally:
                if token is not None:
                    secrets.deactivate(token)
        except StopAsyncIteration:
            raise errors.ProtocolError(
                "the stream ended before any answer and without a finish",
                provider=target.provider,
                model=target.model,
            ) from None
        except Exception as exc:
            mapped = map_exception(exc, target.provider, target.model)
            if mapped is None:
                raise
            raise mapped from exc
        if event is _TIMED_OUT:
            raise self._open_timeout(target, why)
        return event

    def _emulates(self, target: Target, turn: Turn) -> bool:
        """Whether tools and JSON answers are emulated for ``target`` (if not native)."""
        if turn.tool_emulation is not None:
            return turn.tool_emulation
        return self.settings.emulates(target.provider, turn.model)

    def _open_timeout(self, target: Target, kind: str) -> errors.ProviderTimeout:
        timeouts = self.settings.timeouts
        limit = getattr(timeouts, kind)
        if kind == "silence":
            text = f"no answer and no progress report for {limit:g}s (the silence limit)"
        else:
            text = f"no answer within the {kind.replace('_', '-')} timeout of {limit:g}s"
        return errors.ProviderTimeout(text, kind=kind, provider=target.provider, model=target.model)

    # -- images -------------------------------------------------------------------------

    async def generate_images(
        self, ref: str | None, prompt: str, n: int, fields: Mapping[str, Any]
    ) -> list[ImageResult]:
        """``n`` images from ``ref``'s first candidate that answers (fallback as for chat).

        Each candidate gets ``n`` requests at once; the first to fail cancels the others
        (a paid prediction is not left running) and the candidate fails with that error.
        The total timeout bounds the whole call (``ImageRequest.deadline``).

        Raises:
            llmrelay.errors.ConfigError / ProviderError / AllProvidersFailed: as
                ``run_candidates``; ``InvalidRequestError`` from a provider without
                images.
        """
        total = self.settings.timeouts.total
        deadline = time.monotonic() + total if total is not None else None

        async def attempt(target: Target, provider: Provider) -> list[ImageResult]:
            request = self.image_request(target, prompt, fields, deadline)
            try:
                return await _images(provider, request, n)
            except Exception as exc:
                mapped = map_exception(exc, target.provider, target.model)
                if mapped is None:
                    raise
                raise mapped from exc

        return (await self.run_candidates(ref, attempt, [], deadline))[1]


class TrialLoop:
    """The attempts to make for a model reference (the policy of the module docstring).

    ``await next()`` hands out one ``Trial`` per attempt; the caller sets its ``error``
    when it failed and asks again (the loop decides: a retry of the same candidate after
    a back-off, the next candidate, or the end), and stops asking once a trial
    answered. When nothing is left it raises the chain's error: the single error as is
    when there was one candidate, else ``AllProvidersFailed``. A plain object, not an
    async generator: nothing to close, no generator set up and finalised per request.

    Args:
        engine: the engine whose router, settings and keys decide.
        ref: the model reference.
        attempts: filled in as candidates are tried.
        deadline: no retry waits past it (``time.monotonic()``), or ``None``.
        candidates: the candidates to try instead of ``ref``'s (a rescue's).
    """

    __slots__ = (
        "_alias",
        "_attempts",
        "_candidates",
        "_deadline",
        "_engine",
        "_index",
        "_last",
        "_ref",
        "_retries",
        "_retry",
        "_trial",
        "_tried",
    )

    def __init__(
        self,
        engine: Engine,
        ref: str | None,
        attempts: list[errors.Attempt],
        deadline: float | None,
        candidates: Sequence[Candidate] | None = None,
    ) -> None:
        self._engine = engine
        self._ref = ref
        self._attempts = attempts
        self._deadline = deadline
        self._candidates = candidates
        self._alias: str | None = None
        self._index = 0
        self._retry = 0
        self._retries = 0
        self._trial: Trial | None = None
        self._tried: set[Target] = set()
        self._last: errors.LLMRelayError | None = None

    async def next(self) -> Trial:
        """The next attempt to make.

        Raises:
            llmrelay.errors.ConfigError: an unresolvable reference; a missing key when
                there is only one candidate.
            llmrelay.errors.ProviderError: the only candidate's error, or a
                non-retryable error of the first candidate tried.
            llmrelay.errors.AllProvidersFailed: several candidates, none answered.
        """
        engine = self._engine
        trial = self._trial
        if trial is None:
            if self._candidates is None:
                router = engine.router
                await router.refresh()
                self._candidates = await router.candidates(self._ref)
            self._alias = engine.router.alias_of(self._ref)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "candidates for %s: %s",
                    self._ref or "the default model",
                    ", ".join(
                        f"{c.target}{' (probe)' if c.probe else ''}" for c in self._candidates
                    ),
                )
        else:
            exc = trial.error
            if exc is None:  # pragma: no cover - the caller stops once a trial answered
                raise AssertionError("a trial answered: nothing follows")
            target = trial.target
            engine._explain(exc, target)
            self._attempts.append(_attempt(target, "failed", exc))
            log.info(
                "%s failed after %.3fs: %s: %s",
                target,
                time.monotonic() - trial.started,
                type(exc).__name__,
                exc,
            )
            self._last = exc
            decision = _retry.decide(exc)
            if decision == "retry" and self._retry < self._retries:
                delay = _retry.backoff(self._retry + 1, exc)
                deadline = self._deadline
                if delay is not None and (deadline is None or time.monotonic() + delay < deadline):
                    self._retry += 1
                    log.info(
                        "%s: retry %d of %d in %.2fs", target, self._retry, self._retries, delay
                    )
                    await anyio.sleep(delay)
                    return self._make(trial.probe)
            if exc.retryable:
                engine.router.failed(target)
            if decision == "stop":
                self._fail()
            self._index += 1
        candidates = self._candidates
        assert candidates is not None
        while self._index < len(candidates):
            candidate = candidates[self._index]
            target = candidate.target
            missing = engine.missing_key(target.provider)
            if missing is not None:
                self._attempts.append(_attempt(target, "skipped", missing))
                log.info("%s skipped: %s", target, missing)
                self._last = missing
                self._index += 1
                continue
            self._retry = 0
            self._retries = (
                0 if candidate.probe else engine.settings.retries_for(target.provider, self._alias)
            )
            return self._make(candidate.probe)
        self._fail()

    def _make(self, probe: bool) -> Trial:
        candidates = self._candidates
        assert candidates is not None
        index = self._index
        target = candidates[index].target
        trial = self._trial = Trial(target, probe, index < len(candidates) - 1)
        self._tried.add(target)
        return trial

    def _fail(self) -> NoReturn:
        """Raise the error ending the chain (nothing answered)."""
        last = self._last
        assert last is not None
        attempts = self._attempts
        if isinstance(last, errors.ProviderError):
            last.tries = _retry.tries(attempts)
        if len(self._tried) <= 1 and len({(a.provider, a.model) for a in attempts}) <= 1:
            raise last
        raise errors.AllProvidersFailed(attempts) from last


class OpenPhase:
    """``Engine.open_chat``: ``Queued`` reports as they come, then one ``Opened``.

    An async iterator over the candidates of a ``TrialLoop`` (see ``open_chat``); a
    plain object rather than an async generator (one fewer generator to set up, hook
    into the loop and finalise per request). ``aclose()`` closes the candidate it is
    waiting on, if any (after a ``Queued``); once it has handed out the ``Opened`` or
    raised, it is done and closing it leaves the ``Opened`` generator open.
    """

    __slots__ = (
        "_agen",
        "_attempts",
        "_buffered",
        "_continues",
        "_done",
        "_engine",
        "_prefill",
        "_task",
        "_total",
        "_trial",
        "_trials",
        "_turn",
        "_wait",
    )

    def __init__(
        self,
        engine: Engine,
        turn: Turn,
        attempts: list[errors.Attempt],
        total_deadline: float | None,
        candidates: Sequence[Candidate] | None,
        prefill: str,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._engine = engine
        if loop is None:
            loop = asyncio.events._get_running_loop()
        self._task = task_lookup(loop) if loop is not None else None
        """The running asyncio task, looked up at each wait (a progress report may hand
        the open phase to another task), bounded by a loop timer; ``None`` off asyncio:
        an anyio scope."""
        self._turn = turn
        self._attempts = attempts
        self._total = total_deadline
        self._prefill = prefill
        self._trials = TrialLoop(engine, turn.model, attempts, total_deadline, candidates)
        self._done = False
        self._agen: AsyncGenerator[Event, None] | None = None
        self._trial: Trial | None = None
        self._wait: _OpenWait | None = None
        self._buffered: list[Event] = []
        self._continues = False

    def __aiter__(self) -> OpenPhase:
        return self

    async def __anext__(self) -> Queued | Opened:
        if self._done:
            raise StopAsyncIteration
        try:
            return await self._advance()
        except BaseException:
            self._done = True
            raise

    async def _advance(self) -> Queued | Opened:
        engine = self._engine
        while True:
            agen = self._agen
            if agen is None:  # the next candidate
                trial = await self._trials.next()
                target = trial.target
                turn = self._turn
                prefill = self._prefill
                try:
                    provider = engine.provider(target.provider)
                    emulates = engine._emulates(target, turn)
                    continues = (
                        bool(prefill)
                        and not emulates  # an emulated answer is parsed whole: regenerate
                        and engine.registry.get(target.provider).continues(target.model)
                    )
                    request = engine.chat_request(
                        target,
                        turn,
                        engine.deadline(trial.started, self._total),
                        prefill if continues else "",
                    )
                    if emulates:  # tool emulation, loaded only for a target that emulates
                        from ._emulation import Emulation, needs_emulation
                    if emulates and needs_emulation(request, provider.capabilities):
                        agen = (await Emulation.prepare(provider, request)).stream()
                    else:
                        await provider.check_request(request)  # tools, formats: before sending
                        agen = provider.stream(request)
                except errors.ProviderError as exc:
                    trial.error = exc
                    continue
                self._agen = agen
                self._trial = trial
                self._continues = continues
                self._buffered = []
                self._wait = _OpenWait(
                    trial, request.deadline, self._total, engine.settings, self._task
                )
            current, wait = self._trial, self._wait
            assert current is not None
            assert wait is not None
            buffered = self._buffered
            try:
                while True:  # up to the first content or the finish (included)
                    event = await engine._next_open_event(wait, agen)
                    if type(event) is Queued:
                        if wait.silence is not None:  # the service says it is working
                            wait.quiet = time.monotonic() + wait.silence
                        return event  # no timer is armed across it; the next call goes on
                    buffered.append(event)
                    if is_content(event) or isinstance(event, FinishReason):
                        break
            except errors.ProviderError as exc:
                self._agen = None
                await close_quietly(agen)
                current.error = exc
                continue
            except BaseException:
                self._agen = None
                await close_quietly(agen)
                raise
            self._agen = None
            self._done = True
            engine.answered(current, self._attempts)
            return Opened(current.target, agen, buffered, self._continues)

    async def aclose(self) -> None:
        """Stop: close the candidate being waited on (after a ``Queued``), if any."""
        self._done = True
        agen, self._agen = self._agen, None
        if agen is not None:
            await close_quietly(agen)


async def _images(provider: Provider, request: ImageRequest, n: int) -> list[ImageResult]:
    """``n`` images from ``provider``; the first failure cancels the other requests."""
    if n == 1:
        return [await provider.generate_image(request)]
    results: list[ImageResult | None] = [None] * n

    async def one(index: int) -> None:
        results[index] = await provider.generate_image(request)

    error: BaseException | None = None
    try:
        async with anyio.create_task_group() as group:
            for index in range(n):
                group.start_soon(one, index)
    except BaseExceptionGroup as failed:
        error = _first_error(failed)  # raised as itself (its own cause kept), not grouped
    if error is not None:
        raise error
    return [image for image in results if image is not None]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first ``Exception`` in ``group`` (nested groups searched), else its first leaf."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending[:0] = exc.exceptions
        else:
            leaves.append(exc)
    return next((exc for exc in leaves if isinstance(exc, Exception)), leaves[0])


class _OpenWait:
    """The limits of one candidate's open phase (``Engine._next_open_event``)."""

    __slots__ = ("deadline", "kind", "quiet", "silence", "target", "task")

    def __init__(
        self,
        trial: Trial,
        deadline: float | None,
        total_deadline: float | None,
        settings: Settings,
        task: Callable[[], asyncio.Task[Any] | None] | None,
    ) -> None:
        self.target = trial.target
        self.deadline = deadline
        """The first-content deadline (``time.monotonic()``), or ``None``."""
        self.kind = (
            "total" if deadline is not None and deadline == total_deadline else "first_token"
        )
        silence = settings.timeouts.silence if trial.has_next else None
        self.silence = silence
        """The silence limit (only with a next candidate behind this one)."""
        self.quiet = trial.started + silence if silence is not None else None
        """When the silence limit ends (restarted by each progress report)."""
        self.task = task
        """The running asyncio task's lookup (``OpenPhase``), or ``None`` off asyncio."""


_TIMED_OUT: Any = object()
"""What ``_wait_until`` returns when its deadline passed (never a provider's event)."""


_CURRENT_TASKS: Any = getattr(asyncio.tasks, "_current_tasks", None)
_FAST_LOOKUP = sys.version_info < (3, 12) and isinstance(_CURRENT_TASKS, dict)


def task_lookup(loop: asyncio.AbstractEventLoop) -> Callable[[], asyncio.Task[Any] | None]:
    """A function returning ``loop``'s running task, as ``asyncio.current_task()`` would.

    Meant for the event loop running now, called many times (once per streamed event).
    On Python 3.11 ``asyncio.current_task()`` is a Python function that first asks
    ``asyncio.get_running_loop()``, which calls ``getpid()`` (a system call) each time;
    with the loop known, the lookup is one read of the ``_current_tasks`` mapping
    (loop -> task) that asyncio's C task steps keep (``asyncio.tasks._current_tasks``;
    ``tests/unit/test_engine_open.py`` checks it agrees with ``current_task``). Python
    3.12 made ``current_task`` itself fast: it is used as is there.
    """
    if _FAST_LOOKUP:
        return functools.partial(_CURRENT_TASKS.get, loop)
    return asyncio.current_task  # pragma: no cover - Python 3.12+


class _Alarm:
    """A loop timer that cancels ``task`` at a deadline and remembers that it did."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


async def _wait_until(agen: AsyncGenerator[T, None], limit: float, task: asyncio.Task[Any]) -> T:
    """``agen``'s next item, or ``_TIMED_OUT`` once ``limit`` (``time.monotonic()``) passed.

    ``asyncio.timeout_at`` reduced to its core (``task`` is the running task): a loop
    timer cancels the task at ``limit``; the cancellation it caused is taken back
    (``Task.uncancel``) and becomes the timeout, a cancellation from elsewhere still
    propagates. An item the provider yields without waiting is delivered even past the
    deadline (as an anyio scope does); a provider that swallows the cancellation has
    timed out all the same.
    """
    loop = task.get_loop()
    alarm = _Alarm(task)
    handle = loop.call_at(loop.time() + (limit - time.monotonic()), alarm)
    try:
        item = await agen.__anext__()
    except asyncio.CancelledError:
        handle.cancel()
        if alarm.fired and task.uncancel() == 0:
            return _TIMED_OUT  # type: ignore[no-any-return]
        raise
    except BaseException:
        handle.cancel()
        if alarm.fired:
            task.uncancel()
        raise
    handle.cancel()
    if alarm.fired:  # the provider swallowed the cancellation
        task.uncancel()
        return _TIMED_OUT  # type: ignore[no-any-return]
    return item


async def close_quietly(agen: AsyncGenerator[Any, None]) -> None:
    """Close a provider generator even while being cancelled (so its connection closes).

    An async generator that has finished already (it raised or returned: a failed
    candidate) has nothing to close: no shielded scope (~5 µs on asyncio) for it.
    """
    if getattr(agen, "ag_frame", True) is None:
        return
    with anyio.CancelScope(shield=True):
        try:
            await agen.aclose()
        except Exception as exc:  # closing must not mask what happened
            log.debug("error while closing a provider stream: %r", exc)


def _attempt(target: Target, outcome: Any, exc: errors.LLMRelayError) -> errors.Attempt:
    return errors.Attempt(target.provider, target.model, outcome, type(exc).__name__, str(exc), exc)


def map_exception(exc: BaseException, provider: str, model: str) -> errors.LLMRelayError | None:
    """An llmrelay error for an exception a provider let escape (``None``: re-raise as is).

    httpx failures are mapped by ``llmrelay._http.map_httpx_error``; any other
    non-llmrelay ``Exception`` (a provider bug, a shape it did not expect) becomes a
    ``ProtocolError`` naming it; cancellation and llmrelay errors are left alone.
    """
    if isinstance(exc, errors.LLMRelayError) or not isinstance(exc, Exception):
        return None
    mapped = map_httpx_error(exc, provider, model)
    if mapped is not None:
        return mapped
    log.debug("provider %s raised an unexpected exception", provider, exc_info=exc)
    return errors.ProtocolError(
        f"unexpected {type(exc).__name__} while reading the answer: {str(exc)[:200]}",
        provider=provider,
        model=model,
    )
