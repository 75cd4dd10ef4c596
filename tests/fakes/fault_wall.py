"""A fake OpenAI-compatible provider that fails on purpose: the sixteen failover faults.

Written for llmrelay from failoverbench's public scenario catalogue and methodology
(https://github.com/failoverbench/failoverbench, ``scenarios/catalogue.yaml`` and
``METHODOLOGY.md``, v0.1): the model name picks the behaviour, every healthy answer is
the same sixty-word text (``ANSWER``), and the fake keeps a log of every attempt (model,
time, last role, prompt size, what it did) so a harness can score what the provider
saw as well as what the caller got.

It is a raw asyncio HTTP/1.1 server in a thread of its own: a framework cannot reset a
connection before the response, hold a socket silent, or end a chunked body without its
terminator. ``/v1/chat/completions`` (streamed as OpenAI chunks, or as one JSON
object), ``/v1/models``. Models:

========================  ===================================================================
``ok``                    answers (a last assistant message that begins the answer is
                          continued: only the rest is streamed, as a prefill-capable model)
``ok-noprefill``          answers; 400 ``invalid_prefill`` to a last assistant message
``s01``                   first attempt 429 with ``Retry-After``, then answers
``s02``                   429 without ``Retry-After``, always
``s03``                   first attempt 500, then answers
``s04`` / ``s16``         503 ``overloaded``, always
``s05``                   first attempt: the connection reset before any byte
``s06``                   accepts, then says nothing for ``no_response`` seconds
``s07``                   headers at once, the first token after ``slow_ttft`` seconds
``s08`` / ``s14``         the stream cut after ``cut_after`` tokens (no terminating chunk)
``s09``                   after ``stall_after`` tokens, silent for ``stall`` seconds, then
                          the connection closed
``s10``                   one event that is not JSON before token ``malformed_at``
``s11``                   a complete stream without ``data: [DONE]``
``s12``                   400 ``context_length_exceeded``
``s13``                   400 ``content_policy_violation``
``s15``                   503 for ``flap_down`` seconds after ``reset()``, then answers
========================  ===================================================================

Each test or benchmark sets the timings (``Timing``): ``FULL`` are the catalogue's,
``short`` ones keep a test under a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["ANSWER", "FULL", "SHORT", "Attempt", "FaultWall", "Timing", "fault_wall"]

ANSWER = (
    "A relay proves its worth on the bad days: when a provider stalls, refuses, resets "
    "or cuts an answer short, the caller should still receive one complete and honest "
    "reply, or a clear error that says what failed, never a fragment dressed as "
    "success, and never a silent wait that outlasts the patience of the person who "
    "asked the question."
)
"""The answer every healthy completion gives (sixty words)."""
WORDS = ANSWER.split()
assert len(WORDS) == 60


@dataclass(frozen=True)
class Timing:
    """The fault timings, in seconds (token counts for the ``*_after``/``*_at`` ones)."""

    retry_after: int = 2
    slow_ttft: float = 20.0
    stall: float = 30.0
    no_response: float = 120.0
    flap_down: float = 60.0
    token_interval: float = 0.015
    cut_after: int = 40
    stall_after: int = 20
    malformed_at: int = 10


FULL = Timing()
"""The catalogue's published timings."""
SHORT = Timing(
    retry_after=1,
    slow_ttft=3.0,
    stall=3.0,
    no_response=5.0,
    flap_down=1.5,
    token_interval=0.0,
)
"""Timings for tests: each scenario ends in a few seconds with short client timeouts."""


@dataclass
class Attempt:
    """One request the wall received and what it did with it.

    Attributes:
        t: seconds since the last ``reset()``.
        model: the model asked for.
        number: the attempt's rank among those for this model since the reset (1-based).
        last_role: the role of the last message (``"assistant"``: a prefill).
        prompt_tokens: a word count of the messages (to tell a smaller retry).
        action: what the wall did (``"200 stream"``, ``"429"``, ``"reset"`` ...).
    """

    t: float
    model: str
    number: int
    last_role: str | None
    prompt_tokens: int
    action: str = ""


