"""The provider registry a client owns: built-ins, entry points, injected and configured.

Order (and precedence when two share a name, later wins): the built-in providers, the
``llmrelay.providers`` entry-point group (third-party packages: ``name =
"package.module:Class"``), providers configured in the config file with a ``kind``, and
the providers passed to the client (``AsyncClient(providers=[...])``, how tests and
applications register their own). Classes are imported on first use, so listing names
costs no import.

The entry-point group is read with ``importlib.metadata.entry_points(group=...)``
(https://docs.python.org/3/library/importlib.metadata.html#entry-points), which parses
the ``entry_points.txt`` of every installed distribution: importing it and that scan
cost 12-16 ms at every client construction in a venv of ~130 distributions, usually to
find nothing. A pre-check (``_group_may_be_declared``) first reads those files as bytes
and asks importlib.metadata only when one of them mentions the group. The pre-check
only ever skips the scan when it could not have found anything: it looks where
importlib.metadata's path finder looks (``*.dist-info`` / ``*.egg-info`` folders of each
directory on ``sys.path``, ``EGG-INFO`` of an ``.egg`` directory), and answers "maybe"
(so the real scan runs) for anything else: a ``sys.path`` entry that is a file (a zip),
not a string or unreadable, a file it cannot read, or another finder on
``sys.meta_path`` that can find distributions.
"""

from __future__ import annotations

import logging
import os
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


# importlib.metadata.read_text skips these (the distribution has no such file)
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def _group_may_be_declared(group: str = ENTRY_POINT_GROUP) -> bool:
    """``False`` only when no distribution on ``sys.path`` can declare ``group``.

    A cheap, conservative stand-in for the first step of
    ``importlib.metadata.entry_points`` (see the module docstring): ``True`` means
    "maybe" and the caller runs the real scan.
    """
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if finder is not PathFinder and hasattr(finder, "find_distributions"):
            return True  # a custom finder may provide distributions from anywhere
    needle = group.encode()
    for entry in sys.path:
        if not isinstance(entry, str):
            return True
        try:
            children = os.listdir(entry or ".")
        except FileNotFoundError:
            continue  # importlib.metadata finds nothing there either
        except OSError:
            return True  # a zip file (or unreadable): let importlib.metadata look
        is_egg = os.path.basename(entry).lower().endswith(".egg")
        for child in children:
            low = child.lower()
            if not (low.endswith((".dist-info", ".egg-info")) or (is_egg and low == "egg-info")):
                continue
            try:
                with open(os.path.join(entry or ".", child, "entry_points.txt"), "rb") as f:
                    if needle in f.read():
                        return True
            except _MISSING:
                continue
            except OSError:
                return True
    return False


def _entry_points() -> dict[str, str]:
    if not _group_may_be_declared():
        return {}
    from importlib.metadata import entry_points

    found: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found
