"""Wire-level fake of an OpenAI-compatible server (chat completions, embeddings, models).

Ground truth: the OpenAI API reference (chat streaming, error object, models list) and
the Hugging Face recordings of TGI's ``/v1/chat/completions`` (huggingface_hub's test cassettes: 2025
``chat.completion.chunk`` with ``data: `` and ``[DONE]``; 2024-03 ``object:
"text_completion"``, no space, 1-based ``index``, ``finish_reason: "eos_token"`` on a
``"</s>"`` delta and no ``[DONE]``). Checked with the ``openai`` SDK
(``tests/fidelity/test_openai_fake.py``).

Routes (under ``prefix``, default ``/v1``):

* ``POST /chat/completions`` -> SSE chunks when ``stream`` is true (a usage chunk with
  ``choices: []`` when ``stream_options.include_usage``), else one ``chat.completion``;
* ``GET /models`` -> ``{"object": "list", "data": [{"id", "object", "created", "owned_by"}]}``;
* ``POST /embeddings`` (openai-python ``types/embedding_create_params.py`` and
  ``create_embedding_response.py``; text-embeddings-inference ``OpenAICompatRequest``):
  ``input`` a string, strings, token ids or token-id arrays; ``dimensions`` honoured by
  the models in ``dimension_models`` (OpenAI's ``text-embedding-3-*``), refused by the
  others with OpenAI's 400 (``param: null``), or silently ignored with
  ``ignores_dimensions`` (as servers that drop unknown fields do); ``encoding_format``
  ``base64`` answers packed little-endian float32; ``usage`` counts one token per word or
  id (shape as OpenAI's, not its tokenizer);
* errors: ``{"error": {"message", "type", "param", "code"}}`` with the scripted status.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes._streaming import AbruptClose, Fault, Recorder, TrackedStream, dumps, hold
from tests.fakes.embeddings import F32Json, b64, vector_for

__all__ = ["DEFAULT_CHUNKS", "ERROR_TYPES", "FakeOpenAI", "OpenAIScript"]

DEFAULT_CHUNKS: tuple[str, ...] = (
    "Hello",
    ",",
    " world",
    " world",
    "!\n",
    "\n",
    "Ура 🚀",
    "",
    " ok",
)
ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    422: ("invalid_request_error", None),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
}
"""Status -> (error type, code) of OpenAI's error object."""

Flavor = Literal["2025", "2024-03"]


@dataclass
class OpenAIScript:
    """What the fake answers.

    Attributes:
        chunks: the content deltas.
        reasoning: ``reasoning_content`` deltas sent before the content.
        reasoning_key: ``"reasoning_content"`` (DeepSeek, vLLM) or ``"reasoning"``.
        finish: the final ``finish_reason`` (``""``: no finishing chunk at all).
        flavor: ``"2025"`` (``chat.completion.chunk``, ``data: ``, ``[DONE]``) or
            ``"2024-03"`` (TGI 1.4: ``text_completion``, ``data:``, eos delta, no DONE).
        space: whether ``data:`` is followed by a space (default from the flavor).
        send_done: send ``data: [DONE]`` (default from the flavor).
        models: ids listed by ``GET /models``.
        api_key: when set, requests must carry ``Authorization: Bearer <api_key>``.
        embedding_dims: the models' full vector length.
        dimension_models: models that can shorten their vectors (``dimensions``).
        ignores_dimensions: ignore ``dimensions`` instead of refusing it.
        omit_usage: answer embeddings without ``usage``.
        reverse_data: list the embedding objects in reverse ``index`` order.
        fault: scripted fault.
    """

    chunks: list[str] = field(default_factory=lambda: list(DEFAULT_CHUNKS))
    reasoning: list[str] = field(default_factory=list)
    reasoning_key: str = "reasoning_content"
    finish: str = "stop"
    flavor: Flavor = "2025"
    space: bool | None = None
    send_done: bool | None = None
    models: list[str] = field(default_factory=lambda: ["fake-model", "fake-model-2"])
    api_key: str | None = None
    embedding_dims: int = 12
    dimension_models: set[str] = field(
        default_factory=lambda: {"text-embedding-3-small", "text-embedding-3-large"}
    )
    ignores_dimensions: bool = False
    omit_usage: bool = False
    reverse_data: bool = False
    fault: Fault = field(default_factory=Fault)


