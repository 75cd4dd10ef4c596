"""OpenAI chat completions: llmrelay events as ``ChatCompletion``/chunk objects and SSE frames.

The one encoder of the OpenAI chat shape (https://platform.openai.com/docs/api-reference/chat,
openai-python's ``types/chat/chat_completion_chunk.py``):

* ``ChunkConverter`` turns a stream's events into ``ChatCompletionChunk`` objects (the
  facade's ``create(stream=True)``); ``to_chat_completion`` a collected ``Completion``
  into a ``ChatCompletion``.
* ``ChunkFrames`` writes the same chunks directly as SSE frames (``llmrelay serve``,
  through ``AsyncChatCompletionStream.sse()``): the part every chunk of a stream shares
  (id, created, model) is encoded once, and each token costs one JSON string encoding and
  a concatenation. The bytes are what ``ChatCompletionChunk.model_dump_json()`` writes
  (same keys in the same order, same values), except that U+2028, U+2029 and U+0085 are
  escaped (JSON-equal; see ``json_string``).

Both give the first chunk's delta ``"role": "assistant"`` (whatever its kind) and later
ones ``"role": null``, as OpenAI sends them; a finish reason OpenAI does not name becomes
``stop``; usage (the provider's, a missing count 0 and the total the sum, or llmrelay's
estimate when it reported none: ``llmrelay._usage``) is sent in a last chunk with empty
``choices`` when ``include_usage`` was asked for. Events with no chunk form (provider
info, state, images, any event type this shape does not know) are skipped.

Each ``ToolCallDelta`` is one chunk whose delta has one ``tool_calls`` entry, in
OpenAI's shape: a call's first delta ``{"index", "id", "type": "function", "function":
{"name", "arguments"}}``, later ones ``{"index", "function": {"arguments"}}`` — the
argument fragment exactly as the provider sent it, at once (never joined, split or
held back).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel

from .._ids import token_hex16
from .._openai import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageToolCall,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChunkChoice,
    CompletionUsage,
    FinishReasonName,
    Function,
)
from ..types import Completion, Event, FinishReason, Reasoning, ToolCallDelta, Usage
from .sse import json_string

__all__ = [
    "FINISH_REASONS",
    "ChunkConverter",
    "ChunkFrames",
    "finish_name",
    "new_completion_id",
    "to_chat_completion",
    "tool_call_entry",
    "usage_counts",
]

FINISH_REASONS: frozenset[str] = frozenset(get_args(FinishReasonName))
"""OpenAI's finish reasons (``choices[].finish_reason``; the models' ``FinishReasonName``)."""

_M = TypeVar("_M", bound=BaseModel)


def finish_name(reason: str) -> FinishReasonName:
    """OpenAI's finish reason for an llmrelay one (``stop`` for a name OpenAI lacks)."""
    return reason if reason in FINISH_REASONS else "stop"  # type: ignore[return-value]


def usage_counts(usage: Usage) -> Usage:
    """``usage`` as OpenAI reports it: every count an int (missing 0, total the sum)."""
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    total = usage.total_tokens if usage.total_tokens is not None else prompt + completion
    return Usage(prompt, completion, total)


def new_completion_id() -> str:
    """A fresh ``chatcmpl-...`` id: 32 random hex digits (128 bits from ``os.urandom``).

    As unguessable as the ``uuid4().hex`` it replaced (122 random bits); the bytes come
    from ``llmrelay._ids`` (one system call per 256 ids).
    """
    return f"chatcmpl-{token_hex16()}"


def _usage(usage: Usage | None) -> CompletionUsage | None:
    if usage is None:
        return None
    counts = usage_counts(usage)
    return CompletionUsage.model_construct(
        prompt_tokens=counts.prompt_tokens,
        completion_tokens=counts.completion_tokens,
        total_tokens=counts.total_tokens,
    )


