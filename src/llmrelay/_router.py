"""Model references -> ordered candidates; aliases as data; per-client health.

A model reference is one of:

* ``"provider:model"`` — that provider, that model or one of its own aliases;
* ``"provider"`` — that provider's default model;
* an alias — its ordered chain of references (``ALIASES`` below, overridden and extended
  by the config file's ``[aliases]``), the only way to get a fallback chain;
* a bare model id — the first provider (registry order) that lists it: a model that
  several providers happen to offer is *not* silently a fallback chain (the plugins come
  last and are read only when no other provider is named or offers it);
* ``None`` — the configured default, else the first provider's default model.

Only a registered provider name counts as a prefix, so model ids that contain a colon
(``owner/name:version``) stay whole.

Health is per client: a candidate that failed with a retryable error moves to the back of
every chain for ``cooldown`` seconds (it is still tried, last). ``HealthStore`` is the
seam for a shared store (several server workers); a store that also has
``async refresh()`` (``llmrelay._redis.RedisHealth``) is refreshed before each resolve.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from . import errors
from ._registry import Registry

__all__ = ["ALIASES", "HealthStore", "MemoryHealth", "Router", "Target"]

ALIASES: Mapping[str, tuple[str, ...]] = {
    "qwen-2-72b": ("hf_spaces:Qwen/Qwen2-72B-Instruct", "huggingface:Qwen/Qwen2-72B-Instruct"),
}
"""Built-in aliases: name -> ordered references. Entries whose provider is not
registered are left out of the chain."""


@dataclass(frozen=True, slots=True)
class Target:
    """One candidate: a registry name and that provider's own model id."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


class HealthStore(Protocol):
    """Where failing candidates are remembered (in memory by default)."""

    def failed(self, target: Target, until: float) -> None:
        """Keep ``target`` at the back until ``until`` (this process's monotonic time)."""

    def cooling(self, target: Target, now: float) -> bool:
        """Whether ``target`` is still cooling down at ``now``."""


class MemoryHealth:
    """``HealthStore`` in a dict, for one client."""

    def __init__(self) -> None:
        self._until: dict[Target, float] = {}

    def failed(self, target: Target, until: float) -> None:
        """Remember the failure until ``until``."""
        self._until[target] = until

    def cooling(self, target: Target, now: float) -> bool:
        """Whether ``target`` is still cooling down."""
        until = self._until.get(target)
        if until is None:
            return False
        if until <= now:
            del self._until[target]
            return False
        return True


class Router:
    """Resolves references for one client and orders candidates by health.

    Args:
        registry: the client's providers.
        aliases: user aliases (config file), overriding built-in ones of the same name.
        default: the default model reference.
        cooldown: seconds a retryably failing candidate stays at the back (0: never).
        health: the health store (default: in memory, this client only).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        aliases: Mapping[str, Sequence[str]] | None = None,
        default: str | None = None,
        cooldown: float = 30.0,
        health: HealthStore | None = None,
    ) -> None:
        self._registry = registry
        self._aliases: dict[str, tuple[str, ...]] = dict(ALIASES)
        self._user_aliases = {k: tuple(v) for k, v in (aliases or {}).items()}
        self._aliases.update(self._user_aliases)
        self._default = default
        self._cooldown = cooldown
        self._health: HealthStore = health if health is not None else MemoryHealth()

    def aliases(self) -> dict[str, list[str]]:
        """Every alias and its resolved chain (``"provider:model"``), for listings.

        Raises:
            llmrelay.errors.ConfigError: a user alias whose reference does not resolve.
        """
        return {name: [str(t) for t in self._chain(name, set())] for name in sorted(self._aliases)}

    def resolve(self, ref: str | None) -> list[Target]:
        """The ordered candidates of ``ref``, de-duplicated (healthy ones first).

        Raises:
            llmrelay.errors.UnknownProviderError: a ``provider:`` prefix not registered.
            llmrelay.errors.UnknownModelError: a model no provider offers.
        """
        ref = (ref or self._default or "").strip()
        if not ref:
            name = self._registry.known()[0]  # a built-in: plugins are never first
            targets = [Target(name, self._registry.get(name).default_model)]
        else:
            targets = self._chain(ref, set())
        if len(targets) < 2 or not self._cooldown:
            return targets
        now = time.monotonic()
        cooling = [t for t in targets if self._health.cooling(t, now)]
        if not cooling:
            return targets
        return [t for t in targets if t not in cooling] + cooling

    @property
    def health(self) -> HealthStore:
        """The health store in use."""
        return self._health

    async def refresh(self) -> None:
        """Let a shared store read what other workers recorded (its own async refresh)."""
        refresh = getattr(self._health, "refresh", None)
        if refresh is not None and self._cooldown:
            await refresh()

    def failed(self, target: Target) -> None:
        """Record a retryable failure of ``target`` (starts its cool-down)."""
        if self._cooldown:
            self._health.failed(target, time.monotonic() + self._cooldown)

    def _chain(self, ref: str, seen: set[str]) -> list[Target]:
        if ref in self._aliases:
            if ref in seen:
                raise errors.ConfigError(f"alias {ref!r} refers to itself")
            seen = seen | {ref}
            out: list[Target] = []
            user = ref in self._user_aliases
            for item in self._aliases[ref]:
                prefix = item.partition(":")[0]
                if not user and ":" in item and prefix not in self._registry:
                    continue  # a built-in alias naming a provider not installed
                for target in self._chain(item, seen):
                    if target not in out:
                        out.append(target)
            if not out:
                raise errors.UnknownModelError(ref, self._valid())
            return out
        return [self._single(ref)]

    def _single(self, ref: str) -> Target:
        # the names known without the plugins first; the plugins are read only when
        # those do not answer (llmrelay._registry)
        registry = self._registry
        known = registry.known()
        prefix, sep, rest = ref.partition(":")
        named = "/" not in prefix and prefix.isidentifier()  # may name a plugin
        if sep and (prefix in known or (named and prefix in registry)):
            cls = registry.get(prefix)
            return Target(prefix, cls.resolve_model(rest or None))
        if sep and named:
            raise errors.UnknownProviderError(prefix, registry.names())
        target = self._named_or_offered(ref, known)
        if target is None:
            plugins = [name for name in registry.names() if name not in known]
            target = self._named_or_offered(ref, plugins)
        if target is None:
            raise errors.UnknownModelError(ref, self._valid())
        return target

    def _named_or_offered(self, ref: str, names: Sequence[str]) -> Target | None:
        """``ref`` as one of ``names`` (its default model), else the first that offers it."""
        if ref in names:
            return Target(ref, self._registry.get(ref).default_model)
        for name in names:
            cls = self._registry.get(name)
            if cls.offers(ref):
                return Target(name, cls.resolve_model(ref))
        return None

    def _valid(self) -> list[str]:
        valid = list(self._aliases)
        for name in self._registry.names():
            try:
                cls = self._registry.get(name)
            except errors.ConfigError:
                continue
            valid.extend(f"{name}:{model}" for model in cls.valid_model_names())
        return valid