class FakeOpenAI:
    """The fake server; mutate ``script`` between requests; ``recorder`` sees everything."""

    def __init__(self, script: OpenAIScript | None = None, prefix: str = "/v1") -> None:
        self.script = script or OpenAIScript()
        self.recorder = Recorder()
        self.prefix = prefix
        self.routes = [
            Route(f"{prefix}/chat/completions", self._chat, methods=["POST"]),
            Route(f"{prefix}/models", self._models, methods=["GET"]),
            Route(f"{prefix}/embeddings", self._embeddings, methods=["POST"]),
        ]
        self.app = Starlette(routes=self.routes)

    @property
    def requests(self) -> list[Any]:
        return self.recorder.requests

    def wait_closed(self, timeout: float) -> bool:
        return self.recorder.wait_closed(timeout)

    @property
    def expected_text(self) -> str:
        return "".join(self.script.chunks)

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def error_body(status: int, message: str | None = None) -> dict[str, Any]:
        kind, code = ERROR_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        return {
            "error": {
                "message": message or f"scripted error {status}",
                "type": kind,
                "param": None,
                "code": code,
            }
        }

    def _error(self, fault: Fault) -> Response:
        headers = {"retry-after": fault.retry_after} if fault.retry_after else None
        body = fault.body if fault.body is not None else self.error_body(fault.status)
        if isinstance(body, str):
            return PlainTextResponse(body, fault.status, headers=headers)
        return JSONResponse(body, fault.status, headers=headers)

    def _unauthorized(self, request: Request) -> Response | None:
        key = self.script.api_key
        if key and request.headers.get("authorization") != f"Bearer {key}":
            return JSONResponse(self.error_body(401, "Incorrect API key provided"), 401)
        return None

    # -- routes ------------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        await self.recorder.record(request)
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        fault = self.script.fault.take()
        if fault.mode == "http_error":
            return self._error(fault)
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in self.script.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def _embeddings(self, request: Request) -> Response:
        received = await self.recorder.record(request)
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        body = received.json
        script = self.script
        fault = script.fault.take()
        if fault.mode == "http_error":
            return self._error(fault)
        if not isinstance(body, dict) or "input" not in body or "model" not in body:
            return JSONResponse(self.error_body(400, "'input' and 'model' are required"), 400)
        items = _embedding_items(body["input"])
        if items is None:
            return JSONResponse(
                self.error_body(400, "'$.input' is invalid. Please check the API reference"), 400
            )
        model = str(body["model"])
        dims = script.embedding_dims
        asked = body.get("dimensions")
        if asked is not None and not script.ignores_dimensions:
            if model not in script.dimension_models:
                return JSONResponse(
                    self.error_body(400, "This model does not support specifying dimensions."),
                    400,
                )
            if not isinstance(asked, int) or not 1 <= asked <= dims:
                return JSONResponse(self.error_body(400, "Invalid 'dimensions'"), 400)
            dims = asked
        encoding = body.get("encoding_format", "float")
        objects = []
        for index, item in enumerate(items):
            vector = vector_for(model, item, dims)
            value = f'"{b64(vector)}"' if encoding == "base64" else F32Json(vector).text()
            objects.append(f'{{"object":"embedding","index":{index},"embedding":{value}}}')
        if script.reverse_data:
            objects.reverse()
        tokens = sum(len(i) if isinstance(i, list) else len(i.split()) for i in items)
        usage = (
            ""
            if script.omit_usage
            else (f',"usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}')
        )
        text = f'{{"object":"list","data":[{",".join(objects)}],"model":{dumps(model)}{usage}}}'
        return Response(text, 200, media_type="application/json")

    async def _chat(self, request: Request) -> Response:
        received = await self.recorder.record(request)
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        body = received.json
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return JSONResponse(self.error_body(400, "'messages' is a required property"), 400)
        script = self.script
        fault = script.fault.take()
        if fault.first_byte_delay:
            await anyio.sleep(fault.first_byte_delay)
        if fault.mode == "http_error":
            return self._error(fault)
        model = str(body.get("model") or script.models[0])
        if not body.get("stream"):
            return JSONResponse(self._completion(model))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return TrackedStream(
            self.recorder.tracked(self._events(model, include_usage, fault)),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    def _completion(self, model: str) -> dict[str, Any]:
        script = self.script
        message: dict[str, Any] = {"role": "assistant", "content": "".join(script.chunks)}
        if script.reasoning:
            message[script.reasoning_key] = "".join(script.reasoning)
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": script.finish}
            ],
            "usage": self._usage(),
        }

    def _usage(self) -> dict[str, int]:
        completion = len(self.script.chunks) + len(self.script.reasoning)
        return {"prompt_tokens": 7, "completion_tokens": completion, "total_tokens": 7 + completion}

    def _frame(self, payload: Any) -> str:
        script = self.script
        space = script.space if script.space is not None else script.flavor == "2025"
        data = payload if isinstance(payload, str) else dumps(payload)
        return f"data:{' ' if space else ''}{data}\n\n"

    def _chunk(
        self, model: str, index: int, delta: dict[str, Any], finish: str | None
    ) -> dict[str, Any]:
        legacy = self.script.flavor == "2024-03"
        chunk: dict[str, Any] = {
            "id": "" if legacy else "chatcmpl-fake",
            "object": "text_completion" if legacy else "chat.completion.chunk",
            "created": 1736953800,
            "model": model,
            "system_fingerprint": "1.4.3-sha-e6bb3ff" if legacy else "3.0.1-sha-bb9095a",
            "choices": [
                {
                    "index": index + 1 if legacy else 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
        }
        if not legacy:
            chunk["usage"] = None
        return chunk

    async def _events(self, model: str, include_usage: bool, fault: Fault) -> AsyncIterator[str]:
        script = self.script
        legacy = script.flavor == "2024-03"
        deltas: list[dict[str, Any]] = [
            {"role": "assistant", script.reasoning_key: piece, "content": None}
            for piece in script.reasoning
        ]
        deltas += [{"role": "assistant", "content": piece} for piece in script.chunks]
        frames: list[str] = []
        for index, delta in enumerate(deltas):
            if fault.mode != "ok" and index == fault.after:
                break
            frames.append(self._frame(self._chunk(model, index, delta, None)))
        for frame in frames:
            yield frame
        if fault.mode == "malformed":
            yield self._frame('{"object":"chat.completion.chunk","choices":[{"delta":')
            return
        if fault.mode == "disconnect":
            raise AbruptClose("dropped mid-stream")
        if fault.mode == "hold_open":
            await hold()
            return
        if fault.mode == "truncate":
            return
        if fault.mode == "inband_error":
            body = fault.body if fault.body is not None else self.error_body(fault.status)
            yield self._frame(body)
            return
        if legacy:
            final = {"role": "assistant", "content": "</s>"}
            yield self._frame(self._chunk(model, len(deltas), final, "eos_token"))
        elif script.finish:
            final = {"role": "assistant", "content": ""}
            yield self._frame(self._chunk(model, len(deltas), final, script.finish))
        if include_usage and not legacy:
            usage = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1736953800,
                "model": model,
                "choices": [],
                "usage": self._usage(),
            }
            yield self._frame(usage)
        send_done = script.send_done if script.send_done is not None else not legacy
        if send_done:
            yield self._frame("[DONE]")


def _embedding_items(value: Any) -> list[Any] | None:
    """The inputs of an embeddings request (texts or token-id lists), or ``None``."""
    if isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) and v for v in value):
        return list(value)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [list(value)]
    if all(isinstance(v, list) and v and all(isinstance(i, int) for i in v) for v in value):
        return [list(v) for v in value]
    return None
