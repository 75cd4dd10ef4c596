"""The provider registry a client owns: built-ins, entry points, injected and configured.

Order (and precedence when two share a name, later wins): the built-in providers, the
``llmrelay.providers`` entry-point group (third-party packages: ``name =
"package.module:Class"``), providers configured in the config file with a ``kind``, and
the providers passed to the client (``AsyncClient(providers=[...])``, how tests and
applications register their own). Classes are imported on first use, so listing names
costs no import.

The entry-point group is read with ``importlib.metadata.entry_points(group=...)``
(https://docs.python.org/3/library/importlib.metadata.html#entry-points) once per
process, as simonw/llm loads its plugins once
(https://github.com/simonw/llm/blob/main/llm/plugins.py): the scan parses the
``entry_points.txt`` of every installed distribution, and later clients reuse its result.
The result is kept per ``sys.path`` and ``sys.meta_path`` (a changed import path is
scanned again).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from . import errors
from ._settings import ProviderSettingsSpec
from .providers import BUILTIN, BUILTIN_SETTINGS, KINDS, Provider, load_class

__all__ = ["ENTRY_POINT_GROUP", "Registry"]

ENTRY_POINT_GROUP = "llmrelay.providers"
log = logging.getLogger("llmrelay")


class Registry:
    """Name -> provider class, owned by one client (never global, never mutated after).

    Args:
        injected: provider classes (their ``name`` is the key) or a mapping name -> class.
        configured: config tables of ``[providers.NAME]`` with a ``kind``.
        entry_points: whether to read the ``llmrelay.providers`` entry-point group.

    Raises:
        llmrelay.errors.ConfigError: an unknown ``kind``, a bad configured table, or an
            injected object that is not a ``Provider`` subclass.
    """

    def __init__(
        self,
        injected: Iterable[type[Provider]] | Mapping[str, type[Provider]] | None = None,
        configured: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        entry_points: bool = True,
    ) -> None:
        self._targets: dict[str, str | type[Provider]] = dict(BUILTIN)
        if entry_points:
            self._targets.update(_entry_points())
        self._configured_keys: dict[str, frozenset[str]] = {}
        for name, table in (configured or {}).items():
            kind = table.get("kind")
            if kind not in KINDS:
                raise errors.ConfigError(
                    f"[providers.{name}] kind {kind!r} is unknown; valid kinds: "
                    + (", ".join(KINDS) or "none")
                )
            base = load_class(KINDS[str(kind)])
            from_config = getattr(base, "from_config", None)
            if from_config is None:  # pragma: no cover - every kind defines it
                raise errors.ConfigError(f"provider kind {kind!r} cannot be configured")
            self._targets[name] = from_config(name, table)
            # from_config validated the table: every key it holds is allowed
            self._configured_keys[name] = frozenset(table)
        items: Iterable[tuple[str, Any]]
        if isinstance(injected, Mapping):
            items = injected.items()
        else:
            items = ((str(getattr(cls, "name", "")), cls) for cls in injected or ())
        for name, cls in items:
            if not (isinstance(cls, type) and issubclass(cls, Provider)) or not name:
                raise errors.ConfigError(f"not a provider class: {cls!r}")
            self._targets[str(name)] = cls
        self._classes: dict[str, type[Provider]] = {}

    def names(self) -> list[str]:
        """Registered names, in display order."""
        return list(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def get(self, name: str) -> type[Provider]:
        """The class registered as ``name`` (imported on first use).

        Raises:
            llmrelay.errors.UnknownProviderError: listing the registered names.
            llmrelay.errors.ConfigError: an entry point that cannot be imported.
        """
        cls = self._classes.get(name)
        if cls is not None:
            return cls
        target = self._targets.get(name)
        if target is None:
            raise errors.UnknownProviderError(name, self.names())
        if isinstance(target, str):
            try:
                cls = load_class(target)
            except (ImportError, AttributeError) as exc:
                raise errors.ConfigError(
                    f"provider {name!r} ({target}) cannot be loaded: {exc}"
                ) from exc
        else:
            cls = target
        self._classes[name] = cls
        return cls

    def settings_specs(self) -> dict[str, ProviderSettingsSpec]:
        """What the settings layer needs of each provider.

        A built-in still registered under its own name is described from
        ``BUILTIN_SETTINGS`` without importing its module; every other class is imported.
        """
        specs: dict[str, ProviderSettingsSpec] = {}
        for name, target in self._targets.items():
            if name not in self._classes and target == BUILTIN.get(name):
                endpoints, env_var = BUILTIN_SETTINGS[name]
                specs[name] = ProviderSettingsSpec(endpoints=endpoints, env_var=env_var)
                continue
            try:
                cls = self.get(name)
            except errors.ConfigError as exc:
                log.warning("%s", exc)
                continue
            specs[name] = ProviderSettingsSpec(
                endpoints=tuple(cls.endpoints),
                env_var=cls.auth.env_var,
                config_keys=frozenset(getattr(cls, "config_keys", ()))
                | self._configured_keys.get(name, frozenset()),
            )
        return specs


def _entry_points() -> dict[str, str]:
    """The ``llmrelay.providers`` entry points: name -> ``"module:Class"`` (cached)."""
    key = (tuple(map(str, sys.path)), tuple(map(id, sys.meta_path)))
    return dict(_scan(key))


@functools.lru_cache(maxsize=8)
def _scan(_key: tuple[tuple[str, ...], tuple[int, ...]]) -> tuple[tuple[str, str], ...]:
    """One scan of the installed distributions (``_key``: the import path it ran for)."""
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    log.debug("entry points of %s: %s", ENTRY_POINT_GROUP, ", ".join(found) or "none")
    return tuple(found.items())
