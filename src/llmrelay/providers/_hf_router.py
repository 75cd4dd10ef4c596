"""The Hugging Face router: model ids with policy suffixes, its errors, its live catalogue.

Public sources: https://huggingface.co/docs/inference-providers/index (the router at
``https://router.huggingface.co/v1``, OpenAI-compatible; a model id may end in a
provider-selection policy ``:fastest`` (the default), ``:cheapest``, ``:preferred`` or an
inference provider's name, ``:<provider>``); huggingface_hub
``src/huggingface_hub/inference/_client.py`` (``provider="auto"`` routing);
Hugging Face's chat-ui ``src/lib/server/models.ts`` (https://github.com/huggingface/chat-ui),
which reads the catalogue::

    GET {router}/models
    200 {"object": "list",
         "data": [{"id": "org/name", "object": "model", "created"?, "owned_by"?,
                   "architecture"?: {"input_modalities": [...], "output_modalities": [...]},
                   "providers": [{"provider": "novita", "status"?: "live",
                                  "context_length"?: int,
                                  "pricing"?: {"input": float, "output": float},
                                  "supports_tools"?: bool,
                                  "supports_structured_output"?: bool, ...}, ...]}, ...]}

Prices are USD per million tokens. A model no enabled provider serves is refused with
HTTP 400 ``{"error": {"message": "The requested model 'X' is not supported by any
provider you have enabled.", "code": "model_not_supported", ...}}`` (as reported by
users of the router; the code is the router's).

Model ids are Hub repository ids (huggingface_hub ``utils/_validators.py``
``validate_repo_id``: ``[namespace/]name``, ASCII letters, digits, ``-``, ``_``, ``.``,
at most 96 characters each, neither starting nor ending with ``-`` or ``.``, no ``--``
or ``..``), optionally followed by ``@<revision>`` or by one ``:<policy>`` suffix.
Nothing else can reach a URL path.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from .. import errors
from .._http import raise_for_status, read_json, translate_errors, upstream_text
from ..catalog import LiveModel, LiveOffer

__all__ = [
    "CATALOG_TTL",
    "POLICIES",
    "HubId",
    "RouterCatalog",
    "not_supported_error",
    "parse_catalog",
    "parse_model_id",
]

log = logging.getLogger(__name__)

POLICIES: frozenset[str] = frozenset({"fastest", "cheapest", "preferred"})
"""The router's provider-selection policies (a ``:<provider>`` name pins one instead)."""
CATALOG_TTL = 600.0
"""Seconds a fetched catalogue is reused."""
CATALOG_TIMEOUT = 15.0
"""Seconds one catalogue fetch may take in all."""
_CATALOG_LIMIT = 16 * 1024 * 1024
_MAX_MODELS = 20_000
_MAX_OFFERS = 100

_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_ID = re.compile(
    rf"(?P<repo>(?:{_PART}/)?{_PART})"
    r"(?:@(?P<revision>[A-Za-z0-9][A-Za-z0-9_.-]{0,99})|:(?P<policy>[a-z0-9][a-z0-9_-]{0,63}))?",
    re.ASCII,
)
_NOT_SUPPORTED = "not supported by any provider you have enabled"


@dataclass(frozen=True, slots=True)
class HubId:
    """A parsed model id.

    Attributes:
        repo: the Hub repository id (``org/name`` or ``name``).
        revision: the ``@<revision>`` (branch, tag or commit), or ``None``.
        policy: the ``:<policy>`` suffix (``fastest``, ``cheapest``, ``preferred`` or
            an inference provider's name), or ``None``.
    """

    repo: str
    revision: str | None = None
    policy: str | None = None


def parse_model_id(model: str, provider: str = "huggingface") -> HubId:
    """Validate a ``huggingface`` model id (see the module docstring).

    Raises:
        llmrelay.errors.ConfigError: not ``[owner/]name[@revision|:policy]`` with the
            Hub's allowed characters (so ``..``, ``%2e``, extra ``/`` or a query can
            never reach a URL).
    """
    match = _ID.fullmatch(model) if isinstance(model, str) else None
    if match is None or ".." in match["repo"] or "--" in match["repo"]:
        shown = model[:120] if isinstance(model, str) else type(model).__name__
        raise errors.ConfigError(
            f"{provider}: model ids are Hub repository ids, 'owner/name' (letters, digits, "
            f"'-', '_', '.'; no '..' or '--'), optionally '@revision' or a router suffix "
            f"':fastest', ':cheapest', ':preferred' or ':<provider>'; got {shown!r}"
        )
    return HubId(match["repo"], match["revision"], match["policy"])


def not_supported_error(exc: errors.ProviderError, model: str) -> errors.ModelNotFoundError | None:
    """The ``ModelNotFoundError`` for the router's "not supported" refusal, or ``None``.

    The refusal: "The requested model ... is not supported by any provider you have
    enabled" (code ``model_not_supported``); the new error says what to do.
    """
    if exc.status_code not in (400, 404) or not exc.body:
        return None
    body = exc.body
    if _NOT_SUPPORTED not in body.lower() and '"model_not_supported"' not in body:
        return None
    return errors.ModelNotFoundError(
        f"no inference provider you have enabled serves {model!r}: enable one that serves it "
        f"at https://huggingface.co/settings/inference-providers, pin one with a "
        f"':<provider>' suffix, or pick a model from 'llmrelay models huggingface --live'",
        provider=exc.provider,
        model=exc.model,
        status_code=exc.status_code,
        body=exc.body,
    )


