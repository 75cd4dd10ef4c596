"""``-o NAME VALUE``: provider options checked against what the providers declare."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import click

from ._common import warn

__all__ = ["resolve_options"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _type_name(declared: Any) -> str:
    if isinstance(declared, type):
        return declared.__name__
    return str(declared or "str").lower()


def _convert(name: str, value: str, declared: Any) -> Any:
    kind = _type_name(declared)
    try:
        if kind in ("int", "integer"):
            return int(value)
        if kind in ("float", "number"):
            return float(value)
        if kind in ("bool", "boolean"):
            if value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            raise ValueError(value)
        if kind in ("json", "dict", "list", "object", "array"):
            return json.loads(value)
    except (ValueError, RecursionError):
        raise click.BadParameter(
            f"option {name} expects {kind}; got {value!r}", param_hint="-o"
        ) from None
    return value


def _wanted(model: str, names: set[str], descriptions: Sequence[Any], aliases: Any) -> set[str]:
    """The providers ``model`` names: ``provider:model``, a provider, an alias or a model."""
    provider = model.split(":", 1)[0]
    if ":" in model and provider in names:
        return {provider}
    if model in names:
        return {model}
    if model in aliases:
        return {ref.split(":", 1)[0] for ref in aliases[model]}
    return {d.name for d in descriptions if model in d.models or model in d.aliases}


def _candidate_providers(
    model: str | None,
    descriptions: Sequence[Any],
    aliases: dict[str, list[str]],
    candidates: Sequence[str] | None,
) -> list[Any]:
    if candidates:
        wanted = {ref.split(":", 1)[0] for ref in candidates}
    elif model:
        wanted = _wanted(model, {d.name for d in descriptions}, descriptions, aliases)
    else:
        wanted = set()
    return [d for d in descriptions if d.name in wanted] or list(descriptions)


def resolve_options(
    pairs: Iterable[tuple[str, str]],
    *,
    model: str | None,
    descriptions: Sequence[Any],
    aliases: dict[str, list[str]],
    strict: bool,
    candidates: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Typed options for the providers ``model`` may use; unknown names warn (or fail).

    ``candidates`` are the ``"provider:model"`` references the client resolved the model
    to (``client.candidates(model)``: with no model, the client's default from its
    argument, ``LLMRELAY_MODEL`` or the config file); without them ``model`` is looked
    up in ``descriptions`` and ``aliases``, and no model means every provider.

    Raises:
        click.BadParameter: a value of the wrong type, or an undeclared name with ``strict``.
    """
    pairs = list(pairs)
    if not pairs:
        return {}
    providers = _candidate_providers(model, descriptions, aliases, candidates)
    declared: dict[str, Any] = {}
    for description in providers:
        for name, spec in (getattr(description, "options", None) or {}).items():
            declared.setdefault(name, spec)
    result: dict[str, Any] = {}
    where = ", ".join(d.name for d in providers)
    valid = ", ".join(sorted(declared)) or "none"
    for name, value in pairs:
        if name not in declared:
            message = f"{where} declares no option {name!r} (valid: {valid})"
            if strict:
                raise click.BadParameter(message, param_hint="-o")
            warn(f"{message}; ignored (--strict makes this an error)")
            continue
        spec = declared[name]
        kind = spec.get("type") if isinstance(spec, dict) else getattr(spec, "type", None)
        result[name] = _convert(name, value, kind)
    return result
