"""The engine a client owns: settings, the shared HTTP client, registry, router, providers.

It turns a caller's turn into per-candidate ``ChatRequest`` objects (dropping the
parameters a provider does not take, with a warning, or refusing them when strict),
instantiates providers once per client, and runs the fallback policy shared by chat
streams and image generation (``run_candidates``):

* candidates are tried in the router's order; one whose key is missing is *skipped*
  (recorded, not fatal), as is the next on a retryable error (which also starts its
  cool-down);
* a non-retryable error ends the chain;
* when nothing answered, the single error is raised as is when there was one
  candidate, else ``AllProvidersFailed`` listing every attempt.

The chat open phase (``open_chat``) runs each candidate up to its first *content* event
(text, reasoning or an image) or its finish, under the first-token deadline: that event
is the commit point. Before it a candidate's failure falls back to the next one (even if
it already sent ``ConversationState`` or ``Usage``); after it, the stream
(``llmrelay._stream``) owns the provider's generator, the finish rules and the
interruption. A request with tools or a JSON response format that the provider cannot
honour natively is emulated (``llmrelay._emulation``) when the call or the
``tool_emulation`` setting asks for it, else refused before anything is sent.
``generate_images`` runs the same policy for images: ``n`` requests to one
candidate at a time, in a task group (one failure cancels its siblings).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import httpx

from . import errors
from ._emulation import Emulation, needs_emulation
from ._fields import refusal_reason
from ._http import map_httpx_error
from ._redact import Secrets
from ._registry import Registry
from ._router import HealthStore, Router, Target
from ._settings import ProviderSettingsSpec, Settings
from ._turn import Turn, is_content
from .providers import AuthMode, Capability, Provider
from .providers._image_input import ImageFetchPolicy
from .types import (
    ChatRequest,
    Event,
    FinishReason,
    ImageRequest,
    ImageResult,
)

__all__ = ["Engine", "Opened", "close_quietly", "map_exception"]

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

    def chat_request(self, target: Target, turn: Turn, deadline: float | None) -> ChatRequest:
        """The request ``target``'s provider receives for ``turn``.

        Raises:
            llmrelay.errors.InvalidRequestError: an image part for a provider without
                vision, an OpenAI field it does not forward (``param`` names it), or
                (strict) a parameter or option it does not take.
        """
        cls = self.registry.get(target.provider)
        passthrough = self._forwarded(cls, target, turn)
        for index, message in enumerate(turn.messages):
            if message.images and Capability.VISION not in cls.capabilities:
                part = message.image_parts[0][0]
                raise errors.InvalidRequestError(
                    f"messages[{index}] has an image_url part (content[{part}]), and "
                    f"{target.provider} cannot take images",
                    provider=target.provider,
                    model=target.model,
                    param=f"messages[{index}]",
                )
        params = self._supported(cls, target, turn.parameters, turn.options)
        options = {k: v for k, v in turn.options.items() if k in cls.options}
        if turn.conversation is not None:
            state = turn.conversation.state_for(target.provider)
        elif turn.state is not None and turn.state.provider == target.provider:
            state = turn.state
        else:
            state = None
        return ChatRequest(
            messages=turn.messages,
            model=target.model,
            temperature=params.get("temperature"),
            max_tokens=params.get("max_tokens"),
            top_p=params.get("top_p"),
            stop=tuple(params.get("stop", ())),
            seed=params.get("seed"),
            state=state,
            options=options,
            deadline=deadline,
            strict=self.settings.strict,
            tools=turn.tools,
            tool_choice=turn.tool_choice,
            parallel_tool_calls=turn.parallel_tool_calls,
            response_format=turn.response_format,
            frequency_penalty=params.get("frequency_penalty"),
            presence_penalty=params.get("presence_penalty"),
            passthrough=passthrough,
            image_fetch=ImageFetchPolicy() if self.settings.allow_image_fetch else None,
        )

    @staticmethod
    def _forwarded(cls: type[Provider], target: Target, turn: Turn) -> dict[str, Any]:
        """The OpenAI fields of ``turn.asked`` the provider forwards; refuses any other."""
        for name in turn.asked:
            if name not in cls.forwards:
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
        await self.router.refresh()
        targets = self.router.resolve(ref)
        log.info("candidates for %s: %s", ref or "the default model", ", ".join(map(str, targets)))
        last: errors.LLMRelayError | None = None
        for target in targets:
            missing = self.missing_key(target.provider)
            if missing is not None:
                attempts.append(_attempt(target, "skipped", missing))
                log.info("%s skipped: %s", target, missing)
                last = missing
                continue
            started = time.monotonic()
            try:
                provider = self.provider(target.provider)  # its key joins self.secrets
                with self.secrets.active():
                    result = await attempt(target, provider)
            except errors.ProviderError as exc:
                self._explain(exc, target)
                attempts.append(_attempt(target, "failed", exc))
                log.info(
                    "%s failed after %.3fs: %s: %s",
                    target,
                    time.monotonic() - started,
                    type(exc).__name__,
                    exc,
                )
                last = exc
                if exc.retryable:
                    self.router.failed(target)
                    continue
                break
            attempts.append(errors.Attempt(target.provider, target.model, "ok"))
            log.info("%s answered in %.3fs", target, time.monotonic() - started)
            return target, result
        assert last is not None
        if len(attempts) == 1:
            raise last
        raise errors.AllProvidersFailed(attempts) from last

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

    async def open_chat(
        self, turn: Turn, attempts: list[errors.Attempt], total_deadline: float | None
    ) -> Opened:
        """Try ``turn``'s candidates until one yields content or its finish.

        Args:
            turn: the chat turn.
            attempts: filled in as candidates are tried (the caller keeps it).
            total_deadline: when the whole turn must end (``time.monotonic()``), or
                ``None``; each candidate also has the first-token timeout.

        Returns:
            The candidate that answered, its generator and the events read so far.

        Raises:
            llmrelay.errors.ConfigError / ProviderError / AllProvidersFailed: as
                ``run_candidates``; a candidate without content in time fails with
                ``ProviderTimeout`` (``kind`` ``first_token`` or ``total``), one that
                ends without content or finish with ``ProtocolError``.
        """

        async def attempt(target: Target, provider: Provider) -> Opened:
            return await self._open_candidate(target, provider, turn, total_deadline)

        return (await self.run_candidates(turn.model, attempt, attempts))[1]

    async def _open_candidate(
        self, target: Target, provider: Provider, turn: Turn, total_deadline: float | None
    ) -> Opened:
        """Run one candidate up to its first content event (or its finish)."""
        deadline = self.deadline(time.monotonic(), total_deadline)
        request = self.chat_request(target, turn, deadline)
        if self._emulates(target, turn) and needs_emulation(request, provider.capabilities):
            agen = (await Emulation.prepare(provider, request)).stream()
        else:
            await provider.check_request(request)  # tools, response format: before sending
            agen = provider.stream(request)
        buffered: list[Event] = []
        try:
            with anyio.move_on_after(deadline - time.monotonic() if deadline is not None else None):
                while True:
                    event = await agen.__anext__()
                    buffered.append(event)
                    if is_content(event) or isinstance(event, FinishReason):
                        return Opened(target, agen, buffered)
            raise self._open_timeout(target, deadline == total_deadline)
        except StopAsyncIteration:
            await close_quietly(agen)
            raise errors.ProtocolError(
                "the stream ended before any answer and without a finish",
                provider=target.provider,
                model=target.model,
            ) from None
        except BaseException as exc:
            await close_quietly(agen)
            mapped = map_exception(exc, target.provider, target.model)
            if mapped is not None:
                raise mapped from exc
            raise

    def _emulates(self, target: Target, turn: Turn) -> bool:
        """Whether tools and JSON answers are emulated for ``target`` (if not native)."""
        if turn.tool_emulation is not None:
            return turn.tool_emulation
        return self.settings.emulates(target.provider, turn.model)

    def _open_timeout(self, target: Target, total: bool) -> errors.ProviderTimeout:
        timeouts = self.settings.timeouts
        kind = "total" if total else "first_token"
        limit = timeouts.total if total else timeouts.first_token
        return errors.ProviderTimeout(
            f"no answer within the {kind.replace('_', '-')} timeout of {limit:g}s",
            kind=kind,
            provider=target.provider,
            model=target.model,
        )

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

        return (await self.run_candidates(ref, attempt, []))[1]


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


async def close_quietly(agen: AsyncGenerator[Any, None]) -> None:
    """Close a provider generator even while being cancelled (so its connection closes)."""
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
