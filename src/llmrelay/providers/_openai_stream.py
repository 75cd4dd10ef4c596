"""OpenAI chat-completions streaming, reusable by any provider that speaks it.

Wire protocol (https://platform.openai.com/docs/api-reference/chat/streaming; Hugging
Face TGI's ``router/src/server.rs`` ``chat_completions`` and vLLM's OpenAI server speak
the same)::

    POST {base}/chat/completions
         {"model", "messages", "stream": true, "stream_options": {"include_usage": true},
          "temperature"?, "max_tokens"?, "top_p"?, "stop"?, "seed"?,
          "frequency_penalty"?, "presence_penalty"?, "tools"?, "tool_choice"?,
          "parallel_tool_calls"?, "response_format"?, ...forwarded fields}
    200 text/event-stream
         data: {"object": "chat.completion.chunk", "choices": [{"index": 0,
                "delta": {"role"?, "content"?, "reasoning_content"? | "reasoning"?,
                          "tool_calls"?: [{"index", "id"?, "type"?,
                                           "function": {"name"?, "arguments"?}}]},
                "finish_reason": null | "stop" | "length" | "tool_calls" | ...}],
                "usage"?: {...}}
         ...
         data: {"choices": [], "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}
         data: [DONE]

Tool calls (https://platform.openai.com/docs/guides/function-calling#streaming): each
``delta.tool_calls`` entry becomes one ``ToolCallDelta``, its argument fragment exactly
as sent. Calls are numbered 0, 1, ... in the order they start. A call starts with an
entry at an index not seen before, or one carrying a *different* id at a known index
(servers that number every parallel call 0, e.g. Ollama, sglang); an entry repeating the
call's id (or an empty id) continues it. A call's first entry must name its function;
one without an id gets ``call_<hex>``. Arguments sent as a JSON object instead of text
(some servers) are written as JSON text; ``tool_calls`` sent as one object instead of a
list (TGI 2.x's ``DeltaToolCall``, ``router/src/lib.rs``) is read as a list of one.

Variants accepted: ``data:`` with or without the space; TGI 2024-03 chunks with
``object: "text_completion"``, a 1-based choice ``index``, ``finish_reason: "eos_token"``
whose delta is the end token's text (not shown) and no ``[DONE]``; ``usage: null`` on
every chunk; comment lines. An error inside a 200 stream (``{"error": {"message",
"type", "param", "code"}}`` or TGI's ``{"error": str, "error_type": str}``) raises the
matching ``llmrelay.errors`` type; a stream that ends with neither ``[DONE]`` nor a
``finish_reason`` is a ``ProtocolError``. An event whose data is not JSON (a proxy or CDN
that rewrote the body) is skipped and the stream read on, unless the request is
``strict`` (then it is a ``ProtocolError``, as before): the parser yields the internal
``llmrelay._turn.SKIPPED`` marker, which the stream counts and logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

import anyio
import httpx

from .. import _json, errors
from .._http import (
    BODY_DONE_EXTENSION,
    aiter_sse_data,
    invalid_request_class,
    loads,
    protocol_error,
    raise_for_status,
    translate_errors,
    upstream_text,
)
from .._turn import SKIPPED
from ..types import ChatRequest, Event, FinishReason, Reasoning, ToolCallDelta, Usage

log = logging.getLogger("llmrelay")

__all__ = ["FORWARDED", "ChunkParser", "chat_payload", "error_from_payload", "stream_chat"]

FORWARDED: frozenset[str] = frozenset({"logit_bias", "reasoning_effort", "verbosity", "moderation"})
"""The OpenAI request fields an OpenAI-compatible service takes as they are
(``Provider.forwards``; ``llmrelay._fields``)."""

_FINISH = {
    "stop": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}
_END_TOKENS = frozenset({"</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<eos>"})

# OpenAI error ``type``/``code`` and TGI ``error_type`` -> error class.
_ERROR_TYPES: Mapping[str, type[errors.ProviderError]] = {
    "invalid_request_error": errors.InvalidRequestError,
    "validation": errors.InvalidRequestError,
    "template_error": errors.InvalidRequestError,
    "missing_template_variable": errors.InvalidRequestError,
    "tool_error": errors.InvalidRequestError,
    "context_length_exceeded": errors.ContextLengthExceeded,
    "content_policy_violation": errors.ContentPolicyViolation,
    "content_filter": errors.ContentPolicyViolation,
    "BadRequestError": errors.InvalidRequestError,
    "authentication_error": errors.AuthenticationError,
    "invalid_api_key": errors.AuthenticationError,
    "permission_error": errors.AuthenticationError,
    "rate_limit_exceeded": errors.RateLimitError,
    "rate_limit_error": errors.RateLimitError,
    "insufficient_quota": errors.RateLimitError,
    "model_not_found": errors.ModelNotFoundError,
    "not_found_error": errors.ModelNotFoundError,
    "NotFoundError": errors.ModelNotFoundError,
    "overloaded": errors.ProviderUnavailable,
    "overloaded_error": errors.ProviderUnavailable,
    "server_error": errors.ProviderUnavailable,
    "incomplete_generation": errors.ProviderUnavailable,
    "incomplete_generation_stream": errors.ProviderUnavailable,
    "stream_serialization_error": errors.ProtocolError,
    "generation": errors.ProviderError,
}


def _class_for_code(code: int) -> type[errors.ProviderError]:
    if code in (401, 403):
        return errors.AuthenticationError
    if code == 404:
        return errors.ModelNotFoundError
    if code == 408:
        return errors.ProviderTimeout
    if code == 429:
        return errors.RateLimitError
    if code >= 500:
        return errors.ProviderUnavailable
    if 400 <= code < 500:
        return errors.InvalidRequestError
    return errors.ProviderError


def error_from_payload(
    payload: Mapping[str, Any], *, provider: str, model: str | None, status_code: int | None = None
) -> errors.ProviderError:
    """The typed error for an in-band error object.

    Shapes: OpenAI ``{"error": {"message", "type", "param", "code"}}``, TGI
    ``{"error": str, "error_type": str}``, and ``{"error": str | [str, ...]}``.
    """
    error = payload.get("error")
    kinds: list[Any] = [payload.get("error_type")]
    message: str | None
    if isinstance(error, Mapping):
        message = upstream_text(error.get("message"))
        kinds += [error.get("code"), error.get("type")]
        param = upstream_text(error.get("param"), 64)
        if param:
            message = f"{message} (param: {param})"
    elif isinstance(error, list):
        message = upstream_text("; ".join(str(item) for item in error[:10]))
    else:
        message = upstream_text(error)  # bounded; anything but a string is not relayed
    cls: type[errors.ProviderError] = errors.ProviderError
    for kind in kinds:
        if isinstance(kind, str) and kind in _ERROR_TYPES:
            cls = _ERROR_TYPES[kind]
            break
        if isinstance(kind, int) and not isinstance(kind, bool):
            cls = _class_for_code(kind)
            break
    kind_text = next((upstream_text(k, 64) for k in kinds if isinstance(k, str) and k), None)
    if cls is errors.InvalidRequestError:
        cls = invalid_request_class(kind_text, message)
    text = f"{message or 'error'}" + (f" [{kind_text}]" if kind_text else "")
    return cls(
        f"the stream reported an error: {text}",
        provider=provider,
        model=model,
        status_code=status_code,
        body=str(dict(payload))[:2000],
        code=kind_text,
    )


def chat_payload(request: ChatRequest, model: str) -> dict[str, Any]:
    """The ``/chat/completions`` request body for ``request`` (streaming, with usage).

    Messages in OpenAI's shape (``Message.to_openai``: tool calls and results
    included); tools, ``tool_choice``, ``parallel_tool_calls`` and ``response_format``
    as OpenAI's objects; the forwarded fields (``ChatRequest.passthrough``) verbatim.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [message.to_openai() for message in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    optional = {
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "top_p": request.top_p,
        "stop": list(request.stop) or None,
        "seed": request.seed,
        "frequency_penalty": request.frequency_penalty,
        "presence_penalty": request.presence_penalty,
        "tools": [tool.to_openai() for tool in request.tools] or None,
        "tool_choice": request.tool_choice.to_openai() if request.tool_choice else None,
        "parallel_tool_calls": request.parallel_tool_calls,
        "response_format": (
            request.response_format.to_openai() if request.response_format else None
        ),
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    for key, value in request.passthrough.items():
        body.setdefault(key, value)
    return body


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, Mapping):
        return None

    def count(key: str) -> int | None:
        item = value.get(key)
        return item if isinstance(item, int) and not isinstance(item, bool) else None

    return Usage(count("prompt_tokens"), count("completion_tokens"), count("total_tokens"))


