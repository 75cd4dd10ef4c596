"""Hugging Face Hub API: model metadata (cached) and the trending-model listing.

Protocol (public sources: huggingface_hub ``src/huggingface_hub/hf_api.py``
``model_info`` / ``list_models`` / ``ModelInfo`` (``trending_score =
kwargs.pop("trendingScore")``), https://github.com/huggingface/huggingface_hub;
https://huggingface.co/docs/hub/api)::

    GET {hub}/api/models/{id}
        200 {"id", "author", "pipeline_tag", "config": {"model_type",
             "tokenizer_config": {"eos_token": str | {"content": str}, ...}}, ...}
        307 text/plain + Location: /api/models/{new id}   (a renamed repository)
        404 unknown model
    GET {hub}/api/models?pipeline_tag=text-generation&inference=warm&sort=trendingScore&limit=N
        200 [{"id", "trendingScore", "pipeline_tag", ...}, ...]

A redirect is followed only on the same scheme and host, at most ``MAX_REDIRECTS``
times, so a token never reaches another host.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote, urljoin, urlsplit

import httpx

from .. import errors
from .._http import protocol_error, raise_for_status, read_json, translate_errors

__all__ = ["MAX_REDIRECTS", "Hub", "ModelInfo"]

MAX_REDIRECTS = 3
_LIST_LIMIT = 100


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the provider needs of a model's hub metadata.

    Attributes:
        id: the repository id (after any rename).
        author: the owner, or ``None``.
        pipeline_tag: ``"text-generation"``, ``"text-to-image"``, … or ``None``.
        model_type: ``config.model_type`` or ``None``.
        eos_token: ``config.tokenizer_config.eos_token`` as sent (str, mapping or None).
    """

    id: str
    author: str | None
    pipeline_tag: str | None
    model_type: str | None
    eos_token: Any


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_model_info(payload: Any, asked: str) -> ModelInfo:
    """Build ``ModelInfo`` from a ``GET /api/models/{id}`` body (missing fields -> None).

    Raises:
        ValueError: the body is not an object.
    """
    if not isinstance(payload, Mapping):
        raise ValueError("model info is not an object")
    config = payload.get("config")
    config = config if isinstance(config, Mapping) else {}
    tokenizer = config.get("tokenizer_config")
    tokenizer = tokenizer if isinstance(tokenizer, Mapping) else {}
    model_id = _str(payload.get("id")) or asked
    author = _str(payload.get("author")) or (model_id.split("/", 1)[0] if "/" in model_id else None)
    return ModelInfo(
        id=model_id,
        author=author,
        pipeline_tag=_str(payload.get("pipeline_tag")),
        model_type=_str(config.get("model_type")),
        eos_token=tokenizer.get("eos_token"),
    )


class Hub:
    """Metadata of models, cached per provider instance (LRU of ``size``, ``ttl`` seconds).

    Args:
        http: the shared client.
        hub_url: the hub's base URL (no trailing slash).
        headers: request headers (the optional token).
        provider: registry name, for errors.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        hub_url: str,
        headers: Mapping[str, str],
        provider: str,
        *,
        size: int = 256,
        ttl: float = 600.0,
    ) -> None:
        self._http = http
        self._url = hub_url
        self._headers = dict(headers)
        self._provider = provider
        self._size = size
        self._ttl = ttl
        self._cache: OrderedDict[str, tuple[float, ModelInfo]] = OrderedDict()

    async def model_info(self, model: str) -> ModelInfo:
        """The metadata of ``model`` (cached).

        Raises:
            llmrelay.errors.ModelNotFoundError: the hub does not know the model (404).
            llmrelay.errors.ProviderError: other HTTP errors, mapped.
            llmrelay.errors.ProtocolError: a malformed body or too many redirects.
        """
        now = time.monotonic()
        hit = self._cache.get(model)
        if hit is not None and now - hit[0] < self._ttl:
            self._cache.move_to_end(model)
            return hit[1]
        info = await self._fetch(model)
        self._cache[model] = (now, info)
        self._cache.move_to_end(model)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return info

    async def _fetch(self, model: str) -> ModelInfo:
        url = f"{self._url}/api/models/{quote(model, safe='/')}"
        origin = urlsplit(url)
        name = self._provider
        with translate_errors(name, model):
            for _ in range(MAX_REDIRECTS + 1):
                async with self._http.stream("GET", url, headers=self._headers) as response:
                    if response.status_code in (301, 302, 307, 308):
                        await response.aread()
                        url = self._redirect_target(url, response, origin, model)
                        continue
                    if response.status_code == 404:
                        await response.aread()
                        raise errors.ModelNotFoundError(
                            f"the hub does not know the model {model!r}",
                            provider=name,
                            model=model,
                            status_code=404,
                            body=response.text,
                        )
                    await raise_for_status(response, provider=name, model=model, what="model info")
                    payload = await read_json(
                        response, provider=name, model=model, what="model info"
                    )
                try:
                    return parse_model_info(payload, model)
                except ValueError as exc:
                    raise protocol_error(
                        "malformed model info", payload, provider=name, model=model
                    ) from exc
        raise errors.ProtocolError(
            f"more than {MAX_REDIRECTS} redirects for the model info of {model!r}",
            provider=name,
            model=model,
        )

    def _redirect_target(
        self, url: str, response: httpx.Response, origin: SplitResult, model: str
    ) -> str:
        location = response.headers.get("location")
        if not location:
            raise errors.ProtocolError(
                f"HTTP {response.status_code} without a Location",
                provider=self._provider,
                model=model,
            )
        target: str = urljoin(url, location)
        parts = urlsplit(target)
        if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
            raise errors.ProtocolError(
                # the host alone: a Location's netloc may carry userinfo
                f"the hub redirected to another host ({parts.hostname!r}); not followed",
                provider=self._provider,
                model=model,
                status_code=response.status_code,
            )
        return target

    async def trending(self, pipeline_tag: str, min_score: float) -> list[str]:
        """Ids of warm ``pipeline_tag`` models with ``trendingScore >= min_score``.

        Raises:
            llmrelay.errors.ProviderError: HTTP errors; ``ProtocolError`` on a bad body.
        """
        params = {
            "pipeline_tag": pipeline_tag,
            "inference": "warm",
            "sort": "trendingScore",
            "limit": str(_LIST_LIMIT),
        }
        name = self._provider
        with translate_errors(name, None):
            async with self._http.stream(
                "GET", f"{self._url}/api/models", params=params, headers=self._headers
            ) as response:
                await raise_for_status(response, provider=name, model=None, what="model listing")
                items = await read_json(response, provider=name, model=None, what="model listing")
        if not isinstance(items, list):
            raise errors.ProtocolError("model listing is not a list", provider=name)
        out: list[str] = []
        for item in items[: _LIST_LIMIT * 10]:
            if not isinstance(item, Mapping):
                continue
            score = item.get("trendingScore")
            model_id = item.get("id")
            if (
                isinstance(model_id, str)
                and isinstance(score, (int, float))
                and not isinstance(score, bool)
                and score >= min_score
                and item.get("pipeline_tag", pipeline_tag) == pipeline_tag
            ):
                out.append(model_id)
        return out
