"""Hugging Face Inference API / text-generation-inference (TGI): wire helpers.

Protocol (public sources: TGI ``router/src/lib.rs`` ``GenerateParameters``,
``StreamResponse``, ``FinishReason`` and ``router/src/server.rs`` ``generate_stream``
and ``impl From<InferError> for Event``, https://github.com/huggingface/text-generation-inference;
huggingface_hub ``src/huggingface_hub/inference/_common.py``
``_format_text_generation_stream_output`` / ``_parse_text_generation_error`` and
``src/huggingface_hub/inference/_client.py`` ``post`` (the 503 retry),
https://github.com/huggingface/huggingface_hub;
https://huggingface.co/docs/text-generation-inference/en/reference/api_reference)::

    POST {base}/models/{model}  {"inputs": prompt, "parameters": {...}, "stream": true}
    200 text/event-stream, one event per token, ``data:`` with or without a space:
        data:{"index"?: n, "token": {"id", "text", "logprob", "special"},
              "top_tokens"?: [...], "generated_text": null, "details": null}
        ... the last event has "generated_text": str and, when asked for,
        "details": {"finish_reason": "length"|"eos_token"|"stop_sequence",
                    "generated_tokens", "seed", "input_length"?}
        an error inside the 200 stream: data:{"error": str, "error_type": str}
    200 application/json (non-streaming): [{"generated_text": str, "details"?: {...}}]
    errors: {"error": str | [str, ...], "error_type"?, "warnings"?, "estimated_time"?};
        422 may be text/plain (axum body rejection); 503 {"error": "Model X is currently
        loading", "estimated_time": float} while a cold model loads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from .. import errors
from .._http import error_for_status, loads, protocol_error
from .._json import loads as json_loads
from ..types import ChatRequest, Event, FinishReason
from ._openai_stream import error_from_payload

__all__ = [
    "DEFAULT_LOAD_WAIT",
    "TokenStream",
    "error_from_response",
    "generation_parameters",
    "json_grammar",
    "loading_estimate",
    "parse_generated",
    "wait_for_model",
]

log = logging.getLogger(__name__)

DEFAULT_LOAD_WAIT = 120.0
"""Longest wait for a loading model when the request has no deadline, in seconds."""
MAX_LOAD_RETRIES = 20
_FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


def generation_parameters(request: ChatRequest) -> dict[str, Any]:
    """TGI ``parameters`` for ``request`` (only what was set; ``details`` always asked)."""
    params: dict[str, Any] = {"return_full_text": False, "details": True}
    if request.max_tokens is not None:
        params["max_new_tokens"] = request.max_tokens
    if request.temperature is not None:
        if request.temperature > 0:
            params["temperature"] = request.temperature
        else:  # TGI wants temperature > 0; 0 means greedy decoding
            params["do_sample"] = False
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop:
        params["stop"] = list(request.stop)
    if request.seed is not None:
        params["seed"] = request.seed
    if request.frequency_penalty is not None:
        params["frequency_penalty"] = request.frequency_penalty
    grammar = json_grammar(request)
    if grammar is not None:
        params["grammar"] = grammar
    for name in ("top_k", "repetition_penalty"):
        if request.options.get(name) is not None:
            params[name] = request.options[name]
    return params


def json_grammar(request: ChatRequest) -> dict[str, Any] | None:
    """TGI's ``grammar`` for a JSON ``response_format``, else ``None``.

    ``{"type": "json", "value": <JSON Schema>}`` (TGI's ``GrammarType::Json``,
    ``router/src/lib.rs``): the ``json_schema`` format's schema, ``{"type": "object"}``
    for ``json_object``. TGI constrains the generated tokens to it.
    """
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return None
    schema = response_format.to_openai().get("json_schema", {}).get("schema")
    return {"type": "json", "value": schema if schema is not None else {"type": "object"}}


def loading_estimate(status: int, body: bytes) -> float | None:
    """``estimated_time`` of a 503 "currently loading" answer, else ``None``."""
    if status != 503:
        return None
    try:
        payload = loads(body, provider="", model=None)
    except errors.ProtocolError:
        return None
    if not isinstance(payload, Mapping):
        return None
    estimate = payload.get("estimated_time")
    error = payload.get("error")
    if isinstance(estimate, (int, float)) and not isinstance(estimate, bool):
        return max(0.0, float(estimate))
    if isinstance(error, str) and "currently loading" in error:
        return 0.0
    return None


def error_from_response(
    status: int,
    body: bytes,
    *,
    provider: str,
    model: str | None,
    what: str,
    retry_after: Any,
    content_type: str | None = None,
) -> errors.ProviderError:
    """The typed error of an HTTP error answer (the shapes in the module docstring).

    A JSON body with a TGI ``error_type`` is typed by it (keeping the status); other
    bodies (``{"error": str | list}``, text/plain) go by the status.
    """
    text = body.decode("utf-8", "replace")
    try:
        payload = loads(body, provider=provider, model=model)
    except errors.ProtocolError:
        payload = None
    typed = isinstance(payload, Mapping) and isinstance(payload.get("error_type"), str)
    if isinstance(payload, Mapping) and typed and status not in (401, 403, 404, 429):
        return error_from_payload(payload, provider=provider, model=model, status_code=status)
    return error_for_status(
        status,
        text,
        provider=provider,
        model=model,
        what=what,
        retry_after=retry_after,
        content_type=content_type,
    )


async def wait_for_model(estimate: float, deadline: float | None, attempt: int) -> bool:
    """Sleep before asking a loading model again; ``False`` when it cannot be in time.

    Args:
        estimate: the server's ``estimated_time`` in seconds.
        deadline: ``time.monotonic()`` by which the answer is due, or ``None``
            (then ``DEFAULT_LOAD_WAIT`` from now bounds the wait).
        attempt: how many loading answers came before this one (at most
            ``MAX_LOAD_RETRIES`` are waited for).
    """
    remaining = (deadline - time.monotonic()) if deadline is not None else DEFAULT_LOAD_WAIT
    if estimate > remaining or attempt >= MAX_LOAD_RETRIES:
        return False
    # Ask again soon: with ``x-wait-for-model`` the server holds the request until the
    # model is ready (huggingface_hub waits 1 s, then retries with that header).
    await anyio.sleep(min(1.0, max(estimate, 0.05), max(remaining, 0.0)))
    return True


def loading_error(
    estimate: float, *, provider: str, model: str, body: bytes
) -> errors.ProviderUnavailable:
    """``ProviderUnavailable`` for a model still loading, quoting the estimate."""
    return errors.ProviderUnavailable(
        f"the model is loading (estimated {estimate:.0f} s more), longer than the caller waits",
        provider=provider,
        model=model,
        status_code=503,
        body=body.decode("utf-8", "replace"),
    )


def parse_generated(payload: Any, *, provider: str, model: str) -> tuple[str, str]:
    """``(text, finish)`` of a non-streaming answer ``[{"generated_text", "details"?}]``.

    Raises:
        llmrelay.errors.ProtocolError: another shape.
    """
    item = payload[0] if isinstance(payload, list) and payload else payload
    if not isinstance(item, Mapping) or not isinstance(item.get("generated_text"), str):
        raise protocol_error(
            "unexpected answer (no generated_text)", payload, provider=provider, model=model
        )
    details = item.get("details")
    reason = details.get("finish_reason") if isinstance(details, Mapping) else None
    return item["generated_text"], _FINISH.get(reason, "stop") if isinstance(
        reason, str
    ) else "stop"


class TokenStream:
    """Turns TGI stream events into text deltas and one finish.

    ``feed(data)`` returns the text of one event (special tokens dropped) and raises the
    typed error of an in-band ``{"error", "error_type"}`` event; ``end()`` gives the
    ``FinishReason`` — from ``details.finish_reason`` when present, else inferred: a
    special last token or a matched stop sequence is ``stop``, otherwise ``length``.
    """

    def __init__(self, provider: str, model: str, stop: Sequence[str]) -> None:
        self.provider = provider
        self.model = model
        self.stop = tuple(stop)
        self.finished = False
        self.reason: str | None = None
        self._last_special = False
        self._tail = ""

    def feed(self, data: str) -> list[Event]:
        """Events of one SSE ``data`` value (``""`` and comments give none)."""
        if self.finished:
            return []
        if data[:1] == "{":
            try:
                event = json_loads(data)
            except (ValueError, RecursionError):  # the same parse again, for its typed error
                event = loads(data, provider=self.provider, model=self.model, what="stream event")
            # Fast path: a plain token event (not the last, no error) gives exactly what
            # the general path below would; anything else goes there.
            if (
                type(event) is dict
                and event.get("error") is None
                and event.get("generated_text") is None
                and event.get("details") is None
            ):
                token = event.get("token")
                if type(token) is dict:
                    text = token.get("text")
                    if type(text) is str:
                        special = self._last_special = token.get("special") is True
                        if special or not text:
                            return []
                        if self.stop:  # the tail only serves to tell a stop sequence
                            self._tail = (self._tail + text)[-256:]
                        return [text]
            return self._event(event, data)
        if not data.strip():
            return []
        event = loads(data, provider=self.provider, model=self.model, what="stream event")
        return self._event(event, data)

    def _event(self, event: Any, data: str) -> list[Event]:
        """Events of one parsed stream event (the general path)."""
        if not isinstance(event, Mapping):
            raise self._protocol("stream event is not an object", data)
        if event.get("error") is not None:
            raise error_from_payload(event, provider=self.provider, model=self.model)
        token = event.get("token")
        if not isinstance(token, Mapping) or not isinstance(token.get("text"), str):
            raise self._protocol("stream event without a token", data)
        out: list[Event] = []
        self._last_special = token.get("special") is True
        if not self._last_special and token["text"]:
            out.append(token["text"])
            if self.stop:
                self._tail = (self._tail + token["text"])[-256:]
        if event.get("generated_text") is not None or event.get("details") is not None:
            self.finished = True
            details = event.get("details")
            reason = details.get("finish_reason") if isinstance(details, Mapping) else None
            if isinstance(reason, str):
                self.reason = _FINISH.get(reason, reason)
        return out

    def end(self) -> FinishReason:
        """The finish of a stream that is over.

        Raises:
            llmrelay.errors.ProtocolError: the stream ended before its last event.
        """
        if not self.finished:
            raise self._protocol("the stream ended before the last token (no generated_text)")
        if self.reason is not None:
            return FinishReason(self.reason)
        if self._last_special or any(self._tail.endswith(s) for s in self.stop if s):
            return FinishReason("stop")
        return FinishReason("length")

    def _protocol(self, message: str, data: Any = None) -> errors.ProtocolError:
        return protocol_error(message, data, provider=self.provider, model=self.model)
