"""Anthropic Messages: a request body as a chat turn, and the events as Messages objects.

The one translator of the Messages shape (https://docs.anthropic.com/en/api/messages,
https://docs.anthropic.com/en/docs/build-with-claude/streaming; anthropic-sdk-python's
``types/`` and ``lib/streaming/``):

* ``parse_request`` reads a ``POST /v1/messages`` body into a ``MessagesRequest``:
  ``system`` (a string, or text blocks joined by a blank line) as the system prompt,
  ``messages`` as OpenAI chat messages (``text`` and ``image`` blocks as content parts,
  an assistant's ``tool_use`` blocks as ``tool_calls``, a user's ``tool_result`` blocks
  as ``tool`` messages, ``is_error`` results prefixed ``Error:``), ``tools``,
  ``tool_choice`` (``any`` is OpenAI's ``required``; ``disable_parallel_tool_use``
  sets ``parallel_tool_calls``), ``max_tokens`` (required), ``stop_sequences``,
  ``temperature``, ``top_p``, ``top_k`` (a provider option: the providers that declare
  it take it), ``metadata.user_id``, ``thinking``, ``output_config.format`` (a JSON
  Schema: the response format). ``cache_control`` (a prompt-caching hint) is accepted
  anywhere; earlier ``thinking`` blocks are not sent back (as
  Anthropic's API drops them from the context). Anything else is refused
  (``ConfigError`` with ``param``).
* ``MessageEvents`` turns a turn's events into Anthropic's stream events:
  ``message_start``, ``ping``, per content block ``content_block_start``,
  ``content_block_delta`` (``text_delta``, ``thinking_delta``, ``input_json_delta``) and
  ``content_block_stop``, then ``message_delta`` (``stop_reason``, ``usage``) and
  ``message_stop``; ``fail`` makes an ``error`` event. Its ``message`` is the ``Message``
  object (final after the end).
* ``MessageFrames`` writes them as SSE frames (an ``llmrelay._wire.sse.SSEEncoder``).

``stop_reason``: ``end_turn`` (``stop``), ``max_tokens`` (``length``), ``tool_use``
(``tool_calls``), ``refusal`` (``content_filter``). Token counts are the provider's
(0 when it reported none).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..types import ToolCallDelta, Usage
from ._common import (
    Origin,
    ShapeEvents,
    ShapeFrames,
    dumps,
    field_error,
    new_id,
    opt_bool,
    opt_int,
    opt_number,
    opt_str,
    tool_entries,
)
from .sse import json_string

__all__ = [
    "STOP_REASONS",
    "MessageEvents",
    "MessageFrames",
    "MessagesRequest",
    "estimate_tokens",
    "parse_request",
]

STOP_REASONS: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
"""Anthropic's ``stop_reason`` for an llmrelay finish reason (``end_turn`` otherwise)."""

_MAX_TEXT = 10_000_000
_KNOWN = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "cache_control",
        "output_config",
    }
)
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


@dataclass
class MessagesRequest:
    """A ``POST /v1/messages`` body, read.

    Attributes:
        model: the model reference.
        messages: the conversation as OpenAI chat messages (``normalize_messages`` input).
        system: the system prompt, or ``None``.
        chat: the chat parameters (``llmrelay.ChatParams`` names) the request sets.
        stream: whether to stream.
        thinking: whether ``Reasoning`` is returned as ``thinking`` blocks (``thinking``
            enabled); otherwise it is left out, as Anthropic's API does.
        origins: where each of ``messages`` came from (``messages[i]`` and its blocks).
    """

    model: str
    messages: list[dict[str, Any]]
    system: str | None
    chat: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    thinking: bool = False
    origins: list[Origin] = field(default_factory=list)


def _require(body: Mapping[str, Any], name: str) -> Any:
    if body.get(name) is None:
        field_error(name, "is required")
    return body[name]


