"""Result objects of ``client.responses`` and ``client.messages`` (pydantic, extra fields kept).

They carry every field of the API object they stand for, typed where llmrelay relies on
it and kept as JSON values otherwise (``extra="allow"``: ``obj.field`` reads any):

* ``Response`` / ``ResponseStreamEvent``: OpenAI's Responses ``response`` object and
  stream events (openai-python's ``types/responses/response.py``,
  ``response_stream_event.py``);
* ``AnthropicMessage`` / ``MessageStreamEvent``: Anthropic's ``Message`` and raw stream
  events (anthropic-sdk-python's ``types/message.py``,
  ``raw_message_stream_event.py``).

``model_dump_json()`` writes the API's JSON.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["AnthropicMessage", "MessageStreamEvent", "Response", "ResponseStreamEvent"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Response(_Open):
    """A Responses API ``response`` object (``object: "response"``).

    Attributes:
        id: ``resp_...``.
        status: ``completed``, ``incomplete``, ``failed`` or ``in_progress``.
        model: ``provider:model`` that answered.
        output: the output items (``message``, ``reasoning``, ``function_call``), as JSON.
        usage: ``{"input_tokens", "output_tokens", "total_tokens", ...}`` when the
            provider reported counts, else ``None``.
    """

    id: str
    object: str = "response"
    status: str
    model: str
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None = None

    @property
    def output_text(self) -> str:
        """The text of every ``output_text`` part of the message items, joined."""
        return "".join(
            part.get("text", "")
            for item in self.output
            if item.get("type") == "message"
            for part in item.get("content", ())
            if part.get("type") == "output_text"
        )


class ResponseStreamEvent(_Open):
    """One Responses streaming event (``type``, ``sequence_number`` and its fields)."""

    type: str
    sequence_number: int


class AnthropicMessage(_Open):
    """An Anthropic ``Message`` (``type: "message"``).

    Attributes:
        id: ``msg_...``.
        model: ``provider:model`` that answered.
        content: the content blocks (``text``, ``thinking``, ``tool_use``), as JSON.
        stop_reason: ``end_turn``, ``max_tokens``, ``tool_use`` or ``refusal``.
        usage: ``{"input_tokens", "output_tokens"}`` (0 when the provider reported none).
    """

    id: str
    type: str = "message"
    role: str = "assistant"
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: dict[str, Any]

    @property
    def text(self) -> str:
        """The text of every ``text`` block, joined."""
        return "".join(b.get("text", "") for b in self.content if b.get("type") == "text")


class MessageStreamEvent(_Open):
    """One Anthropic stream event (``type`` and its fields)."""

    type: str
