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


def _child(src: str, tokens: int) -> None:
    """Serve rounds: read ``N`` per line, run 16 x N requests, print CPU s per request."""
    sys.path.insert(0, src)
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
    app = create_app(config=ServerConfig(client_kwargs=kwargs))
    body = json.dumps(
        {"model": "local:m", "messages": [{"role": "user", "content": "Count."}], "stream": True}
    ).encode()
    headers = [
        (b"host", b"relay"),
        (b"content-type", b"application/json"),
        (b"accept", b"text/event-stream"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def one() -> None:
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

        await asyncio.gather(*(worker(4) for _ in range(WORKERS)))  # warm-up
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print("READY", flush=True)
        while line := await reader.readline():
            n = int(line)
            cpu = time.process_time()
            await asyncio.gather(*(worker(n) for _ in range(WORKERS)))
            print((time.process_time() - cpu) / (WORKERS * n), flush=True)
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
    args = parser.parse_args(argv)
    children: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for spec in args.trees:
            name, _, src = spec.partition("=")
            command = [sys.executable, SCRIPT, "--child", src, str(args.tokens)]
            child = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/"
            )
            assert child.stdout is not None
            if child.stdout.readline().strip() != "READY":
                raise SystemExit(f"{name}: the app did not start")
            children.append((name, child))
        results: dict[str, list[float]] = {name: [] for name, _ in children}
        for round_ in range(args.rounds):
            shift = round_ % len(children)
            for name, child in children[shift:] + children[:shift]:
                assert child.stdin is not None
                assert child.stdout is not None
                child.stdin.write(f"{args.n}\n")
                child.stdin.flush()
                results[name].append(float(child.stdout.readline()) * 1e6)
    finally:
        for _, child in children:
            if child.stdin is not None:
                child.stdin.close()
            child.wait(30)
    base = children[0][0]
    print(f"in-process chat completions, {WORKERS} workers x {args.n} x {args.rounds} rounds")
    for name, _ in children:
        xs = results[name]
        ratios = sorted(x / b for x, b in zip(xs, results[base], strict=True))
        q = len(ratios) // 4
        print(
            f"  {name:10} CPU µs/request median {statistics.median(xs):7.1f} min {min(xs):7.1f}"
            f"   x {base}: median {statistics.median(ratios):.3f}"
            f" (quartiles {ratios[q]:.3f}-{ratios[-q - 1]:.3f})"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
