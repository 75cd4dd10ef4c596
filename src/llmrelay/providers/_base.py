"""The provider interface every backend implements.

A provider is a class with declared, immutable class attributes (name, label, named
endpoints, auth, capabilities, the request parameters and options it takes, models,
aliases) and an ``async def stream(request)`` generator. It is instantiated per client
with the client's shared ``httpx.AsyncClient`` (no cookie jar: a provider that needs a
cookie session keeps it in its ``ConversationState``), its resolved endpoints and key.
It never builds its own HTTP session, reads the environment or files, prints, sleeps
with ``time.sleep``, or keeps conversation state on the instance or the class.

Rules of ``stream`` (checked by the contract tests in ``tests/contract``):

* yield ``str`` text deltas exactly as generated, typed events otherwise, and exactly
  one ``FinishReason`` after the last content; a stream that ends without one is a
  ``ProtocolError`` raised by the engine;
* raise only ``llmrelay.errors`` types (httpx errors are mapped by the engine too), the
  original exception as ``__cause__``; turn any malformed payload into ``ProtocolError``;
* open connections with ``async with`` so that closing the generator closes them, and
  hold no cancel scope (``anyio.fail_after`` …) across a ``yield``: the engine may step
  the generator from different tasks (a server opens a stream in one task and sends it
  from another);
* bound everything read (``llmrelay._http`` helpers do).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from .. import errors
from ..types import ChatRequest, Event, ImageResult

if TYPE_CHECKING:
    import httpx

    from ..catalog import LiveModel
    from ..types import EmbeddingRequest, EmbeddingResult, ImageRequest

__all__ = [
    "PARAMETERS",
    "Auth",
    "AuthMode",
    "Capability",
    "Option",
    "Provider",
    "unsupported_part",
]

PARAMETERS: frozenset[str] = frozenset(
    {
        "temperature",
        "max_tokens",
        "top_p",
        "stop",
        "seed",
        "frequency_penalty",
        "presence_penalty",
    }
)
"""The generation parameters of ``ChatRequest`` a provider may declare it takes."""


class AuthMode(enum.StrEnum):
    """Whether a provider needs an API key."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class Auth:
    """A provider's authentication: the mode and the vendor's environment variable.

    Attributes:
        mode: ``AuthMode``.
        env_var: the vendor's key variable (``HF_TOKEN``), read by the settings layer
            after ``LLMRELAY_<NAME>_API_KEY``; ``None`` when there is none.
    """

    mode: AuthMode = AuthMode.NONE
    env_var: str | None = None


class Capability(enum.StrEnum):
    """What a provider can do."""

    CHAT = "chat"
    STREAM = "stream"
    IMAGES = "images"
    EMBEDDINGS = "embeddings"
    VISION = "vision"
    SYSTEM_PROMPT = "system_prompt"
    HISTORY = "history"
    SERVER_STATE = "server_state"
    TOOLS = "tools"
    """Function tools natively: ``tools``, ``tool_choice``, ``parallel_tool_calls``, tool
    calls and ``role: "tool"`` results in the messages."""
    STRUCTURED_OUTPUT = "structured_output"
    """``response_format`` ``json_object`` and ``json_schema`` natively."""
    USAGE = "usage"
    """The service reports token counts (``Usage`` events) as a rule."""
    PREFILL = "prefill"
    """It continues a partial answer given as the start of the assistant's turn
    (``ChatRequest.prefill``): a mid-stream rescue then streams only the remainder."""


@dataclass(frozen=True, slots=True)
class Option:
    """A provider-specific request option (``ChatRequest.options`` key).

    Attributes:
        type: the Python type of the value (``str``, ``int``, ``float``, ``bool``,
            ``dict``, ``list``); the CLI converts ``-o NAME VALUE`` text to it.
        help: one line for ``llmrelay providers`` and ``--help``.
    """

    type: type
    help: str = ""


