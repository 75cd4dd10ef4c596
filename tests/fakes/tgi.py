"""Wire-level fake of the Hugging Face Inference API (TGI text generation, text-to-image,
feature extraction).

Ground truth: TGI's public source (text-generation-inference ``router/src/lib.rs`` ``StreamResponse``
and ``router/src/server.rs``; recordings of api-inference.huggingface.co from the
huggingface_hub cassettes and huggingface.js tapes). Checked with
``huggingface_hub.InferenceClient`` (``tests/fidelity/test_tgi_fake.py``).

``POST /models/{model}`` with ``{"inputs", "parameters"?, "stream"?}``:

* text models, ``stream: true`` -> ``text/event-stream``, one ``data:{json}\\n\\n`` per
  token: ``{"index"?, "token": {"id", "text", "logprob", "special"}, "top_tokens"?,
  "generated_text": null, "details": null}``; the last event carries ``generated_text``
  and, when ``parameters.details`` was true, ``details`` (``finish_reason``,
  ``generated_tokens``, ``seed``, ``input_length``?). The end is an eos special token,
  the ``max_new_tokens`` limit (``length``) or a stop sequence (included in the text).
* text models, no stream -> ``[{"generated_text": ..., "details"?: {...}}]``.
* image models -> raw image bytes with ``content-type: image/jpeg`` or ``image/png``.
``POST /models/{model}/pipeline/feature-extraction`` with ``{"inputs": str | [str],
"normalize"?, "truncate"?, "truncation_direction"?, "prompt_name"?}`` (huggingface_hub
``HFInferenceFeatureExtractionTask``: the parameters at the root; text-embeddings-inference
``router/src/http/types.rs`` ``EmbedRequest``/``EmbedResponse``, unknown fields ignored,
``normalize`` true by default) -> ``application/json`` ``[[f32, ...], ...]``, one vector
per input, floats in serde_json's shortest float32 form, with TEI's ``x-compute-type``,
``x-compute-characters`` and ``x-compute-tokens`` headers; ``flat_single`` answers a
single text with one flat ``[f32, ...]`` (the older sentence-transformers pipeline);
a model in ``token_level_models`` answers token-level ``[[[f32, ...], ...]]``; inputs
that are not text get TEI's 422 ``{"error", "error_type": "validation"}``.

* errors (``Fault``): the §2.3 bodies by status, an ``{"error", "error_type"}`` event
  inside a 200 stream, ``loading`` 503 answers with ``estimated_time`` (a request with
  ``x-wait-for-model`` is held until the model "loaded"), malformed / cut / held streams.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes._streaming import AbruptClose, Fault, Recorder, TrackedStream, dumps, hold
from tests.fakes.embeddings import F32Json, vector_for

__all__ = [
    "DEFAULT_TOKENS",
    "ERROR_BODIES",
    "FakeTGI",
    "TGIScript",
    "jpeg_bytes",
    "png_bytes",
]

DEFAULT_TOKENS: tuple[str, ...] = (
    "Hello",
    ",",
    " world",
    " world",
    "!\n",
    "\n",
    "Ура",
    " 🚀",
    "",
    " done.",
)
ERROR_BODIES: dict[int, Any] = {
    400: {"error": ["Error in `inputs.context`: field required"]},
    401: {"error": "Invalid credentials in Authorization header"},
    404: {"error": "Model this-model-does-not-exist-123 does not exist"},
    422: {
        "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
        "Given: 17 `inputs` tokens and 10000 `max_new_tokens`",
        "error_type": "validation",
    },
    424: {
        "error": "Request failed during generation: CUDA out of memory",
        "error_type": "generation",
    },
    429: {"error": "Rate limit reached. Please log in or use a HF access token"},
    500: {"error": "unknown error", "warnings": ["There was an inference error: unknown error"]},
    503: {"error": "overloaded"},
}
"""Default error bodies by status (recorded shapes, TGI ``router/src/server.rs`` ``ErrorResponse``)."""
TEXT_PLAIN_422 = (
    "Failed to deserialize the JSON body into the target type: inputs: invalid type: map, "
    "expected a string at line 1 column 11"
)

End = Literal["eos", "length", "stop_sequence"]


def png_bytes(width: int = 3, height: int = 2) -> bytes:
    """A valid tiny RGB PNG of ``width`` x ``height``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(width: int = 16, height: int = 8) -> bytes:
    """JPEG-framed bytes (SOI, APP0, SOF0 with the size, EOI): enough for sniffing."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


@dataclass
class TGIScript:
    """What the fake answers (defaults: a 2025 TGI streaming an eos-terminated answer).

    Attributes:
        tokens: the normal tokens' texts.
        end: how generation ends when ``max_new_tokens`` does not cut it first.
        eos_text: the special end token's text.
        space: ``data: `` (2024-08 on) or ``data:`` (2023 - 2024-06).
        index: include ``index`` (2024 on).
        details: force ``details`` on (True) or off (False); ``None`` = as requested.
        input_length: include ``details.input_length`` (2025).
        top_tokens: include a ``top_tokens`` list per event.
        comment: send a ``:`` keep-alive comment line before the first event.
        json_only: answer JSON even to ``stream: true`` (a non-TGI pipeline).
        loading: how many requests get 503 "currently loading" before the model is up.
        estimated_time: the 503's ``estimated_time``.
        image_models: models answering image bytes.
        image: the image bytes; ``image_type`` the content-type sent with them.
        embedding_dims: the length of the feature-extraction vectors.
        flat_single: answer a single text with a flat vector (older pipelines).
        compute_tokens: send the ``x-compute-tokens`` header.
        token_level_models: models answering token-level features (no pooling).
        fault: scripted fault.
        continues: ``inputs`` ending in the first tokens of the answer (an open assistant
            turn, as llmrelay renders it to continue a partial answer) get the rest only,
            as TGI's ``generate`` continues whatever prompt it is given.
    """

    tokens: list[str] = field(default_factory=lambda: list(DEFAULT_TOKENS))
    end: End = "eos"
    eos_text: str = "</s>"
    space: bool = True
    index: bool = True
    details: bool | None = None
    input_length: bool = True
    top_tokens: bool = False
    comment: bool = False
    json_only: bool = False
    loading: int = 0
    estimated_time: float = 0.2
    image_models: set[str] = field(
        default_factory=lambda: {
            "black-forest-labs/FLUX.1-schnell",
            "stabilityai/stable-diffusion-xl-base-1.0",
            "CompVis/stable-diffusion-v1-4",
        }
    )
    image: bytes = field(default_factory=png_bytes)
    image_type: str = "image/png"
    embedding_dims: int = 8
    flat_single: bool = False
    compute_tokens: bool = True
    token_level_models: set[str] = field(default_factory=lambda: {"google-bert/bert-base-uncased"})
    fault: Fault = field(default_factory=Fault)
    continues: bool = False


class FakeTGI:
    """The fake inference API; ``routes`` can be mounted next to the hub fake's."""

    def __init__(self, script: TGIScript | None = None) -> None:
        self.script = script or TGIScript()
        self.recorder = Recorder()
        self.routes = [
            Route(
                "/models/{model:path}/pipeline/feature-extraction",
                self._feature_extraction,
                methods=["POST"],
            ),
            Route("/models/{model:path}", self._generate, methods=["POST"]),
        ]
        self.app = Starlette(routes=self.routes)

    @property
    def requests(self) -> list[Any]:
        return [r for r in self.recorder.requests if r.path.startswith("/models/")]

    def wait_closed(self, timeout: float) -> bool:
        return self.recorder.wait_closed(timeout)

    @property
    def expected_text(self) -> str:
        return "".join(self.script.tokens)

    # -- responses ---------------------------------------------------------------------

    def _error(self, fault: Fault) -> Response:
        headers = {"retry-after": fault.retry_after} if fault.retry_after else None
        body = (
            fault.body
            if fault.body is not None
            else ERROR_BODIES.get(fault.status, {"error": "error"})
        )
        if isinstance(body, str):
            return PlainTextResponse(body, fault.status, headers=headers)
        return JSONResponse(body, fault.status, headers=headers)

    async def _loading(self, received: Any, model: str) -> Response | None:
        """The 503 "currently loading" answer while the model loads (else ``None``)."""
        script = self.script
        if script.loading > 0:
            if received.headers.get("x-wait-for-model"):
                await anyio.sleep(script.estimated_time)  # held until the model is up
                script.loading = 0
            else:
                script.loading -= 1
                return JSONResponse(
                    {
                        "error": f"Model {model} is currently loading",
                        "estimated_time": script.estimated_time,
                    },
                    503,
                )
        return None

    async def _feature_extraction(self, request: Request) -> Response:
        received = await self.recorder.record(request)
        script = self.script
        model = request.path_params["model"]
        body = received.json
        if not isinstance(body, dict) or "inputs" not in body:
            return PlainTextResponse(TEXT_PLAIN_422, 422)
        loading = await self._loading(received, model)
        if loading is not None:
            return loading
        fault = script.fault.take()
        if fault.first_byte_delay:
            await anyio.sleep(fault.first_byte_delay)
        if fault.mode == "http_error":
            return self._error(fault)
        inputs = body["inputs"]
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return JSONResponse(
                {
                    "error": "Input validation error: `inputs` must be text",
                    "error_type": "validation",
                },
                422,
            )
        normalize = body.get("normalize", True) is not False
        prefix = f"{body['prompt_name']}: " if isinstance(body.get("prompt_name"), str) else ""
        vectors = [
            vector_for(model, prefix + text, script.embedding_dims, normalize=normalize)
            for text in texts
        ]
        if model in script.token_level_models:
            text = "[" + ",".join("[" + F32Json(v).text() + "]" for v in vectors) + "]"
        elif isinstance(inputs, str) and script.flat_single:
            text = F32Json(vectors[0]).text()
        else:
            text = "[" + ",".join(F32Json(v).text() for v in vectors) + "]"
        headers = {"x-compute-type": "cpu", "x-compute-characters": str(sum(map(len, texts)))}
        if script.compute_tokens:
            headers["x-compute-tokens"] = str(sum(len(t.split()) + 2 for t in texts))
        return Response(text, 200, media_type="application/json", headers=headers)

    async def _generate(self, request: Request) -> Response:
        received = await self.recorder.record(request)
        script = self.script
        model = request.path_params["model"]
        body = received.json
        if not isinstance(body, dict) or "inputs" not in body:
            return PlainTextResponse(TEXT_PLAIN_422, 422)
        loading = await self._loading(received, model)
        if loading is not None:
            return loading
        fault = script.fault.take()
        if fault.first_byte_delay:
            await anyio.sleep(fault.first_byte_delay)
        if fault.mode == "http_error":
            return self._error(fault)
        if model in script.image_models:
            return Response(script.image, 200, media_type=script.image_type)
        if not isinstance(body["inputs"], str):
            return PlainTextResponse(TEXT_PLAIN_422, 422)
        params = body.get("parameters") or {}
        tokens, reason = self._plan(params)
        if script.continues:
            texts = [text for text, _ in tokens]
            done = max(
                (k for k in range(1, len(texts)) if body["inputs"].endswith("".join(texts[:k]))),
                default=0,
            )
            tokens = tokens[done:]
        details = script.details if script.details is not None else bool(params.get("details"))
        if not body.get("stream") or script.json_only:
            answer: dict[str, Any] = {
                "generated_text": "".join(t for t, special in tokens if not special)
            }
            if details:
                answer["details"] = self._details(reason, tokens, params)
            return JSONResponse([answer])
        return TrackedStream(
            self.recorder.tracked(self._events(tokens, reason, details, params, fault)),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    def _plan(self, params: dict[str, Any]) -> tuple[list[tuple[str, bool]], str]:
        """``[(text, special)]`` of the tokens to send and the finish reason."""
        script = self.script
        texts = list(script.tokens)
        limit = params.get("max_new_tokens")
        stop = [s for s in params.get("stop") or [] if isinstance(s, str) and s]
        if script.end == "stop_sequence":
            texts.append(stop[0] if stop else "\n")
        if isinstance(limit, int) and limit < len(texts) + (script.end == "eos"):
            return [(t, False) for t in texts[:limit]], "length"
        if script.end == "eos":
            return [*((t, False) for t in texts), (script.eos_text, True)], "eos_token"
        if script.end == "length":
            return [(t, False) for t in texts], "length"
        return [(t, False) for t in texts], "stop_sequence"

    def _details(
        self, reason: str, tokens: list[tuple[str, bool]], params: dict[str, Any]
    ) -> dict[str, Any]:
        details: dict[str, Any] = {
            "finish_reason": reason,
            "generated_tokens": len(tokens),
            "seed": params.get("seed"),
        }
        if self.script.input_length:
            details["input_length"] = 17
        return details

    def _frame(self, payload: Any) -> str:
        return f"data:{' ' if self.script.space else ''}{dumps(payload)}\n\n"

    def _event(self, index: int, text: str, special: bool) -> dict[str, Any]:
        event: dict[str, Any] = {"index": index + 1} if self.script.index else {}
        token = {
            "id": 1000 + index if not special else 2,
            "text": text,
            "logprob": -0.5,
            "special": special,
        }
        event["token"] = token
        if self.script.top_tokens:
            event["top_tokens"] = [token]
        event["generated_text"] = None
        event["details"] = None
        return event

    async def _events(
        self,
        tokens: list[tuple[str, bool]],
        reason: str,
        details: bool,
        params: dict[str, Any],
        fault: Fault,
    ) -> AsyncIterator[str]:
        if self.script.comment:
            yield ":\n\n"
        last = len(tokens) - 1
        for index, (text, special) in enumerate(tokens):
            if fault.mode != "ok" and index == fault.after:
                break
            event = self._event(index, text, special)
            if index == last:
                event["generated_text"] = "".join(t for t, s in tokens if not s)
                if details:
                    event["details"] = self._details(reason, tokens, params)
            yield self._frame(event)
        else:
            return
        if fault.mode == "malformed":
            yield f'data:{" " if self.script.space else ""}{{"token":{{"id":1,"text":\n\n'
        elif fault.mode == "disconnect":
            raise AbruptClose("dropped mid-stream")
        elif fault.mode == "hold_open":
            await hold()
        # "truncate": the response just ends
        elif fault.mode == "inband_error":
            body = fault.body or {
                "error": "Request failed during generation: overloaded",
                "error_type": "generation",
            }
            yield self._frame(body)