class ChunkParser:
    """Turns the ``data`` of each SSE event into events; holds the finish until the end.

    ``feed(data)`` returns the events of one chunk (text, ``Reasoning``, ``Usage``);
    ``end()`` returns the closing events (``FinishReason``) or raises ``ProtocolError``
    when the stream ended with neither ``[DONE]`` nor a ``finish_reason``.

    Args:
        provider: registry name, for errors.
        model: model id, for errors.
        strict: a chunk that is not JSON raises ``ProtocolError``; otherwise it is
            skipped (``feed`` returns the ``SKIPPED`` marker) and counted in ``skipped``.
    """

    def __init__(self, provider: str, model: str | None, *, strict: bool = True) -> None:
        self.provider = provider
        self.model = model
        self.strict = strict
        self.done = False
        self.finish: str | None = None
        self._calls: dict[Any, tuple[int, str]] = {}
        """Upstream ``index`` -> (our index, the call's id) of the call it continues."""
        self._calls_started: list[str] = []
        self.skipped = 0

    def feed(self, data: str | bytes) -> list[Event]:
        """Events of one SSE ``data`` value (text, or its bytes as received).

        Bytes are read as their UTF-8 text (``data.decode("utf-8", "replace")``; the
        same events and errors), a JSON chunk parsed from the bytes themselves.

        Raises:
            llmrelay.errors.ProviderError: an in-band error (typed by its ``type``/``code``).
            llmrelay.errors.ProtocolError: a malformed chunk.
        """
        if self.done:
            return []
        if type(data) is bytes:
            if data[:1] != b"{":  # [DONE], a blank or a malformed value: as text
                return self.feed(data.decode("utf-8", "replace"))
            try:
                chunk = _json.loads_utf8(data)
            except (ValueError, RecursionError):  # the text's error (or skip), as text
                return self.feed(data.decode("utf-8", "replace"))
        elif data[:1] == "{":
            try:
                chunk = loads(data, provider=self.provider, model=self.model, what="stream chunk")
            except errors.ProtocolError as exc:
                return self._skip(exc)
        else:
            if not data.strip():
                return []
            if data.strip() == "[DONE]":
                self.done = True
                return []
            try:
                chunk = loads(data, provider=self.provider, model=self.model, what="stream chunk")
            except errors.ProtocolError as exc:
                return self._skip(exc)
            return self._chunk(chunk, data)
        # Fast path: the plain content chunk (no error, usage, finish or reasoning)
        # gives exactly what the general path below would; anything else goes there.
        if type(chunk) is dict and chunk.get("error") is None and chunk.get("usage") is None:
            choices = chunk.get("choices")
            if type(choices) is list and choices:
                choice = choices[0]
                if type(choice) is dict and choice.get("finish_reason") is None:
                    delta = choice.get("delta")
                    if (
                        type(delta) is dict
                        and delta.get("reasoning_content") is None
                        and delta.get("reasoning") is None
                        and delta.get("tool_calls") is None
                    ):
                        content = delta.get("content")
                        if type(content) is str:
                            return [content] if content else []
                        if content is None:
                            return []
        return self._chunk(chunk, data)

    def _skip(self, exc: errors.ProtocolError) -> list[Event]:
        """A chunk that is not JSON: raise ``exc`` (strict) or skip it."""
        if self.strict:
            raise exc
        self.skipped += 1
        return [SKIPPED]  # type: ignore[list-item]  # internal marker, never delivered

    def _chunk(self, chunk: Any, data: str | bytes) -> list[Event]:
        """Events of one parsed chunk (the general path)."""
        if type(data) is bytes:  # what an error quotes: the text, as ``feed`` had it
            data = data.decode("utf-8", "replace")
        if not isinstance(chunk, Mapping):
            raise self._protocol("stream chunk is not an object", data)
        if "error" in chunk and chunk["error"] is not None:
            raise error_from_payload(chunk, provider=self.provider, model=self.model)
        out: list[Event] = []
        choices = chunk.get("choices")
        if choices is not None and not isinstance(choices, list):
            raise self._protocol("'choices' is not a list", data)
        if choices:
            choice = choices[0]
            if not isinstance(choice, Mapping):
                raise self._protocol("a choice is not an object", data)
            out += self._choice(choice)
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            out.append(usage)
        return out

    def _choice(self, choice: Mapping[str, Any]) -> list[Event]:
        delta = choice.get("delta")
        if delta is None:
            delta = {}
        if not isinstance(delta, Mapping):
            raise self._protocol("'delta' is not an object", delta)
        out: list[Event] = []
        reason = choice.get("finish_reason")
        for key in ("reasoning_content", "reasoning"):
            thought = delta.get(key)
            if isinstance(thought, str) and thought:
                out.append(Reasoning(thought))
                break
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise self._protocol("'content' is not a string", content)
        if content and not (reason == "eos_token" and content in _END_TOKENS):
            out.append(content)
        calls = delta.get("tool_calls")
        if isinstance(calls, Mapping):  # TGI 2.x: one object, not a list
            calls = [calls]
        if calls is not None:
            if not isinstance(calls, list):
                raise self._protocol("'tool_calls' is not a list", calls)
            for position, entry in enumerate(calls):
                out.append(self._tool_call(entry, position))
        if reason is not None:
            if not isinstance(reason, str):
                raise self._protocol(f"bad finish_reason {reason!r:.100}")
            self.finish = _FINISH.get(reason, reason)
        return out

    def _tool_call(self, entry: Any, position: int) -> ToolCallDelta:
        """The event of one ``delta.tool_calls`` entry (see the module docstring)."""
        if not isinstance(entry, Mapping):
            raise self._protocol("a tool call delta is not an object", entry)
        function = entry.get("function")
        if function is None:
            function = {}
        if not isinstance(function, Mapping):
            raise self._protocol("a tool call's 'function' is not an object", entry)
        kind = entry.get("type")
        if kind not in (None, "function"):
            raise self._protocol(f"tool call type {kind!r:.40} is not supported", entry)
        key = entry.get("index", position)
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise self._protocol("a tool call's 'index' is not an integer", entry)
        call_id = entry.get("id") or None
        if call_id is not None and not isinstance(call_id, str):
            raise self._protocol("a tool call's 'id' is not a string", entry)
        arguments = _arguments(function.get("arguments"))
        if arguments is None:
            raise self._protocol("a tool call's 'arguments' is not JSON text", entry)
        known = self._calls.get(key)
        if known is not None and (call_id is None or call_id == known[1]):
            return ToolCallDelta(known[0], arguments=arguments)
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise self._protocol("a tool call started without a function name", entry)
        index = len(self._calls_started)
        call_id = call_id or f"call_{uuid.uuid4().hex[:24]}"
        self._calls[key] = (index, call_id)
        self._calls_started.append(call_id)
        return ToolCallDelta(index, call_id, name, arguments)

    def end(self) -> list[Event]:
        """The closing events once the stream is over.

        Raises:
            llmrelay.errors.ProtocolError: no ``[DONE]`` and no ``finish_reason`` came.
        """
        if self.finish is not None:
            return [FinishReason(self.finish)]
        if self.done:
            return [FinishReason("stop")]
        raise self._protocol("the stream ended without [DONE] or a finish_reason")

    def _protocol(self, message: str, data: Any = None) -> errors.ProtocolError:
        return protocol_error(message, data, provider=self.provider, model=self.model)


