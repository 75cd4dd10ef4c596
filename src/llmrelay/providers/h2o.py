r"""h2oGPT chat (``h2o``): a HuggingFace chat-ui deployment in front of text-generation-inference.

Wire protocol (gpt-gm.h2o.ai, 2023; chat-ui's session flow)::

    GET  {base}/                            -> 200, Set-Cookie: <session cookie>
    POST {base}/settings                    form: ethicsModalAccepted=true,
         shareConversationsWithModelAuthors=true, ethicsModalAcceptedAt=,
         activeModel=<full model id>, searchEnabled=true   -> 303 (not followed)
    POST {base}/conversation                {"model": "<full model id>"}
                                            -> {"conversationId": "<24 hex>"}
    POST {base}/conversation/{id}           {"inputs", "parameters": {temperature, truncate,
         max_new_tokens, do_sample, repetition_penalty, return_full_text, [top_p], [stop]},
         "stream": true, "options": {"id", "response_id", "is_retry", "use_cache",
         "web_search_id"}}
    DELETE {base}/conversation/{id}         -> 200

Every request after ``GET /`` carries the session cookie as an explicit ``cookie`` header
(the shared HTTP client keeps no cookie jar). The answer comes in one of two formats,
told apart by the content type and the first bytes (parsed by ``._chatui``):

* until 2023-09 chat-ui relayed text-generation-inference's SSE stream verbatim:
  ``data:{"token": {"id", "text", "logprob", "special"}, "generated_text": null, ...}``;
  a special token (or ``<|endoftext|>``) ends the text, the last event carries
  ``generated_text`` (and ``details.finish_reason`` when asked for), errors arrive as
  ``data:{"error": "...", "error_type": "..."}``;
* later chat-ui sends its own JSON lines: ``{"type": "status", "status": ...}``,
  ``{"type": "stream", "token": "..."}``, ``{"type": "finalAnswer", "text": "..."}``.

chat-ui's own errors: 405 "You need to accept the welcome modal first" (no session
accepted), 404 "Conversation not found", 410 "Model not available anymore".

Conversation state ``{"cookie", "conversation_id", "model"}``: when the caller continues
the conversation, the next turn posts only the new user message to the same conversation
(the service keeps the history). A conversation is deleted afterwards (best effort)
unless it was handed out as state; option ``keep_conversation=False`` always deletes it.

Public sources: huggingface/chat-ui ``src/hooks.server.ts``,
``src/routes/settings/+page.server.ts``, ``src/routes/conversation/+server.ts``,
``src/routes/conversation/[id]/+server.ts`` (mid-2023) and ``src/lib/types/MessageUpdate.ts``
(from commit e943a055, 2023-09-20), https://github.com/huggingface/chat-ui;
huggingface/text-generation-inference ``router/src/lib.rs`` (``StreamResponse``) and
``router/src/server.rs``, https://github.com/huggingface/text-generation-inference;
the model ids and the prompt preamble from xtekky/gpt4free ``g4f/Provider/H2o.py`` (later
``g4f/Provider/deprecated/H2o.py``, https://github.com/xtekky/gpt4free).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from types import MappingProxyType
from typing import Any, ClassVar

import anyio
import httpx

from .. import errors
from .._http import (
    describe_body,
    error_detail,
    loads,
    protocol_error,
    raise_for_status,
    read_bounded,
    translate_errors,
)
from .._prompts import last_user_message
from ..types import ChatRequest, ConversationState, Event, FinishReason, Message
from ._base import Capability, Option, Provider
from ._chatui import read_answer

__all__ = ["MODELS", "PREAMBLE", "H2o", "h2o_prompt"]

log = logging.getLogger(__name__)

MODELS: Mapping[str, str] = MappingProxyType(
    {
        "falcon-40b": "h2oai/h2ogpt-gm-oasst1-en-2048-falcon-40b-v1",
        "falcon-7b": "h2oai/h2ogpt-gm-oasst1-en-2048-falcon-7b-v3",
        "llama-13b": "h2oai/h2ogpt-gm-oasst1-en-2048-open-llama-13b",
    }
)
"""Model name -> the service's full model id."""

PREAMBLE = (
    "instruction: this is a conversation between a user and an AI assistant, respond to "
    "the latest message, referring to the conversation if needed\n"
)
"""First line of the prompt of a new conversation."""

DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "temperature": 0.4,
        "truncate": 2048,
        "max_new_tokens": 1024,
        "do_sample": True,
        "repetition_penalty": 1.2,
        "return_full_text": False,
    }
)
"""Generation parameters sent unless the request overrides them."""

_SMALL_BODY = 1024 * 1024
_MAX_COOKIE = 4096
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DELETE_TIMEOUT = 2.0


