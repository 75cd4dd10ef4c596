"""Wire-level fake of the Hugging Face Hub model API.

Ground truth: the Hub's public API (recorded ``GET https://huggingface.co/api/models/{id}``
bodies, the 307 of a renamed repository, huggingface_hub ``hf_api.py`` ``list_models``
and ``ModelInfo``).

* ``GET /api/models/{id}`` -> 200 ``application/json; charset=utf-8`` with ``_id, id,
  modelId, author, sha, lastModified, private, disabled, gated, pipeline_tag, tags,
  downloads, library_name, likes, config{architectures, model_type,
  tokenizer_config{bos_token, eos_token, chat_template, ...}}, cardData, siblings,
  spaces, createdAt, inference``; a renamed id -> 307 ``text/plain`` "Temporary
  Redirect. Redirecting to /api/models/<new>" + ``Location``; unknown -> 404
  ``{"error": "Repository not found"}`` with ``x-error-code: RepoNotFound``.
* ``GET /api/models?pipeline_tag=&sort=&limit=`` -> a JSON array of ``{_id, id, likes,
  trendingScore, private, downloads, tags, pipeline_tag, library_name, createdAt,
  modelId}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes._streaming import Fault, Recorder

__all__ = ["DEFAULT_LISTING", "DEFAULT_MODELS", "FakeHub", "HubModel", "HubScript"]


@dataclass(frozen=True)
class HubModel:
    """One repository's metadata (what the provider reads, plus realistic filler)."""

    id: str
    pipeline_tag: str | None = "text-generation"
    model_type: str | None = None
    eos_token: Any = None
    bos_token: Any = None
    chat_template: str | None = None
    library_name: str = "transformers"

    def info(self) -> dict[str, Any]:
        author = self.id.split("/", 1)[0] if "/" in self.id else None
        config: dict[str, Any] = {}
        if self.library_name == "diffusers":
            config = {"diffusers": {"_class_name": "StableDiffusionPipeline"}}
        elif self.model_type is not None:
            tokenizer = {"bos_token": self.bos_token, "eos_token": self.eos_token}
            if self.chat_template is not None:
                tokenizer["chat_template"] = self.chat_template
            config = {
                "architectures": ["ForCausalLM"],
                "model_type": self.model_type,
                "tokenizer_config": {k: v for k, v in tokenizer.items() if v is not None},
            }
        body: dict[str, Any] = {
            "_id": "65" + f"{abs(hash(self.id)):022x}"[:22],
            "id": self.id,
            "modelId": self.id,
            "private": False,
            "pipeline_tag": self.pipeline_tag,
            "library_name": self.library_name,
            "tags": [self.library_name, "safetensors", self.pipeline_tag or "other"],
            "downloads": 1234,
            "likes": 56,
            "sha": "5d2b3629ad1799c7e5306e606e0052246098883b",
            "lastModified": "2024-03-01T00:00:00.000Z",
            "gated": False,
            "inference": "warm",
            "disabled": False,
            "config": config,
            "cardData": {"license": "apache-2.0"},
            "siblings": [{"rfilename": "config.json"}],
            "spaces": [],
            "createdAt": "2023-10-26T00:00:00.000Z",
            "usedStorage": 123456789,
        }
        if author is not None:
            body["author"] = author
        return body


DEFAULT_MODELS: tuple[HubModel, ...] = (
    HubModel("Qwen/Qwen2-72B-Instruct", model_type="qwen2", eos_token="<|im_end|>"),
    HubModel("Qwen/Qwen2.5-72B-Instruct", model_type="qwen2", eos_token="<|im_end|>"),
    HubModel(
        "mistralai/Mistral-7B-Instruct-v0.3",
        model_type="mistral",
        eos_token="</s>",
        bos_token="<s>",
    ),
    HubModel(
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        model_type="mixtral",
        eos_token={"__type": "AddedToken", "content": "</s>", "lstrip": False, "normalized": False},
    ),
    HubModel("meta-llama/Meta-Llama-3-8B-Instruct", model_type="llama", eos_token="<|eot_id|>"),
    HubModel("meta-llama/Llama-3.3-70B-Instruct", model_type="llama", eos_token="<|eot_id|>"),
    HubModel(
        "HuggingFaceH4/zephyr-7b-beta",
        model_type="mistral",
        eos_token="</s>",
        bos_token="<s>",
        chat_template="{% for message in messages %}...{{ '<|user|>\\n' + message['content'] + eos_token }}",
    ),
    HubModel("stabilityai/stablelm-zephyr-3b", model_type="stablelm", eos_token="<|endoftext|>"),
    HubModel(
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
        model_type="qwen2",
        eos_token={"__type": "AddedToken", "content": "<｜end▁of▁sentence｜>"},
    ),
    HubModel("openai-community/gpt2", model_type="gpt2", eos_token="<|endoftext|>"),
    HubModel("google-bert/bert-base-uncased", pipeline_tag="fill-mask", model_type="bert"),
    HubModel(
        "black-forest-labs/FLUX.1-schnell", pipeline_tag="text-to-image", library_name="diffusers"
    ),
    HubModel(
        "stabilityai/stable-diffusion-xl-base-1.0",
        pipeline_tag="text-to-image",
        library_name="diffusers",
    ),
    HubModel(
        "CompVis/stable-diffusion-v1-4", pipeline_tag="text-to-image", library_name="diffusers"
    ),
)