@dataclass
class FaultWall:
    """The wall's state: timings, the attempt log, counters (see the module docstring)."""

    timing: Timing = SHORT
    log: list[Attempt] = field(default_factory=list)
    url: str = ""
    _counts: dict[str, int] = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, timing: Timing | None = None) -> None:
        """Clear the log and the counters; restart the clock (``s15``'s outage begins)."""
        with self._lock:
            if timing is not None:
                self.timing = timing
            self.log = []
            self._counts = {}
            self._t0 = time.monotonic()

    def now(self) -> float:
        """Seconds since the last reset."""
        return time.monotonic() - self._t0

    def attempts(self, model: str) -> list[Attempt]:
        """The attempts for ``model`` since the reset, in order."""
        with self._lock:
            return [a for a in self.log if a.model == model]

    def _record(self, model: str, last_role: str | None, prompt_tokens: int) -> Attempt:
        with self._lock:
            number = self._counts[model] = self._counts.get(model, 0) + 1
            attempt = Attempt(round(self.now(), 4), model, number, last_role, prompt_tokens)
            self.log.append(attempt)
            return attempt

    # -- HTTP ---------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection (keep-alive) until it closes."""
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                keep = await self._dispatch(*request, reader, writer)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # the wall is stopping: end quietly (Python 3.11's stream callback reports
            # a handler task that ends cancelled as an error)
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _dispatch(
        self,
        method: str,
        path: str,
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        path = path.partition("?")[0]
        if method == "GET" and path.endswith("/models"):
            names = ["ok", "ok-noprefill", *(f"s{n:02d}" for n in range(1, 17))]
            data = [{"id": n, "object": "model", "owned_by": "wall"} for n in names]
            return await _json(writer, 200, {"object": "list", "data": data})
        if method == "POST" and path.endswith("/chat/completions"):
            return await self._chat(body, reader, writer)
        return await _error(writer, 404, f"no route {path}", "invalid_request_error", None)

    async def _chat(
        self, raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return await _error(writer, 400, "body is not JSON", "invalid_request_error", None)
        model = str(body.get("model") or "")
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        last_role = last.get("role") if isinstance(last, dict) else None
        size = sum(len(str(m.get("content") or "").split()) + 4 for m in messages)
        attempt = self._record(model, last_role, size)
        timing = self.timing
        words, continuation = WORDS, False
        if last_role == "assistant":
            if model == "ok-noprefill":
                attempt.action = "400 prefill rejected"
                return await _error(
                    writer,
                    400,
                    "This model does not continue an assistant message; end with a user one.",
                    "invalid_request_error",
                    "invalid_prefill",
                    param="messages",
                )
            partial = str(last.get("content") or "").strip()
            if partial and ANSWER.startswith(partial):
                words, continuation = ANSWER[len(partial) :].split(), True
        n = attempt.number
        if model not in ("ok", "ok-noprefill") and not (model[:1] == "s" and model[1:].isdigit()):
            attempt.action = "404"
            return await _error(
                writer, 404, "no such model", "invalid_request_error", "model_not_found"
            )
        if model == "s01" and n == 1:
            attempt.action = "429 retry-after"
            return await _error(
                writer,
                429,
                "Rate limit reached; retry later.",
                "rate_limit_error",
                "rate_limit_exceeded",
                headers={"Retry-After": str(timing.retry_after)},
            )
        if model == "s02":
            attempt.action = "429"
            return await _error(
                writer, 429, "Rate limit reached.", "rate_limit_error", "rate_limit_exceeded"
            )
        if model == "s03" and n == 1:
            attempt.action = "500"
            return await _error(writer, 500, "The server had an error.", "server_error", None)
        if model in ("s04", "s16") or (model == "s15" and self.now() < timing.flap_down):
            attempt.action = "503"
            return await _error(
                writer, 503, "The engine is overloaded.", "server_error", "overloaded"
            )
        if model == "s05" and n == 1:
            attempt.action = "reset"
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
            return False
        if model == "s06":
            attempt.action = "silent"
            gone = asyncio.ensure_future(reader.read(1))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(gone), timeout=timing.no_response)
            gone.cancel()
            return False
        if model == "s12":
            attempt.action = "400 context_length_exceeded"
            return await _error(
                writer,
                400,
                "This model's maximum context length is 8192 tokens; your messages resulted "
                "in 9631 tokens.",
                "invalid_request_error",
                "context_length_exceeded",
                param="messages",
            )
        if model == "s13":
            attempt.action = "400 content_policy_violation"
            return await _error(
                writer,
                400,
                "Your request was rejected by the safety system.",
                "invalid_request_error",
                "content_policy_violation",
            )
        if not body.get("stream"):
            attempt.action = "200 json"
            text = (" " if continuation else "") + " ".join(words)
            return await _json(writer, 200, _completion(model, text, size, len(words)))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self._stream(writer, attempt, model, words, continuation, size, include_usage)

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        attempt: Attempt,
        model: str,
        words: list[str],
        continuation: bool,
        prompt_tokens: int,
        include_usage: bool,
    ) -> bool:
        timing = self.timing
        head = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Transfer-Encoding": "chunked",
        }
        writer.write(_head(200, head))
        await writer.drain()
        attempt.action = "200 stream"
        if model == "s07":
            await asyncio.sleep(timing.slow_ttft)

        async def event(data: str) -> None:
            frame = f"data: {data}\n\n".encode()
            writer.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
            await writer.drain()

        await event(json.dumps(_chunk(model, {"role": "assistant", "content": ""})))
        for index, word in enumerate(words):
            if model in ("s08", "s14") and index == timing.cut_after:
                attempt.action = f"200 stream cut after {index} tokens"
                writer.close()
                return False
            if model == "s09" and index == timing.stall_after:
                attempt.action = f"200 stream stalled after {index} tokens"
                await asyncio.sleep(timing.stall)
                writer.close()
                return False
            if model == "s10" and index == timing.malformed_at:
                attempt.action = f"200 stream with a malformed event before token {index}"
                await event('{"choices": [{"delta": {"content": ')
            text = word if index == 0 and not continuation else " " + word
            await event(json.dumps(_chunk(model, {"content": text})))
            if timing.token_interval:
                await asyncio.sleep(timing.token_interval)
        await event(json.dumps(_chunk(model, {}, "stop")))
        if include_usage:
            usage = _usage(prompt_tokens, len(words))
            await event(json.dumps({**_chunk(model, {}), "choices": [], "usage": usage}))
        if model != "s11":
            await event("[DONE]")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-wall",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion(model: str, text: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-wall",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": _usage(prompt, completion),
    }


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}
_REASONS |= {500: "Internal Server Error", 503: "Service Unavailable"}