class Provider(ABC):
    """Base class of every provider.

    Class attributes (declared by each subclass, never mutated):
        name: registry name, equal to the module name for built-ins.
        label: human-readable name.
        docs_url: where the service or its protocol is documented.
        endpoints: endpoint name -> default URL; ``"base_url"`` is required, others
            (``"hub_url"``, …) are the provider's own. Each is overridable by argument,
            ``LLMRELAY_<NAME>_<ENDPOINT>`` (e.g. ``LLMRELAY_HUGGINGFACE_HUB_URL``) and the
            config file (``[providers.<name>] <endpoint> = "..."``).
        auth: ``Auth`` (mode and the vendor's key variable).
        capabilities: frozenset of ``Capability``.
        parameters: which of ``PARAMETERS`` the provider honours; the engine drops the
            others with a warning naming them (an ``InvalidRequestError`` when strict).
        options: provider-specific ``ChatRequest.options`` it accepts, name -> ``Option``.
        embedding_options: provider-specific ``EmbeddingRequest.options`` it accepts
            (providers with ``Capability.EMBEDDINGS``).
        default_model: model id used when none is given.
        models: the provider's own model ids (built-in list).
        image_models: those of ``models`` that generate images rather than text
            (``generate_image``; empty for a text-only provider).
        embedding_models: model ids that create embeddings (``embed``, providers with
            ``Capability.EMBEDDINGS``) rather than chat; apart from ``models`` (whose
            presence closes a configured catalogue), accepted as ``models`` are, and
            listed beside them (``AsyncClient.models.list()``, ``/v1/models``).
        aliases: short name -> model id, within this provider.
        open_catalogue: ``True`` when any model id is accepted.
        forwards: OpenAI chat-completions request fields the provider sends verbatim
            to its service (``ChatRequest.passthrough``: ``reasoning_effort``,
            ``logit_bias`` ...); the engine refuses the others when given.

    Args:
        http: the client's shared ``httpx.AsyncClient`` (never closed by the provider).
        endpoints: resolved endpoint URLs (missing names take the defaults).
        api_key: the resolved key, or ``None``.

    Raises:
        llmrelay.errors.MissingCredentialsError: ``auth.mode`` is ``REQUIRED`` and no key
            was given.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    docs_url: ClassVar[str] = ""
    endpoints: ClassVar[Mapping[str, str]]
    auth: ClassVar[Auth] = Auth()
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CHAT, Capability.STREAM})
    parameters: ClassVar[frozenset[str]] = frozenset()
    options: ClassVar[Mapping[str, Option]] = MappingProxyType({})
    embedding_options: ClassVar[Mapping[str, Option]] = MappingProxyType({})
    default_model: ClassVar[str]
    models: ClassVar[tuple[str, ...]] = ()
    image_models: ClassVar[tuple[str, ...]] = ()
    embedding_models: ClassVar[tuple[str, ...]] = ()
    aliases: ClassVar[Mapping[str, str]] = MappingProxyType({})
    open_catalogue: ClassVar[bool] = False
    forwards: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoints: Mapping[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        if self.auth.mode is AuthMode.REQUIRED and not api_key:
            raise errors.MissingCredentialsError(self.name, self.auth.env_var)
        self._http = http
        urls = dict(type(self).endpoints)
        given = {key: value for key, value in (endpoints or {}).items() if value}
        urls.update(given)
        self.overridden: frozenset[str] = frozenset(given)
        """Names of the endpoints set by the user (not defaults)."""
        self.urls: Mapping[str, str] = MappingProxyType(
            {key: value.rstrip("/") for key, value in urls.items()}
        )
        self._api_key = api_key

    @property
    def base_url(self) -> str:
        """The resolved ``base_url`` endpoint (no trailing slash)."""
        return self.urls["base_url"]

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"<{type(self).__name__} {self.name} base_url={self.base_url!r} key={key}>"

    @classmethod
    def resolve_model(cls, model: str | None) -> str:
        """Map a model name or alias to the provider's own model id.

        Args:
            model: a model id, an alias, or ``None`` for ``default_model``.

        Raises:
            llmrelay.errors.UnknownModelError: naming the valid models and aliases.
        """
        if not model:
            return cls.default_model
        if model in cls.models or model in cls.embedding_models:
            return model
        if model in cls.aliases:
            return cls.aliases[model]
        if cls.open_catalogue:
            return model
        raise errors.UnknownModelError(model, cls.valid_model_names(), provider=cls.name)

    @classmethod
    def continues(cls, model: str) -> bool:
        """Whether ``model`` can continue a partial answer (``ChatRequest.prefill``).

        Default: ``Capability.PREFILL`` declared. A provider that cannot (the default)
        never receives a prefill: a broken stream is then rescued by regenerating.
        """
        return Capability.PREFILL in cls.capabilities

    @classmethod
    def valid_model_names(cls) -> list[str]:
        """Every accepted name: model ids, embedding model ids, aliases, without duplicates."""
        return list(dict.fromkeys([*cls.models, *cls.embedding_models, *cls.aliases]))

    @classmethod
    def offers(cls, model: str) -> bool:
        """Whether ``model`` is one of this provider's listed model ids or aliases."""
        return model in cls.models or model in cls.embedding_models or model in cls.aliases

    @classmethod
    def declared_vision(cls, model: str) -> bool | None:
        """Whether ``model`` takes images (``image_url`` parts), as declared (no I/O).

        The provider's ``Capability.VISION`` by default (every model, or none). A
        provider whose models differ overrides it: a configured OpenAI-compatible row's
        ``vision`` list; ``None`` where the service says, when a request is sent (the
        Hugging Face router's catalogue, a Space's chat input).
        """
        return Capability.VISION in cls.capabilities

    def vision(self, model: str) -> bool | None:
        """Whether ``model`` takes images, as known now without I/O.

        The declaration (``declared_vision``), or what this instance has learnt from
        the service (the Hugging Face router's cached catalogue, a Space's discovered
        chat input); ``None`` while unknown. A provider with ``Capability.VISION``
        checks the model before it sends an image, and refuses it with an
        ``InvalidRequestError`` naming the message when the model takes none.
        """
        return self.declared_vision(self.resolve_model(model))

    async def list_models(self) -> Sequence[str]:
        """The provider's model ids, possibly fetched from the service (default: ``models``).

        Providers with a live catalogue override this (with a timeout and a cache);
        it is never called at import or on the token path.
        """
        return self.models

    async def live_models(self, *, refresh: bool = False) -> Sequence[LiveModel]:
        """The models the service lists right now, with their capabilities.

        Providers with a live catalogue override this (cached, with a TTL); it is never
        called at import or on the token path.

        Raises:
            llmrelay.errors.ConfigError: this provider has no live catalogue.
        """
        raise errors.ConfigError(f"{self.name} has no live model catalogue")

    @abstractmethod
    def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Stream the answer to ``request`` (see the module docstring for the rules).

        ``request.state`` is this provider's own ``ConversationState`` from the turn
        before, or ``None`` (then ``request.messages`` is the whole history to send).

        Raises:
            llmrelay.errors.ProviderError: any failure, mapped to the error tree.
        """

    async def check_request(self, request: ChatRequest) -> None:
        """Refuse, before anything is sent, a request part this provider cannot honour.

        The default checks ``request``'s tools, tool messages and response format
        against ``capabilities`` (``unsupported_part``). A provider whose support
        varies by model (the Hugging Face router's catalogue) overrides it; tool
        emulation (``llmrelay._emulation``) checks the rewritten request with it.

        Raises:
            llmrelay.errors.InvalidRequestError: naming the part (``param``) and this
                provider.
        """
        refused = unsupported_part(request, self.capabilities)
        if refused is not None:
            param, what = refused
            raise errors.InvalidRequestError(
                f"{self.name} cannot honour {what}: it has no native support for it "
                "(tool_emulation emulates it: see docs/agents.md)",
                provider=self.name,
                model=request.model,
                param=param,
            )

    async def describe_model(self, model: str) -> dict[str, Any]:
        """What a request to ``model`` is sent as (JSON-ready; default: the declarations).

        Providers that discover a model's inputs (``hf_spaces``) override this.

        Returns:
            ``{"provider", "model", "parameters", "options"}`` at least.
        """
        return {
            "provider": self.name,
            "model": model,
            "parameters": sorted(self.parameters),
            "options": self.describe_options(),
        }

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        """Generate one image (providers with ``Capability.IMAGES`` override this).

        Raises:
            llmrelay.errors.InvalidRequestError: this provider cannot generate images.
        """
        raise errors.InvalidRequestError(
            f"{self.name} cannot generate images", provider=self.name, model=request.model
        )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed ``request.input`` (providers with ``Capability.EMBEDDINGS`` override this).

        Returns one vector per input, in order; ``usage`` only as the service reports it.
        Every field of ``request`` is sent in the service's own terms or refused with an
        ``InvalidRequestError`` whose ``param`` names it.

        Raises:
            llmrelay.errors.InvalidRequestError: this provider cannot create embeddings.
        """
        raise errors.InvalidRequestError(
            f"{self.name} cannot create embeddings",
            provider=self.name,
            model=request.model,
            param="model",
        )

    def _auth_headers(self) -> dict[str, str]:
        """``Authorization: Bearer`` when a key is set; nothing otherwise."""
        return {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    @classmethod
    def describe_options(cls) -> dict[str, Any]:
        """``{name: {"type": type name, "help": text}}`` of ``options`` (for listings)."""
        return {k: {"type": v.type.__name__, "help": v.help} for k, v in cls.options.items()}


def unsupported_part(
    request: ChatRequest, capabilities: frozenset[Capability]
) -> tuple[str, str] | None:
    """The first part of ``request`` that ``capabilities`` do not cover, else ``None``.

    Tools (``tools``, ``tool_choice``, ``parallel_tool_calls``, an assistant message's
    ``tool_calls``, a ``tool`` message) need ``Capability.TOOLS``; a ``json_object`` or
    ``json_schema`` ``response_format`` needs ``Capability.STRUCTURED_OUTPUT``
    (``text`` needs nothing).

    Returns:
        ``(param, description)``: OpenAI's name of the field (``"tools"``,
        ``"messages[3]"``) and what it asks for.
    """
    if Capability.TOOLS not in capabilities:
        if request.tools:
            return "tools", "tools (function calling)"
        if request.tool_choice is not None and request.tool_choice.mode != "none":
            return "tool_choice", f"tool_choice {request.tool_choice.mode!r}"
        for index, message in enumerate(request.messages):
            if message.tool_calls or message.role == "tool":
                return f"messages[{index}]", "tool calls and tool results in the messages"
    response_format = request.response_format
    if (
        response_format is not None
        and response_format.type != "text"
        and Capability.STRUCTURED_OUTPUT not in capabilities
    ):
        return "response_format", f"response_format {response_format.type!r}"
    return None
