"""Request bodies, mirroring OpenAI's (https://platform.openai.com/docs/api-reference/chat).

Unknown fields are ignored (``extra="ignore"``): OpenAI clients send many we do not use,
and nothing in a body can choose an upstream URL, a proxy or a key — there are no such
fields, and ``options`` reach a provider only where it declares them (the library checks).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "ContentPart",
    "ImageGenerationRequest",
    "ImageURL",
    "StreamOptions",
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


class ChatMessage(_Lenient):
    """A message: role and content (a string or a list of parts)."""

    role: Literal["developer", "system", "user", "assistant"]
    content: Annotated[str, Field(max_length=_MAX_TEXT)] | list[ContentPart] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None

    def to_input(self) -> dict[str, Any]:
        """The message in the shape ``llmrelay`` accepts."""
        content: Any = self.content
        if isinstance(content, list):
            content = [p.model_dump(exclude_none=True) for p in content]
        return {"role": self.role, "content": "" if content is None else content}

    def text(self) -> str:
        """The text of the message (text parts joined), for hashing and logs."""
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(_Lenient):
    """``{"include_usage": bool}``: a last chunk with usage and no choices."""

    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    """``POST /v1/chat/completions`` body."""

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
    n: Annotated[int, Field(ge=1, le=1)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
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