async def _json(
    writer: asyncio.StreamWriter, status: int, obj: Any, headers: dict[str, str] | None = None
) -> bool:
    body = json.dumps(obj).encode()
    head = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}
    writer.write(_head(status, head) + body)
    await writer.drain()
    return True


async def _error(
    writer: asyncio.StreamWriter,
    status: int,
    message: str,
    kind: str,
    code: str | None,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> bool:
    error = {"message": message, "type": kind, "param": param, "code": code}
    return await _json(writer, status, {"error": error}, headers)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", ""):
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    return method, path, body


@contextlib.contextmanager
def fault_wall(timing: Timing = SHORT) -> Iterator[FaultWall]:
    """Run a ``FaultWall`` on ``127.0.0.1`` in a thread; ``wall.url`` is its ``/v1`` base."""
    wall = FaultWall(timing)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    server: asyncio.AbstractServer | None = None

    async def start() -> None:
        nonlocal server
        server = await asyncio.start_server(wall.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        wall.url = f"http://127.0.0.1:{port}/v1"
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="fault-wall", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield wall
    finally:

        async def stop() -> None:
            assert server is not None
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def timing_dict(timing: Timing) -> dict[str, Any]:
    """The timings as a dict (for reports)."""
    return asdict(timing)


def scaled(timing: Timing, **changes: Any) -> Timing:
    """``timing`` with ``changes``."""
    return replace(timing, **changes)
