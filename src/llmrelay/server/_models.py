"""``/v1/models`` with what a chat page needs beside OpenAI's fields.

OpenAI's model object is ``{"id", "object": "model", "created", "owned_by"}``
(https://platform.openai.com/docs/api-reference/models/object); clients such as the
``openai`` SDK keep unknown fields as extras, so each object here also carries:

* ``provider``: the registry name of the provider that serves it (for an alias, the
  first of its chain);
* ``kind``: ``"chat"``, ``"image"`` (a model that generates images,
  ``/v1/images/generations``) or ``"embedding"`` (a model that creates embeddings,
  ``/v1/embeddings``: the providers' ``embedding_models``, and an alias whose first
  candidate is one);
* ``ready``: ``False`` when no candidate can be used on this server (each one's provider
  needs a key the server lacks);
* ``vision``: whether the model takes images in messages (``image_url`` parts):
  ``false`` when its provider takes none, else per model as the provider knows it now
  (``AsyncClient.model_vision``: a configured row's ``vision``, the router's cached
  catalogue, a discovered Space), ``null`` while unknown;
* ``alias_of``: for an alias, its chain of ``provider:model`` references.

The list also carries ``providers``: ``[{"name", "label", "auth", "key_set",
"env_var"}]`` in registry order (``env_var`` names the variable a missing key is read
from; never a key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import llmrelay

__all__ = ["describe_model", "describe_models"]


def _ready(description: llmrelay.ProviderDescription | None) -> bool:
    return description is not None and (description.auth != "required" or description.key_set)


def _kind(description: llmrelay.ProviderDescription | None, model: str) -> str:
    if description is None:
        return "chat"
    model = description.aliases.get(model, model)
    if model in description.image_models:
        return "image"
    if model in description.embedding_models and model not in description.models:
        return "embedding"
    return "chat"


def describe_model(
    entry: dict[str, Any],
    providers: Mapping[str, llmrelay.ProviderDescription],
    aliases: Mapping[str, Sequence[str]],
    vision: Callable[[str], bool | None] | None = None,
) -> dict[str, Any]:
    """``entry`` (an OpenAI model object as a dict) described.

    ``vision`` answers per model reference (``AsyncClient.model_vision``); without it,
    the provider's capability.

    Returns:
        A copy with ``provider``, ``kind``, ``ready``, ``vision`` and, for an alias, ``alias_of``
        added (see the module docstring).
    """
    model_id = str(entry["id"])
    chain = list(aliases.get(model_id, ()))
    refs = chain or [model_id]
    first_provider, _, first_model = refs[0].partition(":")
    first = providers.get(first_provider)
    extra: dict[str, Any] = {
        "provider": first_provider if first is not None else entry.get("owned_by"),
        "kind": _kind(first, first_model),
        "ready": any(_ready(providers.get(ref.partition(":")[0])) for ref in refs),
        "vision": _vision(first, refs[0], vision),
    }
    if chain:
        extra["alias_of"] = chain
    return {**entry, **extra}


def _vision(
    first: llmrelay.ProviderDescription | None,
    ref: str,
    vision: Callable[[str], bool | None] | None,
) -> bool | None:
    if first is None or "vision" not in first.capabilities:
        return False
    model = ref.partition(":")[2]
    if model in first.embedding_models and model not in first.models:
        return False  # an embedding model takes no messages
    if vision is None:
        return True
    try:
        return vision(ref)
    except llmrelay.LLMRelayError:
        return None


def describe_models(client: Any, listed: Any) -> dict[str, Any]:
    """The ``/v1/models`` body: ``listed`` (``client.models.list()``) described.

    Args:
        client: the server's ``llmrelay.AsyncClient``.
        listed: its ``ModelList``.

    Raises:
        llmrelay.errors.ConfigError: a configured alias does not resolve.
    """
    descriptions: list[llmrelay.ProviderDescription] = client.providers()
    providers = {d.name: d for d in descriptions}
    aliases = client.aliases()
    body: dict[str, Any] = listed.model_dump(mode="json")
    body["data"] = [
        describe_model(entry, providers, aliases, client.model_vision) for entry in body["data"]
    ]
    body["providers"] = [
        {
            "name": d.name,
            "label": d.label,
            "auth": d.auth,
            "key_set": d.key_set,
            "env_var": d.env_var,
        }
        for d in descriptions
    ]
    return body
