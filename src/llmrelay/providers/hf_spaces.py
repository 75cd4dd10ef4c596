"""Hugging Face Spaces through the Gradio queue protocol (``hf_spaces``).

Wire protocol (Gradio 4.x – 6.x, ``sse_v3``; verified against local Gradio 4.44.1,
5.50.0 and 6.31.0 servers, see ``PROTOCOLS.md`` §4; public source: the ``gradio`` and
``gradio_client`` wheels, https://www.gradio.app/guides/querying-gradio-apps-with-curl)::

    GET  {space}/config
         -> {"version", "protocol": "sse_v3", "api_prefix"?, "dependencies": [...]}
    POST {space}{prefix}/queue/join?
         {"data": [prompt, [], system], "event_data": null, "fn_index": 0,
          "trigger_id": 11, "session_hash": "<random>"} -> {"event_id": "<32 hex>"}
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

A Space is a row of data (``GradioChatSpace``): URL, dependency, ``data`` template and
where the reply sits; another Gradio chat Space is a new row in ``SPACES``.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import anyio
import httpx

from .. import errors
from .._http import aiter_sse, raise_for_status, translate_errors
from .._prompts import format_plain, split_system
from ..types import ChatRequest, Event, FinishReason
from ._base import Auth, AuthMode, Capability, Provider
from ._gradio import GradioChatSpace, SpaceEndpoint, apply_diff, endpoint_from_config, reply_text

__all__ = ["SPACES", "HFSpaces"]

log = logging.getLogger(__name__)
_CLOSE_WAIT = 0.5

SPACES: Mapping[str, GradioChatSpace] = MappingProxyType(
    {
        "qwen-qwen2-72b-instruct": GradioChatSpace(
            space_id="qwen-qwen2-72b-instruct",
            base_url="https://qwen-qwen2-72b-instruct.hf.space",
            api_name="model_chat",
            fn_index=0,
            trigger_id=11,
            inputs=("prompt", "history", "system"),
            reply_output=1,
        ),
    }
)
"""Space id -> its row. Outputs of the Qwen Space: ``[textbox, chatbot, system]``."""


class HFSpaces(Provider):
    """Chat with Gradio chat Spaces on Hugging Face (default: Qwen2-72B-Instruct).

    The base URL (``base_url=`` or ``LLMRELAY_HF_SPACES_BASE_URL``) replaces the Space's
    host, which is how tests and the local demo reach a Gradio server on another host.
    History is flattened into the prompt (the Space keeps no state); ``temperature``,
    ``max_tokens``, ``top_p`` and ``stop`` are not inputs of this Space and are ignored.
    An ``HF_TOKEN`` (optional) is sent as a bearer token, for private Spaces.
    """

    name: ClassVar[str] = "hf_spaces"
    label: ClassVar[str] = "Hugging Face Spaces (Gradio)"
    docs_url: ClassVar[str] = "https://huggingface.co/spaces/Qwen/Qwen2-72B-Instruct"
    endpoints: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"base_url": SPACES["qwen-qwen2-72b-instruct"].base_url}
    )
    auth: ClassVar[Auth] = Auth(AuthMode.OPTIONAL, "HF_TOKEN")
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.STREAM, Capability.SYSTEM_PROMPT}
    )
    default_model: ClassVar[str] = "qwen-qwen2-72b-instruct"
    models: ClassVar[tuple[str, ...]] = tuple(SPACES)
    aliases: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"qwen-2-72b": "qwen-qwen2-72b-instruct"}
    )

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoints: Mapping[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(http, endpoints=endpoints, api_key=api_key)
        self._base_override = self.base_url if "base_url" in self.overridden else None
        self._endpoints: dict[str, SpaceEndpoint] = {}

    def _space_url(self, space: GradioChatSpace) -> str:
        return self._base_override or space.base_url

    async def _endpoint(self, space: GradioChatSpace, url: str) -> SpaceEndpoint:
        """Discover the chat dependency via ``GET /config``, cached per Space URL.

        Falls back to the Space row's defaults (no prefix, its ``fn_index`` and
        ``trigger_id``) when ``/config`` answers with an HTTP error or an unusable
        document; connection failures are raised.
        """
        cached = self._endpoints.get(url)
        if cached is not None:
            return cached
        endpoint = SpaceEndpoint(prefix="", fn_index=space.fn_index, trigger_id=space.trigger_id)
        response = await self._http.get(f"{url}/config", headers=self._auth_headers())
        if response.status_code == 200:
            try:
                endpoint = endpoint_from_config(response.json(), space)
            except (ValueError, TypeError) as exc:
                log.warning("%s: unusable /config (%s); using the Space's defaults", url, exc)
        else:
            log.info("%s: /config answered %s; using defaults", url, response.status_code)
        self._endpoints[url] = endpoint
        return endpoint

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Stream the Space's reply to ``request`` (see the module docstring)."""
        space = SPACES.get(request.model)
        if space is None:  # resolve_model guards this; a direct caller may not
            raise errors.UnknownModelError(request.model, list(SPACES), provider=self.name)
        system, conversation = split_system(request.messages)
        if not conversation:
            raise errors.ConfigError(f"{self.name}: the conversation has no user message")
        url = self._space_url(space)
        model = request.model
        with translate_errors(self.name, model):
            endpoint = await self._endpoint(space, url)
            session_hash = secrets.token_hex(6)
            data = space.build_data(format_plain(conversation), system)
            event_id = await self._join(url, endpoint, session_hash, data, model)
            async with self._http.stream(
                "GET",
                f"{url}{endpoint.prefix}/queue/data",
                params={"session_hash": session_hash},
                headers={"accept": "text/event-stream", **self._auth_headers()},
            ) as response:
                await raise_for_status(response, provider=self.name, model=model, what="queue/data")
                async for event in self._read_stream(response, space, event_id, model):
                    yield event

    async def _join(
        self, url: str, endpoint: SpaceEndpoint, session_hash: str, data: list[Any], model: str
    ) -> str:
        """``POST queue/join``; returns the ``event_id``."""
        payload = {
            "data": data,
            "event_data": None,
            "fn_index": endpoint.fn_index,
            "trigger_id": endpoint.trigger_id,
            "session_hash": session_hash,
        }
        response = await self._http.post(
            f"{url}{endpoint.prefix}/queue/join?", json=payload, headers=self._auth_headers()
        )
        if response.status_code >= 400:
            # The Space may have changed (e.g. upgraded Gradio): discover again next time.
            # 503 = queue full or stopped -> ProviderUnavailable (retryable).
            self._endpoints.pop(url, None)
            await raise_for_status(response, provider=self.name, model=model, what="queue/join")
        try:
            event_id = response.json()["event_id"]
        except (ValueError, KeyError, TypeError):
            raise errors.ProtocolError(
                f"queue/join answer has no event_id: {response.text[:200]!r}",
                provider=self.name,
                model=model,
                status_code=response.status_code,
                body=response.text,
            ) from None
        if not isinstance(event_id, str) or not event_id:
            raise errors.ProtocolError(
                f"queue/join gave an invalid event_id {event_id!r}",
                provider=self.name,
                model=model,
            )
        return event_id

    async def _read_stream(
        self, response: httpx.Response, space: GradioChatSpace, event_id: str, model: str
    ) -> AsyncIterator[Event]:
        """Turn the session's SSE messages for ``event_id`` into text deltas and a finish."""
        values: list[Any] | None = None
        sent = ""
        out = space.reply_output
        kind = space.reply_kind
        messages = aiter_sse(response, provider=self.name, model=model)
        async for sse in messages:
            if not sse.data:
                continue
            try:
                message = json.loads(sse.data)
                msg = message["msg"]
            except (ValueError, KeyError, TypeError):
                raise self._protocol_error(
                    f"malformed queue message {sse.data[:200]!r}", model
                ) from None
            own = message.get("event_id") in (event_id, None)
            if msg == "process_generating" and own:
                try:
                    data = message["output"]["data"]
                    if values is None:
                        values = list(data)
                    else:
                        for index, edits in enumerate(data):
                            values[index] = apply_diff(values[index], edits)
                    text = reply_text(values[out], kind) or ""
                except (KeyError, IndexError, TypeError, ValueError) as exc:
                    raise self._protocol_error(
                        f"bad process_generating output: {exc}", model
                    ) from exc
                delta = _delta(sent, text)
                if delta:
                    sent = text
                    yield delta
            elif msg == "process_completed" and own:
                if not message.get("success", False):
                    raise self._space_error(message.get("output"), model)
                try:
                    text = reply_text(message["output"]["data"][out], kind) or ""
                except (KeyError, IndexError, TypeError, ValueError) as exc:
                    raise self._protocol_error(
                        f"bad process_completed output: {exc}", model
                    ) from exc
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
            text = f"the Space reported an error: {error}"
        else:
            text = "the Space's function failed without an error message"
        return errors.ProviderError(
            text, provider=self.name, model=model, body=json.dumps(output)[:2000]
        )

    def _unexpected_error(self, message: Mapping[str, Any], model: str) -> errors.ProviderError:
        detail = str(message.get("message") or "unexpected error")
        if message.get("session_not_found"):
            return errors.ProviderUnavailable(
                f"the Space does not know this session ({detail})", provider=self.name, model=model
            )
        return errors.ProviderError(
            f"the Space reported an unexpected error: {detail}", provider=self.name, model=model
        )


async def _finish_body(messages: AsyncIterator[Any]) -> None:
    """Read the response to its end (briefly) so the connection can return to the pool.

    Gradio sends ``close_stream`` and ends the response right after the session's last
    ``process_completed``; reading that far lets httpx reuse the connection (a TLS
    handshake saved per request on a real Space). A Space that does not end the
    response within ``_CLOSE_WAIT`` seconds is left, and its connection closed instead.
    """
    with anyio.move_on_after(_CLOSE_WAIT):
        async for _ in messages:
            pass


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
