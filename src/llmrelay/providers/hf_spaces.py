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
   the role of each input, which win over discovery (and stand in when the Space has
   no ``/config``). Where several public chat dependencies of different layouts make
   ``/config`` ambiguous, ``GET {space}{prefix}/info`` (the documented endpoints) decides.
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
reply, so a repeated token is never dropped and nothing is sent twice. Only this
request's ``event_id`` counts, and the reply is read from the chat function's own
output: past the history that was sent, in a chatbot. A ``process_completed`` without
a reply is a ``ProtocolError``, never an empty answer. ``estimation`` messages become
``Queued`` events.

The request, in the Space's own terms: the system prompt goes to the system input (the
hidden state box of the Qwen Space); earlier turns go to the history input in its own
format (Gradio 4 pairs, Gradio 5/6 messages) and the last user message is the message;
a Space without a history input gets the conversation flattened into the message; one
without a system input cannot take a system prompt (a warning naming the Space, an
``InvalidRequestError`` when strict). The HF token goes to the Space as
``X-HF-Authorization`` (as gradio_client sends it:
https://github.com/gradio-app/gradio/blob/main/client/python/gradio_client/client.py),
to the Hub as ``Authorization``.

Images (``image_url`` parts) go to a Space whose chat input is a ``MultimodalTextbox``
(Gradio 4.44 and 5/6: ``{"text", "files": [FileData, ...]}``), with the last user
message: a ``data:`` URL is decoded (size-capped, image types only) and uploaded
through the Space's own upload route, ``POST {space}{prefix}/upload``, then sent as
``FileData`` (``_gradio_files``, as gradio_client's ``handle_file`` does); an
``http(s)`` URL goes as a URL ``FileData`` the Space downloads itself (Gradio 4 and
later), fetched here and uploaded only for a Space of unknown version and only when
the client allows fetching (``allow_image_fetch``, ``_image_input``). A Space with a
plain textbox is an ``InvalidRequestError`` naming the message. What a Space cannot
take as asked is a warning (an ``InvalidRequestError`` naming the message when strict):
an image of an earlier message (a Space's history holds text; it goes with the last
message's files, in conversation order), text interleaved with images (a
``MultimodalTextbox`` holds its text and its files apart), an image ``detail`` other
than ``auto``.

ZeroGPU Spaces fail a call with a ``gr.Error`` whose text is the only record of the
cause (the ``spaces`` package, ``spaces/zero/client.py``, https://pypi.org/project/spaces/):
"You have exceeded your GPU quota (…s left vs. …s requested) … retry in H:MM:SS" is a
``RateLimitError`` whose ``retry_after`` comes from the message; "No GPU is currently
available" is ``ProviderUnavailable``.

Everything the Space or the Hub sends is untrusted: bodies and lines are bounded, JSON
goes through ``llmrelay._http.loads``, and every malformed shape is a ``ProtocolError``.
"""

from __future__ import annotations

import itertools
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
from ..types import ChatRequest, Event, FinishReason, ImagePart, Message, Queued
from ._base import Auth, AuthMode, Capability, Option, Provider
from ._gradio import (
    Ambiguous,
    ChatEndpoint,
    GradioChatSpace,
    LayoutMismatch,
    MalformedConfig,
    UnknownLayout,
    append_to_reply,
    apply_diff,
    endpoint_from_config,
    reply_text,
)
from ._gradio_files import file_data, upload, upload_url, url_file_data
from ._image_input import ImageError, decode_data_url, fetch_image, is_data_url, is_http_url
from ._space_hosts import SpaceHosts
from ._vision import ImageAt, image_error, images_of, refuse_images
from ._zerogpu import space_failure

__all__ = ["SPACES", "HFSpaces"]

log = logging.getLogger(__name__)
_CLOSE_WAIT = 0.5
_ENDPOINT_CACHE = 256
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,300}>")
"""An HTML tag in a ``gr.Error`` text (Gradio renders toasts as HTML)."""
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
"""Known Spaces: Hub id -> the row naming the chat dependency and its inputs' roles.

The Qwen Space (its ``app.py``: https://huggingface.co/spaces/Qwen/Qwen2-72B-Instruct):
``textbox.submit(model_chat, inputs=[textbox, chatbot, system_state], outputs=[textbox,
chatbot, system_input])`` where ``system_state`` is a hidden, unlabelled textbox — the
only way a system prompt reaches ``model_chat``."""


class HFSpaces(Provider):
    """Chat with any Gradio chat Space on Hugging Face by its id (``owner/name``).

    The default is ``Qwen/Qwen2-72B-Instruct`` (alias ``qwen-2-72b``). The Space's host
    comes from the Hub (endpoint ``hub_url``, ``LLMRELAY_HF_SPACES_HUB_URL``); a
    ``base_url`` override (``LLMRELAY_HF_SPACES_BASE_URL``) is used as the host instead,
    for a self-hosted Gradio app or tests. Earlier turns go to the Space's history
    input in its own format (flattened into the message when it has none; the Space
    keeps no state). No generation parameter is an input of a chat Space in
    general, so ``parameters`` is empty and the engine warns when one is given; a
    Space's other inputs (sliders, ...) keep their ``/config`` defaults unless the
    ``inputs`` option sets them by label (``{"Temperature": 0.2}``);
    ``describe_model`` shows them. An ``HF_TOKEN`` (optional, for private Spaces) is
    sent to the Hub as ``Authorization: Bearer`` and to the Space as
    ``X-HF-Authorization: Bearer``.
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
        {Capability.CHAT, Capability.STREAM, Capability.SYSTEM_PROMPT, Capability.VISION}
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
        self._hosts = SpaceHosts(
            http, self.urls["hub_url"], self._auth_headers, self.name, self._space_headers
        )
        self._endpoints: OrderedDict[str, ChatEndpoint] = OrderedDict()
        self._vision: OrderedDict[str, bool] = OrderedDict()
        """Space id -> whether its discovered chat input is a ``MultimodalTextbox``."""

    @classmethod
    def declared_vision(cls, model: str) -> bool | None:
        """A known Space's row says; any other Space is unknown until discovered."""
        space = SPACES.get(model)
        return None if space is None else "multimodal" in space.inputs

    def vision(self, model: str) -> bool | None:
        """Whether the Space's discovered chat input is a ``MultimodalTextbox``."""
        model = self.resolve_model(model)
        seen = self._vision.get(model)
        return self.declared_vision(model) if seen is None else seen

    def _seen(self, model: str, endpoint: ChatEndpoint) -> None:
        self._vision[model] = endpoint.multimodal
        self._vision.move_to_end(model)
        while len(self._vision) > _ENDPOINT_CACHE:
            self._vision.popitem(last=False)

    def _check_id(self, model: str) -> GradioChatSpace | None:
        """The known row of ``model``, after checking it is an ``owner/name`` id."""
        space = SPACES.get(model)
        if space is None and (not _SPACE_ID.fullmatch(model) or ".." in model):
            raise errors.UnknownModelError(
                model, [*self.valid_model_names(), "<owner>/<space name>"], provider=self.name
            )
        return space

    def _space_headers(self) -> dict[str, str]:
        """The token for the Space itself: ``X-HF-Authorization: Bearer``.

        gradio_client's header: the Space's proxy reads it, and ``Authorization``
        stays the app's own.
        """
        return {"x-hf-authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    async def _endpoint(self, url: str, space: GradioChatSpace | None, model: str) -> ChatEndpoint:
        """Discover the chat dependency via ``GET /config``, cached per Space URL and row.

        A known Space falls back to its row when ``/config`` is not there (404); any
        other HTTP error is mapped (a 5xx is ``ProviderUnavailable``, 401/403 an
        ``AuthenticationError``); a malformed document or a layout that contradicts
        the row is a ProtocolError.
        """
        key = f"{url} {space.space_id if space is not None else ''}"
        cached = self._endpoints.get(key)
        if cached is not None:
            return cached
        async with self._http.stream(
            "GET", f"{url}/config", headers=self._space_headers()
        ) as response:
            missing = response.status_code == 404 and space is not None
            if not missing:
                await raise_for_status(response, provider=self.name, model=model, what="/config")
                config = await read_json(response, provider=self.name, model=model, what="/config")
        if missing:
            assert space is not None
            log.info("%s: no /config (404); using the known layout", url)
            endpoint = space.endpoint()
        else:
            endpoint = await self._discover(url, config, space, model)
        self._endpoints[key] = endpoint
        while len(self._endpoints) > _ENDPOINT_CACHE:
            self._endpoints.popitem(last=False)
        return endpoint

    def _forget_endpoints(self, url: str) -> None:
        for key in [k for k in self._endpoints if k.startswith(f"{url} ")]:
            del self._endpoints[key]

    async def _discover(
        self, url: str, config: Any, space: GradioChatSpace | None, model: str
    ) -> ChatEndpoint:
        try:
            try:
                return endpoint_from_config(config, space)
            except Ambiguous as exc:
                documented = await self._documented(url, exc.endpoints[0].prefix, model)
                return endpoint_from_config(config, space, documented)
        except LayoutMismatch as exc:
            assert space is not None
            raise self._protocol_error(
                f"the Space at {url} is not laid out like {space.space_id} ({exc}); to chat "
                "with another Space, name it: -m hf_spaces:<owner>/<space>",
                model,
            ) from None
        except UnknownLayout as exc:
            raise self._protocol_error(f"not a Gradio chat Space: {exc}", model) from None
        except MalformedConfig as exc:
            raise self._protocol_error(f"unusable /config: {exc}", model) from None

    async def _documented(self, url: str, prefix: str, model: str) -> frozenset[str]:
        """The ``api_name`` of each endpoint ``GET {prefix}/info`` documents."""
        async with self._http.stream(
            "GET", f"{url}{prefix}/info", headers=self._space_headers()
        ) as response:
            await raise_for_status(response, provider=self.name, model=model, what="/info")
            info = await read_json(response, provider=self.name, model=model, what="/info")
        named = info.get("named_endpoints") if isinstance(info, dict) else None
        if not isinstance(named, dict):
            raise self._protocol_error("/info has no named_endpoints object", model)
        return frozenset(name.lstrip("/") for name in named if isinstance(name, str))

    async def describe_model(self, model: str) -> dict[str, Any]:
        """The Space's chat endpoint as discovered, and each input with its default.

        Returns:
            ``{"provider", "model", "url", "gradio_version", "api_name", "fn_index",
            "visibility", "history_format", "reply", "inputs": [{"role", "component",
            "label", "default", "visible"}, ...]}`` (JSON-ready). ``role`` is
            ``message``, ``history``, ``system`` or ``input`` (set by label with the
            ``inputs`` option).

        Raises:
            llmrelay.errors.ProviderError: as for a chat (the Space cannot be reached,
                is not a chat Space, ...).
        """
        space = self._check_id(model)
        with translate_errors(self.name, model):
            if self._base_override is not None:
                url = self._base_override
            else:
                url = await self._hosts.host(model, None)
            endpoint = await self._endpoint(url, space, model)
        self._seen(model, endpoint)
        return {
            "provider": self.name,
            "model": model,
            "url": url,
            "vision": endpoint.multimodal,
            "gradio_version": endpoint.version,
            "api_name": endpoint.api_name,
            "fn_index": endpoint.fn_index,
            "visibility": endpoint.visibility,
            "history_format": endpoint.history_format if endpoint.has_history else None,
            "reply": endpoint.reply_kind,
            "inputs": [
                {
                    "role": info.role,
                    "component": info.component,
                    "label": info.label,
                    "default": info.default,
                    "visible": info.visible,
                }
                for info in endpoint.described
            ],
        }

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
                self._seen(model, endpoint)
                if has_system and not endpoint.has_system:
                    self._undeliverable_system(request, url)
                prompt, history = _turns(endpoint, conversation)
                files = await self._files(url, endpoint, request)
                data = self._data(endpoint, request, prompt, system if has_system else None,
                                  history, files)  # fmt: skip
                session_hash = secrets.token_hex(6)
                event_id = await self._join(url, endpoint, session_hash, data, model)
            except errors.ProviderError as exc:
                if exc.retryable or isinstance(exc, errors.ModelNotFoundError):
                    self._hosts.forget(model)  # the Space may have moved or slept
                raise
            skip = endpoint.history_length(history) if endpoint.reply_kind == "chatbot" else 0
            async with self._http.stream(
                "GET",
                f"{url}{endpoint.prefix}/queue/data",
                params={"session_hash": session_hash},
                headers={"accept": "text/event-stream", **self._space_headers()},
            ) as response:
                await raise_for_status(response, provider=self.name, model=model, what="queue/data")
                async for event in self._read_stream(response, endpoint, event_id, model, skip):
                    yield event

    def _undeliverable_system(self, request: ChatRequest, url: str) -> None:
        """A system prompt the Space has no input for: warn, or refuse when strict."""
        text = (
            f"the Space {request.model} ({url}) has no system prompt input: the system "
            "prompt cannot be delivered"
        )
        if request.strict:
            raise errors.InvalidRequestError(
                text + " (strict mode)", provider=self.name, model=request.model
            )
        log.warning("%s: %s; sent without it", self.name, text)

    async def _files(
        self, url: str, endpoint: ChatEndpoint, request: ChatRequest
    ) -> list[dict[str, Any]]:
        """The ``FileData`` of the request's images (uploaded), checked first.

        Raises:
            llmrelay.errors.InvalidRequestError: the Space takes no images, an image
                is not in the last user message, an image URL it cannot take or that
                cannot be used (naming the message); parts it cannot place (strict).
        """
        images = images_of(request)
        if not images:
            return []
        if not endpoint.multimodal:
            raise refuse_images(
                request,
                self.name,
                f"the Space {request.model}'s message input is a "
                f"{endpoint.message_component}, not a MultimodalTextbox",
            )
        last = len(request.messages) - 1
        earlier = [at for at in images if at[0] != last or request.messages[at[0]].role != "user"]
        if earlier:
            self._cannot_keep(
                request,
                earlier[0][0],
                "its images go with the last message's files (a Space's history holds text only)",
            )
        if request.messages[last].images:
            self._check_parts(request, last)
        return [await self._file(url, endpoint, request, at) for at in images]

    def _cannot_keep(self, request: ChatRequest, index: int, what: str) -> None:
        """A part of ``messages[index]`` the Space cannot take as asked.

        A warning; strict: an ``InvalidRequestError`` naming the message.
        """
        text = f"messages[{index}]: {what}"
        if request.strict:
            raise errors.InvalidRequestError(
                text + " (strict mode)",
                provider=self.name,
                model=request.model,
                param=f"messages[{index}]",
            )
        log.warning("%s: %s", self.name, text)

    def _check_parts(self, request: ChatRequest, index: int) -> None:
        """Warn (strict: refuse) what a ``MultimodalTextbox`` cannot keep of the parts."""
        parts = request.messages[index].content_parts
        kinds = [isinstance(part, ImagePart) for part in parts if part != ""]
        changes = sum(1 for a, b in itertools.pairwise(kinds) if a != b)
        problems = []
        if changes > 1:
            problems.append(
                "its text and images are interleaved, and a MultimodalTextbox holds the "
                "text and the files apart (the text is sent whole, the images after it)"
            )
        details = [p.detail for p in parts if isinstance(p, ImagePart) and p.detail]
        if any(detail != "auto" for detail in details):
            problems.append(f"an image detail ({details[0]!r}) has no Space input")
        if problems:
            self._cannot_keep(request, index, "; ".join(problems))

    async def _file(
        self, url: str, endpoint: ChatEndpoint, request: ChatRequest, at: ImageAt
    ) -> dict[str, Any]:
        """One image as ``FileData``: uploaded bytes, or a URL the Space downloads."""
        image = at[2]
        try:
            if is_data_url(image.url):
                data = decode_data_url(image.url)
            elif is_http_url(image.url):
                if endpoint.major is not None and endpoint.major >= 4:
                    return url_file_data(image.url)
                if request.image_fetch is None:
                    raise refuse_images(
                        request,
                        self.name,
                        "the Space's Gradio version is unknown (it may not take an image "
                        "URL) and fetching image URLs is off (allow_image_fetch; llmrelay "
                        "serve --allow-image-fetch); send the image as a data: URL",
                        at,
                    )
                data = await fetch_image(image.url, request.image_fetch)
            else:
                raise ImageError("only data: and http(s) image URLs are taken")
        except ImageError as exc:
            raise image_error(exc, request, self.name, at) from None
        path = await upload(
            self._http,
            upload_url(url, endpoint.prefix),
            data,
            headers=self._space_headers(),
            provider=self.name,
            model=request.model,
        )
        return file_data(path, data.name)

    def _data(
        self,
        endpoint: ChatEndpoint,
        request: ChatRequest,
        prompt: str,
        system: str | None,
        history: list[tuple[str, str]],
        files: list[dict[str, Any]],
    ) -> list[Any]:
        """The join ``data`` of ``request``.

        The message (with the uploaded ``files`` in a multimodal input), the earlier
        turns, the system prompt (``None``: the Space's default), the ``inputs``
        option's values by label and the defaults of the other inputs.
        """
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
            return endpoint.build_data(prompt, system, inputs, history, files)
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
            headers=self._space_headers(),
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
        self,
        response: httpx.Response,
        endpoint: ChatEndpoint,
        event_id: str,
        model: str,
        skip: int = 0,
    ) -> AsyncIterator[Event]:
        """Turn the session's SSE messages for ``event_id`` into events and a finish.

        ``skip``: entries of the reply chatbot that are the history sent, not the reply.
        """
        values: list[Any] | None = None
        sent = ""
        queued: Queued | None = None
        out, kind = endpoint.reply_output, endpoint.reply_kind
        messages = aiter_sse(response, provider=self.name, model=model)
        async for sse in messages:
            if not sse.data:
                continue
            message = loads(sse.data, provider=self.name, model=model, what="queue message")
            msg = message.get("msg") if type(message) is dict else None
            if type(msg) is not str:
                raise self._protocol_error(f"malformed queue message {sse.data[:200]!r}", model)
            own_id = message.get("event_id")
            if msg == "process_generating" and own_id == event_id:  # the token path first
                output = message.get("output")
                data = output.get("data") if type(output) is dict else None
                try:
                    appended = (
                        append_to_reply(values, out, data, kind, skip)
                        if values is not None and type(data) is list
                        else None
                    )
                    if appended is not None:
                        old, text = appended
                    else:
                        values = _apply_output(values, message)
                        old, text = None, reply_text(values[out], kind, skip) or ""
                except (KeyError, IndexError, TypeError, ValueError, RecursionError) as exc:
                    raise self._protocol_error(
                        f"bad process_generating output: {type(exc).__name__}: {exc}"[:300],
                        model,
                    ) from None
                # an append to exactly the reply sent so far (old is sent): the delta is the
                # appended string, without comparing the whole reply per token
                delta = text[len(sent) :] if old is sent else _delta(sent, text)
                if delta:
                    sent = text
                    yield delta
                continue
            if msg == "unexpected_error":  # about the session, not one event
                raise self._unexpected_error(message, model)
            if msg == "close_stream":
                break
            if msg == "queue_full" and own_id in (event_id, None):
                raise errors.ProviderUnavailable(
                    "the Space's queue is full", provider=self.name, model=model
                )
            if own_id != event_id:
                continue  # heartbeats, another event of the session
            if msg == "estimation":
                event = _queued(message)
                if event != queued:
                    queued = event
                    yield event
            elif msg == "process_completed":
                if message.get("success") is not True:
                    raise self._space_error(message.get("output"), model)
                try:
                    data = message["output"]["data"]
                    if not isinstance(data, list):
                        raise TypeError("output data is not a list")
                    reply = reply_text(data[out], kind, skip)
                except (KeyError, IndexError, TypeError, ValueError, RecursionError) as exc:
                    raise self._protocol_error(
                        f"bad process_completed output: {type(exc).__name__}: {exc}"[:300],
                        model,
                    ) from None
                if not reply and not sent:
                    raise self._protocol_error(
                        f"the Space's chat function ({_name(endpoint)}) returned no reply", model
                    )
                delta = _delta(sent, reply or "")
                if delta:
                    sent = reply or ""
                    yield delta
                yield FinishReason("stop")
                await _finish_body(messages)
                return
            # process_starts, progress, log: nothing to yield.
        raise self._protocol_error("the stream closed before process_completed", model)

    def _protocol_error(self, message: str, model: str) -> errors.ProtocolError:
        return errors.ProtocolError(message, provider=self.name, model=model)

    def _space_error(self, output: Any, model: str) -> errors.ProviderError:
        """``process_completed`` with ``success: false``: the Space's function failed.

        A ZeroGPU quota error is a ``RateLimitError``, no GPU ``ProviderUnavailable``
        (``_zerogpu``); anything else a ``ProviderError`` quoting the ``gr.Error`` text.
        """
        error = output.get("error") if isinstance(output, Mapping) else None
        if isinstance(error, str):
            # Gradio 4 quotes gr.Error text: "'message'".
            if len(error) >= 2 and error[0] == error[-1] == "'":
                error = error[1:-1]
            # a toast's markup (ZeroGPU's sign-up link) is not part of the message
            shown = _TAG.sub("", error[:2000])
            text = f"the Space reported an error: {shown[:1000]}"
        else:
            text = "the Space's function failed without an error message"
        body = _preview(output, 2000)
        if isinstance(error, str):
            failure = space_failure(error, text, provider=self.name, model=model, body=body)
            if failure is not None:
                return failure
        return errors.ProviderError(text, provider=self.name, model=model, body=body)

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


def _turns(
    endpoint: ChatEndpoint, conversation: list[Message]
) -> tuple[str, list[tuple[str, str]]]:
    """The message and the earlier turns to send.

    With a history input and a last user message: that message, and every turn before
    it as ``(role, text)``. Otherwise the whole conversation flattened into the message.
    """
    if endpoint.has_history and conversation[-1].role == "user":
        return conversation[-1].content, [(m.role, m.content) for m in conversation[:-1]]
    return format_plain(conversation), []


def _queued(message: Mapping[str, Any]) -> Queued:
    """A ``Queued`` event from an ``estimation`` message (malformed fields: unknown)."""

    def count(value: Any) -> int | None:
        return value if type(value) is int and 0 <= value < 2**31 else None

    eta = message.get("rank_eta")
    seconds = float(eta) if isinstance(eta, (int, float)) and not isinstance(eta, bool) else None
    if seconds is not None and not 0 <= seconds < 1e9:
        seconds = None
    return Queued(count(message.get("rank")), count(message.get("queue_size")), seconds)


def _name(endpoint: ChatEndpoint) -> str:
    return endpoint.api_name or f"fn_index {endpoint.fn_index}"


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
