"""Any OpenAI-compatible chat-completions server, as a provider or as configuration.

Wire protocol: ``POST {base}/chat/completions`` streamed as SSE chunks ending with
``data: [DONE]`` (see ``llmrelay.providers._openai_stream`` for the accepted variants;
tools, ``tool_choice``, ``parallel_tool_calls``, ``response_format`` and the streamed
tool-call deltas pass through natively, as do the forwarded fields ``FORWARDED``),
``GET {base}/models`` -> ``{"object": "list", "data": [{"id", ...}]}`` to list
models, and ``POST {base}/embeddings`` (``embed``; see ``llmrelay.providers._embeddings``).
Public sources: https://platform.openai.com/docs/api-reference/chat/create,
https://platform.openai.com/docs/api-reference/models/list,
https://platform.openai.com/docs/api-reference/embeddings, and the servers' docs:
https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html,
https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md,
https://github.com/ollama/ollama/blob/main/docs/openai.md,
https://huggingface.co/docs/inference-providers/index (the Hugging Face router).

A local vLLM, llama.cpp server, Ollama or LM Studio is a row of configuration::

    [providers.local]
    kind = "openai"
    base_url = "http://127.0.0.1:11434/v1"
    models = ["llama3.2"]          # optional: GET /models is asked when absent
    vision = ["llava"]             # optional: models that take images (or true: all)

Images (``image_url`` content parts, https://platform.openai.com/docs/guides/images-vision)
pass through in OpenAI's shape, each part in its place among the text parts and its
``detail`` kept, URLs unfetched; only to the models the row declares with ``vision``
(``true``: every model); an image for another model is refused before anything is sent.

``OpenAICompatible.from_config(name, table)`` turns such a table into a provider class.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import httpx

from .. import errors
from .._http import protocol_error, raise_for_status, read_json, translate_errors
from ..types import ChatRequest, Event
from ._base import PARAMETERS, Auth, AuthMode, Capability, Option, Provider
from ._openai_stream import FORWARDED, chat_payload, stream_chat
from ._vision import images_of, refuse_images

if TYPE_CHECKING:
    from ..types import EmbeddingRequest, EmbeddingResult

__all__ = ["CONFIG_KEYS", "OpenAICompatible", "list_openai_models"]

CONFIG_KEYS: frozenset[str] = frozenset(
    {
        "kind",
        "base_url",
        "api_key",
        "models",
        "default_model",
        "label",
        "aliases",
        "docs_url",
        "vision",
        "retries",
        "prefill",
        "embedding_models",
    }
)
"""The keys a ``kind = "openai"`` configuration table may hold."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_MODELS_TTL = 300.0
_MAX_MODELS = 10_000


async def list_openai_models(
    http: httpx.AsyncClient, url: str, headers: Mapping[str, str], *, provider: str
) -> list[str]:
    """``GET {url}`` (an OpenAI ``/models`` route) -> the model ids, in the server's order.

    Raises:
        llmrelay.errors.ProviderError: HTTP errors, mapped.
        llmrelay.errors.ProtocolError: a body without a ``data`` list of ``{"id"}``.
    """
    name = provider
    with translate_errors(name, None):
        async with http.stream("GET", url, headers=dict(headers)) as response:
            await raise_for_status(response, provider=name, model=None, what="model list")
            body = await read_json(response, provider=name, model=None, what="model list")
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise protocol_error("model list has no 'data' list", body, provider=name, model=None)
    ids = [
        item["id"] for item in data if isinstance(item, Mapping) and isinstance(item.get("id"), str)
    ]
    return list(dict.fromkeys(ids))[:_MAX_MODELS]