def parse_request(body: Mapping[str, Any], *, count_only: bool = False) -> MessagesRequest:
    """Read a Messages request body (see the module docstring).

    Args:
        body: the JSON body.
        count_only: a ``count_tokens`` body (no ``max_tokens``, ``stream``...).

    Raises:
        llmrelay.errors.ConfigError: a malformed, unknown or unsupported field; ``param``
            names it.
    """
    if not isinstance(body, Mapping):
        field_error("body", "must be a JSON object")
    allowed = (
        {
            "model",
            "messages",
            "system",
            "tools",
            "tool_choice",
            "thinking",
            "output_config",
            "cache_control",
        }
        if count_only
        else _KNOWN
    )
    for name in body:
        if body[name] is not None and name not in allowed:
            field_error(name, "unknown parameter")
    model = _require(body, "model")
    if not isinstance(model, str) or not model or len(model) > 512:
        field_error("model", "must be a model name")
    chat: dict[str, Any] = {}
    if not count_only:
        _require(body, "max_tokens")
        chat["max_tokens"] = opt_int(body, "max_tokens", 1, 10_000_000)
        for name, high in (("temperature", 1.0), ("top_p", 1.0)):
            value = opt_number(body, name, 0, high)
            if value is not None:
                chat[name] = value
        top_k = opt_int(body, "top_k", 0, 1_000_000)
        if top_k is not None:
            chat["options"] = {"top_k": top_k}
        stops = body.get("stop_sequences")
        if stops is not None:
            if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
                field_error("stop_sequences", "must be a list of non-empty strings")
            if stops:
                chat["stop"] = list(stops)
        _check_metadata(body.get("metadata"))
        if body.get("service_tier") not in (None, "auto", "standard_only"):
            field_error("service_tier", "must be auto or standard_only")
    _output_config(body.get("output_config"), chat)
    thinking = _thinking(body.get("thinking"), chat.get("max_tokens"))
    tools = _tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
    _tool_choice(body.get("tool_choice"), tools, chat)
    system = _system(body.get("system"))
    origins: list[Origin] = []
    messages = _messages(_require(body, "messages"), origins)
    return MessagesRequest(
        model=model,
        messages=messages,
        system=system,
        chat=chat,
        stream=bool(opt_bool(body, "stream")) if not count_only else False,
        thinking=thinking,
        origins=origins,
    )


