"""Model references: ``"provider:model"`` or a bare model name -> ordered candidates.

* ``"hf_spaces:qwen-2-72b"`` — that provider, that model or alias;
* ``"hf_spaces"`` — that provider's default model;
* ``"qwen-2-72b"`` — every provider offering that model or alias, in registry order;
* ``None`` — the configured default, else the first provider's default model.

Only a registered provider name counts as a prefix, so model ids that contain a colon
(``owner/name:version``) stay whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import errors
from .providers import BUILTIN, provider_class

__all__ = ["Target", "resolve"]


@dataclass(frozen=True, slots=True)
class Target:
    """One candidate: a registry name and that provider's own model id."""

    provider: str
    model: str


def resolve(ref: str | None, default: str | None = None) -> list[Target]:
    """Resolve a model reference to the ordered list of candidates to try.

    Args:
        ref: ``"provider:model"``, ``"provider"``, a bare model name/alias, or ``None``.
        default: the reference used when ``ref`` is empty.

    Raises:
        llmrelay.errors.UnknownProviderError: a ``provider:`` prefix that is not registered.
        llmrelay.errors.UnknownModelError: a model no provider (or not that one) offers,
            with the valid names.
    """
    ref = (ref or default or "").strip()
    if not ref:
        name = next(iter(BUILTIN))
        return [Target(name, provider_class(name).default_model)]
    prefix, sep, rest = ref.partition(":")
    if sep and prefix in BUILTIN:
        cls = provider_class(prefix)
        return [Target(prefix, cls.resolve_model(rest or None))]
    if sep and "/" not in prefix and prefix.isidentifier():
        raise errors.UnknownProviderError(prefix, list(BUILTIN))
    if ref in BUILTIN:
        return [Target(ref, provider_class(ref).default_model)]
    found: list[Target] = []
    valid: list[str] = []
    for name in BUILTIN:
        cls = provider_class(name)
        names = cls.valid_model_names()
        valid.extend(f"{name}:{model}" for model in names)
        if ref in names:
            found.append(Target(name, cls.resolve_model(ref)))
    if not found:
        raise errors.UnknownModelError(ref, valid)
    return found
