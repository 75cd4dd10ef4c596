r"""The answer stream of HuggingFace chat-ui's ``POST /conversation/{id}``, both formats.

* Until 2023-09 chat-ui relayed text-generation-inference's SSE stream verbatim
  (``src/routes/conversation/[id]/+server.ts``; TGI ``StreamResponse`` in
  ``router/src/lib.rs``): ``data:{"token": {"id", "text", "logprob", "special"},
  "generated_text": null, "details": null}`` per token, ``data:`` with or without a space;
  the last event carries ``generated_text`` (and ``details.finish_reason`` when asked
  for); errors are ``data:{"error": "...", "error_type": "..."}`` in a 200 stream.
* From commit e943a055 (2023-09-20) chat-ui sends its own JSON lines
  (``src/lib/types/MessageUpdate.ts``): ``{"type": "status", "status": "started"}``,
  ``{"type": "stream", "token": "..."}``, ``{"type": "finalAnswer", "text": "..."}``,
  ``{"type": "status", "status": "error", "message": "..."}``, and others (webSearch, ...).

The format is told by the content type (``text/event-stream``) and else by the first
non-blank byte (``d``/``:`` for SSE, ``{`` for JSON lines). Sources:
https://github.com/huggingface/chat-ui, https://github.com/huggingface/text-generation-inference.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from .. import errors
from .._http import aiter_body, loads, protocol_error, upstream_text
from .._sse import DEFAULT_MAX_LINE, LineTooLong, NDJSONLineDecoder, SSEDecoder
from ..types import FinishReason

__all__ = ["END_OF_TEXT", "read_answer"]

END_OF_TEXT = "<|endoftext|>"
"""The end token of the h2oGPT Falcon models; it ends the text even when not special."""

_FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


async def read_answer(
    response: httpx.Response, *, provider: str, model: str, stops: Sequence[str] = ()
) -> AsyncGenerator[str | FinishReason, None]:
    """Text deltas of the answer, then exactly one ``FinishReason``.

    Args:
        response: the streamed 2xx answer.
        provider: registry name, for errors.
        model: model id, for errors.
        stops: the request's stop sequences (to tell a stop from a token limit).

    Raises:
        llmrelay.errors.ProviderError: an error event (``ProviderUnavailable`` when
            overloaded, ``InvalidRequestError`` for TGI validation errors).
        llmrelay.errors.ProtocolError: unknown format, malformed event, a line over the
            bound, or a stream that ends before its last event.
    """
    reader = _Reader(provider, model)
    chunks = aiter_body(response, provider=provider, model=model)
    head = b""
    async for chunk in chunks:
        head += chunk
        if head.strip() or len(head) > DEFAULT_MAX_LINE:
            break
    start = head.lstrip()[:1]
    content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        if content_type == "text/event-stream" or start in (b"d", b":"):
            async for event in reader.tgi(_sse_payloads(head, chunks), stops):
                yield event
            return
        if start in (b"{", b""):
            async for event in reader.updates(_ndjson_payloads(head, chunks)):
                yield event
            return
    except LineTooLong as exc:
        raise reader.protocol(f"answer stream: {exc}") from None
    raise reader.protocol("unrecognised answer stream", head)


class _Reader:
    """Parsers of the two formats, for one provider and model (for the errors)."""

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model

    def protocol(self, message: str, data: Any = None) -> errors.ProtocolError:
        """A ``ProtocolError``; ``data`` is described, never quoted (``protocol_error``)."""
        return protocol_error(message, data, provider=self.provider, model=self.model)

    def object(self, data: bytes) -> dict[str, Any]:
        # invalid UTF-8 becomes U+FFFD, as in every other provider's stream
        text = data.decode("utf-8", "replace")
        value = loads(text, provider=self.provider, model=self.model, what="stream event")
        if not isinstance(value, dict):
            raise self.protocol("unexpected stream event", data)
        return value

    async def tgi(
        self, payloads: AsyncIterator[bytes], stops: Sequence[str]
    ) -> AsyncIterator[str | FinishReason]:
        """text-generation-inference SSE events (the 2023 passthrough)."""
        ended = False
        async for data in payloads:
            event = self.object(data)
            if "error" in event:
                raise self.tgi_error(event)
            token = event.get("token")
            if not isinstance(token, dict) or not isinstance(token.get("text"), str):
                raise self.protocol("malformed token event", data)
            if not ended:
                text: str = token["text"]
                if token.get("special") is True:
                    ended, text = True, ""
                elif END_OF_TEXT in text:
                    ended, text = True, text.partition(END_OF_TEXT)[0]
                if text:
                    yield text
            generated = event.get("generated_text")
            if generated is not None:
                if not isinstance(generated, str):
                    raise self.protocol("malformed generated_text", data)
                yield FinishReason(_tgi_finish(event.get("details"), ended, generated, stops))
                return
        raise self.protocol("the stream ended before the last event (generated_text)")

    def tgi_error(self, event: Mapping[str, Any]) -> errors.ProviderError:
        message, kind = upstream_text(event.get("error")), event.get("error_type")
        shown = upstream_text(kind, 64) or "unknown"
        text = f"the model server reported an error ({shown}): {message or 'no message'}"
        common: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "body": str(event)[:2000],
        }
        if kind == "overloaded":
            return errors.ProviderUnavailable(text, **common)
        if kind == "validation":
            return errors.InvalidRequestError(text, **common)
        return errors.ProviderError(text, **common)

    async def updates(self, payloads: AsyncIterator[bytes]) -> AsyncIterator[str | FinishReason]:
        """chat-ui's JSON-lines message updates (from 2023-09)."""
        async for data in payloads:
            update = self.object(data)
            kind = update.get("type")
            if kind == "stream":
                token = update.get("token")
                if not isinstance(token, str):
                    raise self.protocol("malformed stream update", data)
                token = token.replace("\0", "")  # NUL padding is not text
                if token:
                    yield token
            elif kind == "finalAnswer":
                yield FinishReason("stop")
                return
            elif kind == "status" and update.get("status") == "error":
                message = upstream_text(update.get("message"))
                raise errors.ProviderError(
                    f"the service reported an error: {message or 'no message'}",
                    provider=self.provider,
                    model=self.model,
                    body=data[:2000].decode("utf-8", "replace"),
                )
            elif not isinstance(kind, str):
                raise self.protocol("malformed update", data)
            # status started/pending/finished/title, webSearch, agent: nothing to yield
        raise self.protocol("the stream ended without a finalAnswer")


def _tgi_finish(details: Any, ended: bool, generated: str, stops: Sequence[str]) -> str:
    """The finish reason: ``details.finish_reason`` when given, else inferred."""
    if isinstance(details, dict) and isinstance(details.get("finish_reason"), str):
        return _FINISH.get(details["finish_reason"], "stop")
    if ended or any(generated.endswith(stop) for stop in stops if stop):
        return "stop"
    return "length"  # no end token and no stop sequence: the token limit was reached


async def _sse_payloads(head: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each SSE event (``data:`` with or without a space), bounded."""
    decoder = SSEDecoder(DEFAULT_MAX_LINE)
    for event in decoder.feed(head):
        if event.data:
            yield event.data.encode()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            if event.data:
                yield event.data.encode()


async def _ndjson_payloads(head: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Each non-blank JSON line, bounded."""
    decoder = NDJSONLineDecoder(DEFAULT_MAX_LINE)
    for line in decoder.feed(head):
        yield line
    async for chunk in chunks:
        for line in decoder.feed(chunk):
            yield line
    last = decoder.flush()
    if last is not None:
        yield last