def _check_metadata(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        field_error("metadata", "must be an object")
    for key in value:
        if value[key] is not None and key != "user_id":
            field_error(f"metadata.{key}", "unknown parameter")
    opt_str(value, "user_id", "metadata.", limit=256)


def _output_config(value: Any, chat: dict[str, Any]) -> None:
    """``output_config.format`` (a JSON Schema for the answer) as a response format."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        field_error("output_config", "must be an object")
    for key, option in value.items():
        if key != "format" and option is not None:
            field_error(f"output_config.{key}", "llmrelay cannot honour this option")
    fmt = value.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        field_error("output_config.format.type", "must be json_schema")
    schema = fmt.get("schema")
    if not isinstance(schema, Mapping):
        field_error("output_config.format.schema", "must be a JSON Schema object")
    chat["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": dict(schema)},
    }


def _thinking(value: Any, max_tokens: int | None) -> bool:
    if value is None:
        return False
    if not isinstance(value, Mapping):
        field_error("thinking", "must be an object")
    kind = value.get("type")
    if kind == "disabled":
        return False
    for key in value:
        if value[key] is not None and key not in ("type", "budget_tokens", "display"):
            field_error(f"thinking.{key}", "unknown parameter")
    if value.get("display") not in (None, "summarized", "omitted"):
        field_error("thinking.display", "must be summarized or omitted")
    if kind not in ("enabled", "adaptive"):
        field_error("thinking.type", "must be enabled, adaptive or disabled")
    budget = value.get("budget_tokens")
    if kind == "enabled":
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
            field_error("thinking.budget_tokens", "must be an integer of at least 1024")
        if max_tokens is not None and budget >= max_tokens:
            field_error("thinking.budget_tokens", "must be less than max_tokens")
    return value.get("display") != "omitted"


def _system(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        field_error("system", "must be a string or a list of text blocks")
    texts = []
    for index, block in enumerate(value):
        where = f"system[{index}]"
        if not isinstance(block, Mapping) or block.get("type") != "text":
            field_error(where, "must be a text block")
        _only(block, where, ("type", "text", "cache_control", "citations"))
        text = block.get("text")
        if not isinstance(text, str):
            field_error(f"{where}.text", "must be a string")
        texts.append(text)
    return "\n\n".join(texts)


def _only(block: Mapping[str, Any], where: str, keys: tuple[str, ...]) -> None:
    for key in block:
        if block[key] is not None and key not in keys:
            field_error(f"{where}.{key}", "unknown parameter")
    if block.get("citations") not in (None, []):
        field_error(f"{where}.citations", "citations are not supported")


def _tools(value: Any) -> list[dict[str, Any]]:
    """The tools as OpenAI function tools."""
    tools = []
    for where, tool in tool_entries(value):
        if tool.get("type") not in (None, "custom"):
            field_error(f"{where}.type", f"{tool.get('type')!r:.60} tools are not supported")
        _only(tool, where, ("type", "name", "description", "input_schema", "cache_control"))
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            field_error(f"{where}.name", "must be a tool name")
        schema = tool.get("input_schema")
        if not isinstance(schema, Mapping):
            field_error(f"{where}.input_schema", "must be a JSON Schema object")
        function: dict[str, Any] = {"name": name, "parameters": dict(schema)}
        description = opt_str(tool, "description", f"{where}.")
        if description is not None:
            function["description"] = description
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: Any, tools: list[dict[str, Any]], chat: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        field_error("tool_choice", "must be an object")
    kind = value.get("type")
    for key in value:
        if value[key] is not None and key not in ("type", "name", "disable_parallel_tool_use"):
            field_error(f"tool_choice.{key}", "unknown parameter")
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool":
        name = value.get("name")
        if not isinstance(name, str) or name not in {t["function"]["name"] for t in tools}:
            field_error("tool_choice.name", "must name one of the tools")
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        field_error("tool_choice.type", "must be auto, any, tool or none")
    disable = opt_bool(value, "disable_parallel_tool_use", "tool_choice.")
    if disable is not None:
        if kind == "none":
            field_error("tool_choice.disable_parallel_tool_use", "not allowed with none")
        chat["parallel_tool_calls"] = not disable


def _messages(value: Any, origins: list[Origin]) -> list[dict[str, Any]]:
    """``messages`` as OpenAI chat messages; ``origins`` receives where each came from."""
    if not isinstance(value, list) or not value:
        field_error("messages", "must be a non-empty list of messages")
    out: list[dict[str, Any]] = []
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            field_error(where, "must be an object")
        for key in message:
            if message[key] is not None and key not in ("role", "content"):
                field_error(f"{where}.{key}", "unknown parameter")
        role = message.get("role")
        if role not in ("user", "assistant"):
            field_error(f"{where}.role", "must be user or assistant")
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            origins.append((where, ()))
        elif isinstance(content, list):
            out.extend(_blocks(content, f"{where}.content", role, origins))
        else:
            field_error(f"{where}.content", "must be a string or a list of content blocks")
    return out


def _blocks(
    blocks: list[Any], where: str, role: str, origins: list[Origin]
) -> list[dict[str, Any]]:
    """One message's content blocks as OpenAI chat messages (tool results first).

    ``origins`` receives, per chat message, the Anthropic message (``where`` less its
    ``.content``) and the block each content part came from.
    """
    message = where.removesuffix(".content")
    parts: list[dict[str, Any]] = []
    part_at: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        at = f"{where}[{index}]"
        if not isinstance(block, Mapping):
            field_error(at, "must be a content block")
        kind = block.get("type")
        if kind == "text":
            _only(block, at, ("type", "text", "cache_control", "citations"))
            text = block.get("text")
            if not isinstance(text, str):
                field_error(f"{at}.text", "must be a string")
            parts.append({"type": "text", "text": text})
            part_at.append(at)
        elif kind == "image":
            _only(block, at, ("type", "source", "cache_control"))
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, at)}})
            part_at.append(at)
        elif kind == "tool_use" and role == "assistant":
            _only(block, at, ("type", "id", "name", "input", "cache_control"))
            call_id, name, args = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str) or not call_id:
                field_error(f"{at}.id", "must be the tool use id")
            if not isinstance(name, str) or not name:
                field_error(f"{at}.name", "must be the tool name")
            if not isinstance(args, Mapping):
                field_error(f"{at}.input", "must be an object")
            arguments = json.dumps(args, ensure_ascii=False, separators=(",", ":"))
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(block, at))
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue  # earlier reasoning is not part of the context (as Anthropic's API)
        else:
            field_error(f"{at}.type", f"{kind!r:.40} blocks are not supported in a {role} message")
    out: list[dict[str, Any]] = list(results)
    origins.extend((message, ()) for _ in results)
    if calls:
        text_only = all(part["type"] == "text" for part in parts)
        content: Any = "".join(p["text"] for p in parts) if text_only else parts
        out.append({"role": "assistant", "content": content or None, "tool_calls": calls})
        origins.append((message, () if text_only else tuple(part_at)))
    elif parts or not results:
        out.append({"role": role, "content": parts})
        origins.append((message, tuple(part_at)))
    return out


def _image_url(block: Mapping[str, Any], at: str) -> str:
    source = block.get("source")
    if not isinstance(source, Mapping):
        field_error(f"{at}.source", "must be an object")
    kind = source.get("type")
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            field_error(f"{at}.source.url", "must be an http(s) URL")
        return url
    if kind == "base64":
        media = source.get("media_type")
        data = source.get("data")
        if media not in _IMAGE_TYPES:
            field_error(f"{at}.source.media_type", "must be image/jpeg, png, gif or webp")
        if not isinstance(data, str) or not data:
            field_error(f"{at}.source.data", "must be base64 data")
        return f"data:{media};base64,{data}"
    field_error(f"{at}.source.type", "must be base64 or url")


def _tool_result(block: Mapping[str, Any], at: str) -> dict[str, Any]:
    _only(block, at, ("type", "tool_use_id", "content", "is_error", "cache_control"))
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        field_error(f"{at}.tool_use_id", "must be the id of the tool use it answers")
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") != "text":
                field_error(f"{at}.content[{j}]", "only text blocks are supported in a tool result")
            text = part.get("text")
            if not isinstance(text, str):
                field_error(f"{at}.content[{j}].text", "must be a string")
            texts.append(text)
        content = "".join(texts)
    if content is None:
        content = ""
    if not isinstance(content, str):
        field_error(f"{at}.content", "must be a string or a list of text blocks")
    if opt_bool(block, "is_error", f"{at}."):
        content = f"Error: {content}"
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def estimate_tokens(request: MessagesRequest) -> int:
    """An estimate of the request's input tokens: its UTF-8 bytes / 4, rounded up.

    llmrelay has no tokenizer for the hosted models (Anthropic documents its own count as
    an estimate too); the bytes counted are the system prompt, every message's text and
    tool arguments, image URLs, and the tools' JSON.
    """
    size = len((request.system or "").encode())
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            size += len(content.encode())
        elif isinstance(content, list):
            for part in content:
                size += len(dumps(part))
        for call in message.get("tool_calls", ()):
            size += len(dumps(call))
    for tool in request.chat.get("tools", ()):
        size += len(dumps(tool))
    return max(1, math.ceil(size / 4))


class MessageEvents(ShapeEvents):
    """A turn's events as Anthropic stream events (dicts; see the module docstring).

    ``start()`` first (``message_start`` and a ``ping``), then ``event(e)`` for each
    llmrelay event, then the finish (from ``FinishReason``) or ``fail(type, message)``.

    Args:
        id: the message id (``msg_...``).
        model: the model name reported.
        thinking: whether reasoning becomes ``thinking`` blocks (else it is left out).

    Attributes:
        message: the ``Message`` object so far (final after the end).
        ended: whether the stream ended (``message_stop`` or an ``error``).
    """

    def __init__(self, *, id: str, model: str, thinking: bool) -> None:
        self.message: dict[str, Any] = {
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        self.thinking = thinking
        self.ended = False
        self._block: dict[str, Any] | None = None
        self._parts: list[str] = []
        self._call: int | None = None  # the tool call whose block is open
        self._calls: dict[int, dict[str, Any]] = {}
        self._arguments: dict[int, list[str]] = {}
        self._pending: list[int] = []  # calls whose block waits for the open one to close
        self._usage: Usage | None = None
        self._text_head = b""

    def start(self) -> list[dict[str, Any]]:
        """``message_start`` and a ``ping``."""
        start = dict(self.message)
        start["content"] = []
        start["usage"] = dict(self.message["usage"])
        return [{"type": "message_start", "message": start}, {"type": "ping"}]

    def _open(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close()
        index = len(self.message["content"])
        self.message["content"].append(block)
        self._block = block
        self._parts = []
        if block["type"] == "text":
            self._text_head = (
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
                b'"delta":{"type":"text_delta","text":' % index
            )
        out.append({"type": "content_block_start", "index": index, "content_block": dict(block)})
        return out

    def _close(self) -> list[dict[str, Any]]:
        block, self._block = self._block, None
        if block is None:
            return []
        index = self.message["content"].index(block)
        joined = "".join(self._parts)
        if block["type"] == "text":
            block["text"] = joined
        elif block["type"] == "thinking":
            block["thinking"] = joined
        else:
            self._call = None
        return [{"type": "content_block_stop", "index": index}]

    def text(self, delta: str) -> list[dict[str, Any]]:
        """The events of a text delta (an empty one makes none)."""
        if not delta:
            return []
        block = self._block
        out = (
            []
            if block is not None and block["type"] == "text"
            else self._open({"type": "text", "text": ""})
        )
        self._parts.append(delta)
        out.append(
            {
                "type": "content_block_delta",
                "index": len(self.message["content"]) - 1,
                "delta": {"type": "text_delta", "text": delta},
            }
        )
        return out

    def text_frame(self, delta: str) -> bytes | None:
        """The SSE frame of a text delta into an open text block, else ``None``.

        The bytes ``sse_event`` writes for ``text(delta)``'s one event.

        Raises:
            UnicodeEncodeError: ``delta`` holds a lone surrogate.
        """
        block = self._block
        if not delta or block is None or block["type"] != "text":
            return None
        self._parts.append(delta)
        return self._text_head + json_string(delta) + b"}}\n\n"

    def reasoning(self, delta: str) -> list[dict[str, Any]]:
        """The events of a reasoning delta (none without ``thinking``, or when empty)."""
        if not delta or not self.thinking:
            return []
        block = self._block
        out = (
            []
            if block is not None and block["type"] == "thinking"
            else self._open({"type": "thinking", "thinking": "", "signature": ""})
        )
        self._parts.append(delta)
        out.append(
            {
                "type": "content_block_delta",
                "index": len(self.message["content"]) - 1,
                "delta": {"type": "thinking_delta", "thinking": delta},
            }
        )
        return out

    def tool_call(self, delta: ToolCallDelta) -> list[dict[str, Any]]:
        """The events of a tool-call delta: a ``tool_use`` block and its argument JSON."""
        out: list[dict[str, Any]] = []
        index = delta.index
        if index not in self._calls:
            self._calls[index] = {
                "type": "tool_use",
                "id": delta.id or new_id("toolu_"),
                "name": delta.name or "",
                "input": {},
            }
            self._arguments[index] = []
            if self._call is None:
                out += self._open(self._calls[index])
                self._call = index
            else:  # another call's block is open: this one follows it, whole
                self._pending.append(index)
        if delta.arguments:
            self._arguments[index].append(delta.arguments)
            if index == self._call:
                self._parts.append(delta.arguments)
                out.append(
                    {
                        "type": "content_block_delta",
                        "index": len(self.message["content"]) - 1,
                        "delta": {"type": "input_json_delta", "partial_json": delta.arguments},
                    }
                )
        return out

    def _flush_calls(self) -> list[dict[str, Any]]:
        """The blocks of the calls that waited: start, their whole JSON, stop."""
        out: list[dict[str, Any]] = []
        for index in self._pending:
            arguments = "".join(self._arguments[index])
            out += self._open(self._calls[index])
            self._call = index
            if arguments:
                self._parts.append(arguments)
                out.append(
                    {
                        "type": "content_block_delta",
                        "index": len(self.message["content"]) - 1,
                        "delta": {"type": "input_json_delta", "partial_json": arguments},
                    }
                )
        self._pending.clear()
        return out + self._close()

    def finish(self, reason: str) -> list[dict[str, Any]]:
        """Close the blocks; ``message_delta`` (stop reason, usage) and ``message_stop``."""
        if self.ended:
            return []
        out = self._close() + self._flush_calls()
        for index, block in self._calls.items():  # every fragment, streamed or not
            block["input"] = _parsed("".join(self._arguments[index]))
        stop_reason = STOP_REASONS.get(reason, "end_turn")
        self.message["stop_reason"] = stop_reason
        usage: dict[str, Any] = {"output_tokens": 0}
        if self._usage is not None:
            usage = {
                "input_tokens": self._usage.prompt_tokens or 0,
                "output_tokens": self._usage.completion_tokens or 0,
            }
            self.message["usage"] = dict(usage)
        self.ended = True
        out.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": usage,
            }
        )
        out.append({"type": "message_stop"})
        return out

    def fail(self, kind: str, message: str) -> list[dict[str, Any]]:
        """The ``error`` event that ends a failed stream."""
        if self.ended:
            return []
        self.ended = True
        return [{"type": "error", "error": {"type": kind, "message": message}}]


def _parsed(arguments: str) -> Any:
    """A tool call's arguments as the ``input`` object (the text itself if not JSON)."""
    if not arguments:
        return {}
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


class MessageFrames(ShapeFrames["MessageEvents"]):
    """The SSE frames of one Messages stream (an ``llmrelay._wire.sse.SSEEncoder``).

    ``message_stop`` is sent with the finish.

    Args:
        events: the stream's ``MessageEvents``.

    Attributes:
        finish_reason: the ``stop_reason`` sent, once sent.
        sent_usage: the usage reported in ``message_delta``, if any.
    """

    def _finish_name(self) -> str:
        return str(self.events.message["stop_reason"])
