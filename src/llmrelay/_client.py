"""``AsyncClient``: settings + HTTP + registry + router, with streams and resources on top.

**What is built when.** Constructing a client does only what can refuse a setting:
it reads the config file and the environment (``llmrelay._settings``), registers the
providers by name (``llmrelay._registry``: a configured ``kind`` is imported, as its
table is validated; built-ins and plugins are not), checks the transport and a CA
bundle path (``llmrelay._http_setup``) and makes a Redis health store when
``LLMRELAY_REDIS_URL`` is set. It imports neither httpx nor a transport nor a
provider's module. The rest (the engine and its router, the shared HTTP client with
its pools, httpx and the transport's modules) is built on first use, once per client,
under a lock: the first request, listing or resolution (``stream``, ``complete``,
``candidates``, ``providers()``, ``chat``, ``models`` ...), so concurrent first
requests, from tasks or from threads, share one HTTP client. ``aclose()`` before any
use builds nothing; a client with a ``proxy`` setting builds its HTTP client at
construction (the proxy URL is the transport's to check). ``import llmrelay`` plus
``AsyncClient()`` costs less than ``import httpx`` (``benchmarks/startup.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

from . import _setting_table, errors
from ._http_setup import check_ca_bundle, choose_transport
from ._params import ChatParams, ImageParams, check, keywords
from ._registry import Registry
from ._settings import Settings, Timeouts, load_config
from ._turn import Turn, check_image_types
from .providers import Capability, Provider
from .types import ImageResult, MessagesInput

if TYPE_CHECKING:
    import httpx

    from ._embeddings import AsyncEmbeddings
    from ._engine import Engine
    from ._messages import AsyncMessages
    from ._resources import AsyncChat, AsyncImages, AsyncModels
    from ._responses import AsyncResponses
    from ._router import HealthStore
    from ._stream import AsyncChatStream
    from .catalog import LiveModel
    from .types import Completion, EmbeddingResult, ProviderDescription

__all__ = ["AsyncClient"]

_chat_stream: type[AsyncChatStream] | None = None
"""``llmrelay._stream.AsyncChatStream`` once a stream was made (imported on first use,
not with the client; an import statement per stream costs a few microseconds)."""


def _load_chat_stream() -> type[AsyncChatStream]:
    global _chat_stream
    from ._stream import AsyncChatStream

    _chat_stream = AsyncChatStream
    return AsyncChatStream


class AsyncClient:
    """Async client for every provider: the engine the sync ``Client`` also runs.

    Args:
        model: default model reference (``"provider:model"``, a provider name, an alias
            or a bare model); falls back to ``LLMRELAY_MODEL``, the config file, then the
            first provider's default model.
        base_urls: provider name -> base URL (beats ``LLMRELAY_<NAME>_BASE_URL``).
        endpoints: provider name -> endpoint name -> URL, for providers with several
            endpoints (``{"huggingface": {"hub_url": ...}}``).
        api_keys: provider name -> API key (beats the environment and config file).
        proxy: ``http://``, ``https://`` or ``socks5://`` proxy URL for every request.
        timeouts: ``Timeouts(connect, read, first_token, total, silence, stall)`` in
            seconds.
        verify: ``True`` (default CAs), ``False``, or a CA bundle path (default: from
            ``LLMRELAY_CA_BUNDLE``, ``SSL_CERT_FILE``, the config file).
        strict: refuse request parameters a provider cannot honour instead of dropping
            them with a warning.
        allow_image_fetch: let a provider fetch an ``http(s)`` image URL its service
            cannot take itself (public addresses only, size-capped, with a timeout);
            default ``LLMRELAY_ALLOW_IMAGE_FETCH`` / the config file, else never. A
            service that takes URLs always gets the URL unfetched.
        cooldown: the longest a candidate that failed retryably is tried last between
            probes of its health (default 15; ``0``: never moved).
        retries: same-candidate retries of a transient failure (429, 5xx, a reset),
            with exponential back-off and jitter, honouring ``Retry-After``, before
            failing over (default 2; per provider and per alias in the config file).
        rescue: continue or regenerate a stream that breaks after its first content
            (default ``True``; ``llmrelay._rescue``).
        providers: extra provider classes (or name -> class) for this client only.
        http_client: an ``httpx.AsyncClient`` to use instead of building one (it is not
            closed by ``aclose``; ``proxy``, ``verify``, ``transport`` and connect/read
            timeouts are then the caller's).
        config_path: TOML config file to read instead of the default one.
        health: where candidate cool-downs are kept (a ``HealthStore``; not closed by
            ``aclose``). Default: shared through Redis when ``LLMRELAY_REDIS_URL`` is set
            (``pip install 'llmrelay[scale]'``; closed by ``aclose``), else in this client.
        transport: the HTTP transport: ``"httpx"`` (default), ``"aiohttp"`` (a third
            to a half of the CPU per streamed token; ``pip install 'llmrelay[fast]'``;
            no socks proxies) or ``"auto"`` (aiohttp when installed and no socks proxy
            is set, else httpx; as an argument a preference ``LLMRELAY_TRANSPORT`` and
            the config file's ``transport`` override). Default: from those, else httpx.

    Raises:
        llmrelay.errors.ConfigError: invalid settings or config file (an unknown
            provider kind or option, an unknown or uninstalled transport, an unreadable
            CA bundle, an unusable proxy URL).

    Constructing the client reads and checks the settings; the engine, the shared HTTP
    client (httpx and the transport) and the resources (``chat``, ``images``,
    ``embeddings``, ``models``, ``responses``, ``messages``) are built on their first
    use, once (see the module docstring). Use as ``async with AsyncClient() as
    client:`` or call ``aclose()``.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_urls: Mapping[str, str] | None = None,
        endpoints: Mapping[str, Mapping[str, str]] | None = None,
        api_keys: Mapping[str, str] | None = None,
        proxy: str | None = None,
        timeouts: Timeouts | None = None,
        verify: bool | str | None = None,
        strict: bool | None = None,
        cooldown: float | None = None,
        retries: int | None = None,
        rescue: bool | None = None,
        providers: Iterable[type[Provider]] | Mapping[str, type[Provider]] | None = None,
        http_client: httpx.AsyncClient | None = None,
        config_path: str | None = None,
        health: HealthStore | None = None,
        allow_image_fetch: bool | None = None,
        transport: str | None = None,
    ) -> None:
        path, config = load_config(config_path)
        registry = Registry(providers, Settings.configured_providers(config, path))
        settings = Settings.load(
            providers=registry.settings_specs(),
            config=config,
            config_path=path,
            base_urls=base_urls,
            endpoints=endpoints,
            api_keys=api_keys,
            proxy=proxy,
            timeouts=timeouts,
            verify=verify,
            model=model,
            strict=strict,
            cooldown=cooldown,
            allow_image_fetch=allow_image_fetch,
            retries=retries,
            rescue=rescue,
            transport=transport,
            plugins=registry.read_plugins,
        )
        self._settings = settings
        self._registry = registry
        self._owns_http = http_client is None
        self._http: httpx.AsyncClient | None = http_client
        self._transport = settings.transport
        if self._owns_http:
            # what can be refused is refused now; the client itself is built on first use
            self._transport = choose_transport(settings.transport, settings.proxy)
            if isinstance(settings.verify, str):
                check_ca_bundle(settings.verify)
            if settings.proxy is not None:  # the transport parses the proxy URL: now
                self._http = self._make_proxied_http()
        self._owned_health: Any = None
        if health is None and _setting_table.redis_url() is not None:
            from ._redis import health_from_env

            health = self._owned_health = health_from_env()
        self._health = health
        self._built: Engine | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _make_http(self) -> httpx.AsyncClient:
        from ._transport import make_http_client

        settings = self._settings
        return make_http_client(settings.timeouts, settings.proxy, settings.verify, self._transport)

    def _make_proxied_http(self) -> httpx.AsyncClient:
        import httpx

        try:
            return self._make_http()
        except (ValueError, httpx.InvalidURL) as exc:  # httpx's or aiohttp's URL parser
            raise errors.ConfigError(f"unusable proxy setting: {exc}") from exc

    @property
    def _engine(self) -> Engine:
        """The engine (router, providers, the shared HTTP client), built on first use.

        Built once, under a lock: concurrent first uses (tasks or threads) get the same
        engine and HTTP client.

        Raises:
            llmrelay.errors.ClientClosed: the client was closed before anything built it.
            llmrelay.errors.ConfigError: a CA bundle or transport that became unusable
                since construction.
        """
        engine = self._built
        if engine is None:
            engine = self._build()
        return engine

    def _build(self) -> Engine:
        with self._lock:
            if self._built is not None:
                return self._built
            if self._closed:
                raise errors.ClientClosed("this llmrelay client is closed")
            from ._engine import Engine

            if self._http is None:
                self._http = self._make_http()
            self._built = Engine(self._settings, self._registry, self._http, self._health)
            return self._built

    @cached_property
    def chat(self) -> AsyncChat:
        """OpenAI's chat-completions resource (``client.chat.completions.create``).

        Made on first use, with the engine and the HTTP client.
        """
        from ._resources import AsyncChat

        return AsyncChat(self)

    @cached_property
    def images(self) -> AsyncImages:
        """OpenAI's images resource (``client.images.generate``); made on first use."""
        from ._resources import AsyncImages

        return AsyncImages(self)

    @cached_property
    def embeddings(self) -> AsyncEmbeddings:
        """OpenAI's embeddings resource (``client.embeddings.create``); made on first use."""
        from ._embeddings import AsyncEmbeddings

        return AsyncEmbeddings(self)

    @cached_property
    def models(self) -> AsyncModels:
        """OpenAI's models resource (``client.models.list``); made on first use."""
        from ._resources import AsyncModels

        return AsyncModels(self)

    @cached_property
    def responses(self) -> AsyncResponses:
        """OpenAI's Responses API over this client (``llmrelay.AsyncResponses``).

        Made on first use (the Responses modules load only then).
        """
        from ._responses import AsyncResponses

        return AsyncResponses(self)

    @cached_property
    def messages(self) -> AsyncMessages:
        """Anthropic's Messages API over this client (``llmrelay.AsyncMessages``).

        Made on first use (the Messages modules load only then).
        """
        from ._messages import AsyncMessages

        return AsyncMessages(self)

    def __repr__(self) -> str:
        return f"<AsyncClient model={self._settings.model!r}>"

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
        """Close every pooled connection (idempotent). The client cannot be used after.

        A client never used closes without building anything (httpx is not imported).
        """
        with self._lock:  # a build in another thread finishes first, then is closed
            self._closed = True
            http, self._http = (self._http if self._owns_http else None), None
            owned, self._owned_health = self._owned_health, None
        if http is not None:
            await http.aclose()
        if owned is not None:
            await owned.aclose()

    def prepare(self) -> None:
        """Build the engine and the shared HTTP client now rather than at the first use.

        For a server, whose first request should be as fast as the next ones (``llmrelay
        serve`` calls it at start-up). Imports httpx and the transport's modules; opens
        no connection. Idempotent.

        Raises:
            llmrelay.errors.ClientClosed: the client is closed.
            llmrelay.errors.ConfigError: a CA bundle that became unreadable since the
                client was constructed.
        """
        self._check_open()
        if self._built is None:
            self._build()

    def _check_open(self) -> None:
        if self._closed:
            raise errors.ClientClosed("this llmrelay client is closed")

    def providers(self) -> list[ProviderDescription]:
        """Describe every registered provider, in registry order (no I/O, no secrets)."""
        from .types import ProviderDescription  # llmrelay.types loads it on first use

        engine = self._engine
        out = []
        for name in engine.registry.names():
            cls = engine.registry.get(name)
            urls = {**cls.endpoints, **engine.settings.endpoints_for(name)}
            out.append(
                ProviderDescription(
                    name=name,
                    label=cls.label,
                    docs_url=cls.docs_url,
                    base_url=urls.get("base_url", ""),
                    auth=cls.auth.mode.value,
                    env_var=cls.auth.env_var,
                    key_set=engine.settings.api_key_for(name) is not None,
                    capabilities=tuple(sorted(c.value for c in cls.capabilities)),
                    default_model=cls.default_model,
                    models=tuple(cls.models),
                    aliases=dict(cls.aliases),
                    open_catalogue=cls.open_catalogue,
                    key_source=engine.settings.key_sources.get(name),
                    endpoints=urls,
                    parameters=tuple(sorted(cls.parameters)),
                    options=cls.describe_options(),
                    image_models=tuple(cls.image_models),
                    embedding_models=tuple(cls.embedding_models),
                    endpoint_sources={
                        endpoint: source
                        for (owner, endpoint), source in engine.settings.endpoint_sources.items()
                        if owner == name
                    },
                    proxy_source=engine.settings.sources.get("proxy"),
                )
            )
        return out

    def aliases(self) -> dict[str, list[str]]:
        """Every alias and its resolved chain of ``"provider:model"`` references.

        Raises:
            llmrelay.errors.ConfigError: a configured alias that does not resolve.
        """
        return self._engine.router.aliases()

    def model_vision(self, model: str | None = None) -> bool | None:
        """Whether ``model``'s first candidate takes images (``image_url`` parts), now.

        No I/O: ``False`` for a provider without vision; else what the provider knows
        (a configured row's ``vision``, the Hugging Face router's cached catalogue, a
        Space's discovered chat input), ``None`` while unknown (the provider checks
        when a request with images is sent). ``None`` means the client's default model.

        Raises:
            llmrelay.errors.UnknownModelError / UnknownProviderError / ConfigError: it
                does not resolve.
        """
        engine = self._engine
        target = engine.router.resolve(model or engine.settings.model)[0]
        cls = engine.registry.get(target.provider)
        if Capability.VISION not in cls.capabilities:
            return False
        if engine.missing_key(target.provider) is None:
            return engine.provider(target.provider).vision(target.model)
        return cls.declared_vision(cls.resolve_model(target.model))

    async def live_models(
        self, provider: str = "huggingface", *, refresh: bool = False
    ) -> list[LiveModel]:
        """The models ``provider``'s service lists right now (``llmrelay.catalog``).

        Today the Hugging Face router's catalogue: each model with the inference
        providers serving it, context length, tool support and prices. Cached by the
        provider with a TTL; ``refresh`` fetches it again.

        Raises:
            llmrelay.errors.UnknownProviderError: no such provider.
            llmrelay.errors.ConfigError: the provider has no live catalogue.
            llmrelay.errors.ProviderError: the catalogue could not be read.
        """
        self._check_open()
        return list(await self._engine.provider(provider).live_models(refresh=refresh))

    def candidates(self, model: str | None = None) -> list[str]:
        """The ``"provider:model"`` candidates of ``model``, in the order tried now.

        ``None`` means the client's default model. No I/O.

        Raises:
            llmrelay.errors.UnknownModelError / UnknownProviderError / ConfigError: it
                does not resolve.
        """
        return [str(target) for target in self._engine.router.resolve(model)]

    async def describe_model(self, model: str | None = None) -> dict[str, Any]:
        """What the first candidate of ``model`` will be sent, as its provider sees it.

        For ``hf_spaces:owner/space`` the Space's discovered chat endpoint and each of
        its inputs with the default that is sent (this asks the Space); other providers
        give what they declare. ``None`` means the client's default model.

        Returns:
            A JSON-ready dict with at least ``provider`` and ``model``.

        Raises:
            llmrelay.errors.ConfigError: an unresolvable reference or a missing key.
            llmrelay.errors.ProviderError: the provider could not describe it.
        """
        self._check_open()
        engine = self._engine
        target = engine.router.resolve(model or engine.settings.model)[0]
        missing = engine.missing_key(target.provider)
        if missing is not None:
            raise missing
        provider = engine.provider(target.provider)
        try:
            return await provider.describe_model(target.model)
        except Exception as exc:
            from ._engine import map_exception

            mapped = map_exception(exc, target.provider, target.model)
            if mapped is None:
                raise
            raise mapped from exc

    @keywords(ChatParams)
    def stream(self, messages: MessagesInput, **params: Unpack[ChatParams]) -> AsyncChatStream:
        """Prepare one chat turn as an ``AsyncChatStream`` (nothing is sent yet).

        Args:
            messages: a prompt string, a ``Message``, a ``{"role", "content"}`` mapping,
                or an iterable of those (OpenAI chat-completions shape). With
                ``conversation``, only the new messages of this turn.
            **params: ``llmrelay.ChatParams``: ``model`` (model reference; default: the
                client's), ``system`` (a system prompt, placed before ``messages``; with
                a conversation: replaces its system prompt), ``temperature``,
                ``max_tokens``, ``top_p``, ``stop`` (stop sequences), ``seed``,
                ``options`` (provider-specific options, names the provider declares),
                ``conversation`` (a ``Conversation`` to continue; the turn is appended
                to it when the stream finishes), ``state`` (a provider's
                ``ConversationState`` from a previous turn, without a conversation;
                only that provider receives it).

        Returns:
            ``AsyncChatStream``: ``await stream.start()`` to open it, iterate it for
            events (``ProviderInfo`` first, exactly one ``FinishReason`` last),
            ``collect()`` for a ``Completion``.

        Raises:
            TypeError: a keyword that is not a chat parameter.
            llmrelay.errors.ConfigError: invalid messages (the rest is raised when the
                stream opens: see ``AsyncChatStream.start``).
            llmrelay.errors.ClientClosed: the client is closed.
        """
        check(params, ChatParams, "stream")
        self._check_open()
        turn = Turn.build(messages, params)
        return (_chat_stream or _load_chat_stream())(self._engine, turn)

    @keywords(ChatParams)
    async def open(self, messages: MessagesInput, **params: Unpack[ChatParams]) -> AsyncChatStream:
        """``stream(...)`` and ``await start()``: returns once the first content arrived.

        Takes the arguments of ``stream``; raises what ``AsyncChatStream.start`` raises.
        """
        stream = self.stream(messages, **params)
        try:
            return await stream.start()
        except BaseException:
            await stream.aclose()
            raise

    @keywords(ChatParams)
    async def complete(self, messages: MessagesInput, **params: Unpack[ChatParams]) -> Completion:
        """Run one chat turn and collect it; same arguments and errors as ``stream``.

        Returns:
            ``Completion`` with the text, finish reason, provider, model, usage, state
            and the attempts.
        """
        stream = self.stream(messages, **params)
        async with stream:
            return await stream.collect()

    @keywords(ImageParams)
    async def generate_image(self, prompt: str, **params: Unpack[ImageParams]) -> list[ImageResult]:
        """Generate ``n`` images (providers with the images capability), with fallback.

        Args:
            prompt: what to draw.
            **params: ``llmrelay.ImageParams``: ``model``, ``n`` (1 to 10, default 1),
                ``width`` and ``height`` (pixels), ``aspect_ratio``, ``seed``,
                ``negative_prompt``, ``options`` (provider-specific).

        Returns:
            ``ImageResult`` objects (bytes and MIME type; saving them is the caller's).

        Raises:
            TypeError: a keyword that is not an image parameter.
            llmrelay.errors.ConfigError: an empty prompt, ``n`` out of 1..10, an unknown
                model; ``InvalidRequestError`` from a provider without images;
                ``ProviderError`` / ``AllProvidersFailed`` as for chat.
        """
        check(params, ImageParams, "generate_image")
        self._check_open()
        if not isinstance(prompt, str) or not prompt.strip():
            raise errors.ConfigError("the image prompt is empty")
        checked = check_image_types(params)
        n = checked.get("n", 1)
        if not 1 <= n <= 10:
            raise errors.ConfigError(f"n must be between 1 and 10; got {n}", param="n")
        engine = self._engine
        fields = {
            name: checked.get(name)
            for name in ("width", "height", "aspect_ratio", "seed", "negative_prompt", "options")
        }
        model = checked.get("model") or engine.settings.model
        return await engine.generate_images(model, prompt, n, fields)

    async def embed(
        self,
        input: str | Iterable[str] | Iterable[int] | Iterable[Iterable[int]],
        *,
        model: str,
        dimensions: int | None = None,
        user: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> EmbeddingResult:
        """Embed text (or token ids) with ``model``, with fallback as for chat.

        Args:
            input: a string, a list of strings, a list of token ids, or a list of
                token-id lists (OpenAI's ``input`` forms).
            model: a model reference (``"huggingface:BAAI/bge-small-en-v1.5"``, an
                alias for a chain of candidates, ...).
            dimensions: the vector size to ask for; refused by a provider that cannot
                honour it (``InvalidRequestError``, ``param="dimensions"``).
            user: an end-user identifier, sent where the service takes one.
            options: provider-specific embedding options (``Provider.embedding_options``).

        Returns:
            ``EmbeddingResult``: one vector per input, provider, model, reported usage
            and the attempts (see ``llmrelay._embeddings`` for the rules).

        Raises:
            llmrelay.errors.ConfigError: a bad argument or an unresolvable model;
                ``InvalidRequestError`` (with ``param``) for a field a provider cannot
                honour; ``ProviderError`` / ``AllProvidersFailed`` as for chat.
        """
        from ._embeddings import embed

        self._check_open()
        return await embed(
            self._engine, input, model=model, dimensions=dimensions, user=user, options=options
        )
