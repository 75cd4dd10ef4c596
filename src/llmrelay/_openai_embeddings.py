"""OpenAI-shaped embeddings objects: ``CreateEmbeddingResponse``, ``Embedding``, usage.

They mirror openai-python's ``types/create_embedding_response.py`` and
``types/embedding.py`` (https://github.com/openai/openai-python; the API reference at
https://platform.openai.com/docs/api-reference/embeddings/object) as pydantic models that
accept extra fields; the tests validate them with the real ``openai`` types.

``encoding_format="base64"`` puts each vector as the standard base64 of its float32
values, little-endian, packed (what the openai SDK decodes with
``numpy.frombuffer(..., dtype="float32")`` or ``array.array("f", ...)``).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .types import EmbeddingResult

__all__ = [
    "CreateEmbeddingResponse",
    "Embedding",
    "EmbeddingUsage",
    "encode_base64",
    "to_embedding_response",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Embedding(_Model):
    """One vector: ``embedding`` is a list of floats, or a base64 string when asked."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(_Model):
    """``prompt_tokens`` and ``total_tokens`` (0 when the service reported none)."""

    prompt_tokens: int = 0
    total_tokens: int = 0


class CreateEmbeddingResponse(_Model):
    """The answer of ``embeddings.create`` / ``POST /v1/embeddings``.

    Attributes:
        object: always ``"list"``.
        data: one ``Embedding`` per input, ``index`` in input order.
        model: ``"provider:model"`` that answered.
        usage: the token counts the service reported.
    """

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage

    @classmethod
    def from_result(
        cls, result: EmbeddingResult, encoding_format: Literal["float", "base64"] = "float"
    ) -> CreateEmbeddingResponse:
        """``result`` (``AsyncClient.embed``) in this shape, vectors as floats or base64."""
        return to_embedding_response(result, encoding_format)


def encode_base64(vector: Sequence[float]) -> str:
    """Standard base64 of ``vector`` as packed little-endian float32 values.

    Raises:
        OverflowError: a value beyond float32's range (a provider's vectors never are).
    """
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def to_embedding_response(
    result: EmbeddingResult, encoding_format: Literal["float", "base64"] = "float"
) -> CreateEmbeddingResponse:
    """``result`` as OpenAI's response object, vectors as floats or base64."""
    usage = result.usage
    prompt = (usage.prompt_tokens or 0) if usage is not None else 0
    total = (usage.total_tokens or prompt) if usage is not None else 0
    if encoding_format == "base64":
        data = [
            Embedding(index=index, embedding=encode_base64(vector))
            for index, vector in enumerate(result.vectors)
        ]
    else:
        data = [
            Embedding.model_construct(object="embedding", index=index, embedding=list(vector))
            for index, vector in enumerate(result.vectors)
        ]
    return CreateEmbeddingResponse(
        data=data,
        model=f"{result.provider}:{result.model}",
        usage=EmbeddingUsage(prompt_tokens=prompt, total_tokens=total),
    )
