"""OpenAI Responses: a request body as a chat turn, and the events as Responses objects.

The one translator of the Responses shape (https://platform.openai.com/docs/api-reference/responses,
openai-python's ``types/responses/``; the Open Responses specification,
https://github.com/openresponses/openresponses, ``schema/``):

* ``parse_request`` reads a ``POST /v1/responses`` body into a ``ResponsesRequest``: the
  input items as OpenAI chat messages (``message`` items with ``input_text``/``input_image``
  parts, ``function_call`` items as an assistant's ``tool_calls``, ``function_call_output``
  items as ``tool`` messages), ``instructions`` as the system prompt, function ``tools``,
  ``tool_choice``, ``text.format`` as a response format, the sampling parameters; every
  other field is honoured (echoed, or at its default) or refused (``ConfigError`` with
  ``param``): nothing is dropped.
* ``ResponseEvents`` turns a turn's events into the Responses streaming events, with
  ``sequence_number`` from 0: ``response.created``, ``response.in_progress``, per output
  item ``response.output_item.added``, its parts and deltas
  (``response.content_part.added``, ``response.output_text.delta``/``.done``,
  ``response.reasoning_text.delta``/``.done``,
  ``response.function_call_arguments.delta``/``.done``), ``response.content_part.done``,
  ``response.output_item.done``, then ``response.completed`` (or ``response.incomplete``
  for a ``length``/``content_filter`` finish, ``response.failed`` for an error). Its
  ``response`` is the ``response`` object at any point (the final one after the end).
* ``ResponseFrames`` writes the same events as SSE frames (``event: <type>`` and
  ``data: <json>``; no ``[DONE]``), an ``llmrelay._wire.sse.SSEEncoder``.

A text answer is one ``message`` item; ``Reasoning`` events make a ``reasoning`` item
(``content`` of ``reasoning_text`` parts, as OpenAI writes raw reasoning; the Open
Responses specification names the delta ``response.reasoning.delta``); each tool call a
``function_call`` item. Usage is reported only when the provider reported it (else
``null``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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
    "RESPONSE_ID_PREFIX",
    "ResponseEvents",
    "ResponseFrames",
    "ResponsesRequest",
    "item_location",
    "parse_request",
    "to_messages",
    "usage_object",
]

RESPONSE_ID_PREFIX = "resp_"
_MAX_ITEMS = 10_000
_MAX_TEXT = 10_000_000
_METADATA_KEYS = 16

# Fields refused unless they hold the value that means "nothing asked" (the default).
_DEFAULT_ONLY: dict[str, tuple[Any, ...]] = {
    "background": (False,),
    "truncation": ("disabled",),
    "service_tier": ("auto", "default"),
    "top_logprobs": (0,),
    "include": ([],),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "max_tool_calls": (),
    "prompt": (),
    "conversation": (),
    "prompt_cache_retention": (),
    "prompt_cache_options": (),
    "context_management": (),
    "background_options": (),
    "moderation": (),
    "image": (),
    "access_programs": (),
}
_KNOWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
        "stream_options",
        "store",
        "previous_response_id",
        "metadata",
        "reasoning",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        *_DEFAULT_ONLY,
    }
)


@dataclass
class ResponsesRequest:
    """A ``POST /v1/responses`` body, read.

    Attributes:
        model: the model reference, or ``None`` (the client's default).
        entries: the input, for ``to_messages`` (chat messages once the
            ``item_reference`` items are looked up).
        references: the ids of the ``item_reference`` items.
        input_items: the input items as ``input_items`` lists them (each with an id).
        instructions: the system prompt, or ``None``.
        chat: the chat parameters (``llmrelay.ChatParams`` names) the request sets.
        stream: whether to stream.
        store: whether to keep the response (default ``True``).
        previous_response_id: the response this one continues, or ``None``.
        echo: the request's fields as the ``response`` object reports them.
    """

    model: str | None
    entries: list[dict[str, Any]]
    input_items: list[dict[str, Any]]
    instructions: str | None
    chat: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    echo: dict[str, Any] = field(default_factory=dict)

    @property
    def references(self) -> list[str]:
        """The ids of the ``item_reference`` items, in order."""
        return [entry["ref"] for entry in self.entries if "ref" in entry]


def parse_request(body: Mapping[str, Any]) -> ResponsesRequest:
    """Read a Responses request body (see the module docstring).

    Raises:
        llmrelay.errors.ConfigError: a malformed field, an unknown one, or one llmrelay
            cannot honour; ``param`` names it.
    """
    if not isinstance(body, Mapping):
        field_error("body", "must be a JSON object")
    for name in body:
        if body[name] is not None and name not in _KNOWN:
            field_error(name, "unknown parameter")
    for name, allowed in _DEFAULT_ONLY.items():
        value = body.get(name)
        if value is not None and value not in allowed:
            field_error(name, "llmrelay cannot honour this parameter (only its default)")
    model = opt_str(body, "model", limit=512)
    instructions = opt_str(body, "instructions", limit=_MAX_TEXT)
    temperature = opt_number(body, "temperature", 0, 2)
    top_p = opt_number(body, "top_p", 0, 1)
    max_output_tokens = opt_int(body, "max_output_tokens", 1, 10_000_000)
    stream = bool(opt_bool(body, "stream"))
    store = opt_bool(body, "store")
    previous = opt_str(body, "previous_response_id", limit=256)
    parallel = opt_bool(body, "parallel_tool_calls")
    _check_stream_options(body.get("stream_options"), stream)
    _check_reasoning(body.get("reasoning"))
    metadata = _metadata(body.get("metadata"))
    tools = _tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), tools)
    text, response_format = _text(body.get("text"))
    entries, items = _input(body.get("input"))
    if not any(entry for entry in entries):
        field_error("input", "has no message")
    chat: dict[str, Any] = {}
    if temperature is not None:
        chat["temperature"] = temperature
    if top_p is not None:
        chat["top_p"] = top_p
    if max_output_tokens is not None:
        chat["max_tokens"] = max_output_tokens
    if tools:
        chat["tools"] = [_chat_tool(tool) for tool in tools]
    if tool_choice is not None:
        chat["tool_choice"] = _chat_tool_choice(tool_choice)
    if parallel is not None:
        chat["parallel_tool_calls"] = parallel
    if response_format is not None:
        chat["response_format"] = response_format
    stored = store if store is not None else True
    echo: dict[str, Any] = {
        "instructions": instructions,
        "tools": tools,
        "tool_choice": tool_choice if tool_choice is not None else "auto",
        "parallel_tool_calls": parallel if parallel is not None else True,
        "text": text,
        "temperature": temperature if temperature is not None else 1.0,
        "top_p": top_p if top_p is not None else 1.0,
        "max_output_tokens": max_output_tokens,
        "metadata": metadata,
        "user": opt_str(body, "user", limit=512),
        "safety_identifier": opt_str(body, "safety_identifier", limit=512),
        "prompt_cache_key": opt_str(body, "prompt_cache_key", limit=512),
        "store": stored,
        "previous_response_id": previous,
    }
    return ResponsesRequest(
        model=model,
        entries=entries,
        input_items=items,
        instructions=instructions,
        chat=chat,
        stream=stream,
        store=stored,
        previous_response_id=previous,
        echo=echo,
    )


def _check_stream_options(value: Any, stream: bool) -> None:
    if value is None:
        return
    if not stream:
        field_error("stream_options", "is only allowed with stream: true")
    if not isinstance(value, Mapping):
        field_error("stream_options", "must be an object")
    for key, option in value.items():
        if key != "include_obfuscation" or option not in (False, None):
            field_error(f"stream_options.{key}", "llmrelay cannot honour this option")


def _check_reasoning(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        field_error("reasoning", "must be an object")
    for key, option in value.items():
        if option is not None:
            field_error(
                f"reasoning.{key}",
                "llmrelay cannot honour this option (a model's visible reasoning is "
                "always returned as reasoning items)",
            )


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > _METADATA_KEYS:
        field_error("metadata", f"must be an object of at most {_METADATA_KEYS} keys")
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > 64:
            field_error("metadata", "keys are strings of at most 64 characters")
        if not isinstance(item, str) or len(item) > 512:
            field_error(f"metadata.{key}", "must be a string of at most 512 characters")
    return dict(value)


def _tools(value: Any) -> list[dict[str, Any]]:
    """The function tools, in the Responses shape (as the response echoes them)."""
    tools = []
    for where, tool in tool_entries(value):
        kind = tool.get("type")
        if kind != "function":
            field_error(f"{where}.type", f"{kind!r:.40} tools are not supported (only function)")
        for key in tool:
            if tool[key] is not None and key not in (
                "type",
                "name",
                "description",
                "parameters",
                "strict",
            ):
                field_error(f"{where}.{key}", "unknown parameter")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            field_error(f"{where}.name", "must be a function name")
        description = opt_str(tool, "description", f"{where}.")
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            field_error(f"{where}.parameters", "must be a JSON Schema object")
        strict = opt_bool(tool, "strict", f"{where}.")
        tools.append(
            {
                "type": "function",
                "name": name,
                "description": description,
                "parameters": dict(parameters) if parameters is not None else None,
                "strict": strict if strict is not None else True,
                "_strict_given": strict is not None,
            }
        )
    return tools


def _chat_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool["name"]}
    if tool["description"] is not None:
        function["description"] = tool["description"]
    if tool["parameters"] is not None:
        function["parameters"] = tool["parameters"]
    if tool["_strict_given"]:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> Any:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return value
    if isinstance(value, Mapping) and value.get("type") == "function":
        name = value.get("name")
        if not isinstance(name, str) or name not in {tool["name"] for tool in tools}:
            field_error("tool_choice.name", "must name one of the function tools")
        return {"type": "function", "name": name}
    field_error("tool_choice", "must be auto, none, required or {type: function, name}")


def _chat_tool_choice(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {"type": "function", "function": {"name": value["name"]}}
    return value


def _text(value: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``text`` field as echoed, and the chat ``response_format`` it asks for."""
    default: dict[str, Any] = {"format": {"type": "text"}}
    if value is None:
        return default, None
    if not isinstance(value, Mapping):
        field_error("text", "must be an object")
    for key in value:
        if value[key] is not None and key not in ("format", "verbosity"):
            field_error(f"text.{key}", "unknown parameter")
    if value.get("verbosity") not in (None, "medium"):
        field_error("text.verbosity", "llmrelay cannot honour this option (only medium)")
    fmt = value.get("format")
    if fmt is None:
        return default, None
    if not isinstance(fmt, Mapping):
        field_error("text.format", "must be an object")
    kind = fmt.get("type")
    if kind == "text":
        return default, None
    if kind == "json_object":
        return {"format": {"type": "json_object"}}, {"type": "json_object"}
    if kind != "json_schema":
        field_error("text.format.type", "must be text, json_object or json_schema")
    name = fmt.get("name")
    schema = fmt.get("schema")
    if not isinstance(name, str) or not name:
        field_error("text.format.name", "must be the schema's name")
    if not isinstance(schema, Mapping):
        field_error("text.format.schema", "must be a JSON Schema object")
    description = opt_str(fmt, "description", "text.format.")
    strict = opt_bool(fmt, "strict", "text.format.")
    spec: dict[str, Any] = {"name": name, "schema": dict(schema)}
    if description is not None:
        spec["description"] = description
    if strict is not None:
        spec["strict"] = strict
    echo = {"type": "json_schema", "name": name, "schema": dict(schema), "strict": strict}
    if description is not None:
        echo["description"] = description
    return {"format": echo}, {"type": "json_schema", "json_schema": spec}


def _input(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The entries of ``input`` (for ``to_messages``), and its items as stored (with ids).

    An entry is ``{"message": ...}`` (a chat message), ``{"call": ...}`` (a tool call of
    the assistant), ``{"ref": id, "where": ...}`` (an ``item_reference``) or ``{}`` (an
    earlier reasoning item: not sent back to a provider, as no chat API takes it).
    """
    if isinstance(value, str):
        item = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_text", "text": value}],
        }
        return [{"message": {"role": "user", "content": value}, "at": ("input", ())}], [item]
    if not isinstance(value, list) or not value:
        field_error("input", "must be a string or a non-empty list of items")
    if len(value) > _MAX_ITEMS:
        field_error("input", f"at most {_MAX_ITEMS} items")
    entries: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, Mapping):
            field_error(where, "must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            message, stored = _message(item, where)
            content = message["content"]
            parts = (
                tuple(f"{where}.content[{j}]" for j in range(len(content)))
                if isinstance(content, list)
                else ()
            )
            entries.append({"message": message, "at": (where, parts)})
        elif kind == "function_call":
            call, stored = _function_call(item, where)
            entries.append({"call": call, "at": (where, ())})
        elif kind == "function_call_output":
            message, stored = _function_output(item, where)
            entries.append({"message": message, "at": (where, ())})
        elif kind == "reasoning":
            stored = dict(item)
            entries.append({})
        elif kind == "item_reference":
            ref = item.get("id")
            if not isinstance(ref, str) or not ref:
                field_error(f"{where}.id", "must be the id of a stored item")
            stored = {"type": "item_reference", "id": ref}
            entries.append({"ref": ref, "where": f"{where}.id"})
        else:
            field_error(f"{where}.type", f"{kind!r:.40} items are not supported")
        items.append(stored)
    return entries, items


def to_messages(
    entries: list[dict[str, Any]],
    found: Mapping[str, Mapping[str, Any]] | None,
    origins: list[Origin] | None = None,
) -> list[dict[str, Any]]:
    """The chat messages of ``input`` entries (``ResponsesRequest.entries``).

    Args:
        entries: the entries.
        found: each referenced item (``item_reference``'s id -> the stored output
            item); ``None`` leaves references out (a log's view of the request).
        origins: when given, receives where each chat message came from (the ``input``
            item and its content parts), one per message, for ``open_turn``.

    Raises:
        llmrelay.errors.ConfigError: a reference not in ``found``; no message at all.
    """
    messages: list[dict[str, Any]] = []
    for entry in entries:
        if "ref" in entry:
            if found is None:
                continue
            item = found.get(entry["ref"])
            if item is None:
                field_error(entry["where"], f"no stored item {entry['ref']!r:.80}")
            entry = {**_entry_of_output(item), "at": (entry["where"].removesuffix(".id"), ())}
        if "call" in entry:
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_call_id" not in last:
                last.setdefault("tool_calls", []).append(entry["call"])
                continue
            messages.append({"role": "assistant", "content": None, "tool_calls": [entry["call"]]})
        elif "message" in entry:
            messages.append(entry["message"])
        else:
            continue
        if origins is not None:
            origins.append(entry["at"])
    if not messages and found is not None:
        field_error("input", "has no message")
    return messages


def _entry_of_output(item: Mapping[str, Any]) -> dict[str, Any]:
    """The entry of a stored output item (what an ``item_reference`` stands for)."""
    kind = item.get("type")
    if kind == "message":
        text = "".join(
            part.get("text", "") if part.get("type") == "output_text" else part.get("refusal", "")
            for part in item.get("content", ())
        )
        return {"message": {"role": "assistant", "content": text}}
    if kind == "function_call":
        call = {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        return {"call": call}
    return {}  # reasoning


def item_location(item_id: str) -> tuple[str, int] | None:
    """``(response id, output index)`` of an output item id this module made, else None.

    Output item ids are ``<prefix><the response id's tail>_<index>`` (``msg_``, ``rs_``,
    ``fc_``), so that an ``item_reference`` finds its stored response.
    """
    prefix, sep, rest = item_id.partition("_")
    if not sep or prefix not in ("msg", "rs", "fc"):
        return None
    tail, sep, index = rest.rpartition("_")
    if not sep or not tail or not index.isdigit():
        return None
    return RESPONSE_ID_PREFIX + tail, int(index)


def _message(item: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        field_error(f"{where}.role", "must be user, assistant, system or developer")
    for key in item:
        if item[key] is not None and key not in (
            "type",
            "role",
            "content",
            "id",
            "status",
            "phase",
        ):
            field_error(f"{where}.{key}", "unknown parameter")
    content = item.get("content")
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        stored_parts: list[dict[str, Any]] = [{"type": kind, "text": content}]
        chat_content: Any = content
    elif isinstance(content, list):
        chat_parts: list[dict[str, Any]] = []
        stored_parts = []
        for j, part in enumerate(content):
            chat_part, stored_part = _part(part, f"{where}.content[{j}]", role)
            chat_parts.append(chat_part)
            stored_parts.append(stored_part)
        chat_content = chat_parts
    else:
        field_error(f"{where}.content", "must be a string or a list of content parts")
    item_id = item.get("id")
    if item_id is not None and not isinstance(item_id, str):
        field_error(f"{where}.id", "must be a string")
    stored = {
        "id": item_id or new_id("msg_"),
        "type": "message",
        "role": role,
        "status": "completed",
        "content": stored_parts,
    }
    return {"role": role, "content": chat_content}, stored


def _part(part: Any, where: str, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(part, Mapping):
        field_error(where, "must be a content part object")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        text = part.get("text")
        if not isinstance(text, str):
            field_error(f"{where}.text", "must be a string")
        stored_kind = "output_text" if role == "assistant" else "input_text"
        stored: dict[str, Any] = {"type": stored_kind, "text": text}
        if stored_kind == "output_text":
            stored["annotations"] = []
        return {"type": "text", "text": text}, stored
    if kind == "refusal" and role == "assistant":
        refusal = part.get("refusal")
        if not isinstance(refusal, str):
            field_error(f"{where}.refusal", "must be a string")
        return {"type": "text", "text": refusal}, {"type": "refusal", "refusal": refusal}
    if kind == "input_image":
        if part.get("file_id") is not None:
            field_error(f"{where}.file_id", "file ids are not supported (send image_url)")
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            field_error(f"{where}.image_url", "must be an https or data URL")
        detail = part.get("detail")
        if detail not in (None, "auto", "low", "high"):
            field_error(f"{where}.detail", "must be auto, low or high")
        stored = {"type": "input_image", "image_url": url, "detail": detail or "auto"}
        stored["file_id"] = None
        image = {"url": url} if detail is None else {"url": url, "detail": detail}
        return {"type": "image_url", "image_url": image}, stored
    field_error(f"{where}.type", f"{kind!r:.40} content is not supported")


def _function_call(item: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    if not isinstance(call_id, str) or not call_id:
        field_error(f"{where}.call_id", "must be the call's id")
    if not isinstance(name, str) or not name:
        field_error(f"{where}.name", "must be the function's name")
    if not isinstance(arguments, str):
        field_error(f"{where}.arguments", "must be a string (JSON text)")
    item_id = item.get("id")
    stored = {
        "id": item_id if isinstance(item_id, str) and item_id else new_id("fc_"),
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return call, stored


def _function_output(item: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str) or not call_id:
        field_error(f"{where}.call_id", "must be the id of the call it answers")
    if isinstance(output, list):
        texts = []
        for j, part in enumerate(output):
            if not isinstance(part, Mapping) or part.get("type") != "input_text":
                field_error(f"{where}.output[{j}]", "only input_text parts are supported")
            text = part.get("text")
            if not isinstance(text, str):
                field_error(f"{where}.output[{j}].text", "must be a string")
            texts.append(text)
        output = "".join(texts)
    if not isinstance(output, str):
        field_error(f"{where}.output", "must be a string or a list of input_text parts")
    item_id = item.get("id")
    stored = {
        "id": item_id if isinstance(item_id, str) and item_id else new_id("fco_"),
        "type": "function_call_output",
        "call_id": call_id,
        "output": output,
        "status": "completed",
    }
    return {"role": "tool", "tool_call_id": call_id, "content": output}, stored


def usage_object(usage: Usage) -> dict[str, Any]:
    """The Responses ``usage`` object of reported counts (a missing count 0)."""
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    total = usage.total_tokens if usage.total_tokens is not None else prompt + completion
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total,
    }


def base_response(
    request: ResponsesRequest, *, id: str, created_at: int, model: str
) -> dict[str, Any]:
    """The ``response`` object of ``request`` before any output (status ``in_progress``)."""
    echo = request.echo
    return {
        "id": id,
        "object": "response",
        "created_at": created_at,
        "completed_at": None,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": echo["instructions"],
        "max_output_tokens": echo["max_output_tokens"],
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": echo["parallel_tool_calls"],
        "previous_response_id": echo["previous_response_id"],
        "prompt_cache_key": echo["prompt_cache_key"],
        "reasoning": None,
        "safety_identifier": echo["safety_identifier"],
        "service_tier": "default",
        "store": echo["store"],
        "temperature": echo["temperature"],
        "text": echo["text"],
        "tool_choice": echo["tool_choice"],
        "tools": [
            {k: v for k, v in tool.items() if not k.startswith("_")} for tool in echo["tools"]
        ],
        "top_logprobs": 0,
        "top_p": echo["top_p"],
        "truncation": "disabled",
        "usage": None,
        "user": echo["user"],
        "metadata": echo["metadata"],
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""llmrelay finish reasons that end a response ``incomplete``, with its reason."""


class ResponseEvents(ShapeEvents):
    """A turn's events as Responses streaming events (dicts; see the module docstring).

    Call ``start()`` first (``response.created`` and ``response.in_progress``), then
    ``event(e)`` for each llmrelay event (``text(t)`` for a text delta), then exactly one
    of the finish (an event, from ``FinishReason``) or ``fail(code, message)``. Each
    method returns the events to send, ``sequence_number`` set in order.

    Args:
        response: the ``base_response`` object (the builder updates it in place).

    Attributes:
        response: the ``response`` object so far (final after the finish).
        ended: whether a terminal event was made.
    """

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self._tail = str(response["id"]).removeprefix(RESPONSE_ID_PREFIX)
        self.output: list[dict[str, Any]] = response["output"]
        self.seq = 0
        self.ended = False
        self._open: dict[str, Any] | None = None  # the message or reasoning item being written
        self._parts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}  # tool call index -> its item
        self._arguments: dict[int, list[str]] = {}
        self._usage: Usage | None = None
        self._text_head = b""

    def _event(self, payload: dict[str, Any]) -> dict[str, Any]:
        payload["sequence_number"] = self.seq
        self.seq += 1
        return payload

    def _snapshot(self, kind: str) -> dict[str, Any]:
        return self._event({"type": kind, "response": _copy_response(self.response)})

    def start(self) -> list[dict[str, Any]]:
        """``response.created`` and ``response.in_progress``."""
        return [self._snapshot("response.created"), self._snapshot("response.in_progress")]

    # -- output items ------------------------------------------------------------------

    def _item_id(self, prefix: str) -> str:
        """The id of the next output item (``item_location`` reads it back)."""
        return f"{prefix}{self._tail}_{len(self.output)}"

    def _add(self, item: dict[str, Any]) -> dict[str, Any]:
        self.output.append(item)
        return self._event(
            {
                "type": "response.output_item.added",
                "output_index": len(self.output) - 1,
                "item": _copy_item(item),
            }
        )

    def _open_item(self, kind: str) -> list[dict[str, Any]]:
        """Close the open item unless it is a ``kind`` one; open a ``kind`` item."""
        out = self._close_open()
        index = len(self.output)
        if kind == "message":
            item: dict[str, Any] = {
                "id": self._item_id("msg_"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            part: dict[str, Any] = {
                "type": "output_text",
                "text": "",
                "annotations": [],
                "logprobs": [],
            }
        else:
            item = {
                "id": self._item_id("rs_"),
                "type": "reasoning",
                "status": "in_progress",
                "summary": [],
                "content": [],
            }
            part = {"type": "reasoning_text", "text": ""}
        out.append(self._add(item))
        out.append(
            self._event(
                {
                    "type": "response.content_part.added",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "part": dict(part),
                }
            )
        )
        item["content"].append(part)
        self._open = item
        self._parts = []
        if kind == "message":
            self._text_head = (
                b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
                b'"item_id":' + json_string(item["id"]) + b',"output_index":%d,"content_index":0,'
                b'"delta":' % index
            )
        return out

    def _close_open(self, status: str = "completed") -> list[dict[str, Any]]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = self.output.index(item)
        text = "".join(self._parts)
        part = item["content"][0]
        part["text"] = text
        reasoning = item["type"] == "reasoning"
        done: dict[str, Any] = {
            "type": "response.reasoning_text.done" if reasoning else "response.output_text.done",
            "item_id": item["id"],
            "output_index": index,
            "content_index": 0,
            "text": text,
        }
        if not reasoning:
            done["logprobs"] = []
        item["status"] = status
        return [
            self._event(done),
            self._event(
                {
                    "type": "response.content_part.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "part": dict(part),
                }
            ),
            self._event(
                {
                    "type": "response.output_item.done",
                    "output_index": index,
                    "item": _copy_item(item),
                }
            ),
        ]

    def text(self, delta: str) -> list[dict[str, Any]]:
        """The events of a text delta (an empty one makes none)."""
        return self._delta("message", "response.output_text.delta", delta, {"logprobs": []})

    def _delta(
        self, kind: str, event_type: str, delta: str, extra: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """A delta into the open ``kind`` item (opened first when another one is open)."""
        if not delta:
            return []
        item = self._open
        out = [] if item is not None and item["type"] == kind else self._open_item(kind)
        item = self._open
        assert item is not None
        self._parts.append(delta)
        out.append(
            self._event(
                {
                    "type": event_type,
                    "item_id": item["id"],
                    "output_index": len(self.output) - 1,
                    "content_index": 0,
                    "delta": delta,
                    **extra,
                }
            )
        )
        return out

    def text_frame(self, delta: str) -> bytes | None:
        """The SSE frame of a text delta into an open message item, else ``None``.

        The token path: the bytes ``sse_event`` writes for ``text(delta)``'s one event
        (same keys in the same order), without building it.

        Raises:
            UnicodeEncodeError: ``delta`` holds a lone surrogate.
        """
        item = self._open
        if not delta or item is None or item["type"] != "message":
            return None
        frame = (
            self._text_head
            + json_string(delta)
            + b',"logprobs":[],"sequence_number":%d}\n\n' % self.seq
        )
        self.seq += 1
        self._parts.append(delta)
        return frame

    def reasoning(self, delta: str) -> list[dict[str, Any]]:
        """The events of a reasoning delta (an empty one makes none)."""
        return self._delta("reasoning", "response.reasoning_text.delta", delta, {})

    def tool_call(self, delta: ToolCallDelta) -> list[dict[str, Any]]:
        """The events of a tool-call delta: a new ``function_call`` item, arguments."""
        out: list[dict[str, Any]] = []
        item = self._calls.get(delta.index)
        if item is None:
            out += self._close_open()
            item = {
                "id": self._item_id("fc_"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": delta.id or new_id("call_"),
                "name": delta.name or "",
                "arguments": "",
            }
            self._calls[delta.index] = item
            self._arguments[delta.index] = []
            out.append(self._add(item))
        if delta.arguments:
            self._arguments[delta.index].append(delta.arguments)
            out.append(
                self._event(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": item["id"],
                        "output_index": self.output.index(item),
                        "delta": delta.arguments,
                    }
                )
            )
        return out

    def _close_calls(self, status: str) -> list[dict[str, Any]]:
        out = []
        for index in sorted(self._calls):
            item = self._calls[index]
            arguments = "".join(self._arguments[index])
            item["arguments"] = arguments
            item["status"] = status
            position = self.output.index(item)
            out.append(
                self._event(
                    {
                        "type": "response.function_call_arguments.done",
                        "item_id": item["id"],
                        "output_index": position,
                        "name": item["name"],
                        "arguments": arguments,
                    }
                )
            )
            out.append(
                self._event(
                    {
                        "type": "response.output_item.done",
                        "output_index": position,
                        "item": _copy_item(item),
                    }
                )
            )
        self._calls.clear()
        return out

    # -- the end -----------------------------------------------------------------------

    def finish(self, reason: str) -> list[dict[str, Any]]:
        """Close every item and end: ``response.completed`` or ``response.incomplete``."""
        if self.ended:
            return []
        incomplete = _INCOMPLETE.get(reason)
        status = "incomplete" if incomplete else "completed"
        out = self._close_open(status) + self._close_calls(status)
        response = self.response
        response["status"] = status
        response["completed_at"] = int(time.time()) if status == "completed" else None
        response["incomplete_details"] = {"reason": incomplete} if incomplete else None
        response["usage"] = usage_object(self._usage) if self._usage is not None else None
        self.ended = True
        out.append(self._snapshot(f"response.{status}"))
        return out

    def fail(self, code: str, message: str) -> list[dict[str, Any]]:
        """End with ``response.failed`` (``error: {code, message}``), items incomplete."""
        if self.ended:
            return []
        out = self._close_open("incomplete") + self._close_calls("incomplete")
        response = self.response
        response["status"] = "failed"
        response["error"] = {"code": code, "message": message}
        response["usage"] = usage_object(self._usage) if self._usage is not None else None
        self.ended = True
        out.append(self._snapshot("response.failed"))
        return out


def _copy_item(item: dict[str, Any]) -> dict[str, Any]:
    copy = dict(item)
    if "content" in copy:
        copy["content"] = [dict(part) for part in copy["content"]]
    if "summary" in copy:
        copy["summary"] = list(copy["summary"])
    return copy


def _copy_response(response: dict[str, Any]) -> dict[str, Any]:
    copy = dict(response)
    copy["output"] = [_copy_item(item) for item in response["output"]]
    return copy


class ResponseFrames(ShapeFrames["ResponseEvents"]):
    """The SSE frames of one Responses stream (an ``llmrelay._wire.sse.SSEEncoder``).

    ``ProviderInfo`` (the stream's first event) gives ``response.created`` and
    ``response.in_progress``; the finish gives the closing events and the terminal one;
    there is no ``[DONE]``.

    Args:
        events: the stream's ``ResponseEvents``.
        on_end: called once the terminal event was made (e.g. to store the response).

    Attributes:
        finish_reason: the response's status once ended (``completed``, ``incomplete``).
        sent_usage: the usage reported in the terminal event, if any.
    """

    def __init__(self, events: ResponseEvents, on_end: Callable[[], None] | None = None) -> None:
        super().__init__(events)
        self.on_end = on_end

    def _finish_name(self) -> str:
        return str(self.events.response["status"])

    def _ended(self) -> None:
        if self.on_end is not None:
            self.on_end()


def stored_json(response: Mapping[str, Any]) -> bytes:
    """The ``response`` object as JSON bytes (what ``GET /v1/responses/{id}`` returns)."""
    return dumps(response)
