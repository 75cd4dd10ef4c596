"""Wire-level fake of the Hugging Face router (``https://router.huggingface.co/v1``).

Ground truth: https://huggingface.co/docs/inference-providers/index (OpenAI-compatible
chat completions; model ids with a provider-selection suffix ``:fastest`` (default),
``:cheapest``, ``:preferred`` or ``:<provider>``); Hugging Face's chat-ui
``src/lib/server/models.ts`` and ``src/lib/server/__fixtures__/models.ts``
(https://github.com/huggingface/chat-ui), the client of the catalogue below; the
refusal of a model no enabled provider serves, HTTP 400 ``{"error": {"message": "The
requested model 'X' is not supported by any provider you have enabled.", "type":
"invalid_request_error", "param": "model", "code": "model_not_supported"}}``, as
users of the router report it. Checked with ``huggingface_hub``'s ``InferenceClient``
(``tests/providers/test_hf_router.py``).

Routes (under ``/v1``):

* ``GET /models`` -> ``{"object": "list", "data": [{"id", "object": "model", "created",
  "owned_by", "architecture": {"input_modalities", "output_modalities"}, "providers":
  [{"provider", "status", "context_length", "pricing": {"input", "output"},
  "supports_tools", "supports_structured_output"}]}]}`` (prices: USD per 1M tokens);
* ``POST /chat/completions`` -> the ``FakeOpenAI`` stream, once the id (suffix and all)
  names a model that an enabled provider serves; ``routed`` records which provider
  each request went to;
* ``POST /embeddings`` -> the ``FakeOpenAI`` embeddings, on the same condition (the
  router's OpenAI-compatible embeddings, where it serves the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes.openai_server import FakeOpenAI, OpenAIScript

__all__ = ["CATALOGUE", "POLICIES", "FakeHFRouter", "RouterScript", "not_supported_body"]

POLICIES = ("fastest", "cheapest", "preferred")


def _offer(
    name: str,
    context: int | None,
    price: tuple[float, float] | None,
    tools: bool,
    structured: bool = False,
    status: str = "live",
) -> dict[str, Any]:
    offer: dict[str, Any] = {"provider": name, "status": status}
    if context is not None:
        offer["context_length"] = context
    if price is not None:
        offer["pricing"] = {"input": price[0], "output": price[1]}
    offer["supports_tools"] = tools
    offer["supports_structured_output"] = structured
    return offer


def _model(
    model_id: str, offers: list[dict[str, Any]], inputs: tuple[str, ...] = ("text",)
) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": 1737000000,
        "owned_by": model_id.split("/")[0],
        "architecture": {"input_modalities": list(inputs), "output_modalities": ["text"]},
        "providers": offers,
    }


CATALOGUE: list[dict[str, Any]] = [
    _model(
        "meta-llama/Llama-3.1-8B-Instruct",
        [
            _offer("novita", 16384, (0.02, 0.05), tools=False),
            _offer("cerebras", 32768, (0.1, 0.1), tools=True, structured=True),
            _offer("featherless-ai", 16384, None, tools=False),
        ],
    ),
    _model(
        "Qwen/Qwen2.5-VL-7B-Instruct",
        [_offer("hyperbolic", 32768, (0.2, 0.2), tools=False)],
        inputs=("text", "image"),
    ),
    _model(
        "Qwen/Qwen2-72B-Instruct",
        [_offer("novita", 32768, (0.9, 0.9), tools=True), _offer("nebius", None, None, True)],
    ),
    _model(
        "deepseek-ai/DeepSeek-R1",
        [
            _offer("together", 163840, (3.0, 7.0), tools=False),
            _offer("fireworks-ai", 163840, (3.0, 8.0), tools=True, status="staging"),
        ],
    ),
]
"""The default catalogue (the shapes chat-ui's fixture and the router's docs show)."""


def not_supported_body(model: str) -> dict[str, Any]:
    """The router's refusal of a model no enabled provider serves."""
    return {
        "error": {
            "message": f"The requested model '{model}' is not supported by any provider "
            "you have enabled.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_supported",
        }
    }


@dataclass
class RouterScript(OpenAIScript):
    """``OpenAIScript`` plus the catalogue and the account's enabled providers.

    Attributes:
        catalogue: the ``GET /models`` items.
        enabled: the inference providers the account enabled, in its preference order
            (``None``: all of them, in catalogue order).
        models_body: replaces the whole ``GET /models`` answer when set.
    """

    catalogue: list[dict[str, Any]] = field(default_factory=lambda: list(CATALOGUE))
    enabled: list[str] | None = None
    models_body: Any = None


class FakeHFRouter(FakeOpenAI):
    """The fake router; ``script`` is a ``RouterScript``; ``routed`` lists the providers
    chosen for the chat requests, in order."""

    script: RouterScript

    def __init__(self, script: RouterScript | None = None) -> None:
        super().__init__(script or RouterScript(), prefix="/v1")
        self.routed: list[str] = []

    def _choose(self, model: str) -> str | None:
        """The inference provider that serves ``model`` (with its suffix), or ``None``."""
        repo, _, suffix = model.partition(":")
        item = next((m for m in self.script.catalogue if m["id"] == repo), None)
        if item is None:
            return None
        enabled = self.script.enabled
        offers = [
            o
            for o in item.get("providers", [])
            if o.get("status", "live") == "live" and (enabled is None or o["provider"] in enabled)
        ]
        if suffix and suffix not in POLICIES:
            offers = [o for o in offers if o["provider"] == suffix]
        if not offers:
            return None
        if suffix == "cheapest":
            priced = [o for o in offers if "pricing" in o] or offers
            return str(min(priced, key=lambda o: o.get("pricing", {}).get("input", 0))["provider"])
        if suffix == "preferred" and enabled is not None:
            return str(min(offers, key=lambda o: enabled.index(o["provider"]))["provider"])
        return str(offers[0]["provider"])

    async def _models(self, request: Request) -> Response:
        await self.recorder.record(request)
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        fault = self.script.fault.take()
        if fault.mode == "http_error":
            return self._error(fault)
        if self.script.models_body is not None:
            return JSONResponse(self.script.models_body)
        return JSONResponse({"object": "list", "data": self.script.catalogue})

    async def _chat(self, request: Request) -> Response:
        refused = await self._route(request)
        return refused if refused is not None else await super()._chat(request)

    async def _embeddings(self, request: Request) -> Response:
        refused = await self._route(request)
        return refused if refused is not None else await super()._embeddings(request)

    async def _route(self, request: Request) -> Response | None:
        """Choose the inference provider; the refusal when none serves the model."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and self.script.fault.mode == "ok":
            chosen = self._choose(model)
            if chosen is None:
                await self.recorder.record(request)
                return JSONResponse(not_supported_body(model.partition(":")[0]), 400)
            self.routed.append(chosen)
        return None
