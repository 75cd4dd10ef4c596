"""The server's inbound side alone: ``create_app``'s ASGI app driven in-process.

No sockets, no uvicorn, no HTTP client to an upstream: a provider registered in the
process (``AsyncClient(providers=[...])``) answers ``--tokens`` text deltas, and 16
workers each send ``--n`` streamed ``POST /v1/chat/completions`` requests one after
another straight to the app (``app(scope, receive, send)``, with its lifespan). What is
measured is what the server adds around the library: the front guard and fast path, body
parsing and validation, the route's bookkeeping (metrics, access log), the SSE response
(its tasks, frames and writes) -- plus the library's engine over the in-process provider,
which is the same on both sides.

Each source tree (``NAME=SRC``, e.g. ``base=/path/to/old/src new=src``) runs in its own
child process; rounds alternate between them (the first one rotating), and each round
reports the child's CPU seconds (``time.process_time``) per request. Printed: median and
minimum microseconds per request, and the median (quartiles) of the per-round ratios to
the first tree. On a shared machine the per-round ratios swing by 10-20 %: judge by the
median of many rounds (``--rounds``).

Example: ``python benchmarks/server_inbound.py base=../old-checkout/src new=src --rounds 40``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = str(Path(__file__).resolve())
WORKERS = 16
"""Concurrent workers by default (``--workers``)."""


class _Transport:
    """A connection's transport as uvicorn's protocols use it (``--uvicorn``): keeps the
    bytes written; ``done`` is set by the write that ends a chunked body."""

    def __init__(self, done: asyncio.Event) -> None:
        self.done = done
        self.data: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.data.append(bytes(data))
        if data.endswith(b"0\r\n\r\n"):
            self.done.set()

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        addresses = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}
        return addresses.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _child(src: str, tokens: int, through_uvicorn: bool, workers: int) -> None:
    """Serve rounds: read ``N`` per line, run 16 x N requests, print CPU s per request
    and the garbage collections (count, seconds) per request of the round."""
    sys.path.insert(0, src)
    import dataclasses
    import gc

    collections = [0, 0.0]
    started = [0.0]

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            collections[0] += 1
            collections[1] += time.perf_counter() - started[0]

    gc.callbacks.append(count)
    home = tempfile.mkdtemp()
    config_file = Path(home) / "config.toml"
    config_file.write_text("")
    import logging
    from types import MappingProxyType
    from typing import ClassVar

    import uvloop

    from llmrelay.providers import Capability, Provider
    from llmrelay.server import ServerConfig, configure_access_log, create_app
    from llmrelay.types import FinishReason

    class Local(Provider):
        name: ClassVar[str] = "local"
        label: ClassVar[str] = "Local"
        capabilities: ClassVar[Any] = frozenset({Capability.CHAT, Capability.STREAM})
        endpoints: ClassVar[Any] = MappingProxyType({"base_url": "https://local.invalid"})
        default_model: ClassVar[str] = "m"
        models: ClassVar[tuple[str, ...]] = ("m",)

        async def stream(self, request: Any) -> Any:
            for i in range(tokens):
                yield f" w{i}"
                await asyncio.sleep(0)  # one delta per upstream read
            yield FinishReason("stop")

    configure_access_log()  # the access log is kept, written to /dev/null
    access = logging.getLogger("llmrelay.server.access")
    for handler in access.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (for the process's life)
    kwargs = {"providers": [Local], "config_path": str(config_file), "retries": 0}
    config = ServerConfig(client_kwargs=kwargs)
    if "freeze_heap" in {f.name for f in dataclasses.fields(ServerConfig)}:
        config = dataclasses.replace(config, freeze_heap=True)  # as ``serve`` sets it
    app = create_app(config=config)
    body = json.dumps(
        {"model": "local:m", "messages": [{"role": "user", "content": "Count."}], "stream": True}
    ).encode()
    headers = [
        (b"host", b"relay"),
        (b"content-type", b"application/json"),
        (b"accept", b"text/event-stream"),
        (b"content-length", str(len(body)).encode()),
    ]

    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\n"
        b"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    protocol: Any = None
    if through_uvicorn:
        import uvicorn
        from uvicorn.server import ServerState

        from llmrelay.server import SocketLimits, uvicorn_options

        protocol = uvicorn_options(SocketLimits())["http"]
        uvicorn_config = uvicorn.Config(
            app, lifespan="off", proxy_headers=False, access_log=False, log_level="warning"
        )
        uvicorn_config.load()
        state = ServerState()

    async def one_through_uvicorn() -> None:
        done = asyncio.Event()
        transport = _Transport(done)
        proto = protocol(config=uvicorn_config, server_state=state, app_state={})
        proto.connection_made(transport)
        proto.data_received(request)
        await done.wait()
        proto.connection_lost(None)
        data = b"".join(transport.data)
        if data.count(b'"content"') < tokens or b"data: [DONE]\n\n" not in data:
            raise SystemExit(f"an incomplete answer: {data[:300]!r}")

    async def one() -> None:
        if through_uvicorn:
            await one_through_uvicorn()
            return
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "root_path": "",
            "headers": list(headers),
            "state": {},
            "method": "POST",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
        }
        done = asyncio.Event()
        sent: list[Any] = []
        unread = True

        async def receive() -> dict[str, Any]:
            nonlocal unread
            if unread:
                unread = False
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await app(scope, receive, send)
        data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        if data.count(b'"content"') < tokens or not data.endswith(b"data: [DONE]\n\n"):
            raise SystemExit(f"an incomplete answer: {data[:300]!r}")

    async def main() -> None:
        startup: asyncio.Queue[Any] = asyncio.Queue()
        replies: asyncio.Queue[Any] = asyncio.Queue()
        await startup.put({"type": "lifespan.startup"})
        lifespan = asyncio.create_task(
            app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                startup.get,
                replies.put,
            )
        )
        if (await replies.get())["type"] != "lifespan.startup.complete":
            raise SystemExit("the app did not start")

        async def worker(n: int) -> None:
            for _ in range(n):
                await one()

        await asyncio.gather(*(worker(4) for _ in range(workers)))  # warm-up
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print("READY", flush=True)
        while line := await reader.readline():
            n = int(line)
            collections[:] = [0, 0.0]
            cpu = time.process_time()
            await asyncio.gather(*(worker(n) for _ in range(workers)))
            requests = workers * n
            figures = [(time.process_time() - cpu) / requests, *collections]
            print(" ".join(str(x) for x in figures), flush=True)
        await startup.put({"type": "lifespan.shutdown"})
        await lifespan

    uvloop.run(main())


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the figures (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="NAME=SRC, the first is the baseline")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds")
    parser.add_argument("--n", type=int, default=8, help="requests per worker per round")
    parser.add_argument("--tokens", type=int, default=5, help="text deltas per answer")
    parser.add_argument("--workers", type=int, default=WORKERS, help="concurrent workers")
    parser.add_argument(
        "--uvicorn",
        action="store_true",
        help="each request through serve's uvicorn protocol (a new connection, its HTTP "
        "parsing and writes) on an in-memory transport, not straight to the app",
    )
    args = parser.parse_args(argv)
    children: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for spec in args.trees:
            name, _, src = spec.partition("=")
            command = [sys.executable, SCRIPT, "--child", src, str(args.tokens)]
            command += [str(args.workers), *(["uvicorn"] if args.uvicorn else [])]
            child = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/"
            )
            assert child.stdout is not None
            if child.stdout.readline().strip() != "READY":
                raise SystemExit(f"{name}: the app did not start")
            children.append((name, child))
        results: dict[str, list[float]] = {name: [] for name, _ in children}
        gcs: dict[str, list[tuple[int, float]]] = {name: [] for name, _ in children}
        for round_ in range(args.rounds):
            shift = round_ % len(children)
            for name, child in children[shift:] + children[:shift]:
                assert child.stdin is not None
                assert child.stdout is not None
                child.stdin.write(f"{args.n}\n")
                child.stdin.flush()
                cpu, collected, paused = child.stdout.readline().split()
                results[name].append(float(cpu) * 1e6)
                gcs[name].append((int(collected), float(paused)))
    finally:
        for _, child in children:
            if child.stdin is not None:
                child.stdin.close()
            child.wait(30)
    base = children[0][0]
    how = "through serve's uvicorn protocol" if args.uvicorn else "straight to the app"
    print(
        f"in-process chat completions ({how}), {args.workers} workers x {args.n} x "
        f"{args.rounds} rounds"
    )
    requests = args.workers * args.n * args.rounds
    for name, _ in children:
        xs = results[name]
        ratios = sorted(x / b for x, b in zip(xs, results[base], strict=True))
        q = len(ratios) // 4
        print(
            f"  {name:10} CPU µs/request median {statistics.median(xs):7.1f} min {min(xs):7.1f}"
            f"   x {base}: median {statistics.median(ratios):.3f}"
            f" (quartiles {ratios[q]:.3f}-{ratios[-q - 1]:.3f})"
        )
        collected = sum(c for c, _ in gcs[name])
        paused = sum(p for _, p in gcs[name])
        print(
            f"  {'':10} garbage collections per 1000 requests {collected / requests * 1e3:7.1f},"
            f" their pauses {paused / requests * 1e6:7.1f} ms per 1000 requests"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), sys.argv[5:] == ["uvicorn"], int(sys.argv[4]))
    else:
        sys.exit(main())
