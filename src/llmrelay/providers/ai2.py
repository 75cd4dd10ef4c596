r"""Ai2 Playground (``ai2``): the olmo-api message stream, no key.

Wire protocol (olmo-api ``/v4/message/stream``, 2025-01 .. 2025-06)::

    POST {base}/v4/message/stream          multipart/form-data, header X-Anonymous-User-ID
         model, host, content, private, [parent], [temperature], [top_p], [max_tokens],
         [stop]...                         (repeated ``stop`` fields)
    200  JSON lines (one ``json.dumps`` document per line, non-ASCII ``\uXXXX``-escaped):
         1. the message tree: the new user message (or the system message above it) whose
            ``children`` end in the empty assistant reply, ``final: false``;
         2. chunks ``{"message": "<reply id>", "content": "<delta>"}`` (``""`` and ``" "``
            deltas included: they are text);
         3. optional error lines ``{"message", "error", "reason"}`` (``"model overloaded"``,
            ``"length"``, ``"grpc inference failed"``, ...);
         4. the final tree (``final: true``): the reply with its whole ``content`` and
            ``finish_reason``.
    4xx/5xx ``{"error": {"code": <status>, "message": "..."}}``

Conversation state: ``{"anonymous_user_id", "parent"}`` -- the anonymous identity and the
assistant reply's message id. The first turn sends the flattened history with a fresh
anonymous id; a later turn sends only the new user message with ``parent`` set.

Public sources: allenai/olmo-api ``src/message/v4MessageBlueprint.py``,
``src/message/create_message_request.py``, ``src/message/create_message_service.py``,
``src/dao/message.py``, ``src/error.py``; the official client allenai/olmo-ui
``src/api/ReadableJSONLStream.ts``, ``src/api/Message.ts`` and its stream mocks under
``src/mocks/handlers/responses/stream/`` (https://github.com/allenai/olmo-api,
https://github.com/allenai/olmo-ui).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from types import MappingProxyType
from typing import Any, ClassVar

import anyio
import httpx

from .. import errors
from .._http import aiter_ndjson, raise_for_status, translate_errors
from .._prompts import format_plain, last_user_message
from ..types import ChatRequest, ConversationState, Event, FinishReason
from ._base import Capability, Option, Provider

__all__ = ["HOSTS", "Ai2"]

log = logging.getLogger(__name__)

HOSTS: Mapping[str, str] = MappingProxyType(
    {
        "tulu3-405b": "inferd",
        "OLMo-2-1124-13B-Instruct": "modal",
        "tulu-3-1-8b": "modal",
        "Llama-3-1-Tulu-3-70B": "modal",
        "olmoe-0125": "modal",
    }
)
"""Model id -> the ``host`` form field olmo-api routes it by."""

_MAX_DEPTH = 8
_MAX_CHILDREN = 64
_MAX_ID = 200
_DRAIN_WAIT = 0.5
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


class Ai2(Provider):
    """Chat with the models of the Ai2 Playground (Tülu 3, OLMo 2, OLMoE), anonymously.

    Parameters ``temperature`` (0..1), ``top_p``, ``max_tokens`` (1..2048) and ``stop``
    are sent as form fields. The service keeps the thread: the answer's
    ``ConversationState`` lets the next turn send only the new user message. Option
    ``private`` (default ``True``) marks the thread private on the service.
    """

    name: ClassVar[str] = "ai2"
    label: ClassVar[str] = "Ai2 Playground"
    docs_url: ClassVar[str] = "https://playground.allenai.org"
    endpoints: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"base_url": "https://olmo-api.allen.ai"}
    )
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.STREAM, Capability.HISTORY, Capability.SERVER_STATE}
    )
    parameters: ClassVar[frozenset[str]] = frozenset({"temperature", "top_p", "max_tokens", "stop"})
    options: ClassVar[Mapping[str, Option]] = MappingProxyType(
        {"private": Option(bool, "mark the thread private on the service (default true)")}
    )
    default_model: ClassVar[str] = "tulu3-405b"
    models: ClassVar[tuple[str, ...]] = tuple(HOSTS)
    aliases: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "tulu-3-405b": "tulu3-405b",
            "llama-3.1-405b": "tulu3-405b",
            "olmo-2-13b": "OLMo-2-1124-13B-Instruct",
            "llama-3.1-8b": "tulu-3-1-8b",
            "tulu-3-70b": "Llama-3-1-Tulu-3-70B",
            "llama-3.1-70b": "Llama-3-1-Tulu-3-70B",
        }
    )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Stream the reply (see the module docstring); ends with the state and a finish."""
        model = request.model
        host = HOSTS.get(model)
        if host is None:  # resolve_model guards this; a direct caller may not
            raise errors.UnknownModelError(model, list(HOSTS), provider=self.name)
        anonymous_id, parent = _state(request.state)
        if parent is not None and anonymous_id is not None:
            content = _last_user(request, self.name)
        else:
            anonymous_id, parent = str(uuid.uuid4()), None
            content = format_plain(request.messages)
        fields = self._fields(request, host, content, parent)
        headers = {"x-anonymous-user-id": anonymous_id, "accept": "application/jsonl"}
        with translate_errors(self.name, model):
            async with self._http.stream(
                "POST", f"{self.base_url}/v4/message/stream", files=fields, headers=headers
            ) as response:
                await raise_for_status(response, provider=self.name, model=model, what="message")
                lines = aiter_ndjson(response, provider=self.name, model=model)
                events = self._read(lines, model, anonymous_id)
                async with aclosing(events):
                    async for event in events:
                        yield event

    def _fields(
        self, request: ChatRequest, host: str, content: str, parent: str | None
    ) -> list[tuple[str, tuple[None, str]]]:
        """The multipart form fields (``(None, value)`` parts: httpx builds the body)."""
        private = request.options.get("private", True)
        pairs: list[tuple[str, str]] = [
            ("model", request.model),
            ("host", host),
            ("content", content),
            ("private", "true" if private else "false"),
        ]
        if parent is not None:
            pairs.append(("parent", parent))
        if request.temperature is not None:
            pairs.append(("temperature", repr(float(request.temperature))))
        if request.top_p is not None:
            pairs.append(("top_p", repr(float(request.top_p))))
        if request.max_tokens is not None:
            pairs.append(("max_tokens", str(int(request.max_tokens))))
        pairs.extend(("stop", stop) for stop in request.stop)
        return [(name, (None, value)) for name, value in pairs]

    async def _read(
        self, lines: AsyncIterator[Any], model: str, anonymous_id: str
    ) -> AsyncGenerator[Event, None]:
        """Turn the JSON lines into text deltas, then the state and one finish."""
        reply_id: str | None = None
        parts: list[str] = []  # the streamed text, joined once at the end (no copy per chunk)
        async for line in lines:
            if not isinstance(line, dict):
                raise self._protocol(f"unexpected line {str(line)[:200]!r}", model)
            if "error" in line:
                raise self._stream_error(line, model)
            if "id" not in line:  # a chunk
                if reply_id is None:
                    raise self._protocol("a chunk arrived before the message tree", model)
                content = line.get("content")
                if not isinstance(content, str) or line.get("message") != reply_id:
                    raise self._protocol(f"malformed chunk {str(line)[:200]!r}", model)
                parts.append(content)
                yield content
                continue
            reply = _find_reply(line, reply_id)
            if reply is None:
                raise self._protocol("the message tree has no assistant reply", model)
            if reply_id is None:
                reply_id = _text(reply.get("id"), "reply id", model, self.name, _MAX_ID)
            if line.get("final") is not True:
                continue
            full = _text(reply.get("content", ""), "reply content", model, self.name)
            sent = "".join(parts)
            if len(full) > len(sent) and full.startswith(sent):
                yield full[len(sent) :]  # chunks the stream did not carry
            elif full != sent:
                log.warning("ai2: the final reply differs from the streamed text")
            reason = reply.get("finish_reason")
            yield ConversationState(
                self.name, {"anonymous_user_id": anonymous_id, "parent": reply_id}
            )
            yield FinishReason(_FINISH.get(reason, "stop") if isinstance(reason, str) else "stop")
            await _drain(lines)
            return
        raise self._protocol("the stream ended without the final message", model)

    def _protocol(self, message: str, model: str) -> errors.ProtocolError:
        return errors.ProtocolError(message, provider=self.name, model=model)

    def _stream_error(self, line: Mapping[str, Any], model: str) -> errors.ProviderError:
        """Map an error line ``{"message", "error", "reason"}`` to the error tree."""
        reason, text = line.get("reason"), line.get("error")
        if not isinstance(reason, str) or not isinstance(text, str):
            return self._protocol(f"malformed error line {str(line)[:200]!r}", model)
        body = str(dict(line))[:2000]
        if reason == "model overloaded":
            return errors.ProviderUnavailable(
                f"the model is overloaded: {text}", provider=self.name, model=model, body=body
            )
        if reason == "length":
            return errors.InvalidRequestError(
                f"the conversation is too long for the model's context: {text}",
                provider=self.name,
                model=model,
                body=body,
            )
        return errors.ProviderError(
            f"the service reported an error ({reason}): {text}",
            provider=self.name,
            model=model,
            body=body,
        )


