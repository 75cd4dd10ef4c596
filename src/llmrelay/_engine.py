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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from . import errors
from ._conversation import Conversation
from ._http import map_httpx_error
from ._redact import Secrets
from ._registry import Registry
from ._router import HealthStore, Router, Target
from ._settings import Settings
from .providers import AuthMode, Capability, Provider
from .types import ChatRequest, ConversationState, ImageRequest, Message

__all__ = ["Engine", "Turn", "map_exception"]

log = logging.getLogger("llmrelay")
T = TypeVar("T")

_PARAMETER_NAMES = ("temperature", "max_tokens", "top_p", "stop", "seed")


@dataclass(frozen=True, slots=True)
class Turn:
    """One chat turn as the caller asked for it, before a provider is chosen.

    Attributes:
        messages: everything to send (conversation history, then the new messages).
        new: the new messages of this turn (what a conversation records).
        model: the model reference, or ``None`` for the default.
        parameters: the generation parameters given (name -> value, no ``None``).
        options: provider-specific options.
        conversation: the conversation to continue and record into, or ``None``.
        state: an explicit provider state (without a conversation), or ``None``.
    """

    messages: tuple[Message, ...]
    new: tuple[Message, ...]
    model: str | None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    conversation: Conversation | None = None
    state: ConversationState | None = None


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
                vision, or (strict) a parameter or option it does not take.
        """
        cls = self.registry.get(target.provider)
        for index, message in enumerate(turn.messages):
            if message.images and Capability.VISION not in cls.capabilities:
                raise errors.InvalidRequestError(
                    f"messages[{index}] has an image_url part, and {target.provider} cannot "
                    "take images",
                    provider=target.provider,
                    model=target.model,
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
        )

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
                raise errors.InvalidRequestError(
                    text + " (strict mode)", provider=target.provider, model=target.model
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

    def describe_sources(self, names: Iterable[str]) -> dict[str, str | None]:
        """Provider -> where its key came from (never the key)."""
        return {name: self.settings.key_sources.get(name) for name in names}


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