def parse_catalog(payload: Any, provider: str) -> tuple[LiveModel, ...]:
    """The ``LiveModel`` rows of a router ``/models`` answer.

    Malformed entries are skipped (and logged); unknown fields are ignored.

    Raises:
        llmrelay.errors.ProtocolError: the answer has no ``data`` list.
    """
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, list):
        raise errors.ProtocolError("the router's model list has no 'data' list", provider=provider)
    models: list[LiveModel] = []
    skipped = 0
    for item in data[:_MAX_MODELS]:
        model = _model(item, provider)
        if model is None:
            skipped += 1
        else:
            models.append(model)
    if skipped:
        log.info("%s: %d malformed catalogue entries skipped", provider, skipped)
    return tuple(models)


def _model(item: Any, provider: str) -> LiveModel | None:
    if not isinstance(item, Mapping):
        return None
    model_id = item.get("id")
    if not isinstance(model_id, str):
        return None
    try:
        parse_model_id(model_id, provider)
    except errors.ConfigError:
        return None
    architecture = item.get("architecture")
    architecture = architecture if isinstance(architecture, Mapping) else {}
    offers = item.get("providers")
    offers = offers[:_MAX_OFFERS] if isinstance(offers, list) else []
    return LiveModel(
        provider=provider,
        id=model_id,
        offers=tuple(o for o in (_offer(x) for x in offers) if o is not None),
        input_modalities=_strings(architecture.get("input_modalities")),
        output_modalities=_strings(architecture.get("output_modalities")),
    )


def _offer(item: Any) -> LiveOffer | None:
    if not isinstance(item, Mapping):
        return None
    name = upstream_text(item.get("provider"), 64)
    if name is None:
        return None
    pricing = item.get("pricing")
    pricing = pricing if isinstance(pricing, Mapping) else {}
    length = item.get("context_length")
    return LiveOffer(
        provider=name,
        status=upstream_text(item.get("status"), 32),
        context_length=length if _positive_int(length) else None,
        input_price=_price(pricing.get("input")),
        output_price=_price(pricing.get("output")),
        supports_tools=_flag(item.get("supports_tools")),
        supports_structured_output=_flag(item.get("supports_structured_output")),
    )


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(s for s in (upstream_text(v, 32) for v in value[:16]) if s)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _price(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


class RouterCatalog:
    """The router's ``/models``, fetched on demand and cached for ``ttl`` seconds.

    Args:
        http: the client's shared ``httpx.AsyncClient``.
        url: the router's base URL (``https://router.huggingface.co/v1``).
        headers: request headers (the ``Authorization`` of the provider's key).
        provider: registry name, for errors and the rows.
        ttl: seconds a fetched catalogue is reused.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        headers: Mapping[str, str],
        provider: str,
        ttl: float = CATALOG_TTL,
    ) -> None:
        self._http = http
        self._url = f"{url.rstrip('/')}/models"
        self._headers = dict(headers)
        self._provider = provider
        self._ttl = ttl
        self._fetched: tuple[float, tuple[LiveModel, ...]] | None = None
        self._by_id: dict[str, LiveModel] = {}
        self._lock = anyio.Lock()

    async def models(self, *, refresh: bool = False) -> tuple[LiveModel, ...]:
        """The catalogue (from the cache unless it is older than ``ttl`` or ``refresh``).

        Concurrent callers share one fetch.

        Raises:
            llmrelay.errors.ProviderError: HTTP errors (mapped), ``ProviderTimeout``
                after ``CATALOG_TIMEOUT`` seconds, ``ProtocolError`` for a body that is
                not a model list.
        """
        async with self._lock:
            fetched = self._fetched
            if not refresh and fetched is not None and time.monotonic() - fetched[0] < self._ttl:
                return fetched[1]
            models = await self._fetch()
            self._fetched = (time.monotonic(), models)
            self._by_id = {m.id: m for m in models}
            return models

    def cached(self, model: str) -> LiveModel | None:
        """The cached row of ``model`` (a policy suffix is ignored), without fetching."""
        return self._by_id.get(model.partition(":")[0])

    async def _fetch(self) -> tuple[LiveModel, ...]:
        name = self._provider
        with anyio.move_on_after(CATALOG_TIMEOUT) as scope, translate_errors(name, None):
            async with self._http.stream("GET", self._url, headers=self._headers) as response:
                await raise_for_status(response, provider=name, model=None, what="model catalogue")
                payload = await read_json(
                    response,
                    provider=name,
                    model=None,
                    limit=_CATALOG_LIMIT,
                    what="model catalogue",
                )
            return parse_catalog(payload, name)
        assert scope.cancelled_caught
        raise errors.ProviderTimeout(
            f"the model catalogue did not arrive within {CATALOG_TIMEOUT:g}s",
            provider=name,
            kind="total",
        )