def _state(state: ConversationState | None) -> tuple[str | None, str | None]:
    """``(anonymous_user_id, parent)`` from this provider's state, or ``(None, None)``."""
    if state is None:
        return None, None
    anonymous_id, parent = state.data.get("anonymous_user_id"), state.data.get("parent")
    if isinstance(anonymous_id, str) and anonymous_id and isinstance(parent, str) and parent:
        return anonymous_id, parent
    log.warning("ai2: ignoring an unusable conversation state; starting a new thread")
    return None, None


def _last_user(request: ChatRequest, provider: str) -> str:
    try:
        return last_user_message(request.messages)
    except ValueError:
        raise errors.InvalidRequestError(
            "the conversation has no user message", provider=provider, model=request.model
        ) from None


def _find_reply(root: Mapping[str, Any], reply_id: str | None) -> Mapping[str, Any] | None:
    """The assistant reply in a message tree, or ``None``.

    ``reply_id``'s node when known, else the last assistant node down the chain of last
    children (the new user message's empty reply); ``None`` for a malformed or too deeply
    nested tree.
    """
    node: Any = root
    found: Mapping[str, Any] | None = None
    for _ in range(_MAX_DEPTH):
        if not isinstance(node, Mapping):
            return None
        if node.get("id") == reply_id and reply_id is not None:
            return node
        if node.get("role") == "assistant":
            found = node
        children = node.get("children")
        if children is None or children == []:
            return found if reply_id is None else None
        if not isinstance(children, list) or len(children) > _MAX_CHILDREN:
            return None
        if reply_id is not None:
            match = next(
                (c for c in children if isinstance(c, Mapping) and c.get("id") == reply_id), None
            )
            if match is not None:
                return match
        node = children[-1]
    return None


def _text(value: Any, what: str, model: str, provider: str, limit: int | None = None) -> str:
    if not isinstance(value, str) or (limit is not None and not 0 < len(value) <= limit):
        raise errors.ProtocolError(
            f"bad {what}: {str(value)[:100]!r}", provider=provider, model=model
        )
    return value


async def _drain(lines: AsyncIterator[Any]) -> None:
    """Read the body to its end (briefly) so the connection can be reused.

    Whatever follows the final tree is ignored: the answer is complete.
    """
    with anyio.move_on_after(_DRAIN_WAIT):
        try:
            async for _ in lines:
                pass
        except (errors.ProviderError, httpx.HTTPError) as exc:
            log.debug("ai2: after the final message: %s", exc)
