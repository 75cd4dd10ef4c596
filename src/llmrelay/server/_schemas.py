"""Request bodies, mirroring OpenAI's (https://platform.openai.com/docs/api-reference/chat).

``ChatCompletionRequest`` declares every field of OpenAI's chat-completions request; each
one given goes to ``client.chat.completions.create``, which honours it, ignores it when
harmless, or refuses it naming the field and the provider (``llmrelay._fields``'s table,
listed in the docs). Fields no OpenAI version defines are ignored (``extra="ignore"``).
Nothing in a body can choose an upstream URL, a proxy or a key — there are no such
fields, and ``options`` reach a provider only where it declares them (the library checks).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "ContentPart",
    "ImageGenerationRequest",
    "ImageURL",
    "StreamOptions",
    "ToolCallFunction",
    "ToolCallIn",
]

_MAX_TEXT = 1_000_000


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ImageURL(_Lenient):
    """``{"url": "https://..." | "data:...", "detail"?: "auto" | "low" | "high"}``."""

    url: Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]
    detail: Annotated[str, Field(min_length=1, max_length=32)] | None = None


class ContentPart(_Lenient):
    """One part of a list content: ``text`` or ``image_url``."""

    type: Literal["text", "image_url"]
    text: Annotated[str, Field(max_length=_MAX_TEXT)] | None = None
    image_url: ImageURL | None = None

    @model_validator(mode="after")
    def _has_its_value(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs 'text'")
        if self.type == "image_url" and self.image_url is None:
            raise ValueError("an image_url part needs 'image_url'")
        return self


class ToolCallFunction(_Lenient):
    """``{"name", "arguments"}`` of an assistant message's tool call."""

    name: Annotated[str, Field(max_length=256)]
    arguments: Annotated[str, Field(max_length=_MAX_TEXT)] = ""


class ToolCallIn(_Lenient):
    """An assistant message's tool call: ``{"id", "type": "function", "function"}``."""

    id: Annotated[str, Field(max_length=512)]
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(_Lenient):
    """A message: role and content (a string or a list of parts), and its tool fields."""

    role: Literal["developer", "system", "user", "assistant", "tool"]
    content: Annotated[str, Field(max_length=_MAX_TEXT)] | list[ContentPart] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    tool_calls: Annotated[list[ToolCallIn], Field(max_length=128)] | None = None
    tool_call_id: Annotated[str, Field(max_length=512)] | None = None

    def to_input(self) -> dict[str, Any]:
        """The message in the shape ``llmrelay`` accepts (OpenAI's)."""
        content: Any = self.content
        if isinstance(content, list):
            content = [p.model_dump(exclude_none=True) for p in content]
        out: dict[str, Any] = {"role": self.role, "content": "" if content is None else content}
        if self.tool_calls is not None:
            out["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out

    def text(self) -> str:
        """The text of the message (text parts joined), for hashing and logs."""
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""

    def key(self) -> str:
        """What identifies the message in the conversation memory.

        The text, and the tool calls made or the call answered.
        """
        calls = [(c.id, c.function.name, c.function.arguments) for c in self.tool_calls or ()]
        if not calls and self.tool_call_id is None:
            return self.text()
        return json.dumps([self.text(), calls, self.tool_call_id])


class StreamOptions(_Lenient):
    """``{"include_usage": bool}``: a last chunk with usage and no choices."""

    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    """``POST /v1/chat/completions`` body: every field of OpenAI's request.

    The tools, ``response_format`` and the fields llmrelay forwards or refuses are
    checked by ``chat.completions.create``; here only their JSON types are.
    """

    model: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    stop: (
        Annotated[str, Field(max_length=1000)]
        | Annotated[list[Annotated[str, Field(max_length=1000)]], Field(max_length=16)]
        | None
    ) = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    tools: Annotated[list[dict[str, Any]], Field(max_length=512)] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    logit_bias: dict[str, int] | None = None
    reasoning_effort: Annotated[str, Field(max_length=64)] | None = None
    verbosity: Annotated[str, Field(max_length=64)] | None = None
    moderation: dict[str, Any] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    safety_identifier: Annotated[str, Field(max_length=256)] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: Annotated[str, Field(max_length=64)] | None = None
    prompt_cache_key: Annotated[str, Field(max_length=1024)] | None = None
    prompt_cache_retention: Annotated[str, Field(max_length=64)] | None = None
    prompt_cache_options: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    options: dict[str, Any] | None = Field(
        default=None,
        description="Provider-specific options; each must be declared by the chosen provider.",
    )


class ImageGenerationRequest(_Lenient):
    """``POST /v1/images/generations`` body (``b64_json`` results only)."""

    prompt: Annotated[str, Field(min_length=1, max_length=32_000)]
    model: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    n: Annotated[int, Field(ge=1, le=1)] = 1
    size: Annotated[str, Field(pattern=r"^[0-9]{1,5}x[0-9]{1,5}$")] | None = None
    response_format: Literal["b64_json"] = "b64_json"
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
