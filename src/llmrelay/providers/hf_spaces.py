"""Hugging Face Spaces through the Gradio queue protocol (``hf_spaces``).

Any Gradio chat Space by its Hub id (``owner/name``, e.g. ``Qwen/Qwen2-72B-Instruct``):
a ``gr.ChatInterface`` or a ``gr.Blocks`` app with a chatbot.

1. Host: ``GET {hub}/api/spaces/{owner/name}`` -> ``host`` / ``subdomain`` and
   ``runtime.stage``; a sleeping Space is woken and a building one waited for, within
   the request's deadline (``_space_hosts``; as ``@gradio/client``'s ``spaces.ts``).
   With a ``base_url`` override (a self-hosted Gradio, tests) the override is the host
   and the Hub is not asked.
2. Layout: ``GET {space}/config`` -> the chat dependency, its inputs and outputs by
   component type (``_gradio``); known Spaces (``SPACES``) name their dependency and
   stand in when discovery cannot read the layout.
3. Wire protocol (Gradio 4.x – 6.x, ``sse_v3``; verified against local Gradio 4.44.1,
   5.50.0 and 6.31.0 servers; public source: the ``gradio`` and ``gradio_client``
   wheels, https://www.gradio.app/guides/querying-gradio-apps-with-curl)::

    POST {space}{prefix}/queue/join?
         {"data": [...one value per input...], "event_data": null, "fn_index": N,
          "trigger_id": T, "session_hash": "<random>"} -> {"event_id": "<32 hex>"}
    GET  {space}{prefix}/queue/data?session_hash=<same>   (text/event-stream)
         data: {"msg": "estimation", "event_id", "rank", "queue_size", "rank_eta"}
         data: {"msg": "process_starts", "event_id", "eta"}
         data: {"msg": "process_generating", "event_id", "output": {"data": [...]}, "success"}
         data: {"msg": "process_completed", "event_id", "output": {"data" | "error"}, "success"}
         data: {"msg": "heartbeat"} / {"msg": "close_stream"} / {"msg": "unexpected_error"}

``prefix`` is ``""`` for Gradio 4 and ``"/gradio_api"`` from 5 on. The first
``process_generating`` carries the full output values, later ones a diff list per output
(``append``/``replace``/``add``/``delete``); text is yielded as the true delta of the
reply, so a repeated token is never dropped and nothing is sent twice.

Everything the Space or the Hub sends is untrusted: bodies and lines are bounded, JSON
goes through ``llmrelay._http.loads``, and every malformed shape is a ``ProtocolError``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import anyio
import httpx

from .. import errors
from .._http import aiter_sse, loads, raise_for_status, read_json, translate_errors
from .._prompts import format_plain, split_system
from ..types import ChatRequest, Event, FinishReason
from ._base import Auth, AuthMode, Capability, Option, Provider
from ._gradio import (
    ChatEndpoint,
    GradioChatSpace,
    MalformedConfig,
    UnknownLayout,
    apply_diff,
    endpoint_from_config,
    reply_text,
)
from ._space_hosts import SpaceHosts

__all__ = ["SPACES", "HFSpaces"]

log = logging.getLogger(__name__)
_CLOSE_WAIT = 0.5
_ENDPOINT_CACHE = 256
_SPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
"""A Hub repository id ``owner/name`` (no ``..``, no other slash): safe in a URL path."""

SPACES: Mapping[str, GradioChatSpace] = MappingProxyType(
    {
        "Qwen/Qwen2-72B-Instruct": GradioChatSpace(
            space_id="Qwen/Qwen2-72B-Instruct",
            api_name="model_chat",
            fn_index=0,
            trigger_id=11,
            inputs=("prompt", "history", "system"),
            reply_output=1,
        ),
    }
)
"""Known Spaces: Hub id -> the row that stands in when discovery cannot read the layout.
Outputs of the Qwen Space: ``[textbox, chatbot, system]``."""


class HFSpaces(Provider):
    """Chat with any Gradio chat Space on Hugging Face by its id (``owner/name``).

    The default is ``Qwen/Qwen2-72B-Instruct`` (alias ``qwen-2-72b``). The Space's host
    comes from the Hub (endpoint ``hub_url``, ``LLMRELAY_HF_SPACES_HUB_URL``); a
    ``base_url`` override (``LLMRELAY_HF_SPACES_BASE_URL``) is used as the host instead,
    for a self-hosted Gradio app or tests. History is flattened into the prompt (the
    Space keeps no state). No generation parameter is an input of a chat Space in
    general, so ``parameters`` is empty and the engine warns when one is given; a
    Space's other inputs (sliders, ...) keep their ``/config`` defaults unless the
    ``inputs`` option sets them by label (``{"Temperature": 0.2}``). An ``HF_TOKEN``
    (optional, for private Spaces) is sent as a bearer token to the Hub and the Space.
    """

    name: ClassVar[str] = "hf_spaces"
    label: ClassVar[str] = "Hugging Face Spaces (Gradio)"
    docs_url: ClassVar[str] = "https://www.gradio.app/guides/querying-gradio-apps-with-curl"
    endpoints: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"base_url": "https://hf.space", "hub_url": "https://huggingface.co"}
    )
    """``base_url``: only used when overridden (then it is the Space's host); by default
    each Space's host comes from the Hub at ``hub_url``."""
    auth: ClassVar[Auth] = Auth(AuthMode.OPTIONAL, "HF_TOKEN")
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.STREAM, Capability.SYSTEM_PROMPT}
    )
    parameters: ClassVar[frozenset[str]] = frozenset()
    options: ClassVar[Mapping[str, Option]] = MappingProxyType(
        {
            "inputs": Option(
                dict,
                "values of the Space's other inputs by label, e.g. "
                '{"Temperature": 0.2, "Max new tokens": 256} (default: the Space\'s own)',
            )
        }
    )
    default_model: ClassVar[str] = "Qwen/Qwen2-72B-Instruct"
    models: ClassVar[tuple[str, ...]] = tuple(SPACES)
    aliases: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "qwen-2-72b": "Qwen/Qwen2-72B-Instruct",
            "qwen-qwen2-72b-instruct": "Qwen/Qwen2-72B-Instruct",
        }
    )
    open_catalogue: ClassVar[bool] = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoints: Mapping[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(http, endpoints=endpoints, api_key=api_key)
        self._base_override = self.base_url if "base_url" in self.overridden else None
        self._hosts = SpaceHosts(http, self.urls["hub_url"], self._auth_headers, self.name)
        self._endpoints: OrderedDict[str, ChatEndpoint] = OrderedDict()

    def _check_id(self, model: str) -> GradioChatSpace | None:
        """The known row of ``model``, after checking it is an ``owner/name`` id."""
        space = SPACES.get(model)
        if space is None and (not _SPACE_ID.fullmatch(model) or ".." in model):
            raise errors.UnknownModelError(
                model, [*self.valid_model_names(), "<owner>/<space name>"], provider=self.name
            )
        return space

    async def _endpoint(self, url: str, space: GradioChatSpace | None, model: str) -> ChatEndpoint:
        """Discover the chat dependency via ``GET /config``, cached per Space URL and row.

        A known Space falls back to its row when ``/config`` answers with an HTTP error
        (except 401/403: a rejected token is an ``AuthenticationError``, not hidden behind
        the next call's "Not Found") or its layout cannot be read; a malformed document
        is always a ProtocolError.
        """
        key = f"{url} {space.space_id if space is not None else ''}"
        cached = self._endpoints.get(key)
        if cached is not None:
            return cached
        async with self._http.stream(
            "GET", f"{url}/config", headers=self._auth_headers()
        ) as response:
            if response.status_code not in (200, 401, 403) and space is not None:
                log.info("%s: /config answered %s; using defaults", url, response.status_code)
                endpoint = space.endpoint()
            else:
                await raise_for_status(response, provider=self.name, model=model, what="/config")
                config = await read_json(response, provider=self.name, model=model, what="/config")
                endpoint = self._discover(config, space, model)
        self._endpoints[key] = endpoint
        while len(self._endpoints) > _ENDPOINT_CACHE:
            self._endpoints.popitem(last=False)
        return endpoint

    def _forget_endpoints(self, url: str) -> None:
        for key in [k for k in self._endpoints if k.startswith(f"{url} ")]:
            del self._endpoints[key]

    def _discover(self, config: Any, space: GradioChatSpace | None, model: str) -> ChatEndpoint:
        try:
            return endpoint_from_config(config, space)
        except UnknownLayout as exc:
            if space is None:
                raise self._protocol_error(f"not a Gradio chat Space: {exc}", model) from None
            log.warning("%s: %s; using the known layout", model, exc)
            return space.endpoint()
        except MalformedConfig as exc:
            raise self._protocol_error(f"unusable /config: {exc}", model) from None

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Stream the Space's reply to ``request`` (see the module docstring)."""
        model = request.model
        space = self._check_id(model)
        system, conversation = split_system(request.messages)
        if not conversation:
            raise errors.ConfigError(f"{self.name}: the conversation has no user message")
        has_system = any(m.role == "system" for m in request.messages)
        with translate_errors(self.name, model):
            if self._base_override is not None:
                url = self._base_override
            else:
                url = await self._hosts.host(model, request.deadline)
            try:
                endpoint = await self._endpoint(url, space, model)
                session_hash = secrets.token_hex(6)
                data = self._data(endpoint, request, system if has_system else None)
                event_id = await self._join(url, endpoint, session_hash, data, model)
            except errors.ProviderError as exc:
                if exc.retryable or isinstance(exc, errors.ModelNotFoundError):
                    self._hosts.forget(model)  # the Space may have moved or slept
                raise
            async with self._http.stream(
                "GET",
                f"{url}{endpoint.prefix}/queue/data",
                params={"session_hash": session_hash},
                headers={"accept": "text/event-stream", **self._auth_headers()},
            ) as response:
                await raise_for_status(response, provider=self.name, model=model, what="queue/data")
                async for event in self._read_stream(response, endpoint, event_id, model):
                    yield event

    def _data(self, endpoint: ChatEndpoint, request: ChatRequest, system: str | None) -> list[Any]:
        """The join ``data`` of ``request``.

        The flattened conversation, the system prompt (``None``: the Space's default),
        the ``inputs`` option's values by label and the defaults of the other inputs.
        """
        _, conversation = split_system(request.messages)
        inputs = request.options.get("inputs")
        if inputs is not None and not (
            isinstance(inputs, Mapping) and all(isinstance(k, str) for k in inputs)
        ):
            raise errors.InvalidRequestError(
                "option 'inputs' must map input labels to values",
                provider=self.name,
                model=request.model,
            )
        try:
            return endpoint.build_data(format_plain(conversation), system, inputs)
        except KeyError as exc:
            known = ", ".join(repr(label) for label in endpoint.labels) or "none"
            raise errors.InvalidRequestError(
                f"the Space has no input labelled {exc.args[0]} (its other inputs: {known})",
                provider=self.name,
                model=request.model,
            ) from None

    async def _join(
        self, url: str, endpoint: ChatEndpoint, session_hash: str, data: list[Any], model: str
    ) -> str:
        """``POST queue/join``; returns the ``event_id``."""
        payload = {
            "data": data,
            "event_data": None,
            "fn_index": endpoint.fn_index,
            "trigger_id": endpoint.trigger_id,
            "session_hash": session_hash,
        }
        async with self._http.stream(
            "POST",
            f"{url}{endpoint.prefix}/queue/join?",
            json=payload,
            headers=self._auth_headers(),
        ) as response:
            if response.status_code >= 400:
                # The Space may have changed (e.g. upgraded Gradio): discover again next time.
                # 503 = queue full or stopped -> ProviderUnavailable (retryable).
                self._forget_endpoints(url)
                await raise_for_status(response, provider=self.name, model=model, what="queue/join")
            answer = await read_json(response, provider=self.name, model=model, what="queue/join")
        event_id = answer.get("event_id") if isinstance(answer, dict) else None
        if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
            raise errors.ProtocolError(
                f"queue/join answer has no valid event_id: {_preview(answer)!r}",
                provider=self.name,
                model=model,
                status_code=response.status_code,
            )
        return event_id

    async def _read_stream(
        self, response: httpx.Response, endpoint: ChatEndpoint, event_id: str, model: str
    ) -> AsyncIterator[Event]:
        """Turn the session's SSE messages for ``event_id`` into text deltas and a finish."""
        values: list[Any] | None = None
        sent = ""
        out, kind = endpoint.reply_output, endpoint.reply_kind
        messages = aiter_sse(response, provider=self.name, model=model)
        async for sse in messages:
            if not sse.data:
                continue
            message = loads(sse.data, provider=self.name, model=model, what="queue message")
            if not isinstance(message, dict) or not isinstance(message.get("msg"), str):
                raise self._protocol_error(f"malformed queue message {sse.data[:200]!r}", model)
            msg = message["msg"]
            own_id = message.get("event_id")
            own = own_id == event_id or own_id is None
            if msg == "process_generating" and own:
                try:
                    values = _apply_output(values, message)
                    text = reply_text(values[out], kind) or ""
                except (KeyError, IndexError, TypeError, ValueError, RecursionError) as exc:
                    raise self._protocol_error(
                        f"bad process_generating output: {type(exc).__name__}: {exc}"[:300],
                        model,
                    ) from None
                delta = _delta(sent, text)
                if delta:
                    sent = text
                    yield delta
            elif msg == "process_completed" and own:
                if message.get("success") is not True:
                    raise self._space_error(message.get("output"), model)
                try:
                    data = message["output"]["data"]
                    if not isinstance(data, list):
                        raise TypeError("output data is not a list")
                    text = reply_text(data[out], kind) or ""
                except (KeyError, IndexError, TypeError, ValueError, RecursionError) as exc:
                    raise self._protocol_error(
                        f"bad process_completed output: {type(exc).__name__}: {exc}"[:300],
                        model,
                    ) from None
                delta = _delta(sent, text)
                if delta:
                    sent = text
                    yield delta
                yield FinishReason("stop")
                await _finish_body(messages)
                return
            elif msg == "unexpected_error":
                raise self._unexpected_error(message, model)
            elif msg == "queue_full":
                raise errors.ProviderUnavailable(
                    "the Space's queue is full", provider=self.name, model=model
                )
            elif msg == "close_stream":
                break
            # estimation, process_starts, heartbeat, progress, log, other sessions'
            # events: nothing to yield.
        raise self._protocol_error("the stream closed before process_completed", model)

    def _protocol_error(self, message: str, model: str) -> errors.ProtocolError:
        return errors.ProtocolError(message, provider=self.name, model=model)

    def _space_error(self, output: Any, model: str) -> errors.ProviderError:
        """``process_completed`` with ``success: false``: the Space's function failed."""
        error = output.get("error") if isinstance(output, Mapping) else None
        if isinstance(error, str):
            # Gradio 4 quotes gr.Error text: "'message'".
            if len(error) >= 2 and error[0] == error[-1] == "'":
                error = error[1:-1]
            text = f"the Space reported an error: {error[:1000]}"
        else:
            text = "the Space's function failed without an error message"
        return errors.ProviderError(
            text, provider=self.name, model=model, body=_preview(output, 2000)
        )

    def _unexpected_error(self, message: Mapping[str, Any], model: str) -> errors.ProviderError:
        detail = message.get("message")
        detail = detail[:1000] if isinstance(detail, str) and detail else "unexpected error"
        if message.get("session_not_found"):
            return errors.ProviderUnavailable(
                f"the Space does not know this session ({detail})", provider=self.name, model=model
            )
        return errors.ProviderError(
            f"the Space reported an unexpected error: {detail}", provider=self.name, model=model
        )


def _apply_output(values: list[Any] | None, message: Mapping[str, Any]) -> list[Any]:
    """The outputs after one ``process_generating``.

    Its full values the first time, then its diffs (one list per output) applied.

    Raises:
        KeyError, TypeError, ValueError: a malformed message or diff.
    """
    data = message["output"]["data"]
    if not isinstance(data, list):
        raise TypeError("output data is not a list")
    if values is None:
        return list(data)
    if len(data) != len(values):
        raise ValueError(f"{len(data)} diffs for {len(values)} outputs")
    # an output that did not change has an empty diff: kept without a call (the token path)
    return [
        value if type(edits) is list and not edits else apply_diff(value, edits)
        for value, edits in zip(values, data, strict=True)
    ]


async def _finish_body(messages: AsyncIterator[Any]) -> None:
    """Read the response to its end (briefly) so the connection can return to the pool.

    Gradio sends ``close_stream`` and ends the response right after the session's last
    ``process_completed``; reading that far lets httpx reuse the connection (a TLS
    handshake saved per request on a real Space). A Space that does not end the
    response within ``_CLOSE_WAIT`` seconds is left, and its connection closed instead.
    The answer is complete by then: a cut connection or garbage after it is no failure.
    """
    with anyio.move_on_after(_CLOSE_WAIT):
        try:
            async for _ in messages:
                pass
        except (httpx.HTTPError, errors.LLMRelayError) as exc:
            log.debug("after process_completed: %s", exc)


def _preview(value: Any, limit: int = 200) -> str:
    """At most ``limit`` characters of ``value`` as JSON (never raises)."""
    try:
        return json.dumps(value, ensure_ascii=False)[:limit]
    except (TypeError, ValueError, RecursionError):
        return f"<{type(value).__name__}>"


def _delta(sent: str, text: str) -> str:
    """The part of the reply ``text`` beyond what was already ``sent`` (``""`` if none).

    If the Space rewrote text that was already streamed (not an extension), nothing of
    the rewritten part is sent again: only characters beyond the streamed length follow.
    """
    if len(text) <= len(sent):
        return ""
    if not text.startswith(sent):
        log.warning("the Space rewrote already streamed text; continuing after it")
    return text[len(sent) :]
