"""A fault-injecting HTTP/1.1 TCP proxy for the fakes (asyncio, loopback, one thread).

``fault_proxy(upstream_url)`` starts a ``FaultProxy`` on ``127.0.0.1:0`` in front of a
fake server and yields it; point a provider's endpoints at ``proxy.url`` instead of the
fake's URL. Every request is forwarded to the fake, one request per connection
(``connection: close`` both ways). The *streaming* responses (``text/event-stream``,
``application/x-ndjson``, ``application/jsonl``) are where ``proxy.fault`` applies, so
a multi-request protocol (a Gradio join before its event stream, a hub lookup before
an inference call) reaches its stream intact and only the stream breaks:

=====================  =====================================================================
``pass``               forward unchanged (re-framed as chunked)
``reset``              RST the client's connection before any response byte
``stall``              send nothing; hold until the client goes (stall before first byte)
``heartbeats``         the headers, then only keep-alive (SSE ``: keep-alive`` comments or
                       NDJSON blank lines) every 50 ms, never content
``stall_mid``          forward through the frame holding ``marker`` (some text), then hold
``cut_mid``            forward through the ``marker`` frame, then close (no terminator)
``cut_after_end``      forward the whole body, then close without the chunked terminator
``malformed``          a non-JSON frame first (``malformed_frame`` when the protocol
                       ignores unknown frames), then the rest
``malformed_mid``      the ``marker`` frame, then a non-JSON frame, then the rest
``frame_50mib``        the headers, then one 50 MiB line (``data: xxx...``) without a newline
``gzip_bomb``          ``content-encoding: gzip`` body inflating to ``BOMB_GIB`` GiB of zeros
``drip``               the body one byte per ``drip_interval`` (100 ms)
``drip_mid``           the ``marker`` frame at once, then the rest one byte per interval
``redirect``           every request: ``307`` to the same path on ``other`` (127.0.0.2)
``echo``               the first request carrying ``secret`` in a header is answered
                       ``echo_status`` with a JSON error body quoting every request header
                       (an upstream echoing the key back); the others are forwarded
``replace``            the upstream's status and headers, then ``body`` (one write per
                       item) instead of its body: for fuzzing a provider's stream parser
=====================  =====================================================================

``refused_url()`` is a loopback URL nothing listens on. ``OtherHost`` (the redirect
target) records what it receives: a credential there is a leak. The proxy records each
request's method, path and headers (``requests``) and counts connections still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BOMB_GIB",
    "FAULTS",
    "FaultName",
    "FaultProxy",
    "OtherHost",
    "ProxiedRequest",
    "fault_proxy",
    "gzip_bomb",
    "refused_url",
]

FaultName = Literal[
    "pass",
    "reset",
    "stall",
    "heartbeats",
    "stall_mid",
    "cut_mid",
    "cut_after_end",
    "malformed",
    "malformed_mid",
    "frame_50mib",
    "gzip_bomb",
    "drip",
    "drip_mid",
    "redirect",
    "replace",
    "echo",
]
FAULTS: tuple[str, ...] = FaultName.__args__  # type: ignore[attr-defined]

STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/jsonl")
BOMB_GIB = 4
FRAME_BYTES = 50 * 1024 * 1024
_HOLD = 30.0  # the longest any hold lasts when the client never goes


@dataclass
class ProxiedRequest:
    """One request the proxy (or the other host) received."""

    method: str
    path: str
    headers: dict[str, str]


def refused_url() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


_BOMB: bytes | None = None


def gzip_bomb() -> bytes:
    """A gzip member inflating to ``BOMB_GIB`` GiB of zeros (about 4 MiB; built once).

    Identical full-flushed deflate blocks are repeated (a full flush resets the
    compressor, so each 16 MiB block compresses to the same bytes); the CRC is that of
    the zeros, so the member is valid to the end.
    """
    global _BOMB
    if _BOMB is None:
        block = bytes(16 * 1024 * 1024)
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        one = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
        again = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
        assert one == again or again  # the second block is the repeating unit
        tail = comp.flush(zlib.Z_FINISH)
        count = BOMB_GIB * 64
        crc = 0
        for _ in range(count):
            crc = zlib.crc32(block, crc)
        size = (count * len(block)) & 0xFFFFFFFF
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        _BOMB = header + one + again * (count - 1) + tail + struct.pack("<II", crc, size)
    return _BOMB


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = raw.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers, raw


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The body's bytes (de-chunked), as they arrive."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readline()
            if not size_line:
                return
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return
            data = await reader.readexactly(size)
            await reader.readline()
            yield data
    elif "content-length" in headers:
        left = int(headers["content-length"])
        while left > 0:
            data = await reader.read(min(left, 65536))
            if not data:
                return
            left -= len(data)
            yield data
    else:
        while data := await reader.read(65536):
            yield data


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


_FRAME_END = re.compile(rb"\r?\n\r?\n")


class OtherHost:
    """The redirect target on ``127.0.0.2``: records requests, answers 200 ``{}``."""

    def __init__(self) -> None:
        self.requests: list[ProxiedRequest] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.2:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.2", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await _read_head(reader)
            if head is not None:
                method, path, *_ = head[0].split(" ")
                self.requests.append(ProxiedRequest(method, path, head[1]))
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: 2\r\nconnection: close\r\n\r\n{}"
                )
                await writer.drain()
        writer.close()


@dataclass
class FaultProxy:
    """The proxy (see the module docstring); set ``fault`` (and ``marker``) per test."""

    upstream: str
    fault: str = "pass"
    marker: bytes = b"Hello"
    malformed_frame: bytes | None = None
    body: list[bytes] = field(default_factory=list)
    secret: str = ""
    echo_status: int = 401
    drip_interval: float = 0.1
    requests: list[ProxiedRequest] = field(default_factory=list)
    other: OtherHost = field(default_factory=OtherHost)
    port: int = 0
    faulted: int = 0
    _open: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _server6: asyncio.Server | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _idle: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, fault: str = "pass") -> None:
        """Set the fault for the next requests and forget what was recorded."""
        assert fault in FAULTS, fault
        self.fault = fault
        self.faulted = 0
        self.requests.clear()
        self.other.requests.clear()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no client connection is open; ``False`` on timeout."""
        return self._idle.wait(timeout)

    # -- plumbing ------------------------------------------------------------------------

    async def _start(self) -> None:
        self._idle.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        with contextlib.suppress(OSError):  # "localhost" may resolve to ::1 first
            self._server6 = await asyncio.start_server(self._handle, "::1", self.port)
        await self.other.start()

    def _opened(self) -> None:
        with self._lock:
            self._open += 1
            self._idle.clear()

    def _closed(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self._idle.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._opened()
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError, asyncio.CancelledError):
            pass  # the client went, or the proxy is stopping
        finally:
            if not writer.is_closing():
                writer.close()
            self._closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _read_head(reader)
        if head is None:
            return
        request_line, headers, _ = head
        method, path, *_ = request_line.split(" ")
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", ""):
            body = b"".join([part async for part in _read_body(reader, headers)])
        self.requests.append(ProxiedRequest(method, path, headers))
        fault = self.fault
        if fault == "redirect":
            self.faulted += 1
            writer.write(
                f"HTTP/1.1 307 Temporary Redirect\r\nlocation: {self.other.url}{path}\r\n"
                "content-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            return
        keyed = bool(self.secret) and any(self.secret in v for v in headers.values())
        if fault == "echo" and keyed and not self.faulted:
            self.faulted += 1
            quoted = "; ".join(f"{k}: {v}" for k, v in headers.items())
            payload = json.dumps(
                {
                    "detail": f"invalid credentials ({quoted})",
                    "error": {"message": f"invalid credentials ({quoted})"},
                    "message": f"invalid credentials ({quoted})",
                }
            ).encode()
            writer.write(
                f"HTTP/1.1 {self.echo_status} Error\r\ncontent-type: application/json\r\n"
                f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            return
        host = self.upstream.removeprefix("http://")
        up_host, _, up_port = host.partition(":")
        up_reader, up_writer = await asyncio.open_connection(up_host, int(up_port))
        try:
            # the Host header is kept: a fake that names URLs after it (Replicate's
            # stream host) then sends the client back through the proxy
            out_headers = {k: v for k, v in headers.items() if k != "connection"}
            out_headers["connection"] = "close"
            out_headers.pop("transfer-encoding", None)
            out_headers["content-length"] = str(len(body))
            lines = [request_line] + [f"{k}: {v}" for k, v in out_headers.items()]
            up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await up_writer.drain()
            up_head = await _read_head(up_reader)
            if up_head is None:
                return
            status_line, resp_headers, _ = up_head
            ctype = resp_headers.get("content-type", "").partition(";")[0].strip().lower()
            streaming = ctype in STREAM_TYPES
            if not streaming or fault == "pass":
                await self._forward(writer, status_line, resp_headers, up_reader)
                return
            self.faulted += 1
            await self._faulty(fault, writer, reader, status_line, resp_headers, up_reader, ctype)
        finally:
            up_writer.close()  # no await here: a task closed at shutdown must not wait

    @staticmethod
    def _head(status_line: str, headers: dict[str, str], **extra: str) -> bytes:
        out = {
            k: v
            for k, v in headers.items()
            if k not in ("content-length", "transfer-encoding", "connection")
        }
        out.update(extra)
        out["transfer-encoding"] = "chunked"
        out["connection"] = "close"
        lines = [status_line] + [f"{k}: {v}" for k, v in out.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _forward(
        self,
        writer: asyncio.StreamWriter,
        status_line: str,
        headers: dict[str, str],
        up_reader: asyncio.StreamReader,
    ) -> None:
        self._write(writer, self._head(status_line, headers))
        async for data in _read_body(up_reader, headers):
            self._write(writer, _chunk(data))
            await writer.drain()
        self._write(writer, b"0\r\n\r\n")
        await writer.drain()

    async def _frames(self, headers: dict[str, str], up_reader: asyncio.StreamReader, sse: bool):  # type: ignore[no-untyped-def]
        """The upstream body split into frames (SSE events or lines), delimiters kept."""
        buffer = b""
        async for data in _read_body(up_reader, headers):
            buffer += data
            while True:
                if sse:
                    match = _FRAME_END.search(buffer)
                    end = match.end() if match else -1
                else:
                    end = buffer.find(b"\n") + 1 or -1
                if end < 0:
                    break
                yield buffer[:end]
                buffer = buffer[end:]
        if buffer:
            yield buffer

    async def _hold(self, reader: asyncio.StreamReader) -> None:
        """Wait until the client goes (EOF/reset) or ``_HOLD`` seconds."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(_HOLD):
                while await reader.read(65536):
                    pass

    @staticmethod
    def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
        """Write, or raise ``ConnectionResetError`` once the client is gone (no log spam)."""
        if writer.transport.is_closing():
            raise ConnectionResetError("the client went away")
        writer.write(data)

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def _faulty(
        self,
        fault: str,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
        status_line: str,
        headers: dict[str, str],
        up_reader: asyncio.StreamReader,
        ctype: str,
    ) -> None:
        sse = ctype == "text/event-stream"
        bad = self.malformed_frame or (b'data: {"malformed\n\n' if sse else b'{"malformed\n')
        if fault == "reset":
            self._reset(writer)
            return
        if fault == "stall":
            await self._hold(reader)
            return
        if fault == "gzip_bomb":
            self._write(writer, self._head(status_line, headers, **{"content-encoding": "gzip"}))
            bomb = gzip_bomb()
            for start in range(0, len(bomb), 65536):
                self._write(writer, _chunk(bomb[start : start + 65536]))
                await writer.drain()
            self._write(writer, b"0\r\n\r\n")
            await writer.drain()
            return
        self._write(writer, self._head(status_line, headers))
        if fault == "heartbeats":
            beat = b": keep-alive\n\n" if sse else b"\n"
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_HOLD):
                    while True:
                        self._write(writer, _chunk(beat))
                        await writer.drain()
                        await asyncio.sleep(0.05)
            return
        if fault == "frame_50mib":
            self._write(writer, _chunk(b"data: " if sse else b'{"x": "'))
            piece = b"x" * (1024 * 1024)
            for _ in range(FRAME_BYTES // len(piece)):
                self._write(writer, _chunk(piece))
                await writer.drain()
            return
        if fault == "replace":
            for data in self.body:
                self._write(writer, _chunk(data))
                await writer.drain()
            self._write(writer, b"0\r\n\r\n")
            await writer.drain()
            return
        if fault == "malformed":
            self._write(writer, _chunk(bad))
        if fault == "drip":
            async for data in _read_body(up_reader, headers):
                for index in range(len(data)):
                    self._write(writer, _chunk(data[index : index + 1]))
                    await writer.drain()
                    await asyncio.sleep(self.drip_interval)
            self._write(writer, b"0\r\n\r\n")
            await writer.drain()
            return
        after_marker = fault in ("stall_mid", "cut_mid", "malformed_mid", "drip_mid")
        dripping = False
        async for frame in self._frames(headers, up_reader, sse):
            if dripping:
                for index in range(len(frame)):
                    self._write(writer, _chunk(frame[index : index + 1]))
                    await writer.drain()
                    await asyncio.sleep(self.drip_interval)
                continue
            self._write(writer, _chunk(frame))
            await writer.drain()
            if after_marker and self.marker in frame:
                if fault == "drip_mid":
                    dripping = True
                    continue
                if fault == "stall_mid":
                    await self._hold(reader)
                    return
                if fault == "cut_mid":
                    return  # closed without the chunked terminator
                self._write(writer, _chunk(bad))
                after_marker = False
        if fault == "cut_after_end":
            return
        self._write(writer, b"0\r\n\r\n")
        await writer.drain()


@contextlib.contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """Run a ``FaultProxy`` in front of ``upstream`` in a thread; stop it on exit."""
    proxy = FaultProxy(upstream)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(proxy._start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the fault proxy did not start")
    proxy._loop = loop
    try:
        yield proxy
    finally:

        async def stop() -> None:
            for server in (proxy._server, proxy._server6, proxy.other.server):
                if server is not None:
                    server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
