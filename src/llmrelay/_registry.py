"""The provider registry a client owns: built-ins, configured, injected, then plugins.

Names and precedence: the built-in providers, providers configured in the config file
with a ``kind``, and the providers passed to the client (``AsyncClient(providers=[...])``,
how tests and applications register their own) are known at once, the later winning
when two share a name; third-party providers from the ``llmrelay.providers``
entry-point group (``name = "package.module:Class"`` in a distribution's metadata) come
after them. Classes are imported on first use, so listing names costs no import.

**Plugins are read lazily.** The entry-point group is read with
``importlib.metadata.entry_points(group=...)``
(https://docs.python.org/3/library/importlib.metadata.html#entry-points), which imports
``importlib.metadata`` (with ``zipfile``, ``csv``, ``email``) and parses the metadata of
every installed distribution: 14-16 ms of CPU in a venv of ~135 distributions, more than
the whole start-up budget of ``llmrelay chat`` over a raw httpx script (issue 21). So it
is read only when a name is not known without it: a ``provider:`` prefix that is not a
known provider, a bare model no known provider offers, a listing (``names()``,
``AsyncClient.providers()``), an unknown-provider error, or a setting (a config table,
an argument, an ``LLMRELAY_<NAME>_...`` variable) naming an unknown provider
(``Settings.load``'s ``plugins``). A client that uses a built-in, configured or injected
provider never reads it. Once read, the plugins found are added (their settings rows:
endpoints and key variable, resolved for them: ``read_plugins``' callback), and the
result of the scan is kept for the process (per ``sys.path`` and ``sys.meta_path``), as
simonw/llm loads its plugins once (https://github.com/simonw/llm/blob/main/llm/plugins.py).

**A plugin cannot replace a built-in.** A built-in resolves without the scan, so a plugin
of the same name could only take over once something else had read the group: the same
name would mean different providers in one process. The scan ignores such an entry point
with a warning naming it (a package that ships a provider named ``huggingface`` would
otherwise receive ``HF_TOKEN``); a configured or injected provider of the same name as a
plugin wins, as the client's own choice. To replace a built-in, pass the class with
``providers=`` or configure a ``kind``.

Evaluated and not chosen (``benchmarks/README.md``, start-up round): a persistent cache
of the scan keyed on the ``sys.path`` entries and their modification times, as
OpenStack's stevedore does (``stevedore/_cache.py``). A hit still costs a ``stat`` of
every distribution's ``entry_points.txt`` (~1.3 ms CPU here) and stevedore itself imports
``importlib.metadata`` (a hit measured 12.8 ms against 15.8 ms for the real scan); it
writes to the user's cache directory, can be stale when a file changes within the
modification time's resolution, and a fresh container (a cold start, where start-up
matters most) always misses it. Reading the plugins only when a name needs them costs
nothing on the common path and needs no state on disk.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import errors
from ._settings import ProviderSettingsSpec
from .providers import BUILTIN, BUILTIN_SETTINGS, KINDS, Provider, load_class

__all__ = ["ENTRY_POINT_GROUP", "Registry"]

ENTRY_POINT_GROUP = "llmrelay.providers"
log = logging.getLogger("llmrelay")

PluginsRead = Callable[[Mapping[str, ProviderSettingsSpec]], None]
"""Told the settings specs of the plugins a read added (see ``Registry.on_read``)."""


class Registry:
    """Name -> provider class, owned by one client (never global).

    Its names only grow, once: when the plugins are read (see the module docstring).

    Args:
        injected: provider classes (their ``name`` is the key) or a mapping name -> class.
        configured: config tables of ``[providers.NAME]`` with a ``kind``.
        entry_points: whether the ``llmrelay.providers`` entry-point group may be read.

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
        self._read = not entry_points  # whether the plugins were read (or may not be)
        self._lock = threading.Lock()
        self._on_read: PluginsRead | None = None

    def known(self) -> list[str]:
        """The names registered so far, in display order, without reading the plugins.

        The built-ins come first, so ``known()[0] == names()[0]``.
        """
        return list(self._targets)

    def names(self) -> list[str]:
        """Every registered name, in display order (reads the plugins: they come last)."""
        self.read_plugins()
        return list(self._targets)

    def __contains__(self, name: object) -> bool:
        if name in self._targets:
            return True
        return bool(self.read_plugins()) and name in self._targets

    def on_read(self, callback: PluginsRead) -> None:
        """Call ``callback`` with the settings specs of the plugins a later read adds.

        The engine passes its settings update: a plugin found after the client was built
        gets its endpoints and key resolved before anything can use it.
        """
        self._on_read = callback

    def read_plugins(self) -> dict[str, ProviderSettingsSpec]:
        """Read the ``llmrelay.providers`` entry points, once per registry.

        Adds the plugins whose name is not registered yet (a plugin naming a built-in is
        ignored with a warning when the group is scanned) and returns their settings
        specs; every later call returns ``{}``. A plugin whose class cannot be imported
        is registered (using it is a ``ConfigError``) and left out of the specs with a
        warning.
        """
        if self._read:
            return {}
        with self._lock:
            if self._read:
                return {}
            added: dict[str, str] = {}
            for name, value in _entry_points().items():
                if name in self._targets:  # configured or injected: the client's choice
                    log.debug("entry point %s = %s: %s is this client's own", name, value, name)
                else:
                    added[name] = value
            specs = {}
            for name, value in added.items():
                spec = self._spec(name, value)
                if spec is not None:
                    specs[name] = spec
            if specs and self._on_read is not None:
                self._on_read(specs)
            # published after the settings know them: a name seen is a name configured
            self._targets.update(added)
            self._read = True
        if added:
            log.debug("plugins read: %s", ", ".join(added))
        return specs

    def get(self, name: str) -> type[Provider]:
        """The class registered as ``name`` (imported on first use; may read the plugins).

        Raises:
            llmrelay.errors.UnknownProviderError: listing the registered names.
            llmrelay.errors.ConfigError: an entry point that cannot be imported.
        """
        cls = self._classes.get(name)
        if cls is not None:
            return cls
        if name not in self:
            raise errors.UnknownProviderError(name, self.names())
        cls = _load(name, self._targets[name])
        self._classes[name] = cls
        return cls

    def settings_specs(self) -> dict[str, ProviderSettingsSpec]:
        """What the settings layer needs of each provider known without the plugins.

        A built-in still registered under its own name is described from
        ``BUILTIN_SETTINGS`` without importing its module; every other class is imported.
        The plugins' specs come from ``read_plugins``.
        """
        specs: dict[str, ProviderSettingsSpec] = {}
        for name, target in self._targets.items():
            if name not in self._classes and target == BUILTIN.get(name):
                endpoints, env_var = BUILTIN_SETTINGS[name]
                specs[name] = ProviderSettingsSpec(endpoints=endpoints, env_var=env_var)
                continue
            spec = self._spec(name, target)
            if spec is not None:
                specs[name] = spec
        return specs

    def _spec(self, name: str, target: str | type[Provider]) -> ProviderSettingsSpec | None:
        try:
            cls = self._classes.get(name) or _load(name, target)
        except errors.ConfigError as exc:
            log.warning("%s", exc)
            return None
        self._classes[name] = cls
        return ProviderSettingsSpec(
            endpoints=tuple(cls.endpoints),
            env_var=cls.auth.env_var,
            config_keys=frozenset(getattr(cls, "config_keys", ()))
            | self._configured_keys.get(name, frozenset()),
        )