class OpenAICompatible(Provider):
    """A server that speaks OpenAI's chat-completions API (vLLM, llama.cpp, Ollama, …).

    Use it through configuration (``kind = "openai"``; see ``from_config``) or subclass it
    with ``name``, ``label`` and ``endpoints``. With no ``models`` declared, the catalogue
    is open and ``list_models()`` asks ``GET {base}/models`` (cached for five minutes);
    with no ``default_model``, the first listed model is used.
    """

    name: ClassVar[str] = "openai"
    label: ClassVar[str] = "OpenAI-compatible server"
    docs_url: ClassVar[str] = "https://platform.openai.com/docs/api-reference/chat"
    endpoints: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"base_url": "http://127.0.0.1:8000/v1"}
    )
    auth: ClassVar[Auth] = Auth(AuthMode.OPTIONAL, None)
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.CHAT,
            Capability.STREAM,
            Capability.SYSTEM_PROMPT,
            Capability.HISTORY,
            Capability.TOOLS,
            Capability.STRUCTURED_OUTPUT,
            Capability.USAGE,
            Capability.EMBEDDINGS,
        }
    )
    parameters: ClassVar[frozenset[str]] = PARAMETERS
    forwards: ClassVar[frozenset[str]] = FORWARDED
    options: ClassVar[Mapping[str, Option]] = MappingProxyType(
        {"extra_body": Option(dict, "extra JSON fields merged into the request body")}
    )
    default_model: ClassVar[str] = ""
    open_catalogue: ClassVar[bool] = True
    config_api_key: ClassVar[str | None] = None
    """A key given in the configuration table (used when the client passes none)."""
    vision_models: ClassVar[frozenset[str] | None] = frozenset()
    """The models declared to take images (``vision`` of the configuration table);
    ``None``: every model (``vision = true``)."""

    @classmethod
    def declared_vision(cls, model: str) -> bool | None:
        """Whether the configuration declares that ``model`` takes images."""
        return cls.vision_models is None or model in cls.vision_models

    prefill: ClassVar[bool | frozenset[str]] = False
    """Whether the server continues a partial answer sent as a last assistant message
    (``prefill = true``, or the list of models that do): llama.cpp's server, vLLM with
    ``continue_final_message``, a gateway in front of Anthropic-style models. Declare it
    only where true: a mid-stream rescue then sends the delivered text and streams the
    remainder; elsewhere it regenerates the answer instead."""

    @classmethod
    def continues(cls, model: str) -> bool:
        """Whether ``model`` continues a last assistant message (``prefill``)."""
        if isinstance(cls.prefill, bool):
            return cls.prefill
        return model in cls.prefill

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoints: Mapping[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(http, endpoints=endpoints, api_key=api_key or self.config_api_key)
        self._listed: tuple[float, list[str]] | None = None

    async def list_models(self) -> Sequence[str]:
        """The declared ``models``, else ``GET {base}/models`` (cached for five minutes)."""
        if self.models:
            return self.models
        now = time.monotonic()
        if self._listed is not None and now - self._listed[0] < _MODELS_TTL:
            return self._listed[1]
        ids = await list_openai_models(
            self._http, f"{self.base_url}/models", self._auth_headers(), provider=self.name
        )
        self._listed = (now, ids)
        return ids

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """``POST {base}/embeddings`` with every field of ``request`` as given.

        Raises:
            llmrelay.errors.ProviderError: HTTP errors, mapped (a 400 keeps the server's
                ``param``); ``InvalidRequestError`` (``param="dimensions"``) when the
                server ignored ``dimensions``; ``ProtocolError`` for another shape.
        """
        from ._embeddings import post_openai_embeddings  # not loaded for a chat

        model = await self._model_for(request)
        with translate_errors(self.name, model):
            return await post_openai_embeddings(
                self._http,
                f"{self.base_url}/embeddings",
                request,
                model,
                headers=self._auth_headers(),
                provider=self.name,
            )

    async def _model_for(self, request: ChatRequest | EmbeddingRequest) -> str:
        if request.model:
            return request.model
        if self.default_model:
            return self.default_model
        listed = await self.list_models()
        if not listed:
            raise errors.ConfigError(f"{self.name}: no model given and the server lists none")
        return listed[0]

    def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Stream the chat completion of ``request`` (see ``_openai_stream``).

        With the model known (``request.model`` or ``default_model``) this returns
        ``stream_chat``'s generator itself, its transport errors mapped inside it
        (``translate=True``): each event reaches the engine in one generator step, not
        re-yielded by a second generator. The checks and the payload are made now; a
        failure among them is raised by the returned generator's first step, as from
        a generator of this method's own. A model to be listed first (an await) takes
        a generator of its own that hands on ``stream_chat``'s events.
        """
        model = request.model or self.default_model
        if not model:
            return self._listed_stream(request)
        try:
            payload = self._payload(request, model)
        except Exception as exc:
            return _raising(exc)
        return self._source(request, model, payload)

    async def _listed_stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """``stream`` for a request without a model: the first the server lists."""
        model = await self._model_for(request)
        source = self._source(request, model, self._payload(request, model))
        async with aclosing(source):
            async for event in source:
                yield event

    def _payload(self, request: ChatRequest, model: str) -> dict[str, Any]:
        """The request body of ``request`` for ``model``, after the image check.

        Raises:
            llmrelay.errors.InvalidRequestError: images for a model not declared to
                take them.
        """
        if images_of(request) and not self.declared_vision(model):
            raise refuse_images(
                request,
                self.name,
                f"the model {model!r} is not declared to take images (vision = true, or a "
                f"list of models, in [providers.{self.name}])",
            )
        payload = chat_payload(request, model)
        if request.prefill and self.continues(model):  # the engine checks it too
            payload["messages"].append({"role": "assistant", "content": request.prefill})
        extra = request.options.get("extra_body")
        if isinstance(extra, Mapping):  # may replace stream_options, never the streaming
            payload.update(extra)
            payload.update(stream=True, model=model)
        return payload

    def _source(
        self, request: ChatRequest, model: str, payload: dict[str, Any]
    ) -> AsyncGenerator[Event, None]:
        return stream_chat(
            self._http,
            f"{self.base_url}/chat/completions",
            payload,
            headers=self._auth_headers(),
            provider=self.name,
            model=model,
            strict=request.strict,
            translate=True,
        )

    @classmethod
    def from_config(cls, name: str, table: Mapping[str, Any]) -> type[Provider]:
        """Build a provider class from a ``kind = "openai"`` configuration table.

        Args:
            name: the provider's registry name (``[providers.NAME]``): lower-case letters,
                digits, ``_`` and ``-``.
            table: ``{"kind": "openai", "base_url": "http(s)://…", "api_key"?: str,
                "models"?: [str, ...], "default_model"?: str, "label"?: str,
                "aliases"?: {alias: model}, "docs_url"?: str, "vision"?: bool |
                [str, ...], "retries"?: int (read by the settings), "prefill"?: bool |
                [model, ...] (see ``prefill``), "embedding_models"?: [str, ...]}``
                (``vision``: the models that take images, ``true`` for all; absent or
                ``false``: none; ``embedding_models``: the models its ``/embeddings``
                serves, listed with ``kind`` ``embedding``; they do not close an open
                catalogue as ``models`` does).

        Returns:
            A subclass of ``OpenAICompatible`` with those attributes.

        Raises:
            llmrelay.errors.ConfigError: an unknown key (named), a missing or non-http(s)
                ``base_url``, or a value of the wrong type.
        """
        where = f"[providers.{name}]"
        if not isinstance(name, str) or not _NAME.match(name):
            raise errors.ConfigError(
                f"{where}: a provider name is lower-case letters, digits, '_' and '-'"
            )
        unknown = sorted(set(table) - CONFIG_KEYS)
        if unknown:
            raise errors.ConfigError(
                f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(CONFIG_KEYS))})"
            )
        if table.get("kind", "openai") != "openai":
            raise errors.ConfigError(f"{where}: kind must be 'openai', got {table['kind']!r}")
        base_url = _http_url(table.get("base_url"), where)
        models = _strings(table.get("models", []), f"{where} models")
        default_model = _string(
            table.get("default_model", models[0] if models else ""), f"{where} default_model"
        )
        aliases_value = table.get("aliases", {})
        if not isinstance(aliases_value, Mapping):
            raise errors.ConfigError(f"{where} aliases: expected a table of alias = model")
        aliases = {
            _string(k, f"{where} aliases"): _string(v, f"{where} aliases.{k}")
            for k, v in aliases_value.items()
        }
        embedding_models = _strings(table.get("embedding_models", []), f"{where} embedding_models")
        if models:
            known = {*models, *embedding_models}
            missing = [alias for alias, target in aliases.items() if target not in known]
            if missing:
                raise errors.ConfigError(
                    f"{where} aliases: {missing[0]!r} names a model not in 'models'"
                )
        vision = _vision(table.get("vision", False), aliases, where)
        api_key = table.get("api_key")
        if api_key is not None:
            api_key = _string(api_key, f"{where} api_key")
        prefill = table.get("prefill", False)
        if not isinstance(prefill, bool):
            prefill = frozenset(_strings(prefill, f"{where} prefill"))
        attributes: dict[str, Any] = {
            "name": name,
            "label": _string(table.get("label", f"{name} (OpenAI-compatible)"), f"{where} label"),
            "docs_url": _string(table.get("docs_url", base_url), f"{where} docs_url"),
            "endpoints": MappingProxyType({"base_url": base_url}),
            "models": tuple(models),
            "embedding_models": tuple(m for m in embedding_models if m not in models),
            "default_model": default_model,
            "aliases": MappingProxyType(aliases),
            "open_catalogue": not models,
            "config_api_key": api_key or None,
            "vision_models": vision,
            "capabilities": cls.capabilities | {Capability.VISION}
            if vision is None or vision
            else cls.capabilities,
            "prefill": prefill,
            "__module__": cls.__module__,
            "__doc__": f"OpenAI-compatible provider {name!r} at {base_url} (from configuration).",
        }
        class_name = "OpenAICompatible_" + re.sub(r"\W", "_", name)
        return type(class_name, (cls,), attributes)


def _vision(value: Any, aliases: Mapping[str, str], where: str) -> frozenset[str] | None:
    """``vision`` of a table: ``None`` for every model, else the models (aliases resolved)."""
    if value is True:
        return None
    if value is False:
        return frozenset()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise errors.ConfigError(f"{where} vision: expected true, false or a list of model ids")
    return frozenset(aliases.get(model, model) for model in value)


def _http_url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise errors.ConfigError(f"{where}: base_url is required (an http:// or https:// URL)")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise errors.ConfigError(f"{where}: base_url must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise errors.ConfigError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise errors.ConfigError(f"{where}: expected a list of model ids")
    return [_string(item, where) for item in value]


async def _raising(exc: Exception) -> AsyncGenerator[Event, None]:
    """A generator whose first step raises ``exc`` (``OpenAICompatible.stream``'s checks)."""
    raise exc
    yield  # pragma: no cover  # an async generator