def to_chat_completion(
    completion: Completion, *, id: str, created: int, model: str
) -> ChatCompletion:
    """The ``ChatCompletion`` for a collected turn.

    Tool calls go in ``message.tool_calls`` (``content`` ``None`` when there is no
    text, as OpenAI sends it); ``usage_estimated`` follows ``completion``.
    """
    calls = [
        ChatCompletionMessageToolCall(
            id=call.id, function=Function(name=call.name, arguments=call.arguments)
        )
        for call in completion.tool_calls
    ]
    fields: dict[str, Any] = {
        "role": "assistant",
        "content": None if calls and not completion.text else completion.text,
    }
    if calls:
        fields["tool_calls"] = calls
    if completion.reasoning:
        fields["reasoning_content"] = completion.reasoning
    message = ChatCompletionMessage.model_validate(fields)
    result = ChatCompletion(
        id=id,
        created=created,
        model=model,
        choices=[Choice(message=message, finish_reason=finish_name(completion.finish_reason))],
        usage=_usage(completion.usage),
    )
    result._usage_estimated = completion.usage_estimated
    return result


def tool_call_entry(event: ToolCallDelta) -> bytes:
    """The JSON of one ``delta.tool_calls`` entry for ``event`` (OpenAI's key order).

    ``{"index","id","type":"function","function":{"name","arguments"}}`` for a call's
    first delta (``id`` set), ``{"index","function":{"arguments"}}`` for later ones.

    Raises:
        UnicodeEncodeError: a lone surrogate in a string.
    """
    arguments = json_string(event.arguments)
    if event.id is None:
        return b'{"index":%d,"function":{"arguments":%s}}' % (event.index, arguments)
    return b'{"index":%d,"id":%s,"type":"function","function":{"name":%s,"arguments":%s}}' % (
        event.index,
        json_string(event.id),
        json_string(event.name or ""),
        arguments,
    )


