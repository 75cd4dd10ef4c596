"""The built-in providers and provider kinds; each module is imported only when used.

``BUILTIN`` names the shipped providers (registry name -> ``"module:Class"``, in display
order); ``KINDS`` the provider kinds a config file can instantiate under a name of the
user's (``[providers.local] kind = "openai"``). The registry that a client owns
(``llmrelay._registry.Registry``) adds third-party providers from the
``llmrelay.providers`` entry-point group and providers passed to the client.
"""

from __future__ import annotations

import importlib

from .. import errors
from ._base import PARAMETERS, Auth, AuthMode, Capability, Option, Provider

__all__ = [
    "BUILTIN",
    "BUILTIN_SETTINGS",
    "KINDS",
    "PARAMETERS",
    "Auth",
    "AuthMode",
    "Capability",
    "Option",
    "Provider",
    "load_class",
    "provider_class",
]

BUILTIN: dict[str, str] = {
    "hf_spaces": "llmrelay.providers.hf_spaces:HFSpaces",
    "replicate": "llmrelay.providers.replicate:Replicate",
    "huggingface": "llmrelay.providers.huggingface:HuggingFace",
    "ai2": "llmrelay.providers.ai2:Ai2",
    "h2o": "llmrelay.providers.h2o:H2o",
}
"""Registry name -> ``"module:Class"``, in display order."""

BUILTIN_SETTINGS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "hf_spaces": (("base_url", "hub_url"), "HF_TOKEN"),
    "replicate": (("base_url",), "REPLICATE_API_TOKEN"),
    "huggingface": (("base_url", "hub_url", "router_url"), "HF_TOKEN"),
    "ai2": (("base_url",), None),
    "h2o": (("base_url",), None),
}
"""Registry name -> (endpoint names, vendor key variable) of each built-in, as its class
declares them (``endpoints``, ``auth.env_var``; a test keeps the two equal). The settings
layer reads this instead of importing every provider module at start-up."""

KINDS: dict[str, str] = {"openai": "llmrelay.providers._openai_compat:OpenAICompatible"}
"""Config ``kind`` -> ``"module:Class"`` whose ``from_config(name, table)`` classmethod
returns a configured ``Provider`` subclass."""


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