def _load(name: str, target: str | type[Provider]) -> type[Provider]:
    if not isinstance(target, str):
        return target
    try:
        return load_class(target)
    except (ImportError, AttributeError) as exc:
        raise errors.ConfigError(f"provider {name!r} ({target}) cannot be loaded: {exc}") from exc


def _entry_points() -> dict[str, str]:
    """The ``llmrelay.providers`` entry points that may register: name -> ``"module:Class"``.

    Cached per ``sys.path`` and ``sys.meta_path`` (a changed import path is scanned
    again); the ones naming a built-in are left out (with a warning, once per scan).
    """
    key = (tuple(map(str, sys.path)), tuple(map(id, sys.meta_path)))
    return dict(_scan(key))


@functools.lru_cache(maxsize=8)
def _scan(_key: tuple[tuple[str, ...], tuple[int, ...]]) -> tuple[tuple[str, str], ...]:
    """One scan of the installed distributions (``_key``: the import path it ran for)."""
    from importlib.metadata import entry_points

    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN:
            log.warning(
                "entry point %s = %s (group %s) names the built-in provider %s and is "
                "ignored: a plugin cannot replace a built-in (pass the class with "
                "AsyncClient(providers=[...]) to use it)",
                ep.name,
                ep.value,
                ENTRY_POINT_GROUP,
                ep.name,
            )
            continue
        found[ep.name] = ep.value
    log.debug("entry points of %s: %s", ENTRY_POINT_GROUP, ", ".join(found) or "none")
    return tuple(found.items())
