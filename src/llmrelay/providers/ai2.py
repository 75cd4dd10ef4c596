r"""Ai2 Playground (``ai2``): olmo-api's threads stream, anonymous, no key.

Wire protocol (https://github.com/allenai/olmo-api at
f0c14ee41a81fab92a2b1b5cde5917038f315fee, 2026-01-29, under ``apps/flask-api/``:
``src/thread/threads_blueprint.py``, ``src/message/create_message_request.py``,
``src/message/create_message_service/stream_new_message.py``, ``src/message/message_chunk.py``,
``src/message/format_messages_output.py``, ``src/thread/thread_models.py``,
``src/error.py``, ``src/constants.py``)::

    POST {base}/v4/threads/        multipart/form-data, header X-Anonymous-User-ID: <uuid4>
         content, model, private, [parent], [temperature], [topP], [maxTokens],
         [stop]...                  (camelCase field aliases; ``stop`` repeated)
    200  application/jsonl: one JSON document per line (``ensure_ascii``, sorted keys)
         {"message": "<root id>", "type": "start"}
         {"id": "<thread id>", "messages": [<flat message>, ...]}   the new messages,
              a system message first for a new thread of a model with a system prompt,
              the user message, then the empty assistant reply (``final: false``)
         {"content": "<delta>", "message": "<reply id>", "type": "modelResponse"}   ...
         {"content": "...", "id"?, "message": ..., "type": "thinking"}             reasoning
         {"errorCode", "errorDescription", "errorSeverity", "message", "type": "error"}
         {"error": "<text>", "message": ..., "reason": "<reason>"}                  a failure
         {"id": ..., "messages": [...]}          the same thread, final: the reply's whole
              ``content``, ``finishReason``
         {"message": "<root id>", "type": "end"}
    4xx/5xx {"error": {"code": <status>, "message": "...", ["validation_errors": [...]]}}

Flat messages carry camelCase keys (``id``, ``role``, ``content``, ``final``,
``finishReason``, ``children`` as ids, ...). Text deltas are kept exactly, ``""`` and
``" "`` included; invalid UTF-8 becomes U+FFFD.

Conversation state ``{"anonymous_user_id", "parent"}``: the anonymous identity (the
thread's creator; only it may continue the thread) and the reply's message id. The
first turn sends the flattened history with a fresh anonymous id; a later turn sends
only the new user message with ``parent``. Anonymous messages expire after a day: a
parent the service no longer knows starts a new thread with the whole history.

A deployment with ``require_recaptcha`` refuses prompts without a reCAPTCHA token
(``captchaToken``), which an API client cannot produce: that is ``CaptchaRequired``
(retryable, so fallback moves on). The former route ``POST /v4/message/stream``
(2025-01 .. 2025-06) was removed from olmo-api in commit 2d32623 (2025-06-04) and no
deployment in the public sources serves it; it is not spoken.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from types import MappingProxyType
from typing import Any, ClassVar

import anyio
import httpx

from .. import errors
from .._http import (
    aiter_body,
    error_detail,
    loads,
    protocol_error,
    raise_for_status,
    translate_errors,
    upstream_text,
)
from .._prompts import format_plain, last_user_message
from .._sse import DEFAULT_MAX_LINE, LineTooLong, NDJSONLineDecoder
from ..types import ChatRequest, ConversationState, Event, FinishReason, Reasoning
from ._base import Capability, Option, Provider

__all__ = ["MODELS", "Ai2"]

log = logging.getLogger(__name__)

MODELS: tuple[str, ...] = (
    "tulu3-405b",
    "OLMo-2-1124-13B-Instruct",
    "olmo-2-0325-32b-instruct",
    "tulu-3-1-8b",
    "Llama-3-1-Tulu-3-70B",
    "olmoe-0125",
)
"""Model ids of the Playground (olmo-api ``src/config/Config.py`` ``model_index_map``)."""

ANONYMOUS_HEADER = "X-Anonymous-User-ID"
"""olmo-api ``src/constants.py`` ``ANONYMOUS_USER_ID_HEADER``."""

_MAX_ID = 200
_MAX_MESSAGES = 64
_DRAIN_WAIT = 0.5
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}
_CAPTCHA = re.compile(r"captcha", re.IGNORECASE)
_GONE_PARENT = re.compile(r"parent message \S+ not found", re.IGNORECASE)


class Ai2(Provider):
    """Chat with the models of the Ai2 Playground (Tülu 3, OLMo 2, OLMoE), anonymously.

    Parameters ``temperature``, ``top_p``, ``max_tokens`` and ``stop`` are sent as form
    fields. The service keeps the thread: the answer's ``ConversationState`` lets the
    next turn send only the new user message. Option ``private`` (default ``True``)
    marks the thread private (the service makes every anonymous thread private).
    A reasoning model's thinking arrives as ``Reasoning`` events.

    Raises (from ``stream``): ``CaptchaRequired`` (the deployment wants a reCAPTCHA
    token), ``InvalidRequestError`` (400: validation, an unknown model, an
    inappropriate prompt; a stream error ``length``), ``AuthenticationError`` (401; 403:
    the thread is another user's), ``ProviderUnavailable`` (5xx, ``model overloaded``),
    ``ProviderError`` (other stream errors), ``ProtocolError`` (a stream that does not
    follow the format or ends without its final thread).
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
    models: ClassVar[tuple[str, ...]] = MODELS
    aliases: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "tulu-3-405b": "tulu3-405b",
            "llama-3.1-405b": "tulu3-405b",
            "olmo-2-13b": "OLMo-2-1124-13B-Instruct",
            "olmo-2-32b": "olmo-2-0325-32b-instruct",
            "llama-3.1-8b": "tulu-3-1-8b",
            "tulu-3-70b": "Llama-3-1-Tulu-3-70B",
            "llama-3.1-70b": "Llama-3-1-Tulu-3-70B",
        }
    )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Stream the reply (see the module docstring); ends with the state and a finish."""
        model = request.model
        if model not in MODELS:  # resolve_model guards this; a direct caller may not
            raise errors.UnknownModelError(model, list(MODELS), provider=self.name)
        anonymous_id, parent = _state(request.state)
        with translate_errors(self.name, model):
            for _ in range(2):
                if parent is not None and anonymous_id is not None:
                    content = _last_user(request, self.name)
                else:
                    anonymous_id, parent = str(uuid.uuid4()), None
                    content = format_plain(request.messages)
                headers = {ANONYMOUS_HEADER: anonymous_id, "accept": "application/jsonl"}
                async with self._http.stream(
                    "POST",
                    f"{self.base_url}/v4/threads/",
                    files=self._fields(request, content, parent),
                    headers=headers,
                ) as response:
                    try:
                        await raise_for_status(
                            response, provider=self.name, model=model, what="thread message"
                        )
                    except errors.ProviderError as exc:
                        if parent is not None and _parent_gone(exc):
                            log.info("ai2: the thread has expired; starting a new one")
                            parent = None
                            continue
                        typed = _typed(exc)
                        if typed is exc:
                            raise
                        raise typed from exc
                    events = self._read(
                        _json_lines(response, self.name, model), model, anonymous_id
                    )
                    async with aclosing(events):
                        async for event in events:
                            yield event
                    return

    def _fields(
        self, request: ChatRequest, content: str, parent: str | None
    ) -> list[tuple[str, tuple[None, str]]]:
        """The multipart form fields (``(None, value)`` parts: httpx builds the body).

        Field names are the request model's camelCase aliases (``CreateMessageRequest``
        is an ``APIInterface``: ``alias_generator=to_camel``), as the official web client
        sends them; a repeated field (``stop``) is read by its alias only.
        """
        private = request.options.get("private", True)
        pairs: list[tuple[str, str]] = [
            ("content", content),
            ("model", request.model),
            ("private", "true" if private else "false"),
        ]
        if parent is not None:
            pairs.append(("parent", parent))
        if request.temperature is not None:
            pairs.append(("temperature", repr(float(request.temperature))))
        if request.top_p is not None:
            pairs.append(("topP", repr(float(request.top_p))))
        if request.max_tokens is not None:
            pairs.append(("maxTokens", str(int(request.max_tokens))))
        pairs.extend(("stop", stop) for stop in request.stop)
        return [(name, (None, value)) for name, value in pairs]

    async def _read(
        self, lines: AsyncIterator[Any], model: str, anonymous_id: str
    ) -> AsyncGenerator[Event, None]:
        """Turn the JSON lines into text deltas, then the state and one finish.

        The answer is complete at the final thread whose last message is the reply. When
        a tool result follows the reply (a model that called a tool of its own), another
        step streams a new reply; the ``end`` chunk then closes the last final thread.
        The next turn's ``parent`` is the last message of the last final thread (what
        olmo-api's own end-to-end tests continue from).
        """
        reply_id: str | None = None
        parts: list[str] = []  # this step's streamed text, joined once at its end
        done: tuple[str, Any] | None = None  # (last message id, finish) of a final thread
        async for line in lines:
            if not isinstance(line, Mapping):
                raise self._protocol("a line that is not a JSON object", line, model)
            if "messages" in line:  # a thread: the new messages, then the final one
                reply = _reply(line, reply_id)
                if reply is None:
                    raise self._protocol("the thread has no assistant reply", line, model)
                if reply_id is None:
                    reply_id = reply["id"]
                if reply.get("final") is not True:
                    continue
                content = reply.get("content")
                if not isinstance(content, str):
                    raise self._protocol("the final reply has no content", line, model)
                sent = "".join(parts)
                if len(content) > len(sent) and content.startswith(sent):
                    yield content[len(sent) :]  # text the chunks did not carry
                elif content != sent:
                    log.warning("ai2: the final reply differs from the streamed text")
                last = line["messages"][-1].get("id")
                done = (
                    last if isinstance(last, str) and last else reply_id,
                    reply.get("finishReason"),
                )
                if last != reply_id:  # a tool result follows: another step will stream
                    reply_id, parts = None, []
                    continue
                for event in self._finish(anonymous_id, done):
                    yield event
                await _drain(lines)
                return
            if "error" in line and "type" not in line:
                raise self._stream_error(line, model)
            kind = line.get("type")
            if kind == "end" and done is not None:
                for event in self._finish(anonymous_id, done):
                    yield event
                return
            if kind in ("start", "end", "toolCall"):
                continue  # no text (this provider never enables tools)
            if kind == "error":
                severity = line.get("errorSeverity")
                if severity in ("warning", "info"):
                    log.info("ai2: %s: %s", severity, upstream_text(line.get("errorDescription")))
                    continue
                raise self._chunk_error(line, model)
            if kind not in ("modelResponse", "thinking"):
                raise self._protocol("an unknown line", line, model)
            if reply_id is None:
                raise self._protocol("a chunk arrived before the thread", line, model)
            content = line.get("content")
            if not isinstance(content, str) or line.get("message") != reply_id:
                raise self._protocol("a malformed chunk", line, model)
            if kind == "thinking":
                if content:
                    yield Reasoning(content)
                continue
            parts.append(content)
            yield content
        if done is not None:  # the final thread came, the end chunk did not: complete
            for event in self._finish(anonymous_id, done):
                yield event
            return
        raise errors.ProtocolError(
            "the stream ended without the final thread", provider=self.name, model=model
        )

    def _finish(self, anonymous_id: str, done: tuple[str, Any]) -> list[Event]:
        """The state (the thread's creator and last message) and the finish."""
        parent, reason = done
        finish = _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
        state = {"anonymous_user_id": anonymous_id, "parent": parent}
        return [ConversationState(self.name, state), FinishReason(finish)]

    def _protocol(self, message: str, line: Any, model: str) -> errors.ProtocolError:
        return protocol_error(message, line, provider=self.name, model=model)

    def _stream_error(self, line: Mapping[str, Any], model: str) -> errors.ProviderError:
        """Map a stream error ``{"message", "error", "reason"}`` to the error tree."""
        reason, text = upstream_text(line.get("reason"), 64), upstream_text(line.get("error"))
        if reason is None or text is None:
            return self._protocol("a malformed error line", line, model)
        common: dict[str, Any] = {"provider": self.name, "model": model, "body": str(dict(line))}
        if reason == "model overloaded":
            return errors.ProviderUnavailable(f"the model is overloaded: {text}", **common)
        if reason == "length":
            return errors.InvalidRequestError(
                f"the conversation is too long for the model's context: {text}", **common
            )
        return errors.ProviderError(f"the service reported an error ({reason}): {text}", **common)

    def _chunk_error(self, line: Mapping[str, Any], model: str) -> errors.ProviderError:
        """Map an error chunk ``{"type": "error", "errorCode", "errorDescription"}``."""
        code = upstream_text(line.get("errorCode"), 64) or "error"
        text = upstream_text(line.get("errorDescription")) or "no description"
        return errors.ProviderError(
            f"the service reported an error ({code}): {text}",
            provider=self.name,
            model=model,
            body=str(dict(line)),
        )


def _typed(exc: errors.ProviderError) -> errors.ProviderError:
    """``CaptchaRequired`` for a refusal that asks for a reCAPTCHA token, else ``exc``.

    olmo-api refuses with 400: a validation error of ``captchaToken`` ("Failed to
    evaluate captcha. Please reload the page and try again.", when ``require_recaptcha``
    is set), ``invalid_captcha`` or ``failed_captcha_assessment``
    (``create_message_service/safety.py``).
    """
    if exc.status_code != 400 or not exc.body or not _CAPTCHA.search(exc.body):
        return exc
    said = error_detail(exc.body) or ""
    if not (_CAPTCHA.search(said) or "captchaToken" in exc.body):
        return exc
    return errors.CaptchaRequired(
        "the Ai2 Playground asks for a reCAPTCHA token (captchaToken) with each anonymous "
        "prompt, which only its web page can produce; use another provider",
        provider=exc.provider,
        model=exc.model,
        status_code=exc.status_code,
        body=exc.body,
    )


def _parent_gone(exc: errors.ProviderError) -> bool:
    """The service no longer knows the parent message (anonymous messages expire)."""
    if exc.status_code == 404:
        return True
    return exc.status_code == 400 and bool(exc.body) and bool(_GONE_PARENT.search(exc.body or ""))


async def _json_lines(response: httpx.Response, provider: str, model: str) -> AsyncIterator[Any]:
    """The parsed JSON lines of ``response``; invalid UTF-8 becomes U+FFFD.

    Raises:
        llmrelay.errors.ProtocolError: a line that is not JSON (described, not quoted)
            or longer than the line bound.
    """
    decoder = NDJSONLineDecoder(DEFAULT_MAX_LINE)
    what = "JSON line in stream"
    try:
        async for chunk in aiter_body(response, provider=provider, model=model):
            for line in decoder.feed(chunk):
                yield loads(
                    line.decode("utf-8", "replace"), provider=provider, model=model, what=what
                )
    except LineTooLong as exc:
        raise errors.ProtocolError(
            f"JSON lines stream: {exc}", provider=provider, model=model
        ) from None
    last = decoder.flush()
    if last is not None:
        yield loads(last.decode("utf-8", "replace"), provider=provider, model=model, what=what)


def _state(state: ConversationState | None) -> tuple[str | None, str | None]:
    """``(anonymous_user_id, parent)`` from this provider's state, or ``(None, None)``."""
    if state is None:
        return None, None
    anonymous_id, parent = state.data.get("anonymous_user_id"), state.data.get("parent")
    if (
        isinstance(anonymous_id, str)
        and 0 < len(anonymous_id) <= _MAX_ID
        and anonymous_id.isprintable()
        and isinstance(parent, str)
        and 0 < len(parent) <= _MAX_ID
    ):
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


def _reply(thread: Mapping[str, Any], reply_id: str | None) -> Mapping[str, Any] | None:
    """The assistant reply of a thread line, or ``None``.

    ``reply_id``'s message when known, else the last assistant message; ``None`` when
    there is none or the thread is malformed.
    """
    messages = thread.get("messages")
    if not isinstance(messages, list) or len(messages) > _MAX_MESSAGES:
        return None
    found: Mapping[str, Any] | None = None
    for message in messages:
        if not isinstance(message, Mapping):
            return None
        mid = message.get("id")
        if reply_id is not None:
            if mid == reply_id:
                return message
        elif message.get("role") == "assistant":
            found = message  # only the reply's id matters (the others are not read)
    if found is not None:
        mid = found.get("id")
        if not isinstance(mid, str) or not 0 < len(mid) <= _MAX_ID:
            return None
    return found


async def _drain(lines: AsyncIterator[Any]) -> None:
    """Read the body to its end (briefly) so the connection can be reused.

    What follows the final thread (the ``end`` chunk) is ignored: the answer is complete.
    """
    with anyio.move_on_after(_DRAIN_WAIT):
        try:
            async for _ in lines:
                pass
        except (errors.ProviderError, httpx.HTTPError) as exc:
            log.debug("ai2: after the final thread: %s", exc)
