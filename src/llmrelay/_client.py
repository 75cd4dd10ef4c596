"""``AsyncClient``: the one engine (resolve -> candidates -> fallback -> provider stream)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any

import anyio

from . import errors
from ._http import make_http_client, translate_errors
from ._routing import Target, resolve
from ._settings import Settings, Timeouts
from .providers import BUILTIN, Provider, provider_class
from .types import (
    ChatRequest,
    Completion,
    ConversationState,
    Event,
    FinishReason,
    ImageResult,
    Message,
    MessagesInput,
    ProviderDescription,
    ProviderInfo,
    Reasoning,
    Usage,
    normalize_messages,
)

__all__ = ["AsyncClient"]


class AsyncClient:
    """Async client for every provider: the engine the sync ``Client`` also runs.

    Args:
        model: default model reference (``"provider:model"``, a provider name, a bare
            model or alias); falls back to ``LLMRELAY_MODEL``, the config file, then the
            first provider's default model.
        base_urls: provider name -> base URL (beats ``LLMRELAY_<NAME>_BASE_URL``).
        api_keys: provider name -> API key (beats the environment and config file).
        proxy: ``http://``, ``https://`` or ``socks5://`` proxy URL for every request.
        timeouts: ``Timeouts(connect, read, total)`` in seconds.
        config_path: TOML config file to read instead of the default one.

    Raises:
        llmrelay.errors.ConfigError: invalid settings or config file.

    Use as ``async with AsyncClient() as client:`` or call ``aclose()``.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_urls: Mapping[str, str] | None = None,
        api_keys: Mapping[str, str] | None = None,
        proxy: str | None = None,
        timeouts: Timeouts | None = None,
        config_path: str | None = None,
    ) -> None:
        self._settings = Settings.load(
            base_urls=base_urls,
            api_keys=api_keys,
            proxy=proxy,
            timeouts=timeouts,
            model=model,
            config_path=config_path,
        )
        self._http = make_http_client(self._settings.timeouts, self._settings.proxy)
        self._providers: dict[str, Provider] = {}

    def __repr__(self) -> str:
        return f"<AsyncClient model={self._settings.model!r} providers={sorted(self._providers)}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection. The client cannot be used afterwards."""
        await self._http.aclose()

    def providers(self) -> list[ProviderDescription]:
        """Describe every registered provider, in registry order (no I/O, no secrets)."""
        out = []
        for name in BUILTIN:
            cls = provider_class(name)
            out.append(
                ProviderDescription(
                    name=name,
                    label=cls.label,
                    docs_url=cls.docs_url,
                    base_url=self._settings.base_url_for(name) or cls.endpoints["base_url"],
                    auth=cls.auth.mode.value,
                    env_var=cls.auth.env_var,
                    key_set=self._settings.api_key_for(name, cls.auth.env_var) is not None,
                    capabilities=tuple(sorted(c.value for c in cls.capabilities)),
                    default_model=cls.default_model,
                    models=tuple(cls.models),
                    aliases=dict(cls.aliases),
                    open_catalogue=cls.open_catalogue,
                )
            )
        return out

    def _provider(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            cls = provider_class(name)
            base = self._settings.base_url_for(name)
            provider = cls(
                self._http,
                endpoints={"base_url": base} if base else None,
                api_key=self._settings.api_key_for(name, cls.auth.env_var),
            )
            self._providers[name] = provider
        return provider

    async def stream(
        self,
        messages: MessagesInput,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: Iterable[str] | None = None,
        state: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Stream one chat turn as events.

        Args:
            messages: a prompt string, a ``Message``, a ``{"role", "content"}`` mapping,
                or an iterable of those (OpenAI chat-completions shape).
            model: model reference; default: the client's.
            system: a system prompt, placed before ``messages``.
            temperature: sampling temperature, passed to providers that take one.
            max_tokens: maximum tokens to generate.
            top_p: nucleus sampling mass.
            stop: stop sequences.
            state: provider state from a previous turn's ``ConversationState.data``.
            extra: provider-specific options.

        Yields:
            ``ProviderInfo`` first, then ``str`` text deltas and other events, and exactly
            one ``FinishReason`` last. Stopping early (``break``, ``aclose()``,
            cancellation) closes the provider's connection.

        Raises:
            llmrelay.errors.ConfigError: unknown model/provider, missing key, bad messages.
            llmrelay.errors.ProviderError: the (last) provider failed before any text.
            llmrelay.errors.AllProvidersFailed: several candidates all failed.
            llmrelay.errors.StreamInterrupted: a failure after text was yielded.
        """
        try:
            conversation = normalize_messages(messages)
            if system:
                conversation = (Message("system", system), *conversation)
        except ValueError as exc:
            raise errors.ConfigError(f"invalid messages: {exc}") from None
        targets = resolve(model, self._settings.model)
        failures: list[tuple[str, errors.LLMRelayError]] = []
        for index, target in enumerate(targets):
            request = ChatRequest(
                messages=conversation,
                model=target.model,
                temperature=temperature,
                max_tokens=max_tokens,
                top_p=top_p,
                stop=tuple(stop or ()),
                state=ConversationState(target.provider, state) if state is not None else None,
                options=dict(extra or {}),
            )
            attempt = self._attempt(target, request)
            try:
                first = await attempt.__anext__()
            except StopAsyncIteration:  # pragma: no cover - _attempt always yields
                return
            except errors.ProviderError as exc:
                await attempt.aclose()
                failures.append((target.provider, exc))
                if exc.retryable and index + 1 < len(targets):
                    continue
                if len(failures) > 1:
                    raise errors.AllProvidersFailed(failures) from exc
                raise
            async with aclosing(attempt):
                yield first
                async for event in attempt:
                    yield event
            return

    async def _attempt(self, target: Target, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Run one provider: ProviderInfo first, one FinishReason last, errors mapped.

        Errors before the first provider event propagate as they are (so the caller can
        fall back); errors after text was yielded become ``StreamInterrupted``.
        """
        provider = self._provider(target.provider)
        source = provider.stream(request)
        total = self._settings.timeouts.total
        if total is not None:
            source = _with_deadline(source, total, target)
        async with aclosing(source) as events:
            with translate_errors(target.provider, target.model):
                try:
                    first = await events.__anext__()
                except StopAsyncIteration:
                    first = None
            yield ProviderInfo(target.provider, target.model, provider.label)
            finish: FinishReason | None = None
            pieces: list[str] = []
            event = first
            try:
                with translate_errors(target.provider, target.model):
                    while event is not None:
                        if type(event) is str:
                            pieces.append(event)
                            yield event
                        elif isinstance(event, FinishReason):
                            finish = finish or event
                        else:
                            yield event
                        try:
                            event = await events.__anext__()
                        except StopAsyncIteration:
                            event = None
            except errors.ProviderError as exc:
                text = "".join(pieces)
                if text:
                    raise errors.StreamInterrupted(exc, text) from exc
                raise
            yield finish or FinishReason("stop")

    async def complete(
        self,
        messages: MessagesInput,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: Iterable[str] | None = None,
        state: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Run one chat turn and collect it; same arguments and errors as ``stream``.

        Returns:
            ``Completion`` with the text, finish reason, provider, model, usage and state.
        """
        text: list[str] = []
        reasoning: list[str] = []
        info = ProviderInfo("", "")
        finish = "stop"
        usage: Usage | None = None
        conv_state: ConversationState | None = None
        images: list[ImageResult] = []
        async for event in self.stream(
            messages,
            model=model,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            stop=stop,
            state=state,
            extra=extra,
        ):
            if isinstance(event, str):
                text.append(event)
            elif isinstance(event, ProviderInfo):
                info = event
            elif isinstance(event, FinishReason):
                finish = event.reason
            elif isinstance(event, Reasoning):
                reasoning.append(event.text)
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, ConversationState):
                conv_state = event
            elif isinstance(event, ImageResult):
                images.append(event)
        return Completion(
            text="".join(text),
            finish_reason=finish,
            provider=info.provider,
            model=info.model,
            usage=usage,
            reasoning="".join(reasoning),
            state=conv_state,
            images=tuple(images),
        )


async def _with_deadline(
    source: AsyncGenerator[Event, None], total: float, target: Target
) -> AsyncGenerator[Event, None]:
    """Bound a whole stream by ``total`` seconds (each step waits at most what is left)."""
    deadline = time.monotonic() + total
    async with aclosing(source) as events:
        while True:
            remaining = deadline - time.monotonic()
            try:
                with anyio.fail_after(max(remaining, 0.0)):
                    event = await events.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise errors.ProviderTimeout(
                    f"total timeout of {total:g}s exceeded",
                    provider=target.provider,
                    model=target.model,
                ) from None
            yield event
