"""Embeddings on the wire: OpenAI's ``/v1/embeddings`` and Hugging Face feature extraction.

**OpenAI-compatible** (OpenAI, the Hugging Face router, vLLM, text-embeddings-inference,
llama.cpp, Ollama …). Public sources: https://platform.openai.com/docs/api-reference/embeddings,
openai-python ``src/openai/types/embedding_create_params.py``,
``create_embedding_response.py``, ``embedding.py`` and ``lib/_parsing/_embeddings.py``
(https://github.com/openai/openai-python); text-embeddings-inference
``router/src/http/types.rs`` ``OpenAICompatRequest`` / ``OpenAICompatResponse``
(https://github.com/huggingface/text-embeddings-inference)::

    POST {base}/embeddings
        {"model": str, "input": str | [str] | [int] | [[int]], "dimensions"?: int,
         "user"?: str, "encoding_format"?: "float" | "base64"}
    200 {"object": "list", "model": str,
         "data": [{"object": "embedding", "index": int,
                   "embedding": [float, ...] | "<base64 of little-endian float32>"}],
         "usage": {"prompt_tokens": int, "total_tokens": int}}
    errors: {"error": {"message", "type", "param", "code"}}

``encoding_format`` is not sent (the default, ``float``): the caller's choice of encoding
is llmrelay's to make from the float32 values (``llmrelay._openai_embeddings``); an
answer in base64 is decoded all the same. ``dimensions`` and ``user`` are sent as given;
a vector of another length than ``dimensions`` is refused (a server that ignores the
field does not pass unnoticed).

**Hugging Face feature extraction** (the Inference API's ``hf-inference``, served by
text-embeddings-inference). Public sources: huggingface_hub
``src/huggingface_hub/inference/_client.py`` (``feature_extraction``) and
``inference/_providers/hf_inference.py`` (``HFInferenceFeatureExtractionTask``: the
parameters at the root of the body; the route), the task's input spec
``packages/tasks/src/tasks/feature-extraction/spec/input.json``
(https://github.com/huggingface/huggingface.js), text-embeddings-inference
``EmbedRequest`` / ``EmbedResponse`` and its ``x-compute-tokens`` response header::

    POST {base}/models/{model}/pipeline/feature-extraction
        {"inputs": str | [str], "normalize"?: bool, "truncate"?: bool,
         "truncation_direction"?: "left" | "right", "prompt_name"?: str}
    200 [[float, ...], ...]     one vector per input (text-embeddings-inference);
        [float, ...]            for one text (older sentence-transformers pipelines);
        [[[float, ...], ...]]   token-level features (a model without pooling): refused

The task takes text only: token-id input, ``dimensions`` and ``user`` are refused with an
``InvalidRequestError`` naming the field (``param``) and the provider, never converted.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from .. import errors
from .._http import loads, raise_for_status, read_json, upstream_text
from ..types import Usage
from ._base import Option

if TYPE_CHECKING:
    from ..types import EmbeddingRequest, EmbeddingResult

__all__ = [
    "ANSWER_LIMIT",
    "FEATURE_EXTRACTION_OPTIONS",
    "check_vectors",
    "feature_extraction_payload",
    "openai_embeddings_payload",
    "parse_features",
    "parse_openai_embeddings",
    "post_openai_embeddings",
    "usage_from_headers",
]

ANSWER_LIMIT = 192 * 1024 * 1024
"""Largest embeddings answer read, in bytes: OpenAI's largest request (2048 inputs) of
3072-dimension vectors is about 125 MB of JSON."""

FEATURE_EXTRACTION_OPTIONS: Mapping[str, Option] = {
    "normalize": Option(bool, "embeddings: L2-normalise the vectors (the server's default: true)"),
    "truncate": Option(bool, "embeddings: cut inputs longer than the model takes"),
    "truncation_direction": Option(str, "embeddings: 'left' or 'right' (with truncate)"),
    "prompt_name": Option(str, "embeddings: a sentence-transformers prompt name, e.g. 'query'"),
}
"""The feature-extraction parameters a caller may set (``EmbeddingRequest.options``)."""


def _refuse(field: str, why: str, *, provider: str, model: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(
        f"{provider} cannot honour {field!r}: {why}", provider=provider, model=model, param=field
    )


def _wire_input(request: EmbeddingRequest) -> Any:
    """The input as JSON: a string, or a list (of strings, ids or id lists)."""
    value = request.input
    if isinstance(value, str):
        return value
    if request.tokens and not isinstance(value[0], int):
        return [list(ids) for ids in value]
    return list(value)


# -- OpenAI-compatible ------------------------------------------------------------------


def openai_embeddings_payload(request: EmbeddingRequest, model: str) -> dict[str, Any]:
    """The ``POST /embeddings`` body of ``request`` (every field it carries, as given)."""
    payload: dict[str, Any] = {"model": model, "input": _wire_input(request)}
    if request.dimensions is not None:
        payload["dimensions"] = request.dimensions
    if request.user is not None:
        payload["user"] = request.user
    return payload


async def post_openai_embeddings(
    http: httpx.AsyncClient,
    url: str,
    request: EmbeddingRequest,
    model: str,
    *,
    headers: Mapping[str, str],
    provider: str,
) -> EmbeddingResult:
    """``POST url`` with ``request`` and parse the answer (see the module docstring).

    Raises:
        llmrelay.errors.ProviderError: HTTP errors, mapped (an upstream 400 keeps the
            ``param`` its error object names); ``ProtocolError`` for another shape;
            ``InvalidRequestError`` (``param="dimensions"``) when the vectors are not
            ``request.dimensions`` long.
    """
    payload = openai_embeddings_payload(request, model)
    async with http.stream("POST", url, json=payload, headers=dict(headers)) as response:
        try:
            await raise_for_status(response, provider=provider, model=model, what="embeddings")
        except errors.InvalidRequestError as exc:
            exc.param = _upstream_param(exc.body)
            raise
        body = await read_json(
            response, provider=provider, model=model, limit=ANSWER_LIMIT, what="embeddings"
        )
    return parse_openai_embeddings(body, request, provider=provider, model=model)


def _upstream_param(body: str | None) -> str | None:
    """The ``error.param`` of an OpenAI error body (bounded), else ``None``."""
    if not body:
        return None
    try:
        payload = loads(body, provider="", model=None)
    except errors.ProtocolError:
        return None
    error = payload.get("error") if isinstance(payload, Mapping) else None
    param = error.get("param") if isinstance(error, Mapping) else None
    return upstream_text(param, 64)


def parse_openai_embeddings(
    body: Any, request: EmbeddingRequest, *, provider: str, model: str
) -> EmbeddingResult:
    """The ``EmbeddingResult`` of an OpenAI ``create_embedding_response`` body.

    Items are put in ``index`` order (their position when there is no index).

    Raises:
        llmrelay.errors.ProtocolError: no ``data`` list, an item without a vector, a
            missing or repeated index, a vector that is not finite numbers (or not
            float32 base64), vectors of different lengths, or another count than asked.
        llmrelay.errors.InvalidRequestError: vectors not ``request.dimensions`` long.
    """
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise _protocol("the embeddings answer has no 'data' list", provider, model)
    found: dict[int, tuple[float, ...]] = {}
    for position, item in enumerate(data):
        if not isinstance(item, Mapping) or "embedding" not in item:
            raise _protocol(f"data[{position}] is not an embedding object", provider, model)
        index = item.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int) or index in found:
            raise _protocol(f"data[{position}] has a bad or repeated index", provider, model)
        found[index] = _vector(item["embedding"], provider, model)
    vectors = tuple(found[i] for i in sorted(found))
    if sorted(found) != list(range(len(found))):
        raise _protocol("the embedding indexes are not 0..n-1", provider, model)
    check_vectors(vectors, request, provider=provider, model=model)
    from ..types import EmbeddingResult  # llmrelay.types loads it on first use

    return EmbeddingResult(vectors, provider, model, _usage(body.get("usage")))


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, Mapping):
        return None
    prompt = _count(value.get("prompt_tokens"))
    total = _count(value.get("total_tokens"))
    if prompt is None and total is None:
        return None
    return Usage(prompt_tokens=prompt, total_tokens=total)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


# -- Hugging Face feature extraction ----------------------------------------------------


def feature_extraction_payload(request: EmbeddingRequest, *, provider: str) -> dict[str, Any]:
    """The feature-extraction body of ``request``: ``inputs`` and the options at the root.

    Raises:
        llmrelay.errors.InvalidRequestError: token-id input (``param="input"``),
            ``dimensions``, ``user``, or a ``truncation_direction`` other than
            ``left``/``right`` (``param`` names each).
    """
    model = request.model
    if request.tokens:
        raise _refuse(
            "input",
            "feature extraction takes text, not token ids (send the text)",
            provider=provider,
            model=model,
        )
    if request.dimensions is not None:
        raise _refuse(
            "dimensions",
            "feature extraction returns the model's own vector size",
            provider=provider,
            model=model,
        )
    if request.user is not None:
        raise _refuse(
            "user", "feature extraction has no end-user field", provider=provider, model=model
        )
    payload: dict[str, Any] = {"inputs": _wire_input(request)}
    for name in FEATURE_EXTRACTION_OPTIONS:
        value = request.options.get(name)
        if value is None:
            continue
        if name == "truncation_direction" and value not in ("left", "right"):
            raise _refuse(name, "it is 'left' or 'right'", provider=provider, model=model)
        payload[name] = value
    return payload


def parse_features(
    body: Any, request: EmbeddingRequest, *, provider: str, model: str
) -> tuple[tuple[float, ...], ...]:
    """The vectors of a feature-extraction answer (shapes in the module docstring).

    Raises:
        llmrelay.errors.InvalidRequestError: token-level features (``param="model"``:
            the model has no pooling, so it gives no embedding per input).
        llmrelay.errors.ProtocolError: another shape, or another count than asked.
    """
    if not isinstance(body, list) or not body:
        raise _protocol("the feature-extraction answer is not a list of vectors", provider, model)
    first = body[0]
    if isinstance(first, list) and first and isinstance(first[0], list):
        raise errors.InvalidRequestError(
            f"{model} returns token-level features (one vector per token), not one embedding "
            f"per input: use a sentence-embedding model",
            provider=provider,
            model=model,
            param="model",
        )
    if isinstance(request.input, str) and not isinstance(first, list):
        vectors: tuple[tuple[float, ...], ...] = (_vector(body, provider, model),)
    else:
        vectors = tuple(_vector(item, provider, model) for item in body)
    check_vectors(vectors, request, provider=provider, model=model)
    return vectors


def usage_from_headers(headers: httpx.Headers) -> Usage | None:
    """``Usage`` from text-embeddings-inference's ``x-compute-tokens`` header, if sent."""
    value = headers.get("x-compute-tokens", "")
    if not value.isdigit() or len(value) > 12:
        return None
    tokens = int(value)
    return Usage(prompt_tokens=tokens, total_tokens=tokens)


