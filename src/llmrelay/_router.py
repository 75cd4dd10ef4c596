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

Health is a circuit per candidate. A candidate that failed with a retryable error is
*open*: it moves to the back of every chain (it is still tried, last) for an interval that
starts at ``FIRST_OPEN`` seconds and doubles at each failed probe, up to ``cooldown``.
When the interval ends it is *half-open*: the next request that resolves it claims the
one probe (``HealthStore.claim_probe``, a lease of ``PROBE_LEASE`` seconds) and tries it
in its own place, once, without same-candidate retries; the others keep it at the back
until the probe ends. A success -- the probe's or any other -- closes the circuit
(``recovered``); a failed probe opens it again for twice as long. So recovery follows
the service, not a fixed timer, and an outage costs a handful of attempts. A failure
older than ``FORGET_AFTER`` seconds is forgotten (no probe needed).

``HealthStore`` is the seam for a shared store (several server workers); a store that
also has ``async refresh()`` (``llmrelay._redis.RedisHealth``) is refreshed before each
resolve. A store without ``claim_probe``/``recovered``/``suspect`` (the first version
of the seam) keeps the plain cool-down: back of the chain until it ends.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import errors
from ._registry import Registry

__all__ = [
    "ALIASES",
    "FIRST_OPEN",
    "FORGET_AFTER",
    "PROBE_LEASE",
    "ROUTE_CACHE",
    "Candidate",
    "CoolDowns",
    "HealthStore",
    "MemoryHealth",
    "Router",
    "Target",
]

FIRST_OPEN = 1.0
"""Seconds a candidate stays at the back after its first failure (then probed)."""
PROBE_LEASE = 60.0
"""Seconds a claimed probe excludes other probes (a probe abandoned midway expires)."""
FORGET_AFTER = 600.0
"""Seconds after its cool-down ended that a failure is forgotten (no probe needed)."""

ROUTE_CACHE = 512
"""Resolved model references a router keeps (then it starts again)."""

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


@dataclass(frozen=True, slots=True)
class Candidate:
    """A target in the order to try, and whether it goes as the half-open probe."""

    target: Target
    probe: bool = False


class HealthStore(Protocol):
    """Where failing candidates are remembered (in memory by default).

    Stores may also have ``suspect(target, now) -> bool`` (its cool-down ended but it
    has not answered since), ``async claim_probe(target, lease) -> bool`` (take the one
    probe for ``lease`` seconds) and ``recovered(target)`` (it answered): the half-open
    probe of ``Router`` needs all three.
    """

    def failed(self, target: Target, until: float) -> None:
        """Keep ``target`` at the back until ``until`` (this process's monotonic time)."""

    def cooling(self, target: Target, now: float) -> bool:
        """Whether ``target`` is still cooling down at ``now``."""


class CoolDowns:
    """The cool-down rules a ``HealthStore`` keeps in ``_until`` (target: monotonic end).

    ``cooling``: the cool-down lasts past ``now``. ``suspect``: it ended without an
    answer seen since (half-open); a failure whose cool-down ended more than
    ``FORGET_AFTER`` seconds ago is forgotten (removed): not suspect.
    """

    _until: dict[Target, float]

    def cooling(self, target: Target, now: float) -> bool:
        """Whether ``target`` is still cooling down at ``now``."""
        until = self._until.get(target)
        return until is not None and until > now

    def suspect(self, target: Target, now: float) -> bool:
        """Whether its cool-down ended without an answer seen since (half-open)."""
        until = self._until.get(target)
        if until is None or until > now:
            return False
        if now - until > FORGET_AFTER:
            del self._until[target]
            return False
        return True


class MemoryHealth(CoolDowns):
    """``HealthStore`` in a dict, for one client (with the half-open probe)."""

    def __init__(self) -> None:
        self._until: dict[Target, float] = {}
        self._probes: dict[Target, float] = {}

    def failed(self, target: Target, until: float) -> None:
        """Remember the failure until ``until``."""
        self._until[target] = until
        self._probes.pop(target, None)

    async def claim_probe(self, target: Target, lease: float) -> bool:
        """Take the one probe of ``target`` for ``lease`` seconds, if nobody holds it."""
        now = time.monotonic()
        if self._probes.get(target, 0.0) > now:
            return False
        self._probes[target] = now + lease
        return True

    def recovered(self, target: Target) -> None:
        """It answered: forget the failure and the probe."""
        self._until.pop(target, None)
        self._probes.pop(target, None)


