"""A minimal HTTP/1.1 server replaying recorded responses, for pure client measurements.

Runs in its own process (``python benchmarks/_replay.py RECORDING [--pace S]``, prints
``PORT <n>`` when listening), so the client's ``time.process_time()`` holds only the
client's own work.  Routes are ``(method, path)`` -> ``(status, content-type, body)``
(the query string is ignored); a streamed body (``text/event-stream`` or JSON lines) is
sent with chunked transfer encoding, in one write, or — with ``--pace`` — one frame per
tick of a single shared timer (frames are the body split after each blank line for SSE,
after each newline for JSON lines), so a thousand paced streams cost one timer, not a
thousand.  Keep-alive; loopback only.  Written on ``asyncio.Protocol`` so that it can
feed 1000 concurrent paced streams on 2 vCPU without becoming the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

STREAMED = ("text/event-stream", "application/x-ndjson", "application/jsonl")


def split_frames(body: bytes, content_type: str) -> list[bytes]:
    """The frames of a streamed body (each keeps its terminator)."""
    sep = b"\n\n" if content_type.startswith("text/event-stream") else b"\n"
    parts = body.split(sep)
    frames = [part + sep for part in parts[:-1]]
    if parts[-1]:
        frames.append(parts[-1])
    return frames


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Route:
    __slots__ = ("body", "frames", "head", "streamed")

    def __init__(self, status: int, content_type: str, body: bytes) -> None:
        self.streamed = content_type.startswith(STREAMED)
        self.body = body
        self.frames = [chunk(f) for f in split_frames(body, content_type)]
        if self.streamed:
            extra = b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n"
        else:
            extra = b"content-length: %d\r\n" % len(body)
        self.head = b"HTTP/1.1 %d OK\r\ncontent-type: %s\r\n%s\r\n" % (
            status,
            content_type.encode(),
            extra,
        )


class Ticker:
    """One timer that advances every paced stream by one frame per tick."""

    def __init__(self, pace: float) -> None:
        self.pace = pace
        self.streams: dict[ReplayProtocol, list[Any]] = {}
        self.loop = asyncio.get_running_loop()
        self.loop.call_later(pace, self.tick)

    def tick(self) -> None:
        done = []
        for proto, state in self.streams.items():
            frames, index = state
            if proto.transport is None or proto.transport.is_closing():
                done.append(proto)
                continue
            proto.transport.write(frames[index])
            index += 1
            if index == len(frames):
                proto.transport.write(b"0\r\n\r\n")
                done.append(proto)
            else:
                state[1] = index
        for proto in done:
            del self.streams[proto]
            proto.streaming = False
            proto.process()
        self.loop.call_later(self.pace, self.tick)


class ReplayProtocol(asyncio.Protocol):
    def __init__(self, routes: dict[tuple[str, str], Route], ticker: Ticker | None) -> None:
        self.routes = routes
        self.ticker = ticker
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.streaming:
            self.process()

    def process(self) -> None:
        while self.transport is not None and not self.streaming:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            method, target, _ = head[0].split(" ", 2)
            route = self.routes.get((method, target.split("?", 1)[0]))
            if route is None:
                self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            elif not route.streamed:
                self.transport.write(route.head + route.body)
            else:
                self.stream(route)

    def stream(self, route: Route) -> None:
        """Answer a request of a streamed route (``transport`` is set)."""
        assert self.transport is not None
        if self.ticker is None:
            self.transport.write(route.head + b"".join(route.frames) + b"0\r\n\r\n")
        else:
            self.transport.write(route.head)
            self.streaming = True
            self.ticker.streams[self] = [route.frames, 0]


def load_routes(path: Path) -> dict[tuple[str, str], Route]:
    """``[{"method", "path", "status", "content_type", "body" (latin-1)}, ...]``."""
    routes = {}
    for item in json.loads(path.read_text()):
        body = item["body"].encode("latin-1")
        routes[(item["method"], item["path"])] = Route(item["status"], item["content_type"], body)
    return routes


async def serve(path: Path, pace: float, port: int) -> None:
    routes = load_routes(path)
    loop = asyncio.get_running_loop()
    ticker = Ticker(pace) if pace > 0 else None
    server = await loop.create_server(
        lambda: ReplayProtocol(routes, ticker), "127.0.0.1", port, backlog=4096
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("recording", type=Path)
    parser.add_argument("--pace", type=float, default=0.0, help="seconds between frames")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true", help="serve on uvloop if installed")
    args = parser.parse_args()
    runner: Any = asyncio.run
    if args.uvloop:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
    try:
        runner(serve(args.recording, args.pace, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
