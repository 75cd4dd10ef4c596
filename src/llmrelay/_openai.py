"""OpenAI-shaped result objects and the one converter from llmrelay events to them.

The models mirror openai-python's ``ChatCompletion``, ``ChatCompletionChunk``,
``ImagesResponse``, ``Model`` and their parts (field names and shapes of the OpenAI API
reference, https://platform.openai.com/docs/api-reference/chat/object), as pydantic
models that accept extra fields; the tests validate them with the real ``openai``
types. ``ChunkConverter`` turns a stream's events into chunks (used by the facade and
by ``llmrelay serve``); ``to_chat_completion`` turns a collected ``Completion`` into a
``ChatCompletion``. Usage is included only when the provider reported it (a missing
count is 0, the total the sum), never estimated.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from .types import Completion, Event, FinishReason, Reasoning, Usage

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "ChunkConverter",
    "CompletionUsage",
    "Image",
    "ImagesResponse",
    "Model",
    "ModelList",
    "new_completion_id",
    "to_chat_completion",
    "to_images_response",
]

FinishReasonName = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
_FINISH: frozenset[str] = frozenset(
    {"stop", "length", "tool_calls", "content_filter", "function_call"}
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


_M = TypeVar("_M", bound=_Model)


class CompletionUsage(_Model):
    """Token counts: ``prompt_tokens``, ``completion_tokens``, ``total_tokens``."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionMessage(_Model):
    """The answer of a non-streamed completion (``reasoning_content`` when any)."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None


class Choice(_Model):
    """One choice of a ``ChatCompletion`` (llmrelay always returns one, index 0)."""

    index: int = 0
    message: ChatCompletionMessage
    finish_reason: FinishReasonName
    logprobs: Any = None


class ChatCompletion(_Model):
    """OpenAI's ``chat.completion`` object."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


class ChoiceDelta(_Model):
    """A chunk's delta: ``role`` on the first, then ``content`` (or ``reasoning_content``)."""

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


