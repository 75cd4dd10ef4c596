"""CPU per request of llmrelay's HTTP client against raw aiohttp (the outbound path).

``python benchmarks/send_path.py [--requests N] [--rounds R] [--concurrency C]
[--transports aiohttp,httpx] [--before SRC] [--profile]``

A child process (``_serve``) answers every request on loopback with the same short
event stream (three ``data:`` events and ``[DONE]``, ``content-length`` framed,
keep-alive), so the client's process time is its own. Each variant runs in its own child
interpreter, ``R`` rounds interleaved in a rotating order; a round sends ``N`` requests,
``C`` at a time, each a POST with a JSON body and an ``Authorization`` header whose
events are read to the end:

* ``raw aiohttp``: ``aiohttp.ClientSession.post`` and ``StreamReader.readany`` (the
  session of the other raw baselines: no limit, no cookies, connect and read timeouts);
* ``llmrelay <transport>``: the shared client of ``make_http_client``, as a provider
  uses it (``http.stream("POST", url, json=..., headers=...)`` then ``aiter_sse``);
* with ``--before SRC``: the same from another checkout's ``src`` (before/after).

Printed: CPU µs per request (process time of the round / requests), median and best of
the rounds, and the ratio to raw aiohttp's median. ``--profile`` prints a cProfile of one
llmrelay round instead (process-time clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BODY = (
    b"".join(
        b"data: " + json.dumps({"choices": [{"delta": {"content": f" w{i}"}}]}).encode() + b"\n\n"
        for i in range(3)
    )
    + b"data: [DONE]\n\n"
)
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" % len(
    BODY
)


class _Answer(asyncio.Protocol):
    """Answers each request (head plus ``content-length`` bytes) with ``HEAD + BODY``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(HEAD + BODY)  # type: ignore[attr-defined]


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Answer, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


PAYLOAD = {"model": "m", "messages": [{"role": "user", "content": "Count for me."}], "stream": True}
HEADERS = {"Authorization": "Bearer sk-test", "Accept": "text/event-stream"}


async def _raw_round(session: object, url: str, n: int, concurrency: int) -> None:
    async def one() -> None:
        async with session.post(url, json=PAYLOAD, headers=HEADERS) as response:  # type: ignore[attr-defined]
            read = response.content.readany
            events = 0
            while chunk := await read():
                events += chunk.count(b"\n\n")
            assert events == 4, events

    await _gather(one, n, concurrency)


async def _gather(one: object, n: int, concurrency: int) -> None:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()  # type: ignore[operator]

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _client(
    variant: str, port: int, n: int, rounds: int, concurrency: int, profile: bool
) -> None:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    if variant == "raw":
        import aiohttp

        # as the raw baselines of the other scripts (``_common.aiohttp_session``): no
        # connection limit, no cookies, connect and read timeouts (llmrelay sets both)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
        )

        async def run() -> None:
            await _raw_round(session, url, n, concurrency)

        close = session.close
    else:
        from llmrelay import Timeouts
        from llmrelay._http import aiter_sse, make_http_client

        http = make_http_client(Timeouts(), transport=variant)

        async def one() -> None:
            async with http.stream("POST", url, json=PAYLOAD, headers=HEADERS) as response:
                events = 0
                async for _ in aiter_sse(response, provider="p", model="m"):
                    events += 1
                assert events == 4, events

        async def run() -> None:
            await _gather(one, n, concurrency)

        close = http.aclose
    await run()  # warm: connections, caches
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        await run()
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats(
            os.environ.get("SORT", "tottime")
        ).print_stats(60)
    for _ in range(rounds):
        start = time.process_time()
        await run()
        print((time.process_time() - start) / n * 1e6, flush=True)
    await close()


def _child(
    variant: str, src: str | None, port: int, args: argparse.Namespace, rounds: int
) -> list[float]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            variant,
            "--port",
            str(port),
            "--requests",
            str(args.requests),
            "--rounds",
            str(rounds),
            "--concurrency",
            str(args.concurrency),
        ]
        + (["--profile"] if args.profile else []),
        env=env,
        check=True,
        capture_output=not args.profile,
        text=True,
    )
    return [float(line) for line in (out.stdout or "").split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--transports", default="aiohttp")
    parser.add_argument("--before", help="also measure this checkout's src")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return
    if args.child:
        asyncio.run(
            _client(
                args.child, args.port, args.requests, args.rounds, args.concurrency, args.profile
            )
        )
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        variants: list[tuple[str, str, str | None]] = [("raw aiohttp", "raw", None)]
        for transport in args.transports.split(","):
            if args.before:
                variants.append((f"llmrelay {transport} (before)", transport, args.before))
            variants.append((f"llmrelay {transport}", transport, str(ROOT / "src")))
        if args.profile:
            _child(variants[-1][1], variants[-1][2], port, args, 0)
            return
        figures: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for r in range(args.rounds):
            for name, variant, src in variants[r % len(variants) :] + variants[: r % len(variants)]:
                figures[name] += _child(variant, src, port, args, 1)
        raw = statistics.median(figures["raw aiohttp"])
        print(f"{args.requests} requests x {args.rounds} rounds, concurrency {args.concurrency}")
        print(f"{'client':32} {'CPU µs/req median':>18} {'best':>8} {'x raw':>6}")
        for name, values in figures.items():
            med = statistics.median(values)
            print(f"{name:32} {med:18.1f} {min(values):8.1f} {med / raw:6.2f}")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