def _arguments(value: Any) -> str | None:
    """An arguments fragment as text (``""`` when absent; an object as JSON text)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return None


async def stream_chat(
    http: httpx.AsyncClient,
    url: str,
    payload: Mapping[str, Any],
    *,
    headers: Mapping[str, str],
    provider: str,
    model: str | None,
    strict: bool = False,
    translate: bool = False,
) -> AsyncGenerator[Event, None]:
    """POST ``payload`` to a ``/chat/completions`` URL and yield the answer's events.

    Yields text, ``Reasoning`` and ``Usage`` events and exactly one ``FinishReason``
    last. HTTP errors are mapped by ``llmrelay._http.raise_for_status`` (the OpenAI error
    JSON's ``message`` is quoted); transport errors are left to the caller's
    ``translate_errors``, or, with ``translate``, mapped here by
    ``translate_errors(provider, model)`` around the whole stream (a provider can then
    hand this generator on instead of re-yielding each event inside its own block).
    ``strict``: a chunk that is not JSON is a ``ProtocolError`` instead of being
    skipped (``ChunkParser``).
    """
    parser = ChunkParser(provider, model, strict=strict)
    with translate_errors(provider, model) if translate else _UNTRANSLATED:
        async with http.stream(
            "POST",
            url,
            json=dict(payload),
            headers={"accept": "text/event-stream", **headers},
        ) as response:
            await raise_for_status(response, provider=provider, model=model, what="chat completion")
            # each event's data as received: the chunk's JSON is parsed from the bytes
            messages = aiter_sse_data(response, provider=provider, model=model)
            async for data in messages:
                for event in parser.feed(data):
                    yield event
                if parser.done:
                    await _drain(messages, 0.5, response.extensions.get(BODY_DONE_EXTENSION))
                    break
        for event in parser.end():
            yield event


_UNTRANSLATED = contextlib.nullcontext()
"""``stream_chat``'s block without ``translate`` (a ``nullcontext`` is reusable)."""


_running_loop = asyncio.events._get_running_loop
"""The running asyncio loop or ``None`` (no system call, unlike ``get_running_loop``)."""


async def _drain(
    messages: AsyncIterator[Any], wait: float = 0.5, done: Callable[[], bool] | None = None
) -> None:
    """Read what follows ``[DONE]`` so the connection can be reused (``wait`` seconds at most).

    A failure there (a cut, a bad frame) cannot undo the finished answer: it is ignored.
    When the transport tells that the whole body is in already (``done()``, the
    response's ``BODY_DONE_EXTENSION``), its rest is read without a bound: nothing is
    waited for. Otherwise, on asyncio, the bound is ``asyncio.timeout`` (a loop timer;
    half the CPU of an anyio cancel scope, once per stream), elsewhere
    ``anyio.move_on_after``; either way only its own expiry is absorbed, a cancellation
    from outside propagates.
    """
    try:
        if done is not None and done():
            async for _ in messages:
                pass
        elif _running_loop() is not None:
            timeout = asyncio.timeout(wait)
            try:
                async with timeout:
                    async for _ in messages:
                        pass
            except TimeoutError:
                if not timeout.expired():
                    raise
        else:  # another backend (trio)
            with anyio.move_on_after(wait):
                async for _ in messages:
                    pass
    except (httpx.HTTPError, errors.LLMRelayError) as exc:
        log.debug("ignored after [DONE]: %r", exc)
