"""Registry of the built-in providers; each module is imported only when first used."""

from __future__ import annotations

import importlib

from .. import errors
from ._base import Auth, AuthMode, Capability, Provider

__all__ = ["BUILTIN", "Auth", "AuthMode", "Capability", "Provider", "provider_class"]

BUILTIN: dict[str, str] = {
    "hf_spaces": "llmrelay.providers.hf_spaces:HFSpaces",
}
"""Registry name -> ``"module:Class"``, in display order."""


def provider_class(name: str) -> type[Provider]:
    """Import and return the provider class registered as ``name``.

    Raises:
        llmrelay.errors.UnknownProviderError: listing the registered names.
    """
    try:
        target = BUILTIN[name]
    except KeyError:
        raise errors.UnknownProviderError(name, list(BUILTIN)) from None
    module_name, _, attr = target.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), attr)
    return cls
