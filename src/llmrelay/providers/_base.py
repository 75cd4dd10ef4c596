"""The provider interface every backend implements.

A provider is a class with declared, immutable class attributes (name, label, base URL,
auth, capabilities, models, aliases) and an ``async def stream(request)`` generator. It
is instantiated per client with the client's shared ``httpx.AsyncClient``, its resolved
base URL and key. It never builds its own HTTP session, reads the environment or files,
prints, or keeps state on the class.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import httpx

from .. import errors
from ..types import ChatRequest, Event, ImageRequest

__all__ = ["Auth", "AuthMode", "Capability", "Provider"]


class AuthMode(enum.StrEnum):
    """Whether a provider needs an API key."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class Auth:
    """A provider's authentication: the mode and the environment variable of its key."""

    mode: AuthMode = AuthMode.NONE
    env_var: str | None = None


class Capability(enum.StrEnum):
    """What a provider can do."""

    CHAT = "chat"
    STREAM = "stream"
    IMAGES = "images"
    SYSTEM_PROMPT = "system_prompt"
    HISTORY = "history"
    SERVER_STATE = "server_state"


class Provider(ABC):
    """Base class of every provider.

    Class attributes (declared by each subclass, never mutated):
        name: registry name, equal to the module name.
        label: human-readable name.
        docs_url: where the service or its protocol is documented.
        default_base_url: the service's URL; overridden by ``base_url=``.
        auth: ``Auth`` (mode and key environment variable).
        capabilities: frozenset of ``Capability``.
        default_model: model id used when none is given.
        models: the provider's own model ids.
        aliases: alias -> model id.
        open_catalogue: ``True`` when any model id is accepted.

    Args:
        http: the client's shared ``httpx.AsyncClient``.
        base_url: the service URL (defaults to ``default_base_url``).
        api_key: the resolved key, or ``None``.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    docs_url: ClassVar[str] = ""
    default_base_url: ClassVar[str]
    auth: ClassVar[Auth] = Auth()
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CHAT, Capability.STREAM})
    default_model: ClassVar[str]
    models: ClassVar[tuple[str, ...]] = ()
    aliases: ClassVar[Mapping[str, str]] = MappingProxyType({})
    open_catalogue: ClassVar[bool] = False

    def __init__(
        self, http: httpx.AsyncClient, *, base_url: str | None = None, api_key: str | None = None
    ) -> None:
        if self.auth.mode is AuthMode.REQUIRED and not api_key:
            raise errors.MissingCredentialsError(self.name, self.auth.env_var)
        self._http = http
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self._api_key = api_key

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
        if model in cls.models:
            return model
        if model in cls.aliases:
            return cls.aliases[model]
        if cls.open_catalogue:
            return model
        raise errors.UnknownModelError(model, cls.valid_model_names(), provider=cls.name)

    @classmethod
    def valid_model_names(cls) -> list[str]:
        """Every accepted name: model ids then aliases, without duplicates."""
        return list(dict.fromkeys([*cls.models, *cls.aliases]))

    @abstractmethod
    def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Stream the answer to ``request``.

        Yields ``str`` text deltas and typed events, at most one ``FinishReason`` and
        nothing content-like after it. Multi-step protocols stay inside the generator;
        connections are opened with ``async with`` so an early stop closes them.

        Raises:
            llmrelay.errors.ProviderError: any failure, mapped to the error tree.
        """

    async def generate_image(self, request: ImageRequest) -> AsyncGenerator[Event, None]:
        """Generate an image (providers with ``Capability.IMAGES`` override this).

        Raises:
            llmrelay.errors.ConfigError: this provider cannot generate images.
        """
        raise errors.ConfigError(f"{self.name} cannot generate images")
        yield  # pragma: no cover - makes this an async generator

    def _auth_headers(self) -> dict[str, str]:
        """``Authorization: Bearer`` when a key is set; nothing otherwise."""
        return {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}
