"""OpenAI-shaped result objects (pydantic models).

The models mirror openai-python's ``ChatCompletion``, ``ChatCompletionChunk``,
``ImagesResponse``, ``Model`` and their parts (field names and shapes of the OpenAI API
reference, https://platform.openai.com/docs/api-reference/chat/object), as pydantic
models that accept extra fields; the tests validate them with the real ``openai``
types. Events become chat objects in ``llmrelay._wire.openai_chat`` (the one encoder of
that shape); ``to_images_response`` builds an ``ImagesResponse``.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
)

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionMessageToolCall",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChunkChoice",
    "CompletionUsage",
    "Function",
    "Image",
    "ImagesResponse",
    "Model",
    "ModelList",
    "to_images_response",
]

FinishReasonName = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class CompletionUsage(_Model):
    """Token counts: ``prompt_tokens``, ``completion_tokens``, ``total_tokens``."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Function(_Model):
    """A called function: ``name`` and ``arguments`` (JSON text, as the model wrote it)."""

    name: str
    arguments: str


class ChatCompletionMessageToolCall(_Model):
    """One tool call of an answer: ``{"id", "type": "function", "function"}``."""

    id: str
    type: Literal["function"] = "function"
    function: Function


class ChatCompletionMessage(_Model):
    """The answer of a non-streamed completion (``reasoning_content`` when any).

    ``content`` is ``None`` when the answer is only tool calls, as OpenAI sends it.
    """

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChatCompletionMessageToolCall] | None = None


class Choice(_Model):
    """One choice of a ``ChatCompletion`` (llmrelay always returns one, index 0)."""

    index: int = 0
    message: ChatCompletionMessage
    finish_reason: FinishReasonName
    logprobs: Any = None


class ChatCompletion(_Model):
    """OpenAI's ``chat.completion`` object.

    ``usage_estimated`` (not part of the JSON) says whether ``usage`` was counted by
    llmrelay because the provider reported none.
    """

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    _usage_estimated: bool = PrivateAttr(default=False)

    @property
    def usage_estimated(self) -> bool:
        """Whether ``usage`` was counted by llmrelay (the provider reported none)."""
        return self._usage_estimated


class ChoiceDeltaToolCallFunction(_Model):
    """A tool-call delta's function part: ``name`` (first delta), ``arguments`` fragment."""

    name: str | None = None
    arguments: str | None = None

    @model_serializer(mode="wrap")
    def _present(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ChoiceDeltaToolCall(_Model):
    """One ``delta.tool_calls`` entry, as OpenAI streams it.

    The first delta of a call has ``index``, ``id``, ``type`` and ``function.name`` (and
    ``function.arguments``); later ones ``index`` and ``function.arguments`` only. Absent
    parts are left out when dumped, not written as ``null``.
    """

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChoiceDeltaToolCallFunction | None = None

    @model_serializer(mode="wrap")
    def _present(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ChoiceDelta(_Model):
    """A chunk's delta: ``role`` on the first, then ``content`` (or another part).

    Other parts are extra fields: ``reasoning_content``, or ``tool_calls`` (a list of
    one ``ChoiceDeltaToolCall``).
    """

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(_Model):
    """One choice of a chunk; ``finish_reason`` is set on the last."""

    index: int = 0
    delta: ChoiceDelta
    finish_reason: FinishReasonName | None = None
    logprobs: Any = None


class ChatCompletionChunk(_Model):
    """OpenAI's ``chat.completion.chunk`` object."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


class Image(_Model):
    """One generated image: ``b64_json`` (base64 of the encoded image bytes)."""

    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(_Model):
    """OpenAI's images response: ``created`` and ``data``."""

    created: int
    data: list[Image]


class Model(_Model):
    """OpenAI's model object; ``owned_by`` is the provider (or ``"alias"``)."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(_Model):
    """``{"object": "list", "data": [Model, ...]}``."""

    object: Literal["list"] = "list"
    data: list[Model]


def to_images_response(images: Any, created: int | None = None) -> ImagesResponse:
    """``ImagesResponse`` with ``b64_json`` for each ``ImageResult``."""
    return ImagesResponse(
        created=created if created is not None else int(time.time()),
        data=[Image(b64_json=base64.b64encode(image.data).decode("ascii")) for image in images],
    )
