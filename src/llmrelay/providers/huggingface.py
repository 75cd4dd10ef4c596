"""Hugging Face Inference API (text generation and text-to-image) and its OpenAI router.

Protocols and their public sources:

* **Model metadata** ``GET {hub_url}/api/models/{id}`` (``_hf_hub``): ``pipeline_tag``,
  ``config.model_type`` and ``config.tokenizer_config.eos_token`` choose the chat
  template (``llmrelay._templates``); cached per provider, bounded, with expiry; 404 ->
  ``ModelNotFoundError``; a 307 for a renamed repository is followed on the same host.
  Source: huggingface_hub ``src/huggingface_hub/hf_api.py`` (``model_info``).
* **Text generation** ``POST {base_url}/models/{model}`` with ``{"inputs", "parameters",
  "stream": true}`` answered by TGI Server-Sent Events (``_tgi``), or a JSON
  ``[{"generated_text"}]`` when ``stream`` is off (option ``stream=False``) or the model
  does not stream. Sources: text-generation-inference ``router/src/lib.rs`` and
  ``router/src/server.rs`` (https://github.com/huggingface/text-generation-inference),
  huggingface_hub ``src/huggingface_hub/inference/_client.py`` (``text_generation``) and
  ``src/huggingface_hub/inference/_common.py``,
  https://huggingface.co/docs/api-inference/tasks/text-generation.
* **Loading models**: 503 ``{"error": "... is currently loading", "estimated_time"}`` is
  waited for (asking again with ``x-wait-for-model: 1``) while the estimate fits the
  request's deadline; then ``ProviderUnavailable`` quoting the estimate.
* **Text-to-image**: the same route answers raw image bytes (``content-type:
  image/jpeg`` or ``image/png``); https://huggingface.co/docs/api-inference/tasks/text-to-image.
* **Embeddings** (``embed``): feature extraction, ``POST
  {base_url}/models/{model}/pipeline/feature-extraction`` (``base_url`` as for text
  generation; Hugging Face's current address of it is
  ``https://router.huggingface.co/hf-inference``), or with ``api="router"`` or a router
  suffix the router's OpenAI-compatible ``POST {router_url}/embeddings`` where it serves
  the model; both in ``_embeddings`` (the protocols and what each refuses).
* **Router** (``api="router"`` per call, a model id with a policy suffix, or the
  models in ``ROUTER_MODELS``): ``POST {router_url}/chat/completions``, OpenAI
  chat-completions streaming (``_openai_stream``); the id goes as given, suffix and all
  (``:fastest``, ``:cheapest``, ``:preferred``, ``:<provider>``); the router's "not
  supported by any provider you have enabled" is a ``ModelNotFoundError`` saying what to
  do. ``live_models()`` reads its catalogue, ``GET {router_url}/models``, cached with a
  TTL (``_hf_router``). https://huggingface.co/docs/inference-providers/index.
* **Tools and structured output** (``tools``, ``tool_choice``, ``parallel_tool_calls``,
  tool messages, ``response_format``; the forwarded OpenAI fields) go to the router
  natively, checked first against its catalogue (the model's offers' ``supports_tools``
  and ``supports_structured_output``; an offer pinned by a ``:<provider>`` suffix
  alone); a request with tools goes to the router unless ``api="inference"`` says
  otherwise, where they are refused. On the Inference API a ``response_format`` becomes
  TGI's ``grammar`` (``{"type": "json", "value": schema}``, TGI's "Guidance" docs:
  https://huggingface.co/docs/text-generation-inference/conceptual/guidance).
* **Images in** (``image_url`` parts) go to the router in OpenAI's shape, each in its
  place among the text parts, URLs unfetched: a request with images is routed there
  (``api="inference"``, the text-generation route, takes none and is refused). The
  router's catalogue is asked first (cached): a model it lists without ``image`` among
  its ``architecture.input_modalities`` is refused before anything is sent; one it does
  not list, or a catalogue that cannot be read, is left to the router to judge.
* **Continuation** (a mid-stream rescue, ``ChatRequest.prefill``): on the generate
  route llmrelay renders the prompt itself, so the partial answer is appended as an
  open assistant turn (each template's ``continue`` form, ``llmrelay._templates``) and
  TGI streams only what follows; ``continues`` is true for the models that take that
  route by default (not ``ROUTER_MODELS`` nor a router suffix), and a prefill is never
  sent to the router.
* **Model ids** are validated first (``_hf_router.parse_model_id``): a Hub repository id,
  optionally ``@revision`` or one router suffix; nothing else reaches a URL path.
* **Model list**: the built-in models plus trending ones from ``GET {hub_url}/api/models``
  (``trendingScore`` >= 10 for text, >= 20 for images), fetched concurrently with a
  timeout and cached; never at import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import anyio
import httpx

from .. import errors
from .._http import aiter_sse, loads, read_bounded, retry_after_seconds, translate_errors
from .._prompts import last_user_message
from .._templates import choose_template, fit, render
from ..catalog import LiveModel
from ..types import (
    ChatRequest,
    Event,
    FinishReason,
    ImageResult,
    Message,
)
from ._base import PARAMETERS, Auth, AuthMode, Capability, Option, Provider, unsupported_part
from ._embeddings import (
    ANSWER_LIMIT,
    FEATURE_EXTRACTION_OPTIONS,
    feature_extraction_payload,
    parse_features,
    post_openai_embeddings,
    usage_from_headers,
)
from ._hf_hub import Hub, ModelInfo
from ._hf_router import HubId, RouterCatalog, not_supported_error, parse_model_id
from ._images import image_parameters, sniff_image
from ._openai_stream import FORWARDED, chat_payload, stream_chat
from ._tgi import (
    TokenStream,
    error_from_response,
    generation_parameters,
    loading_error,
    loading_estimate,
    parse_generated,
    wait_for_model,
)
from ._vision import images_of, refuse_images

if TYPE_CHECKING:
    from ..types import EmbeddingRequest, EmbeddingResult, ImageRequest

__all__ = ["EMBEDDING_MODELS", "ROUTER_MODELS", "HuggingFace"]

log = logging.getLogger(__name__)

TEXT_MODELS: tuple[str, ...] = (
    "Qwen/Qwen2-72B-Instruct",
    "Qwen/Qwen2.5-72B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "meta-llama/Meta-Llama-3-8B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct",
    "HuggingFaceH4/zephyr-7b-beta",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    "deepseek-ai/DeepSeek-R1",
)
IMAGE_MODELS: tuple[str, ...] = (
    "black-forest-labs/FLUX.1-schnell",
    "stabilityai/stable-diffusion-xl-base-1.0",
)
EMBEDDING_MODELS: tuple[str, ...] = (
    "BAAI/bge-small-en-v1.5",
    "BAAI/bge-base-en-v1.5",
    "sentence-transformers/all-MiniLM-L6-v2",
    "sentence-transformers/all-mpnet-base-v2",
)
"""Sentence-embedding models the Inference API's feature extraction serves (``embed``);
any other Hub id can be asked for too (the catalogue is open)."""
ROUTER_MODELS: frozenset[str] = frozenset({"deepseek-ai/DeepSeek-R1"})
"""Models sent to the OpenAI-compatible router unless a call says ``api="inference"``."""

_LIST_TIMEOUT = 10.0
_LIST_TTL = 600.0
_MAX_PROMPT_CHARS = 24_000
_MAX_IMAGE = 32 * 1024 * 1024
_GENERATE_HEADERS: Mapping[str, str] = MappingProxyType(
    {"accept": "text/event-stream, application/json"}
)


class HuggingFace(Provider):
    """Chat and images through the Hugging Face Inference API (any hub model id).

    The token (``HF_TOKEN``) is optional: anonymous calls are rate-limited. Options:
    ``top_k``, ``repetition_penalty``, ``api`` (``"inference"`` or ``"router"``),
    ``stream`` (``False`` asks for one JSON answer), ``max_prompt_chars`` (older turns
    are dropped beyond it), ``guidance_scale`` and ``num_inference_steps`` (images).
    """

    name: ClassVar[str] = "huggingface"
    label: ClassVar[str] = "Hugging Face Inference API"
    docs_url: ClassVar[str] = "https://huggingface.co/docs/api-inference/index"
    endpoints: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "base_url": "https://api-inference.huggingface.co",
            "hub_url": "https://huggingface.co",
            "router_url": "https://router.huggingface.co/v1",
        }
    )
    auth: ClassVar[Auth] = Auth(AuthMode.OPTIONAL, "HF_TOKEN")
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.CHAT,
            Capability.STREAM,
            Capability.SYSTEM_PROMPT,
            Capability.HISTORY,
            Capability.IMAGES,
            Capability.TOOLS,
            Capability.STRUCTURED_OUTPUT,
            Capability.EMBEDDINGS,
            Capability.VISION,
        }
    )
    parameters: ClassVar[frozenset[str]] = PARAMETERS
    forwards: ClassVar[frozenset[str]] = FORWARDED
    options: ClassVar[Mapping[str, Option]] = MappingProxyType(
        {
            "top_k": Option(int, "sample from the k most likely tokens"),
            "repetition_penalty": Option(float, "penalty for repeated tokens (1.0 = none)"),
            "api": Option(str, "'inference' (text generation) or 'router' (OpenAI-compatible)"),
            "stream": Option(bool, "False: ask for the whole answer at once"),
            "max_prompt_chars": Option(int, "drop the oldest turns beyond this prompt size"),
            "guidance_scale": Option(float, "images: how closely to follow the prompt"),
            "num_inference_steps": Option(int, "images: denoising steps"),
        }
    )
    embedding_options: ClassVar[Mapping[str, Option]] = MappingProxyType(
        {
            **FEATURE_EXTRACTION_OPTIONS,
            "api": Option(str, "'inference' (feature extraction) or 'router' (OpenAI-compatible)"),
        }
    )
    default_model: ClassVar[str] = "Qwen/Qwen2-72B-Instruct"
    models: ClassVar[tuple[str, ...]] = TEXT_MODELS + IMAGE_MODELS
    image_models: ClassVar[tuple[str, ...]] = IMAGE_MODELS
    embedding_models: ClassVar[tuple[str, ...]] = EMBEDDING_MODELS
    aliases: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "qwen-2-72b": "Qwen/Qwen2-72B-Instruct",
            "qwen-2.5-72b": "Qwen/Qwen2.5-72B-Instruct",
            "mistral-7b": "mistralai/Mistral-7B-Instruct-v0.3",
            "mixtral-8x7b": "mistralai/Mixtral-8x7B-Instruct-v0.1",
            "llama-3-8b": "meta-llama/Meta-Llama-3-8B-Instruct",
            "llama-3.3-70b": "meta-llama/Llama-3.3-70B-Instruct",
            "zephyr-7b": "HuggingFaceH4/zephyr-7b-beta",
            "deepseek-r1-qwen-32b": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            "deepseek-r1": "deepseek-ai/DeepSeek-R1",
            "flux-schnell": "black-forest-labs/FLUX.1-schnell",
            "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
        }
    )
    open_catalogue: ClassVar[bool] = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoints: Mapping[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(http, endpoints=endpoints, api_key=api_key)
        self._hub = Hub(http, self.urls["hub_url"], self._auth_headers(), self.name)
        self._listed: tuple[float, tuple[str, ...]] | None = None
        self.catalog = RouterCatalog(http, self.urls["router_url"], self._auth_headers(), self.name)
        """The router's live catalogue (``live_models``; ``catalog.cached(id)`` reads it
        without fetching, for request checks)."""

    @classmethod
    def resolve_model(cls, model: str | None) -> str:
        """An alias or a listed id, else any valid Hub model id (see ``parse_model_id``).

        Raises:
            llmrelay.errors.ConfigError: an id that is not ``[owner/]name`` with the
                Hub's characters (optionally ``@revision`` or a router ``:suffix``).
        """
        resolved = super().resolve_model(model)
        parse_model_id(resolved, cls.name)
        return resolved

    async def live_models(self, *, refresh: bool = False) -> Sequence[LiveModel]:
        """The router's catalogue (cached for ``_hf_router.CATALOG_TTL`` seconds).

        Each model with the inference providers serving it, their context length, tool
        support and prices.

        Raises:
            llmrelay.errors.ProviderError: the catalogue could not be read.
        """
        return await self.catalog.models(refresh=refresh)

    # -- chat ------------------------------------------------------------------------

    async def check_request(self, request: ChatRequest) -> None:
        """Refuse what the route (and, on the router, the model's offers) cannot honour.

        The router's catalogue is read (cached) only for a request with tools or a JSON
        response format; a model it does not list, or a catalogue that cannot be read,
        is left to the router to judge.

        Raises:
            llmrelay.errors.InvalidRequestError: naming the field (``param``).
        """
        model = request.model or self.default_model
        hub_id = parse_model_id(model, self.name)
        if self._api(request.options, hub_id, self._routed(request, hub_id)) == "inference":
            self._check_inference(request, model)
            return
        await super().check_request(request)
        tools = bool(request.tools) or any(
            m.tool_calls or m.role == "tool" for m in request.messages
        )
        schema = request.response_format is not None and request.response_format.type != "text"
        if not (tools or schema):
            return
        try:
            await self.catalog.models()
        except errors.ProviderError as exc:
            log.info("%s: catalogue unavailable for the capability check: %s", self.name, exc)
            return
        row = self.catalog.cached(model)
        if row is None:
            return
        offers = row.offers
        if hub_id.policy is not None and row.offer(hub_id.policy) is not None:
            offers = (row.offer(hub_id.policy),)  # type: ignore[assignment]
        where = f"{row.id} on the router" + (f" ({hub_id.policy})" if len(offers) == 1 else "")
        if tools and not any(o.supports_tools for o in offers):
            raise self._refusal(
                f"{where} has no provider with tool support (the router's catalogue)",
                "tools" if request.tools else "messages",
                model,
            )
        if schema and all(o.supports_structured_output is False for o in offers):
            raise self._refusal(
                f"{where} has no provider with structured output (the router's catalogue)",
                "response_format",
                model,
            )

    def _check_inference(self, request: ChatRequest, model: str) -> None:
        """The Inference API's generate route: no tools, no forwarded fields."""
        refused = unsupported_part(request, self.capabilities - {Capability.TOOLS})
        if refused is not None:
            param, what = refused
            raise self._refusal(
                f"the Inference API (api='inference') cannot honour {what}; "
                "use the router (api='router')",
                param,
                model,
            )
        for name in ("presence_penalty", *request.passthrough):
            if name == "presence_penalty" and request.presence_penalty is None:
                continue
            raise self._refusal(
                f"the Inference API (api='inference') has no {name}; use the router", name, model
            )

    def _refusal(self, text: str, param: str, model: str) -> errors.InvalidRequestError:
        return errors.InvalidRequestError(
            f"{self.name}: {text}", provider=self.name, model=model, param=param
        )

    @classmethod
    def declared_vision(cls, model: str) -> bool | None:
        """``False`` for an image-generation model; else unknown until the router says."""
        return False if model in cls.image_models else None

    def vision(self, model: str) -> bool | None:
        """The router's cached catalogue row's ``vision``, when it lists ``model``."""
        declared = self.declared_vision(model)
        row = self.catalog.cached(model)
        return row.vision if declared is None and row is not None else declared

    async def _check_images(self, request: ChatRequest, model: str, api: str) -> None:
        """Refuse images the route or (as the catalogue says) the model cannot take."""
        if api != "router":
            raise refuse_images(
                request,
                self.name,
                "the Inference API's text-generation route (api='inference') takes no "
                "images; use the router (api='router')",
            )
        try:
            await self.catalog.models()
        except errors.ProviderError as exc:
            log.info("%s: catalogue unavailable for the vision check: %s", self.name, exc)
            return
        if self.vision(model) is False:
            raise refuse_images(
                request,
                self.name,
                f"the router's catalogue lists {model.partition(':')[0]} without image input",
            )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Stream the answer to ``request`` (see the module docstring)."""
        model = request.model or self.default_model
        hub_id = parse_model_id(model, self.name)
        images = bool(images_of(request))
        api = self._api(request.options, hub_id, self._routed(request, hub_id))
        with translate_errors(self.name, model):
            if images:
                await self._check_images(request, model, api)
            if api == "router" and request.prefill:
                raise errors.InvalidRequestError(
                    "the router cannot continue a partial answer (api='router')",
                    provider=self.name,
                    model=model,
                )
            if api == "router":
                source = stream_chat(
                    self._http,
                    f"{self.urls['router_url']}/chat/completions",
                    chat_payload(request, model),
                    headers=self._auth_headers(),
                    provider=self.name,
                    model=model,
                    strict=request.strict,
                )
                async with aclosing(source):
                    try:
                        async for event in source:
                            yield event
                    except errors.InvalidRequestError as exc:
                        missing = not_supported_error(exc, model)
                        if missing is None:
                            raise
                        raise missing from exc
                return
            self._no_revision(hub_id, model)
            info = await self._hub.model_info(model)
            if info.pipeline_tag == "text-to-image":
                prompt = _prompt_text(request)
                from ..types import ImageRequest  # llmrelay.types loads it on first use

                yield await self._image(
                    ImageRequest(prompt, model, seed=request.seed, deadline=request.deadline),
                    info.id,
                )
                yield FinishReason("stop")
                return
            # the generate route's token loop runs here, in the provider's own generator:
            # no generator between it and the engine
            repo = info.id  # the model as the Hub names it
            async with self._answer(
                repo, self._generate_body(request, info), _GENERATE_HEADERS, request.deadline,
                "text generation",
            ) as response:  # fmt: skip
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    parser = TokenStream(self.name, repo, request.stop)
                    feed = parser.feed
                    async for sse in aiter_sse(response, provider=self.name, model=repo):
                        for event in feed(sse.data):
                            yield event
                        if parser.finished:
                            # the last event came: what follows (or a cut) cannot undo it
                            break
                    yield parser.end()
                    return
                raw = await read_bounded(response, provider=self.name, model=repo)
            payload = loads(raw, provider=self.name, model=repo, what="answer")
            text, reason = parse_generated(payload, provider=self.name, model=repo)
            if text:
                yield text
            yield FinishReason(reason)

    @staticmethod
    def _routed(request: ChatRequest, hub_id: HubId) -> bool:
        """Whether a chat request goes to the router when no ``api`` option says.

        One of ``ROUTER_MODELS``, or a request the Inference API's generate route cannot
        carry: images, tools, tool calls or results in the messages, forwarded OpenAI
        fields.
        """
        return (
            hub_id.repo in ROUTER_MODELS
            or bool(images_of(request))
            or bool(request.tools)
            or bool(request.passthrough)
            or any(m.tool_calls or m.role == "tool" for m in request.messages)
        )

    @classmethod
    def continues(cls, model: str) -> bool:
        """Whether ``model`` continues a partial answer: on the generate route (see above)."""
        try:
            hub_id = parse_model_id(model, cls.name)
        except errors.LLMRelayError:
            return False
        return hub_id.policy is None and hub_id.repo not in ROUTER_MODELS

    def _api(self, options: Mapping[str, Any], hub_id: HubId, routed: bool = False) -> str:
        """``"router"`` or ``"inference"``.

        The ``api`` option, else the router for an id with a policy suffix or when
        ``routed`` (chat: one of ``ROUTER_MODELS``).

        Raises:
            llmrelay.errors.ConfigError: a bad ``api``, or a router suffix with
                ``api="inference"`` (the Inference API does not know it).
        """
        api = options.get("api")
        if api is None:
            router = hub_id.policy is not None or routed
            return "router" if router else "inference"
        if api not in ("inference", "router"):
            raise errors.ConfigError(f"{self.name}: option api must be 'inference' or 'router'")
        if api == "inference" and hub_id.policy is not None:
            raise errors.ConfigError(
                f"{self.name}: ':{hub_id.policy}' selects a provider of the router; "
                f"the Inference API (api='inference') does not take it"
            )
        return str(api)

    def _no_revision(self, hub_id: HubId, model: str) -> None:
        """Refuse an ``@revision``: the inference routes serve a model's main revision."""
        if hub_id.revision is not None:
            raise errors.InvalidRequestError(
                f"the Inference API serves the model's main revision; '@{hub_id.revision}' "
                f"cannot be honoured (drop it, or deploy that revision on an endpoint)",
                provider=self.name,
                model=model,
            )

    def _prompt(self, request: ChatRequest, info: ModelInfo) -> str:
        template, end = choose_template(info.model_type, info.eos_token, info.author)
        limit = request.options.get("max_prompt_chars") or _MAX_PROMPT_CHARS
        messages = request.messages
        if request.prefill:  # an open assistant turn: the template's continue form
            messages = (*messages, Message("assistant", request.prefill))
        try:
            return fit(messages, lambda ms: render(template, ms, end), int(limit))
        except ValueError as exc:
            raise errors.ConfigError(f"{self.name}: {exc}") from None

    def _generate_body(self, request: ChatRequest, info: ModelInfo) -> dict[str, Any]:
        """The generate route's request: the prompt, the parameters, streamed or not."""
        return {
            "inputs": self._prompt(request, info),
            "parameters": generation_parameters(request),
            "stream": request.options.get("stream", True) is not False,
        }

    @asynccontextmanager
    async def _answer(
        self,
        model: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        deadline: float | None,
        what: str,
        route: str = "",
    ) -> AsyncIterator[httpx.Response]:
        """``POST {base}/models/{model}{route}``; the successful (streamed) response.

        A 503 "currently loading" is asked again (with ``x-wait-for-model``) while the
        estimate fits ``deadline``; other HTTP errors are raised, typed.
        """
        url = f"{self.base_url}/models/{quote(model, safe='/')}{route}"
        sent = {**headers, **self._auth_headers()}
        attempt = 0
        while True:
            async with self._http.stream("POST", url, json=dict(body), headers=sent) as response:
                if response.status_code < 300:  # a 3xx is an error: redirects are not followed
                    yield response
                    return
                raw = await _error_body(response, self.name, model)
                estimate = loading_estimate(response.status_code, raw)
                if estimate is None:
                    raise self._http_error(response, raw, model, what)
            if not await wait_for_model(estimate, deadline, attempt):
                raise loading_error(estimate, provider=self.name, model=model, body=raw)
            attempt += 1
            sent["x-wait-for-model"] = "1"

    def _http_error(
        self, response: httpx.Response, raw: bytes, model: str, what: str
    ) -> errors.ProviderError:
        return error_from_response(
            response.status_code,
            raw,
            provider=self.name,
            model=model,
            what=what,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
            content_type=response.headers.get("content-type"),
        )

    # -- images ----------------------------------------------------------------------

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        """Generate one image with a text-to-image model (raw bytes -> ``ImageResult``).

        Raises:
            llmrelay.errors.InvalidRequestError: the model is not a text-to-image model.
            llmrelay.errors.ProviderError: HTTP errors, mapped; a loading model that
                does not fit the deadline -> ``ProviderUnavailable``.
            llmrelay.errors.ProtocolError: the answer is not an image.
        """
        model = request.model or IMAGE_MODELS[0]
        hub_id = parse_model_id(model, self.name)
        self._no_revision(hub_id, model)
        if hub_id.policy is not None:
            raise errors.InvalidRequestError(
                f"':{hub_id.policy}' selects a chat provider of the router; images use the "
                f"Inference API",
                provider=self.name,
                model=model,
            )
        with translate_errors(self.name, model):
            info = await self._hub.model_info(model)
            if info.pipeline_tag not in (None, "text-to-image"):
                raise errors.InvalidRequestError(
                    f"{model} is a {info.pipeline_tag} model, not text-to-image",
                    provider=self.name,
                    model=model,
                )
            return await self._image(request, info.id)

    async def _image(self, request: ImageRequest, model: str) -> ImageResult:
        parameters, (width, height) = image_parameters(request)
        body: dict[str, Any] = {"inputs": request.prompt}
        if parameters:
            body["parameters"] = parameters
        headers = {"accept": "image/png, image/jpeg, image/webp, image/*"}
        async with self._answer(
            model, body, headers, request.deadline, "image generation"
        ) as response:
            data = await read_bounded(
                response, provider=self.name, model=model, limit=_MAX_IMAGE, what="image"
            )
            declared = response.headers.get("content-type", "")
        mime, size = sniff_image(data, declared, provider=self.name, model=model)
        real_width, real_height = size or (width, height)
        return ImageResult(data, mime, request.seed, real_width, real_height)

    # -- embeddings ------------------------------------------------------------------

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed with feature extraction, or through the router (module docstring).

        Raises:
            llmrelay.errors.InvalidRequestError: a field the chosen route cannot honour
                (``param`` names it: token ids, ``dimensions`` or ``user`` for feature
                extraction; a feature-extraction option for the router), an
                ``@revision``, or token-level features.
            llmrelay.errors.ProviderError: HTTP errors, mapped; a loading model that
                does not fit the deadline -> ``ProviderUnavailable``.
            llmrelay.errors.ProtocolError: an answer of another shape.
        """
        model = request.model
        hub_id = parse_model_id(model, self.name)
        if self._api(request.options, hub_id) == "router":
            return await self._embed_router(request, model)
        self._no_revision(hub_id, model)
        body = feature_extraction_payload(request, provider=self.name)
        headers = {"accept": "application/json"}
        with translate_errors(self.name, model):
            async with self._answer(
                model,
                body,
                headers,
                request.deadline,
                "feature extraction",
                "/pipeline/feature-extraction",
            ) as response:
                raw = await read_bounded(
                    response, provider=self.name, model=model, limit=ANSWER_LIMIT, what="embeddings"
                )
                usage = usage_from_headers(response.headers)
        payload = loads(raw, provider=self.name, model=model, what="embeddings")
        vectors = parse_features(payload, request, provider=self.name, model=model)
        from ..types import EmbeddingResult  # llmrelay.types loads it on first use

        return EmbeddingResult(vectors, self.name, model, usage)

    async def _embed_router(self, request: EmbeddingRequest, model: str) -> EmbeddingResult:
        """The router's OpenAI-compatible ``POST {router_url}/embeddings``."""
        for name in FEATURE_EXTRACTION_OPTIONS:
            if request.options.get(name) is not None:
                raise errors.InvalidRequestError(
                    f"{self.name} cannot honour {name!r} through the router's OpenAI-compatible "
                    f"embeddings (it is a feature-extraction parameter: use api='inference')",
                    provider=self.name,
                    model=model,
                    param=name,
                )
        with translate_errors(self.name, model):
            try:
                return await post_openai_embeddings(
                    self._http,
                    f"{self.urls['router_url']}/embeddings",
                    request,
                    model,
                    headers=self._auth_headers(),
                    provider=self.name,
                )
            except errors.ProviderError as exc:
                missing = not_supported_error(exc, model)
                if missing is None:
                    raise
                raise missing from exc

    # -- models ----------------------------------------------------------------------

    async def list_models(self) -> Sequence[str]:
        """Built-in models plus the hub's trending ones (cached; built-ins on failure)."""
        now = time.monotonic()
        if self._listed is not None and now - self._listed[0] < _LIST_TTL:
            return self._listed[1]
        found: dict[str, list[str]] = {}

        async def fetch(tag: str, score: float) -> None:
            try:
                found[tag] = await self._hub.trending(tag, score)
            except errors.ProviderError as exc:
                log.warning("%s: trending %s models unavailable: %s", self.name, tag, exc)

        with anyio.move_on_after(_LIST_TIMEOUT):
            async with anyio.create_task_group() as group:
                group.start_soon(fetch, "text-generation", 10)
                group.start_soon(fetch, "text-to-image", 20)
        listed = tuple(
            dict.fromkeys(
                [
                    *TEXT_MODELS,
                    *found.get("text-generation", []),
                    *IMAGE_MODELS,
                    *found.get("text-to-image", []),
                ]
            )
        )
        if len(found) == 2:  # a partial or failed listing is asked again next time
            self._listed = (now, listed)
        return listed


def _prompt_text(request: ChatRequest) -> str:
    try:
        return last_user_message(request.messages)
    except ValueError:
        raise errors.ConfigError("huggingface: the conversation has no user message") from None


async def _error_body(response: httpx.Response, provider: str, model: str) -> bytes:
    return await read_bounded(
        response, provider=provider, model=model, limit=256 * 1024, what="error body"
    )
