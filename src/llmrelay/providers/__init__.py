"""The built-in providers and provider kinds; each module is imported only when used.

``BUILTIN`` names the shipped providers (registry name -> ``"module:Class"``, in display
order); ``KINDS`` the provider kinds a config file can instantiate under a name of the
user's (``[providers.local] kind = "openai"``). Both, and ``BUILTIN_SETTINGS``, are
read-only mappings derived from the classes listed in ``BUILTIN_CLASSES`` and
``KIND_CLASSES`` (through the generated ``_catalogue`` module, checked by a test). The
registry that a client owns (``llmrelay._registry.Registry``) adds third-party providers
from the ``llmrelay.providers`` entry-point group and providers passed to the client.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .. import errors
from ._base import PARAMETERS, Auth, AuthMode, Capability, Option, Provider
from ._catalogue import BUILTIN_ROWS, KIND_ROWS

if TYPE_CHECKING:
    from ._openai_compat import OpenAICompatible

__all__ = [
    "BUILTIN",
    "BUILTIN_CLASSES",
    "BUILTIN_SETTINGS",
    "KINDS",
    "KIND_CLASSES",
    "PARAMETERS",
    "Auth",
    "AuthMode",
    "Capability",
    "OpenAICompatible",
    "Option",
    "Provider",
    "load_class",
    "provider_class",
]

BUILTIN_CLASSES: tuple[str, ...] = (
    "llmrelay.providers.hf_spaces:HFSpaces",
    "llmrelay.providers.replicate:Replicate",
    "llmrelay.providers.huggingface:HuggingFace",
    "llmrelay.providers.ai2:Ai2",
    "llmrelay.providers.h2o:H2o",
)
"""The shipped provider classes (``"module:Class"``), in display order: the one list a new
built-in is added to (then run ``scripts/provider_catalogue.py``)."""

KIND_CLASSES: tuple[tuple[str, str], ...] = (
    ("openai", "llmrelay.providers._openai_compat:OpenAICompatible"),
)
"""Config ``kind`` -> ``"module:Class"`` whose ``from_config(name, table)`` classmethod
returns a configured ``Provider`` subclass."""

BUILTIN: Mapping[str, str] = MappingProxyType({row[0]: row[1] for row in BUILTIN_ROWS})
"""Registry name -> ``"module:Class"``, in display order (read-only)."""

BUILTIN_SETTINGS: Mapping[str, tuple[tuple[str, ...], str | None]] = MappingProxyType(
    {row[0]: (row[2], row[3]) for row in BUILTIN_ROWS}
)
"""Registry name -> (endpoint names, vendor key variable) of each built-in, as its class
declares them (``endpoints``, ``auth.env_var``; read-only). Generated from the classes
(``_catalogue``), so the settings layer knows them without importing every provider
module at start-up."""

KINDS: Mapping[str, str] = MappingProxyType(dict(KIND_ROWS))
"""Config ``kind`` -> ``"module:Class"`` (read-only)."""


def load_class(target: str) -> type[Provider]:
    """Import ``"module:Class"`` and return the class."""
    module_name, _, attr = target.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), attr)
    return cls


def provider_class(name: str) -> type[Provider]:
    """Import and return the built-in provider class registered as ``name``.

    Raises:
        llmrelay.errors.UnknownProviderError: listing the built-in names.
    """
    try:
        target = BUILTIN[name]
    except KeyError:
        raise errors.UnknownProviderError(name, list(BUILTIN)) from None
    return load_class(target)


def __getattr__(name: str) -> Any:
    """``OpenAICompatible`` (the base of OpenAI-compatible providers), imported on first use."""
    if name == "OpenAICompatible":
        from ._openai_compat import OpenAICompatible

        return OpenAICompatible
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