def new_completion_id() -> str:
    """A fresh ``chatcmpl-...`` id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def _usage(usage: Usage | None) -> CompletionUsage | None:
    if usage is None:
        return None
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    total = usage.total_tokens if usage.total_tokens is not None else prompt + completion
    return CompletionUsage.model_construct(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=total
    )


def _finish(reason: str) -> FinishReasonName:
    return reason if reason in _FINISH else "stop"  # type: ignore[return-value]


def to_chat_completion(
    completion: Completion, *, id: str, created: int, model: str
) -> ChatCompletion:
    """The ``ChatCompletion`` for a collected turn."""
    fields: dict[str, Any] = {"role": "assistant", "content": completion.text}
    if completion.reasoning:
        fields["reasoning_content"] = completion.reasoning
    message = ChatCompletionMessage.model_validate(fields)
    return ChatCompletion(
        id=id,
        created=created,
        model=model,
        choices=[Choice(message=message, finish_reason=_finish(completion.finish_reason))],
        usage=_usage(completion.usage),
    )


def to_images_response(images: Any, created: int | None = None) -> ImagesResponse:
    """``ImagesResponse`` with ``b64_json`` for each ``ImageResult``."""
    return ImagesResponse(
        created=created if created is not None else int(time.time()),
        data=[Image(b64_json=base64.b64encode(image.data).decode("ascii")) for image in images],
    )


_new = object.__new__
_set_dict = object.__setattr__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
_DELTA_FIELDS = frozenset({"role", "content"})
_CHOICE_FIELDS = frozenset({"index", "delta", "finish_reason", "logprobs"})
_CHUNK_FIELDS = frozenset(
    {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
)


def _build(
    cls: type[_M],
    values: dict[str, Any],
    fields: frozenset[str],
    extra: dict[str, Any] | None = None,
) -> _M:
    """``cls.model_construct(**values, **extra)`` for the token path, about 4x faster.

    ``values`` must hold exactly ``fields`` (the model's own fields, every one given):
    the instance is then the same as ``model_construct`` builds (``__dict__``, fields
    set, extra, no private attributes), without its per-call field loop.
    """
    obj = _new(cls)
    _set_dict(obj, "__dict__", values)
    _set_fields_set(obj, set(fields))
    _set_extra(obj, extra if extra is not None else {})
    _set_private(obj, None)
    return obj


class ChunkConverter:
    """Turns a stream's events into ``ChatCompletionChunk`` objects.

    ``convert(event)`` returns the chunk for an event, or ``None`` for events that have
    none (provider info, state, images); ``tail()`` returns the chunks after the stream
    (the usage chunk, with ``include_usage``, as OpenAI sends it: empty ``choices``).

    Args:
        id: the completion id shared by every chunk.
        created: Unix time of the request.
        model: the model name reported in every chunk.
        include_usage: send a final usage chunk when the provider reported usage.
    """

    __slots__ = ("_first", "_include_usage", "_template", "_usage", "created", "id", "model")

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool = False) -> None:
        self.id = id
        self.created = created
        self.model = model
        self._include_usage = include_usage
        self._first = True
        self._usage: Usage | None = None
        # every chunk's own fields but ``choices``, copied per chunk (one C-level copy)
        self._template: dict[str, Any] = {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": None,
            "usage": None,
            "system_fingerprint": None,
        }

    def _chunk(
        self, delta: ChoiceDelta, finish: FinishReasonName | None = None
    ) -> ChatCompletionChunk:
        if self._first:
            delta.role = "assistant"
            self._first = False
        choice = _build(
            ChunkChoice,
            {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None},
            _CHOICE_FIELDS,
        )
        values = self._template.copy()
        values["choices"] = [choice]
        return _build(ChatCompletionChunk, values, _CHUNK_FIELDS)

    def text(self, text: str) -> ChatCompletionChunk:
        """The chunk of a text delta: ``convert(text)``, with ``_build`` inlined.

        The token path's one conversion: the same three objects ``_build`` makes
        (``tests/perf/test_fast_chunks.py`` checks they are equal).
        """
        if self._first:
            self._first = False
            role: Literal["assistant"] | None = "assistant"
        else:
            role = None
        delta = _new(ChoiceDelta)
        _set_dict(delta, "__dict__", {"role": role, "content": text})
        _set_fields_set(delta, set(_DELTA_FIELDS))
        _set_extra(delta, {})
        _set_private(delta, None)
        choice = _new(ChunkChoice)
        _set_dict(
            choice,
            "__dict__",
            {"index": 0, "delta": delta, "finish_reason": None, "logprobs": None},
        )
        _set_fields_set(choice, set(_CHOICE_FIELDS))
        _set_extra(choice, {})
        _set_private(choice, None)
        values = self._template.copy()
        values["choices"] = [choice]
        chunk = _new(ChatCompletionChunk)
        _set_dict(chunk, "__dict__", values)
        _set_fields_set(chunk, set(_CHUNK_FIELDS))
        _set_extra(chunk, {})
        _set_private(chunk, None)
        return chunk

    def convert(self, event: Event) -> ChatCompletionChunk | None:
        """The chunk for ``event``, or ``None``."""
        if type(event) is str:
            return self.text(event)
        if isinstance(event, Reasoning):
            return self._chunk(
                _build(
                    ChoiceDelta,
                    {"role": None, "content": None},
                    _DELTA_FIELDS,
                    {"reasoning_content": event.text},
                )
            )
        if isinstance(event, FinishReason):
            return self._chunk(
                _build(ChoiceDelta, {"role": None, "content": None}, _DELTA_FIELDS),
                _finish(event.reason),
            )
        if isinstance(event, Usage):
            self._usage = event
        return None

    def tail(self) -> list[ChatCompletionChunk]:
        """The chunks that follow the finish (the usage chunk, if asked for and known)."""
        if not self._include_usage or self._usage is None:
            return []
        return [
            ChatCompletionChunk.model_construct(
                id=self.id,
                object="chat.completion.chunk",
                created=self.created,
                model=self.model,
                choices=[],
                usage=_usage(self._usage),
                system_fingerprint=None,
            )
        ]
