"""Tool and structured-output emulation for providers without native support.

Spaces, Replicate text models, Ai2 and h2o take no ``tools`` or ``response_format``: a
request with them is refused (``InvalidRequestError`` naming the field and the provider)
unless the user opts in to emulation (``tool_emulation`` in the config file, per
provider or alias, or ``tool_emulation=True`` per request). Then:

1. the tools (names, descriptions, JSON Schemas), ``tool_choice``,
   ``parallel_tool_calls`` and the response format are described to the model in words
   (``instructions``, the template documented in docs/agents.md): in the system prompt
   where the provider takes one, else before the newest user message (Ai2 and h2o keep
   the thread on their side and are sent only that message on later turns);
2. earlier tool calls and results in the history become text in the same format
   (an assistant message ending in a call block; a ``user`` message "Result of tool
   call ...");
3. the whole answer is read (emulated calls cannot stream argument fragments before the
   answer is complete), then parsed: one fenced JSON block
   ``{"tool_calls": [{"name": ..., "arguments": {...}}]}`` is a call (the text around it
   is the answer's text), otherwise the answer is text; with a response format the text
   must be JSON (a fenced block is unwrapped) matching the schema;
4. arguments and JSON answers are validated with ``jsonschema`` against the tool's
   ``parameters`` / the format's schema; anything wrong is an
   ``llmrelay.errors.InvalidOutputError`` (no corrective retry), never text passed off
   as a call;
5. valid calls are emitted as ``ToolCallDelta`` events (one per call, whole: ``id``
   ``call_<hex>``, ``name``, ``arguments`` as compact JSON) and
   ``FinishReason("tool_calls")``, so the facade and the server write OpenAI's shapes.

With ``tool_choice`` ``"none"`` and no response format nothing is parsed: the answer
streams as text.

JSON Schema validation: https://python-jsonschema.readthedocs.io/ (the schema's
``$schema`` picks the draft; draft 2020-12 otherwise).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from . import errors
from .providers import Capability, Provider
from .providers._base import unsupported_part
from .types import (
    ChatRequest,
    Event,
    FinishReason,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
)

__all__ = ["Emulation", "instructions", "needs_emulation", "parse_tool_calls"]

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)```", re.DOTALL)
_MESSAGE_LIMIT = 300
"""Longest piece of a validation message quoted in an error."""

Fail = Callable[[str, str, str], errors.InvalidOutputError]
"""Makes the error of an invalid answer: ``(param, message, answer text)``."""

CALL_FORMAT = '{"tool_calls": [{"name": "<tool name>", "arguments": {<the arguments>}}]}'
"""The block a model is asked to answer with to call tools (inside a ```json fence)."""


def needs_emulation(request: ChatRequest, capabilities: frozenset[Capability]) -> bool:
    """Whether ``request`` asks for tools or a JSON answer ``capabilities`` do not cover."""
    return unsupported_part(request, capabilities) is not None


def instructions(request: ChatRequest) -> str:
    """The words that describe ``request``'s tools and response format to the model.

    The template (docs/agents.md, "Tool emulation") is, for tools::

        You can call the following tools. Each is a JSON object with its name, its
        description and the JSON Schema of its arguments:
        {one JSON object per line}
        <the tool_choice sentence>
        To call tools, answer with one fenced ```json block holding exactly
        {"tool_calls": [{"name": "<tool name>", "arguments": {<the arguments>}}]}
        <the parallel_tool_calls sentence>
        The results will come back in a later message.

    and for a response format "Answer with one JSON object and nothing else." /
    "Answer with JSON that is valid against this JSON Schema, and nothing else: {schema}".
    """
    parts: list[str] = []
    if request.tools:
        listed = "\n".join(
            json.dumps(_describe(tool), ensure_ascii=False, sort_keys=True)
            for tool in request.tools
        )
        parts.append(
            "You can call the following tools. Each is a JSON object with its name, its "
            f"description and the JSON Schema of its arguments:\n{listed}"
        )
        parts.append(_choice_sentence(request))
        if _parses_calls(request):
            parts.append(
                "To call tools, answer with one fenced ```json block holding exactly\n"
                f"{CALL_FORMAT}\n" + _parallel_sentence(request) + " "
                "The results will come back in a later message."
            )
    response_format = request.response_format
    if response_format is not None and response_format.type == "json_object":
        parts.append("Answer with one JSON object and nothing else.")
    elif response_format is not None and response_format.type == "json_schema":
        schema = json.dumps(response_format.schema or {}, ensure_ascii=False, sort_keys=True)
        parts.append(
            "Answer with JSON that is valid against this JSON Schema, and nothing else: " + schema
        )
    return "\n\n".join(parts)


def _describe(tool: Tool) -> dict[str, Any]:
    described: dict[str, Any] = {"name": tool.name}
    if tool.description:
        described["description"] = tool.description
    described["parameters"] = dict(tool.parameters) if tool.parameters is not None else {}
    return described


def _choice_sentence(request: ChatRequest) -> str:
    choice = request.tool_choice
    mode = choice.mode if choice is not None else "auto"
    if mode == "none":
        return "Do not call any tool now: answer in text."
    if mode == "required":
        return "You must call at least one tool: answer with the tool-call block only."
    if mode == "function" and choice is not None:
        return f"You must call the tool {choice.name}: answer with the tool-call block only."
    return "Call a tool when it helps; otherwise answer in text, without a tool-call block."


def _parallel_sentence(request: ChatRequest) -> str:
    if request.parallel_tool_calls is False:
        return "Call at most one tool."
    return "You may call several tools in one block."


def _parses_calls(request: ChatRequest) -> bool:
    choice = request.tool_choice
    return bool(request.tools) and (choice is None or choice.mode != "none")


def _history_as_text(messages: Sequence[Message]) -> list[Message]:
    """Tool calls and results of the history as text in the emulation's own format."""
    names: dict[str, str] = {}
    out: list[Message] = []
    for message in messages:
        if message.tool_calls:
            block = {
                "tool_calls": [
                    {"id": call.id, "name": call.name, "arguments": _loads_or_text(call.arguments)}
                    for call in message.tool_calls
                ]
            }
            names.update((call.id, call.name) for call in message.tool_calls)
            text = "```json\n" + json.dumps(block, ensure_ascii=False) + "\n```"
            content = f"{message.content}\n\n{text}" if message.content else text
            out.append(Message("assistant", content, message.images))
        elif message.role == "tool":
            call_id = message.tool_call_id or ""
            name = names.get(call_id)
            called = f"{call_id} ({name})" if name else call_id
            out.append(Message("user", f"Result of tool call {called}:\n{message.content}"))
        else:
            out.append(message)
    return out


def _loads_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments


def _with_instructions(
    messages: list[Message], text: str, system_prompt: bool
) -> tuple[Message, ...]:
    """``messages`` with ``text`` in the system prompt, or before the newest user message."""
    if not text:
        return tuple(messages)
    if system_prompt:
        for index, message in enumerate(messages):
            if message.role == "system":
                messages[index] = _joined(message, f"\n\n{text}" if message.content else text)
                return tuple(messages)
        return (Message("system", text), *messages)
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.role == "user":
            messages[index] = _joined(message, f"{text}\n\n", before=True)
            return tuple(messages)
    return (Message("user", text), *messages)


def _joined(message: Message, text: str, *, before: bool = False) -> Message:
    """``message`` with ``text`` before or after its text (its image parts kept in place)."""
    content = text + message.content if before else message.content + text
    if not message.parts:
        return replace(message, content=content)
    parts = (text, *message.parts) if before else (*message.parts, text)
    return replace(message, content=content, parts=parts)


@dataclass(frozen=True, slots=True)
class Emulation:
    """One emulated request: what the provider is sent, and how its answer is read.

    Build it with ``Emulation.prepare``; ``stream`` runs it.

    Attributes:
        provider: the provider that answers.
        asked: the request as the caller asked for it (tools, format, history).
        sent: what the provider receives (no tools or format; their description in
            the prompt; tool calls and results of the history as text).
    """

    provider: Provider
    asked: ChatRequest
    sent: ChatRequest

    @classmethod
    async def prepare(cls, provider: Provider, request: ChatRequest) -> Emulation:
        """Check ``request``'s schemas and build what ``provider`` is sent.

        Raises:
            llmrelay.errors.InvalidRequestError: a tool's ``parameters`` or the
                response format's schema is not a valid JSON Schema (``param`` names
                it), or the provider refuses the rewritten request.
        """
        for index, tool in enumerate(request.tools):
            _check_schema(tool.parameters, f"tools[{index}].function.parameters", provider, request)
        if request.response_format is not None and request.response_format.schema is not None:
            _check_schema(
                request.response_format.schema,
                "response_format.json_schema.schema",
                provider,
                request,
            )
        system_prompt = Capability.SYSTEM_PROMPT in provider.capabilities
        messages = _history_as_text(request.messages)
        sent = replace(
            request,
            messages=_with_instructions(messages, instructions(request), system_prompt),
            tools=(),
            tool_choice=None,
            parallel_tool_calls=None,
            response_format=None,
        )
        await provider.check_request(sent)
        return cls(provider, request, sent)

    async def stream(self) -> AsyncGenerator[Event, None]:
        """The provider's answer with its calls or JSON parsed and validated.

        Non-text events (``Usage``, ``ConversationState``, ``Queued``, ``Reasoning``)
        pass at once; the text is held until the finish, then parsed (see the module
        docstring). Without anything to parse the text streams as it comes.

        Raises:
            llmrelay.errors.InvalidOutputError: an invalid call or JSON answer.
        """
        response_format = self.asked.response_format
        wants_json = response_format is not None and response_format.type != "text"
        parse_calls = _parses_calls(self.asked)
        async with aclosing(self.provider.stream(self.sent)) as events:
            if not (wants_json or parse_calls):
                async for event in events:
                    yield event
                return
            parts: list[str] = []
            finish: FinishReason | None = None
            async for event in events:
                if type(event) is str:
                    parts.append(event)
                elif isinstance(event, FinishReason):
                    finish = event
                else:
                    yield event
        if finish is None:
            return  # the engine reports a stream without a finish
        text = "".join(parts)
        try:
            answer = self._read(text, parse_calls, response_format if wants_json else None)
        except errors.InvalidOutputError as exc:
            if finish.reason == "length":
                exc.message += " (the answer was cut at max_tokens)"
                exc.args = (exc.message,)
            raise
        prose, calls = answer
        if prose:
            yield prose
        for index, call in enumerate(calls):
            yield ToolCallDelta(index, call.id, call.name, call.arguments)
        yield FinishReason("tool_calls") if calls else finish

    def _read(
        self, text: str, parse_calls: bool, response_format: ResponseFormat | None
    ) -> tuple[str, list[ToolCall]]:
        """``(text, calls)`` of an answer (see ``stream``)."""
        calls: list[ToolCall] = []
        if parse_calls:
            found = parse_tool_calls(text, self.asked, self._fail)
            if found is not None:
                return found
            choice = self.asked.tool_choice
            if choice is not None and choice.mode in ("required", "function"):
                raise self._fail(
                    "tool_calls",
                    f"tool_choice {choice.to_openai()!r} asks for a call, and the answer has "
                    "no tool-call block",
                    text,
                )
        if response_format is not None:
            return _json_answer(text, response_format, self._fail), calls
        return text, calls

    def _fail(self, param: str, message: str, text: str) -> errors.InvalidOutputError:
        return errors.InvalidOutputError(
            f"emulated {param}: {message}",
            param=param,
            provider=self.provider.name,
            model=self.asked.model,
            body=text,
        )


def parse_tool_calls(
    text: str, request: ChatRequest, fail: Fail
) -> tuple[str, list[ToolCall]] | None:
    """The calls of an emulated answer, validated, or ``None`` when it has none.

    A call block is a fenced JSON block (or the whole answer) whose object has a
    ``tool_calls`` key; the text outside it is the answer's text. ``fail(param, message,
    text)`` makes the error raised.

    Returns:
        ``(text outside the block, calls)``, or ``None``: the answer is text (it does
        not mention ``"tool_calls"``).

    Raises:
        llmrelay.errors.InvalidOutputError: a malformed block, several blocks, an
            unknown tool, a broken ``tool_choice`` / ``parallel_tool_calls``, or
            arguments invalid against the tool's schema.
    """
    blocks: list[tuple[int, int, Any]] = []
    for match in _FENCE.finditer(text):
        body = match.group(1)
        if '"tool_calls"' not in body:
            continue
        try:
            blocks.append((match.start(), match.end(), json.loads(body)))
        except ValueError as exc:
            raise fail("tool_calls", f"the tool-call block is not JSON ({exc})", text) from None
    if not blocks:
        stripped = text.strip()
        if '"tool_calls"' not in text:
            return None
        if not stripped.startswith("{"):
            raise fail("tool_calls", "a tool-call block must be fenced JSON", text)
        try:
            blocks.append((0, len(text), json.loads(stripped)))
        except ValueError as exc:
            raise fail("tool_calls", f"the tool-call block is not JSON ({exc})", text) from None
    if len(blocks) > 1:
        raise fail("tool_calls", "the answer has several tool-call blocks", text)
    start, end, block = blocks[0]
    items = block.get("tool_calls") if isinstance(block, dict) else None
    if not isinstance(items, list) or not items:
        raise fail("tool_calls", '"tool_calls" must be a non-empty list of calls', text)
    if request.parallel_tool_calls is False and len(items) > 1:
        raise fail("tool_calls", f"{len(items)} calls, and parallel_tool_calls is false", text)
    tools = {tool.name: tool for tool in request.tools}
    calls = [_call(item, index, tools, request, text, fail) for index, item in enumerate(items)]
    prose = (text[:start] + text[end:]).strip()
    return prose, calls


def _call(
    item: Any,
    index: int,
    tools: Mapping[str, Tool],
    request: ChatRequest,
    text: str,
    fail: Fail,
) -> ToolCall:
    where = f"call {index}"
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise fail("tool_calls", f"{where} has no name", text)
    name = item["name"]
    tool = tools.get(name)
    if tool is None:
        raise fail("tool_calls", f"{where} names {name[:64]!r}, which is not a tool offered", text)
    choice = request.tool_choice
    if choice is not None and choice.mode == "function" and name != choice.name:
        asked = f"tool_choice asks for {choice.name!r}"
        raise fail("tool_calls", f"{where} calls {name!r}; {asked}", text)
    arguments = item.get("arguments", {})
    if isinstance(arguments, str):  # a model that wrote OpenAI's JSON text
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise fail("tool_calls", f"{where} ({name}): arguments are not JSON", text) from None
    if not isinstance(arguments, dict):
        raise fail("tool_calls", f"{where} ({name}): arguments must be a JSON object", text)
    problem = _invalid(arguments, tool.parameters)
    if problem is not None:
        raise fail("tool_calls", f"{where} ({name}): invalid arguments: {problem}", text)
    encoded = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    return ToolCall(f"call_{secrets.token_hex(12)}", name, encoded)


def _json_answer(text: str, response_format: ResponseFormat, fail: Fail) -> str:
    """The JSON of a structured answer (a fence around it removed), validated."""
    candidate = text.strip()
    fenced = _FENCE.fullmatch(candidate)
    if fenced is not None:
        candidate = fenced.group(1).strip()
    try:
        value = json.loads(candidate)
    except ValueError as exc:
        raise fail("response_format", f"the answer is not JSON ({exc})", text) from None
    if response_format.type == "json_object" and not isinstance(value, dict):
        raise fail("response_format", "the answer is not a JSON object", text)
    problem = _invalid(value, response_format.schema)
    if problem is not None:
        raise fail("response_format", f"the answer does not match the schema: {problem}", text)
    return candidate


def _validator(schema: Mapping[str, Any]) -> Any:
    from jsonschema.validators import validator_for  # imported when emulation runs

    return validator_for(schema)


def _check_schema(
    schema: Mapping[str, Any] | None, param: str, provider: Provider, request: ChatRequest
) -> None:
    if schema is None:
        return
    from jsonschema.exceptions import SchemaError

    try:
        _validator(schema).check_schema(schema)
    except SchemaError as exc:
        raise errors.InvalidRequestError(
            f"{param} is not a valid JSON Schema: {exc.message[:_MESSAGE_LIMIT]}",
            provider=provider.name,
            model=request.model,
            param=param,
        ) from None


def _invalid(value: Any, schema: Mapping[str, Any] | None) -> str | None:
    """Why ``value`` fails ``schema`` (the most relevant error, bounded), or ``None``."""
    if schema is None:
        return None
    from jsonschema.exceptions import best_match

    error = best_match(_validator(schema)(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    message: str = error.message[:_MESSAGE_LIMIT]
    return f"at /{where}: {message}" if where else message
