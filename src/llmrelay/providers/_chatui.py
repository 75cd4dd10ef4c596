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
from .._json import loads as json_loads
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
            # TGI's SSE events, decoded and read here: no generator between the body's
            # chunks and the caller (the token path)
            feed, token = SSEDecoder(DEFAULT_MAX_LINE).feed, reader.tgi_event
            events = feed(head)
            while True:
                for event in events:
                    if event.data:
                        text = token(event.data, stops)
                        if text:
                            yield text
                        if reader.finish is not None:
                            yield reader.finish
                            return
                try:
                    events = feed(await chunks.__anext__())
                except StopAsyncIteration:
                    raise reader.protocol(
                        "the stream ended before the last event (generated_text)"
                    ) from None
        if start in (b"{", b""):
            async for update in reader.updates(_ndjson_payloads(head, chunks)):
                yield update
            return
    except LineTooLong as exc:
        raise reader.protocol(f"answer stream: {exc}") from None
    raise reader.protocol("unrecognised answer stream", head)


class _Reader:
    """Parsers of the two formats, for one provider and model (for the errors)."""

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.ended = False
        """An end token came: later token text is not the answer's."""
        self.finish: FinishReason | None = None
        """The TGI stream's last event came (``generated_text``): its finish."""

    def protocol(self, message: str, data: Any = None) -> errors.ProtocolError:
        """A ``ProtocolError``; ``data`` is described, never quoted (``protocol_error``)."""
        if isinstance(data, str):  # an SSE event's data: kept as the bytes it came as
            data = data.encode()
        return protocol_error(message, data, provider=self.provider, model=self.model)

    def object(self, data: str | bytes) -> dict[str, Any]:
        # invalid UTF-8 becomes U+FFFD, as in every other provider's stream (SSE data
        # comes decoded so already)
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        try:
            value = json_loads(text)
        except (ValueError, RecursionError):  # the same parse again, for its typed error
            value = loads(text, provider=self.provider, model=self.model, what="stream event")
        if type(value) is not dict:
            raise self.protocol("unexpected stream event", data)
        return value

    def tgi_event(self, data: str, stops: Sequence[str]) -> str:
        """The answer's text in one text-generation-inference SSE event.

        The 2023 passthrough; ``finish`` is set at the last event (``generated_text``).
        """
        event = self.object(data)
        if "error" in event:
            raise self.tgi_error(event)
        token = event.get("token")
        if type(token) is not dict or type(token.get("text")) is not str:
            raise self.protocol("malformed token event", data)
        text: str = ""
        if not self.ended:
            text = token["text"]
            if token.get("special") is True:
                self.ended, text = True, ""
            elif END_OF_TEXT in text:
                self.ended, text = True, text.partition(END_OF_TEXT)[0]
        generated = event.get("generated_text")
        if generated is not None:
            if type(generated) is not str:
                raise self.protocol("malformed generated_text", data)
            reason = _tgi_finish(event.get("details"), self.ended, generated, stops)
            self.finish = FinishReason(reason)
        return text

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