def h2o_prompt(messages: Sequence[Message]) -> str:
    r"""The prompt of a new conversation: ``PREAMBLE``, ``role: content`` lines, ``assistant:``.

    Example: ``[user "Hi"]`` -> ``PREAMBLE + "user: Hi\nassistant:"``.
    """
    return PREAMBLE + "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"


class H2o(Provider):
    """Chat with h2oGPT (h2oai's OpenAssistant-tuned Falcon and OpenLLaMA), anonymously.

    ``temperature``, ``top_p``, ``max_tokens`` (``max_new_tokens``) and ``stop`` override
    the service defaults (``DEFAULTS``). Each new conversation opens its own cookie
    session, so concurrent chats never share one.
    """

    name: ClassVar[str] = "h2o"
    label: ClassVar[str] = "h2oGPT (chat-ui)"
    docs_url: ClassVar[str] = "https://github.com/huggingface/chat-ui"
    endpoints: ClassVar[Mapping[str, str]] = MappingProxyType({"base_url": "https://gpt-gm.h2o.ai"})
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.STREAM, Capability.HISTORY, Capability.SERVER_STATE}
    )
    parameters: ClassVar[frozenset[str]] = frozenset({"temperature", "top_p", "max_tokens", "stop"})
    options: ClassVar[Mapping[str, Option]] = MappingProxyType(
        {
            "keep_conversation": Option(
                bool, "keep the conversation on the service for the next turn (default true)"
            )
        }
    )
    default_model: ClassVar[str] = "falcon-40b"
    models: ClassVar[tuple[str, ...]] = tuple(MODELS)
    aliases: ClassVar[Mapping[str, str]] = MappingProxyType(
        {full: short for short, full in MODELS.items()}
    )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Stream the reply (see the module docstring); the state comes before the finish."""
        model = request.model
        if model not in MODELS:  # resolve_model guards this; a direct caller may not
            raise errors.UnknownModelError(model, list(MODELS), provider=self.name)
        keep = bool(request.options.get("keep_conversation", True))
        session = _session(request.state, model)
        opened: tuple[str, str] | None = None  # (cookie, conversation id) we may delete
        kept = False
        try:
            with translate_errors(self.name, model):
                for _ in range(2):
                    if session is None:
                        cookie = await self._open_session(model)
                        opened = cookie, await self._new_conversation(cookie, model)
                        cookie, cid = opened
                        inputs = h2o_prompt(request.messages)
                    else:
                        cookie, cid = session
                        inputs = _last_user(request, self.name)
                    async with self._http.stream(
                        "POST",
                        f"{self.base_url}/conversation/{cid}",
                        json=_body(request, inputs),
                        headers={"cookie": cookie, "accept": "*/*"},
                    ) as response:
                        if session is not None and response.status_code in (404, 405):
                            log.info("h2o: the kept conversation is gone; starting a new one")
                            session = None
                            continue
                        await self._check(response, model, "message")
                        answer = read_answer(
                            response, provider=self.name, model=model, stops=request.stop
                        )
                        async with aclosing(answer):
                            async for event in answer:
                                if isinstance(event, FinishReason) and keep:
                                    kept = True
                                    state = {"cookie": cookie, "conversation_id": cid}
                                    yield ConversationState(self.name, {**state, "model": model})
                                yield event
                        return
        finally:
            if opened is not None and not kept:
                await self._delete(*opened)

    # -- the session flow ----------------------------------------------------------------

    async def _open_session(self, model: str) -> str:
        """``GET /`` then ``POST /settings`` with the model; returns the cookie header."""
        async with self._http.stream("GET", f"{self.base_url}/") as response:
            await self._check(response, model, "GET /")
            cookie = _merge_cookies("", response, self.name, model)
        if not cookie:
            raise errors.ProtocolError(
                "the service set no session cookie", provider=self.name, model=model
            )
        form = {
            "ethicsModalAccepted": "true",
            "shareConversationsWithModelAuthors": "true",
            "ethicsModalAcceptedAt": "",
            "activeModel": MODELS[model],
            "searchEnabled": "true",
        }
        async with self._http.stream(
            "POST", f"{self.base_url}/settings", data=form, headers={"cookie": cookie}
        ) as response:
            await self._check(response, model, "settings")  # 303 is success; not followed
            await read_bounded(response, provider=self.name, model=model, limit=_SMALL_BODY)
            return _merge_cookies(cookie, response, self.name, model)

    async def _new_conversation(self, cookie: str, model: str) -> str:
        """``POST /conversation``; returns the ``conversationId``."""
        async with self._http.stream(
            "POST",
            f"{self.base_url}/conversation",
            json={"model": MODELS[model]},
            headers={"cookie": cookie, "accept": "application/json"},
        ) as response:
            await self._check(response, model, "conversation")
            body = await read_bounded(response, provider=self.name, model=model, limit=_SMALL_BODY)
        payload = loads(body, provider=self.name, model=model, what="conversation answer")
        cid = payload.get("conversationId") if isinstance(payload, dict) else None
        if not isinstance(cid, str) or not _ID.fullmatch(cid):
            raise protocol_error(
                "no usable conversationId in the answer", body, provider=self.name, model=model
            )
        return cid

    async def _delete(self, cookie: str, cid: str) -> None:
        """``DELETE /conversation/{id}``: best effort, shielded, within a short timeout."""
        with anyio.move_on_after(_DELETE_TIMEOUT, shield=True):
            try:
                async with self._http.stream(
                    "DELETE", f"{self.base_url}/conversation/{cid}", headers={"cookie": cookie}
                ) as response:
                    if response.status_code >= 400:
                        log.info("h2o: DELETE conversation answered %s", response.status_code)
            except httpx.HTTPError as exc:
                log.info("h2o: could not delete conversation %s: %s", cid, exc)

    async def _check(self, response: httpx.Response, model: str, what: str) -> None:
        """Raise the typed error of an HTTP error answer (chat-ui's own codes first).

        A 3xx is an error (``ProtocolError``: redirects are not followed) except the
        ``303`` of ``POST /settings``, chat-ui's answer to an accepted form.
        """
        status = response.status_code
        if status < 300 or (300 <= status < 400 and what == "settings"):
            return
        if status not in (404, 405, 410) or (status == 404 and what != "message"):
            await raise_for_status(response, provider=self.name, model=model, what=what)
        raw = await read_bounded(response, provider=self.name, model=model, limit=_SMALL_BODY)
        body = raw.decode("utf-8", "replace")
        common: dict[str, Any] = {
            "provider": self.name,
            "model": model,
            "status_code": status,
            "body": body,
        }
        # chat-ui's errors are SvelteKit's {"message": ...}; anything else is described
        detail = error_detail(body) or describe_body(body, response.headers.get("content-type"))
        if status == 410:
            raise errors.ModelNotFoundError(
                f"{what}: the model is not available anymore: {detail}", **common
            )
        if status == 404:
            raise errors.ProviderError(
                f"{what}: the conversation was not found: {detail}", **common
            )
        raise errors.ProviderError(f"{what}: the service refused the session: {detail}", **common)


def _session(state: ConversationState | None, model: str) -> tuple[str, str] | None:
    """``(cookie, conversation id)`` from a usable state for ``model``, else ``None``."""
    if state is None:
        return None
    cookie, cid = state.data.get("cookie"), state.data.get("conversation_id")
    if (
        state.data.get("model") == model
        and isinstance(cookie, str)
        and 0 < len(cookie) <= _MAX_COOKIE
        and cookie.isascii()
        and cookie.isprintable()
        and isinstance(cid, str)
        and _ID.fullmatch(cid)
    ):
        return cookie, cid
    log.info("h2o: the state is for another model or unusable; starting a new conversation")
    return None


def _last_user(request: ChatRequest, provider: str) -> str:
    try:
        return last_user_message(request.messages)
    except ValueError:
        raise errors.InvalidRequestError(
            "the conversation has no user message", provider=provider, model=request.model
        ) from None


def _body(request: ChatRequest, inputs: str) -> dict[str, Any]:
    """The TGI-style request body; request parameters override ``DEFAULTS``."""
    parameters = dict(DEFAULTS)
    if request.temperature is not None:
        if request.temperature > 0:
            parameters["temperature"] = request.temperature
        else:  # TGI refuses temperature 0: greedy decoding instead
            del parameters["temperature"]
            parameters["do_sample"] = False
    if request.max_tokens is not None:
        parameters["max_new_tokens"] = request.max_tokens
    if request.top_p is not None:
        parameters["top_p"] = request.top_p
    if request.stop:
        parameters["stop"] = list(request.stop)
    return {
        "inputs": inputs,
        "parameters": parameters,
        "stream": True,
        "options": {
            "id": str(uuid.uuid4()),
            "response_id": str(uuid.uuid4()),
            "is_retry": False,
            "use_cache": False,
            "web_search_id": "",
        },
    }


def _merge_cookies(cookie: str, response: httpx.Response, provider: str, model: str) -> str:
    """``cookie`` (a ``cookie`` header value) updated with ``response``'s Set-Cookie pairs."""
    jar: dict[str, str] = {}
    for pair in cookie.split(";"):
        name, _, value = pair.strip().partition("=")
        if name:
            jar[name] = value
    for header in response.headers.get_list("set-cookie"):
        name, _, value = header.partition(";")[0].strip().partition("=")
        if name and not any(c in name + value for c in "\r\n"):
            jar[name] = value
    merged = "; ".join(f"{name}={value}" for name, value in jar.items())
    if len(merged) > _MAX_COOKIE:
        raise errors.ProtocolError(
            f"session cookies too large ({len(merged)} characters)", provider=provider, model=model
        )
    return merged