class Router:
    """Resolves references for one client and orders candidates by health.

    Args:
        registry: the client's providers.
        aliases: user aliases (config file), overriding built-in ones of the same name.
        default: the default model reference.
        cooldown: the longest a retryably failing candidate stays at the back between
            two probes, in seconds (0: never moved).
        health: the health store (default: in memory, this client only).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        aliases: Mapping[str, Sequence[str]] | None = None,
        default: str | None = None,
        cooldown: float = 15.0,
        health: HealthStore | None = None,
    ) -> None:
        self._registry = registry
        self._aliases: dict[str, tuple[str, ...]] = dict(ALIASES)
        self._user_aliases = {k: tuple(v) for k, v in (aliases or {}).items()}
        self._aliases.update(self._user_aliases)
        self._default = default
        self._cooldown = cooldown
        self._health: HealthStore = health if health is not None else MemoryHealth()
        self._interval: dict[Target, float] = {}
        self._routes: dict[str | None, tuple[Target, ...]] = {}
        """Resolved references (``_targets``): a reference resolves the same way until
        the registry reads its plugins (``forget_routes``)."""

    def aliases(self) -> dict[str, list[str]]:
        """Every alias and its resolved chain (``"provider:model"``), for listings.

        Raises:
            llmrelay.errors.ConfigError: a user alias whose reference does not resolve.
        """
        return {name: [str(t) for t in self._chain(name, set())] for name in sorted(self._aliases)}

    def resolve(self, ref: str | None) -> list[Target]:
        """The ordered candidates of ``ref``, de-duplicated (healthy ones first).

        A candidate whose cool-down is over counts as healthy here; ``candidates``
        (what the engine uses) also runs its half-open probe.

        Raises:
            llmrelay.errors.UnknownProviderError: a ``provider:`` prefix not registered.
            llmrelay.errors.UnknownModelError: a model no provider offers.
        """
        targets = self._targets(ref)
        if len(targets) < 2 or not self._cooldown:
            return targets
        now = time.monotonic()
        cooling = [t for t in targets if self._health.cooling(t, now)]
        if not cooling:
            return targets
        return [t for t in targets if t not in cooling] + cooling

    async def candidates(self, ref: str | None) -> list[Candidate]:
        """The candidates of ``ref`` in the order to try them, with the half-open probe.

        Healthy ones first, in chain order; a half-open one (cool-down over, no answer
        since) stays in its place as the probe when this request claims the probe, else
        it joins the cooling ones at the back.

        Raises:
            As ``resolve``.
        """
        targets = self._targets(ref)
        if len(targets) < 2 or not self._cooldown:
            return [Candidate(t) for t in targets]
        health: Any = self._health
        suspect = getattr(health, "suspect", None)
        claim = getattr(health, "claim_probe", None)
        now = time.monotonic()
        front: list[Candidate] = []
        back: list[Candidate] = []
        for target in targets:
            if health.cooling(target, now):
                back.append(Candidate(target))
            elif suspect is not None and claim is not None and suspect(target, now):
                if await claim(target, PROBE_LEASE):
                    front.append(Candidate(target, probe=True))
                else:
                    back.append(Candidate(target))
            else:
                front.append(Candidate(target))
        return front + back

    def forget_routes(self) -> None:
        """Drop the resolved references (the registry read its plugins: more names)."""
        self._routes.clear()

    def _targets(self, ref: str | None) -> list[Target]:
        targets = self._routes.get(ref)
        if targets is None:
            targets = tuple(self._resolved(ref))
            if len(self._routes) >= ROUTE_CACHE:  # references a server received: bounded
                self._routes.clear()
            self._routes[ref] = targets
        return list(targets)

    def _resolved(self, ref: str | None) -> list[Target]:
        ref = (ref or self._default or "").strip()
        if not ref:
            name = self._registry.known()[0]  # a built-in: plugins are never first
            return [Target(name, self._registry.get(name).default_model)]
        return self._chain(ref, set())

    def alias_of(self, ref: str | None) -> str | None:
        """``ref`` (or the default reference) when it names an alias, else ``None``."""
        ref = (ref or self._default or "").strip()
        return ref if ref in self._aliases else None

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
        """Record a retryable failure of ``target``: open its circuit.

        For ``FIRST_OPEN`` seconds after a first failure, twice the last interval (at
        most ``cooldown``) after a failure once the interval had ended (a failed probe);
        a failure while it is open already (a request that started before) does not
        lengthen it.
        """
        if not self._cooldown:
            return
        now = time.monotonic()
        last = self._interval.get(target)
        if last is None:
            interval = min(FIRST_OPEN, self._cooldown)
        elif self._health.cooling(target, now):
            interval = last
        else:
            interval = min(last * 2, self._cooldown)
        self._interval[target] = interval
        self._health.failed(target, now + interval)

    def succeeded(self, target: Target) -> None:
        """Record an answer of ``target``: close its circuit (when it had failed)."""
        had = self._interval.pop(target, None) is not None
        health: Any = self._health
        if not had and type(health) is MemoryHealth and not health._until:
            return  # nothing failed: nothing to close
        now = time.monotonic()
        suspect = getattr(health, "suspect", None)
        if had or health.cooling(target, now) or (suspect is not None and suspect(target, now)):
            recovered = getattr(health, "recovered", None)
            if recovered is not None:
                recovered(target)

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