DEFAULT_LISTING: tuple[dict[str, Any], ...] = (
    {"id": "moonshotai/Kimi-K2-Thinking", "trendingScore": 580, "pipeline_tag": "text-generation"},
    {"id": "MiniMaxAI/MiniMax-M2", "trendingScore": 319, "pipeline_tag": "text-generation"},
    {"id": "Qwen/Qwen2-72B-Instruct", "trendingScore": 40, "pipeline_tag": "text-generation"},
    {"id": "someone/exactly-ten", "trendingScore": 10, "pipeline_tag": "text-generation"},
    {"id": "someone/nine", "trendingScore": 9, "pipeline_tag": "text-generation"},
    {"id": "someone/image-twenty", "trendingScore": 20, "pipeline_tag": "text-to-image"},
    {"id": "someone/image-nineteen", "trendingScore": 19, "pipeline_tag": "text-to-image"},
)


@dataclass
class HubScript:
    """What the hub answers.

    Attributes:
        models: known repositories.
        renames: old id -> new id (307 to the new path on the same host).
        external: id -> absolute URL of a redirect to another host.
        listing: items of ``GET /api/models``.
        listing_delay: seconds before the listing answers (for timeouts).
        fault: scripted fault of ``GET /api/models/{id}`` (the listing too).
    """

    models: dict[str, HubModel] = field(default_factory=lambda: {m.id: m for m in DEFAULT_MODELS})
    renames: dict[str, str] = field(
        default_factory=lambda: {"bert-base-uncased": "google-bert/bert-base-uncased"}
    )
    external: dict[str, str] = field(default_factory=dict)
    listing: list[dict[str, Any]] = field(
        default_factory=lambda: [dict(i) for i in DEFAULT_LISTING]
    )
    listing_delay: float = 0.0
    fault: Fault = field(default_factory=Fault)


class FakeHub:
    """The fake hub; ``routes`` can be mounted next to the inference fake's."""

    def __init__(self, script: HubScript | None = None) -> None:
        self.script = script or HubScript()
        self.recorder = Recorder()
        self.routes = [
            Route("/api/models", self._list, methods=["GET"]),
            Route("/api/models/{model:path}", self._info, methods=["GET"]),
        ]
        self.app = Starlette(routes=self.routes)

    @property
    def requests(self) -> list[Any]:
        return [r for r in self.recorder.requests if r.path.startswith("/api/")]

    async def _info(self, request: Request) -> Response:
        await self.recorder.record(request)
        script = self.script
        model = request.path_params["model"]
        fault = script.fault.take()
        if fault.mode == "http_error":
            body = fault.body if fault.body is not None else {"error": f"scripted {fault.status}"}
            return JSONResponse(body, fault.status)
        if model in script.external:
            target = script.external[model]
            return PlainTextResponse(
                f"Found. Redirecting to {target}", 307, headers={"location": target}
            )
        if model in script.renames:
            target = f"/api/models/{script.renames[model]}"
            return PlainTextResponse(
                f"Temporary Redirect. Redirecting to {target}", 307, headers={"location": target}
            )
        if model not in script.models:
            return JSONResponse(
                {"error": "Repository not found"}, 404, headers={"x-error-code": "RepoNotFound"}
            )
        return JSONResponse(
            script.models[model].info(), media_type="application/json; charset=utf-8"
        )

    async def _list(self, request: Request) -> Response:
        received = await self.recorder.record(request)
        script = self.script
        if script.listing_delay:
            await anyio.sleep(script.listing_delay)
        fault = script.fault.take()
        if fault.mode == "http_error":
            return JSONResponse({"error": f"scripted {fault.status}"}, fault.status)
        tag = received.query.get("pipeline_tag")
        items = [i for i in script.listing if tag is None or i.get("pipeline_tag") == tag]
        items.sort(key=lambda i: -float(i.get("trendingScore", 0)))
        limit = received.query.get("limit")
        if limit and limit.isdigit():
            items = items[: int(limit)]
        out = []
        for item in items:
            full = {
                "_id": "6909b87b734dd24dd19da3ef",
                "id": item["id"],
                "likes": 10,
                "trendingScore": item.get("trendingScore"),
                "private": False,
                "downloads": 100,
                "tags": ["transformers", item.get("pipeline_tag")],
                "pipeline_tag": item.get("pipeline_tag"),
                "library_name": "transformers",
                "createdAt": "2025-11-04T08:25:31.000Z",
                "modelId": item["id"],
            }
            out.append(full)
        return JSONResponse(out, media_type="application/json; charset=utf-8")
