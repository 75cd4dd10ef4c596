r"""Replicate predictions API with streaming (``replicate``), text and images.

Wire protocol (public sources: https://replicate.com/docs/topics/predictions/streaming,
https://replicate.com/docs/topics/predictions/create-a-prediction, replicate-python
``replicate/stream.py``,
``replicate/prediction.py``, ``replicate/exceptions.py``; the stream is served by nchan,
slact/nchan ``src/subscribers/eventsource.c``)::

    POST {base}/models/{owner}/{name}/predictions        (owner/name)
    POST {base}/predictions  {"version": "<id>", ...}     (owner/name:version)
         Authorization: Bearer <token>
         {"input": {...}}           (no "stream" flag: deprecated, streaming is always on)
      -> 201 (or 202) {"id", "status": "starting", "urls": {"get", "cancel", "stream"}, ...}
    GET  urls.stream      (absolute, usually another host)
         Accept: text/event-stream, Cache-Control: no-store
      -> : hi
         event: output / id: 1690212292:0 / data: <token>     (one per token)
         event: logs ... (ignored)
         event: error / data: {"detail": ...} or plain text
         event: done / data: {} | no data | {"reason": "canceled" | "error"}
    GET  urls.get         once, only when the stream ends without ``done``:
      -> {"status": "succeeded" | "failed" | "canceled" | ..., "error", ...}

nchan splits each payload at every ``\n`` into its own ``data:`` line, so a token is
recovered exactly by joining the data lines with ``\n`` (``"eyes\n"`` arrives as
``data: eyes`` + ``data: ``); empty tokens occur and carry no text. Errors are
``application/problem+json`` (``title``, ``detail``, ``invalid_fields``).

Input mapping (Replicate's language models, e.g.
https://replicate.com/meta/meta-llama-3.1-405b-instruct): ``prompt`` (the conversation,
flattened to ``User:/Assistant:`` lines when it has more than one message),
``system_prompt`` (the system messages, sent once: there and nowhere else, unless the
``system_in_prompt`` option puts them into the prompt instead), ``max_new_tokens``,
``temperature``, ``top_p``, ``top_k``, ``stop_sequences`` (comma-separated), ``seed``;
``extra_input`` is merged last. A prediction that reports no token counts gets no
``Usage`` event (the stream carries none).

When the consumer stops early (or the stream fails), the prediction is cancelled with a
best-effort, shielded ``POST urls.cancel`` so it stops costing money.

Images: ``generate_image`` (see ``_replicate_images``) creates a prediction with
``Prefer: wait``, polls ``urls.get`` when it is not finished, and downloads the output.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from .. import errors
from .._http import aiter_sse, describe_body, translate_errors, upstream_text
from .._prompts import format_plain, split_system
from .._templates import format_llama3
from ..types import (
    ChatRequest,
    Event,
    FinishReason,
    ImageResult,
    Message,
    Queued,
)
from ._base import Auth, AuthMode, Capability, Option, Provider
from ._replicate_http import Prediction, Session, parse_prediction, prediction_route

if TYPE_CHECKING:
    from ..types import ImageRequest

__all__ = ["Replicate"]

log = logging.getLogger(__name__)

_MAX_EVENT_LINE = 1024 * 1024


class Replicate(Provider):
    """Replicate's hosted models: streamed text and generated images.

    Any ``owner/name`` (or ``owner/name:version``) is accepted. Needs an API token
    (``REPLICATE_API_TOKEN``). ``ChatRequest.options``: ``top_k`` (int),
    ``extra_input`` (dict merged into the prediction's ``input``), ``system_in_prompt``
    (bool: put the system text into ``prompt`` instead of ``system_prompt``).

    Raises (from ``stream``): ``AuthenticationError`` (401), ``ModelNotFoundError``
    (404), ``InvalidRequestError`` (422, listing the invalid fields), ``RateLimitError``
    (429, ``retry_after``), ``ProviderUnavailable`` (5xx), ``ProviderError`` (an ``error``
    event, ``done`` with reason ``error``/``canceled``, or a stream that ended without
    ``done`` whose prediction then reads ``failed``/``canceled``), ``ProtocolError`` (a
    creation body without ``id``/``urls.stream``, a redirect, a stream that ended
    without ``done`` while the prediction still runs). A stream that ends without
    ``done`` whose prediction reads ``succeeded`` is complete (finish ``stop``).

    A prediction still ``starting`` when created, and each ``logs`` event before the
    first output (the model booting), yields ``Queued(None)``: progress, so the open
    phase does not take the wait for silence. A model of ``prompt_template_models``
    continues a partial answer (``continues``; a mid-stream rescue).
    """

    name: ClassVar[str] = "replicate"
    label: ClassVar[str] = "Replicate"
    docs_url: ClassVar[str] = "https://replicate.com/docs/topics/predictions/streaming"
    endpoints: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"base_url": "https://api.replicate.com/v1"}
    )
    auth: ClassVar[Auth] = Auth(AuthMode.REQUIRED, "REPLICATE_API_TOKEN")
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CHAT, Capability.STREAM, Capability.SYSTEM_PROMPT, Capability.IMAGES}
    )
    parameters: ClassVar[frozenset[str]] = frozenset(
        {"temperature", "max_tokens", "top_p", "stop", "seed"}
    )
    options: ClassVar[Mapping[str, Option]] = MappingProxyType(
        {
            "top_k": Option(int, "top-k sampling: consider only the k most likely tokens"),
            "extra_input": Option(dict, "extra model inputs, merged into the prediction input"),
            "system_in_prompt": Option(
                bool, "send the system text inside the prompt, not as system_prompt"
            ),
        }
    )
    default_model: ClassVar[str] = "meta/meta-llama-3-70b-instruct"
    models: ClassVar[tuple[str, ...]] = (
        "meta/meta-llama-3-70b-instruct",
        "meta/meta-llama-3-8b-instruct",
        "meta/meta-llama-3.1-405b-instruct",
        "black-forest-labs/flux-schnell",
        "black-forest-labs/flux-dev",
    )
    image_models: ClassVar[tuple[str, ...]] = (
        "black-forest-labs/flux-schnell",
        "black-forest-labs/flux-dev",
    )
    aliases: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "llama-3-70b": "meta/meta-llama-3-70b-instruct",
            "llama-3-8b": "meta/meta-llama-3-8b-instruct",
            "llama-3.1-405b": "meta/meta-llama-3.1-405b-instruct",
            "flux-schnell": "black-forest-labs/flux-schnell",
            "flux-dev": "black-forest-labs/flux-dev",
        }
    )
    open_catalogue: ClassVar[bool] = True
    prompt_template_models: ClassVar[frozenset[str]] = frozenset(
        {"meta/meta-llama-3-70b-instruct", "meta/meta-llama-3-8b-instruct"}
    )
    """Models whose ``prompt_template`` input can be set to ``{prompt}``, so that llmrelay
    sends the whole Llama 3 chat prompt itself: they continue a partial answer
    (``continues``; https://replicate.com/meta/meta-llama-3-70b-instruct, its
    ``prompt_template`` input)."""

    @classmethod
    def continues(cls, model: str) -> bool:
        """Whether ``model`` continues a partial answer (``prompt_template_models``)."""
        return model.partition(":")[0] in cls.prompt_template_models

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoints: Mapping[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(http, endpoints=endpoints, api_key=api_key)
        self._session = Session(http, api_key, self.base_url, self.name)

    def build_input(self, request: ChatRequest) -> dict[str, Any]:
        """The prediction ``input`` for ``request`` (see the module docstring).

        Raises:
            llmrelay.errors.ConfigError: no user or assistant message.
            llmrelay.errors.InvalidRequestError: a stop sequence containing a comma, or
                an ``extra_input`` / ``top_k`` of the wrong type.
        """
        system, conversation = split_system(request.messages)
        if not conversation:
            raise errors.ConfigError(f"{self.name}: the conversation has no user message")
        options = request.options
        data: dict[str, Any] = {}
        if request.prefill and self.continues(request.model):
            # the whole Llama 3 prompt, its assistant turn left open after the partial
            # answer: the model carries on from there (``prompt_template`` = "{prompt}")
            messages = (*request.messages, Message("assistant", request.prefill))
            data["prompt"] = format_llama3(messages)
            data["prompt_template"] = "{prompt}"
        elif system and options.get("system_in_prompt"):
            data["prompt"] = format_plain([Message("system", system), *conversation])
        else:
            data["prompt"] = format_plain(conversation)
            if system:
                data["system_prompt"] = system
        if request.max_tokens is not None:
            data["max_new_tokens"] = request.max_tokens
        for key in ("temperature", "top_p", "seed"):
            value = getattr(request, key)
            if value is not None:
                data[key] = value
        if request.stop:
            if any("," in stop for stop in request.stop):
                raise self._invalid(
                    "stop sequences containing ',' cannot be sent: Replicate's "
                    "stop_sequences is a comma-separated string",
                    request.model,
                )
            data["stop_sequences"] = ",".join(request.stop)
        top_k = options.get("top_k")
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, int):
                raise self._invalid("option top_k must be an integer", request.model)
            data["top_k"] = top_k
        data.update(self._extra_input(options, request.model))
        return data

    def _extra_input(self, options: Mapping[str, Any], model: str) -> dict[str, Any]:
        extra = options.get("extra_input")
        if extra is None:
            return {}
        if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
            raise self._invalid("option extra_input must be a mapping with string keys", model)
        return dict(extra)

    def _invalid(self, message: str, model: str) -> errors.InvalidRequestError:
        return errors.InvalidRequestError(message, provider=self.name, model=model)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        """Create a streaming prediction and yield its text, then one ``FinishReason``.

        See the class docstring for the errors raised.
        """
        model = request.model
        url, body = prediction_route(self.base_url, model)
        # no "stream" flag: it is deprecated, every prediction of a model that streams
        # lists urls.stream (https://replicate.com/docs/topics/predictions/streaming)
        body["input"] = self.build_input(request)
        prediction: Prediction | None = None
        ended = False  # set once the service says how the prediction ended
        try:
            with translate_errors(self.name, model):
                prediction = await self._create(url, body, model)
                if prediction.stream is None:
                    raise errors.ProtocolError(
                        "the prediction has no urls.stream (does this model stream text?)",
                        provider=self.name,
                        model=model,
                    )
                async with (
                    self._session.get(
                        prediction.stream,
                        model=model,
                        what="prediction stream",
                        headers={"accept": "text/event-stream", "cache-control": "no-store"},
                        allowed=self._session.stream_origins(prediction.stream),
                        model_404=False,
                    ) as response,
                    aclosing(
                        aiter_sse(
                            response, provider=self.name, model=model, max_line=_MAX_EVENT_LINE
                        )
                    ) as messages,
                ):
                    # text of ``output`` events, then the finish of ``done`` (inline, not a
                    # generator of its own: one layer less per token)
                    if prediction.status == "starting":
                        yield Queued(None)  # the model boots: progress, not silence
                    answering = False
                    async for sse in messages:
                        kind = sse.event
                        if kind == "output":
                            answering = True
                            if sse.data:
                                yield sse.data
                        elif kind == "done":
                            ended = True
                            yield self._finish(sse.data, model)
                            return
                        elif kind == "error":
                            ended = True
                            raise errors.ProviderError(
                                f"the prediction failed: {_error_detail(sse.data)}",
                                provider=self.name,
                                model=model,
                                body=sse.data,
                            )
                        elif kind == "logs" and not answering:
                            yield Queued(None)  # setup logs: the prediction is starting
                        # "logs" and unknown events carry no answer text
                # the stream ended without done: the prediction itself says how it ended
                try:
                    finish = await self._outcome(prediction, model)
                except errors.ProtocolError:
                    raise  # still running, or unreadable: cancelled on the way out
                except errors.ProviderError:
                    ended = True  # failed or canceled: nothing left to cancel
                    raise
                ended = True
                yield finish
        finally:
            if prediction is not None and not ended:
                await self._session.cancel(prediction.cancel, model)

    async def _outcome(self, prediction: Prediction, model: str) -> FinishReason:
        """Read the prediction once (``GET urls.get``) after a stream without ``done``.

        ``succeeded`` is a complete answer (``stop``); anything else raises.

        Raises:
            llmrelay.errors.ProviderError: ``failed`` (with the prediction's ``error``)
                or ``canceled``; ``ProtocolError`` when the prediction has no
                ``urls.get`` or is still ``starting``/``processing`` (the stream was cut
                short).
        """
        if prediction.get is None:
            raise errors.ProtocolError(
                "the prediction stream ended without a done event (and the prediction "
                "has no urls.get to ask how it ended)",
                provider=self.name,
                model=model,
            )
        payload = await self._session.get_json(
            prediction.get, model=model, what="prediction", model_404=False
        )
        final = parse_prediction(payload, provider=self.name, model=model)
        if final.status == "succeeded":
            return FinishReason("stop")
        if final.status == "failed":
            raise errors.ProviderError(
                f"the prediction failed: {_text(final.error) or 'no error message'}",
                provider=self.name,
                model=model,
            )
        if final.status == "canceled":
            raise errors.ProviderError(
                "the prediction was canceled", provider=self.name, model=model
            )
        status = upstream_text(final.status, 40) or "unknown"
        raise errors.ProtocolError(
            f"the prediction stream ended without a done event while the prediction was "
            f"still {status!r}",
            provider=self.name,
            model=model,
        )

    async def _create(self, url: str, body: Mapping[str, Any], model: str) -> Prediction:
        """``POST`` the prediction; 201 and 202 (and 200) are accepted."""
        _, payload = await self._session.post_json(url, body, model=model, what="create prediction")
        prediction = parse_prediction(payload, provider=self.name, model=model)
        if prediction.status == "failed":
            raise errors.ProviderError(
                f"the prediction failed: {_text(prediction.error) or 'no error message'}",
                provider=self.name,
                model=model,
            )
        return prediction

    def _finish(self, data: str, model: str) -> FinishReason:
        """``done``: ``{}`` or no data -> stop; ``reason`` canceled/error -> raise."""
        if not data.strip():
            return FinishReason("stop")
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, Mapping):
            raise errors.ProtocolError(
                f"malformed done event ({describe_body(data)})",
                provider=self.name,
                model=model,
                body=data,
            )
        reason = payload.get("reason")
        if reason in (None, ""):
            return FinishReason("stop")
        if reason == "canceled":
            raise errors.ProviderError(
                "the prediction was canceled", provider=self.name, model=model
            )
        if reason == "error":
            detail = _text(payload.get("error")) or _text(payload.get("detail"))
            raise errors.ProviderError(
                f"the prediction failed: {detail or 'no error message'}",
                provider=self.name,
                model=model,
                body=data,
            )
        log.warning("replicate: done with an unknown reason %r; treated as stop", reason)
        return FinishReason("stop")

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        """Generate one image (see ``_replicate_images.generate``).

        Raises:
            llmrelay.errors.ProviderError: mapped HTTP errors, a failed or canceled
                prediction, ``ProviderTimeout`` past ``request.deadline``,
                ``ProtocolError`` for an output that is not an image.
        """
        from ._replicate_images import generate

        with translate_errors(self.name, request.model):
            return await generate(self._session, self.base_url, request)


def _text(value: Any) -> str:
    """The bounded message of a prediction's ``error``, or ``""``.

    ``error`` is a string or ``{"detail"|"message"|"error": str}`` (``upstream_text``).
    """
    if isinstance(value, Mapping):
        value = next(
            (value[k] for k in ("detail", "message", "error") if isinstance(value.get(k), str)),
            None,
        )
    return upstream_text(value) or ""


def _error_detail(data: str) -> str:
    """The message of an ``error`` event: JSON ``{"detail"}`` or plain text, bounded.

    The event is Replicate's own error channel (replicate-python raises its data as
    the error; replicate-go: "Data field will contain JSON with the error").
    """
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        return upstream_text(data) or "no error message"
    if isinstance(payload, str | Mapping):
        return _text(payload) or "no error message"
    return "no error message"