def _tool_delta(event: ToolCallDelta) -> ChoiceDelta:
    """The ``ChoiceDelta`` of a tool-call event (``tool_calls``: one entry)."""
    if event.id is None:
        entry = ChoiceDeltaToolCall(
            index=event.index, function=ChoiceDeltaToolCallFunction(arguments=event.arguments)
        )
    else:
        entry = ChoiceDeltaToolCall(
            index=event.index,
            id=event.id,
            type="function",
            function=ChoiceDeltaToolCallFunction(name=event.name or "", arguments=event.arguments),
        )
    return _build(
        ChoiceDelta, {"role": None, "content": None}, _DELTA_FIELDS, {"tool_calls": [entry]}
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
        include_usage: send a final usage chunk (the provider's usage, else
            ``estimate()``'s).
        estimate: counts the usage when the provider reported none (``None``: no
            usage chunk then).

    Attributes:
        usage_estimated: whether the usage chunk sent holds ``estimate()``'s counts.
    """

    __slots__ = (
        "_first",
        "_template",
        "_usage",
        "created",
        "estimate",
        "id",
        "include_usage",
        "model",
        "usage_estimated",
    )

    def __init__(
        self,
        *,
        id: str,
        created: int,
        model: str,
        include_usage: bool = False,
        estimate: Callable[[], Usage] | None = None,
    ) -> None:
        self.id = id
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self.estimate = estimate
        self.usage_estimated = False
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
        if isinstance(event, ToolCallDelta):
            return self._chunk(_tool_delta(event))
        if isinstance(event, FinishReason):
            return self._chunk(
                _build(ChoiceDelta, {"role": None, "content": None}, _DELTA_FIELDS),
                finish_name(event.reason),
            )
        if isinstance(event, Usage):
            self._usage = event
        return None

    def tail(self) -> list[ChatCompletionChunk]:
        """The chunks that follow the finish (the usage chunk, if asked for)."""
        if not self.include_usage:
            return []
        if self._usage is None and self.estimate is not None:
            self._usage = self.estimate()
            self.usage_estimated = True
        if self._usage is None:
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


_CHOICE_END = b',"finish_reason":null,"logprobs":null}],"usage":null,"system_fingerprint":null}\n\n'
_TEXT_END = b"}" + _CHOICE_END


class ChunkFrames:
    """The SSE frames of one chat completion stream (``data: {chunk}`` and a blank line).

    An ``llmrelay._wire.sse.SSEEncoder``: ``text``/``event`` give the frame of an event,
    ``tail()`` the usage chunk (with ``include_usage``, when usage was reported),
    ``end_frame`` is ``data: [DONE]``.

    Args:
        id: the completion id every chunk carries.
        created: Unix time of the request.
        model: the model name every chunk reports.
        include_usage: send a last usage chunk (``stream_options.include_usage``).
        estimate: counts the usage when the provider reported none (``None``: no
            usage chunk then).

    Attributes:
        finish_reason: OpenAI's finish reason sent (``None`` before the finish chunk).
        sent_usage: the counts of the usage chunk sent by ``tail()``, if any.
        usage_estimated: whether those counts are ``estimate()``'s.
    """

    __slots__ = (
        "_delta",
        "_delta_first",
        "_estimate",
        "_head",
        "_include_usage",
        "_reported",
        "_role_sent",
        "finish_reason",
        "sent_usage",
        "usage_estimated",
    )

    end_frame = b"data: [DONE]\n\n"

    def __init__(
        self,
        *,
        id: str,
        created: int,
        model: str,
        include_usage: bool = False,
        estimate: Callable[[], Usage] | None = None,
    ) -> None:
        head = (
            b'data: {"id":'
            + json_string(id)
            + b',"object":"chat.completion.chunk","created":'
            + str(int(created)).encode()
            + b',"model":'
            + json_string(model)
        )
        self._head = head
        self._delta_first = head + b',"choices":[{"index":0,"delta":{"role":"assistant",'
        self._delta = head + b',"choices":[{"index":0,"delta":{"role":null,'
        self._role_sent = False
        self._include_usage = include_usage
        self._estimate = estimate
        self._reported: Usage | None = None
        self.finish_reason: str | None = None
        self.sent_usage: Usage | None = None
        self.usage_estimated = False

    def _start(self) -> bytes:
        if self._role_sent:
            return self._delta
        self._role_sent = True
        return self._delta_first

    def text(self, text: str) -> bytes:
        """The chunk of a text delta.

        Raises:
            UnicodeEncodeError: ``text`` holds a lone surrogate.
        """
        if self._role_sent:
            return self._delta + b'"content":' + json_string(text) + _TEXT_END
        return self._start() + b'"content":' + json_string(text) + _TEXT_END

    def reasoning(self, text: str) -> bytes:
        """The chunk of a reasoning delta (``reasoning_content``, ``content`` null)."""
        return (
            self._start() + b'"content":null,"reasoning_content":' + json_string(text) + _TEXT_END
        )

    def tool_call(self, event: ToolCallDelta) -> bytes:
        """The chunk of a tool-call delta: one ``tool_calls`` entry, ``content`` null."""
        return (
            self._start()
            + b'"content":null,"tool_calls":['
            + tool_call_entry(event)
            + b"]"
            + _TEXT_END
        )

    def finish(self, reason: str) -> bytes:
        """The last choice chunk: empty delta and the finish reason (OpenAI's names)."""
        name = finish_name(reason)
        self.finish_reason = name
        return (
            self._start()
            + b'"content":null},"finish_reason":"'
            + name.encode()
            + b'","logprobs":null}],"usage":null,"system_fingerprint":null}\n\n'
        )

    def usage(self, prompt: int, completion: int, total: int) -> bytes:
        """The usage chunk OpenAI sends last with ``include_usage``: empty ``choices``."""
        return (
            self._head + b',"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,'
            b'"total_tokens":%d},"system_fingerprint":null}\n\n' % (prompt, completion, total)
        )

    def event(self, event: Event) -> bytes | None:
        """The frame of a non-text event, or ``None`` (usage is kept for ``tail``)."""
        if type(event) is str:
            return self.text(event)
        if type(event) is FinishReason:  # every answer has one: tested first
            return self.finish(event.reason)
        if isinstance(event, Reasoning):
            return self.reasoning(event.text)
        if isinstance(event, ToolCallDelta):
            return self.tool_call(event)
        if isinstance(event, FinishReason):
            return self.finish(event.reason)
        if isinstance(event, Usage):
            self._reported = event
        return None

    def tail(self) -> bytes:
        """The usage chunk (asked for; reported, else estimated), else ``b""``."""
        if not self._include_usage:
            return b""
        if self._reported is None and self._estimate is not None:
            self._reported = self._estimate()
            self.usage_estimated = True
        if self._reported is None:
            return b""
        counts = self.sent_usage = usage_counts(self._reported)
        return self.usage(
            counts.prompt_tokens or 0, counts.completion_tokens or 0, counts.total_tokens or 0
        )