# -- vectors ----------------------------------------------------------------------------


def _vector(value: Any, provider: str, model: str) -> tuple[float, ...]:
    """A tuple of finite floats from a JSON list, or from base64 little-endian float32."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _protocol("an embedding is neither numbers nor base64", provider, model) from None
        if len(raw) % 4:
            raise _protocol("a base64 embedding is not whole float32 values", provider, model)
        numbers: Sequence[Any] = struct.unpack(f"<{len(raw) // 4}f", raw)
    elif isinstance(value, list):
        numbers = value
    else:
        raise _protocol("an embedding is not a list of numbers", provider, model)
    if not all(type(x) is float for x in numbers):
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
            raise _protocol("an embedding holds something other than numbers", provider, model)
        numbers = [float(x) for x in numbers]
    vector = tuple(numbers)
    if not math.isfinite(math.fsum(vector)):
        raise _protocol("an embedding holds a value that is not finite", provider, model)
    return vector


def check_vectors(
    vectors: tuple[tuple[float, ...], ...],
    request: EmbeddingRequest,
    *,
    provider: str,
    model: str,
) -> None:
    """Check the count, that every vector has one length, and ``request.dimensions``.

    Raises:
        llmrelay.errors.ProtocolError: another count than inputs, an empty vector, or
            vectors of different lengths.
        llmrelay.errors.InvalidRequestError: ``dimensions`` asked and not honoured.
    """
    if len(vectors) != request.count:
        raise _protocol(f"{len(vectors)} embeddings for {request.count} inputs", provider, model)
    sizes = {len(v) for v in vectors}
    if len(sizes) != 1 or 0 in sizes:
        raise _protocol("the embeddings are empty or of different lengths", provider, model)
    size = sizes.pop()
    if request.dimensions is not None and size != request.dimensions:
        raise errors.InvalidRequestError(
            f"{provider} returned {size}-dimension vectors for dimensions="
            f"{request.dimensions}: the model or server does not honour 'dimensions'",
            provider=provider,
            model=model,
            param="dimensions",
        )


def _protocol(message: str, provider: str, model: str) -> errors.ProtocolError:
    return errors.ProtocolError(message, provider=provider, model=model)
