"""The server relay: the real ``openai`` SDK -> ``llmrelay serve`` -> a fake provider.

The OpenAI-compatible fake's answer of ``--tokens`` tokens is recorded once and replayed
by an upstream child process (below, on ``_replay.py``'s protocol).  In front of it,
started together and measured **interleaved** (each round visits every relay in a
rotating order, so all share the machine's noise):

* **direct**: no relay (the load talks to the upstream): the baseline TTFT;
* **byte relay**: a minimal Starlette app (``uvicorn``, same worker count, uvloop and
  httptools like ``llmrelay serve``) that forwards ``POST /v1/chat/completions`` with
  httpx and streams the upstream bytes back untouched: the baseline relay;
* **llmrelay serve (httpx)** and **llmrelay serve (aiohttp)**: ``python -m llmrelay serve
  --workers W --transport T`` with a ``kind = "openai"`` provider in a temporary config
  file, on each of llmrelay's transports (``--transports``; aiohttp is serve's default
  when installed);
* with ``--before SRC``: ``llmrelay serve`` on another checkout's sources (e.g. main's),
  in the same run (before/after);
* with ``--litellm``: **LiteLLM's proxy** (``litellm --config``, the same provider as an
  ``openai/`` model, ``--num_workers W``), release ``LITELLM`` installed by this script
  into its own virtualenv under ``~/.cache/llmrelay-bench/`` (never into the project's;
  1.82.7 and 1.82.8 were compromised releases and are refused), with its model cost map
  read locally and its telemetry off (no network).

Load (every row counts the tokens it received and checks it got all of them):

* ``sdk``: the real ``openai`` SDK in this process, one stream at a time (``--runs`` per
  round): TTFT and the relay's CPU per token of a lone stream;
* ``raw``: a load generator in its own process (uvloop, ``asyncio.Protocol`` and
  httptools' response parser; tokens counted with one regex per read) opening ``1`` or
  ``--streams`` connections at once.  It costs 2-4 µs per token (printed: ``load
  µs/tok``), so on 2 vCPU it leaves the relays the CPU; the earlier loader ran httpx in
  this process, beside the SDK.
* ``raw c16``: ``--c16`` (16) workers each sending ``--c16-requests`` short-answer
  requests one after another: requests/s of a relay at a modest concurrency;
* ``raw short`` and ``sdk short``: the same single streams of a ``--ttft-tokens``
  answer (the upstream serves it to requests naming the model ``fake-short``): the time
  to first token of a hop whose upstream then goes quiet.  With a long answer at pace 0 the
  upstream writes the rest of the answer (and a relay forwards it) right after the first
  frame, on the same 2 vCPUs: the ``raw``/``sdk`` single-stream TTFT then includes waiting
  for a CPU (even ``direct``'s grows from about 0.3 to 2 ms from 200 to 1000 tokens),
  which a remote upstream would not cost the relay.  ``raw short`` sends ``--ttft-runs``
  (100) requests in a row per relay and round (``n``: the samples of a row), so that its
  p99 is a percentile and not the largest of a few samples (it was 24 in ``--quick``).

Upstream (``--upstream``): ``frames`` (default) writes each SSE event in its own
``write`` as fast as its loop turns, round-robin over the open streams, like a model
server emitting tokens (the relay then reads one or a few events per read, not the whole
answer at once); ``burst`` writes the whole body in one write (the earlier behaviour,
unlike a model server: every relay then reads the whole answer in one or two reads);
``--pace S`` sends one event per stream every ``S`` seconds.

Figures: TTFT p50/p99 and added TTFT (p50 - direct p50 of the same load), aggregate
tokens/s (tokens / wall of the round), requests/s, the relay's CPU per token and per
request and its requests per CPU-second (utime + stime of the server process and its
workers from ``/proc``, 10 ms ticks), the load generator's and the upstream's CPU per
token, and each relay's RSS (its process tree, after the warm-up).  Targets: issue 10's
(>= 30k tokens/s aggregate over 100 streams, <= 3 ms added TTFT, <= 20 µs CPU per
token over the byte relay) and issue 21's (on the aiohttp transport: CPU per request
<= 0.6x the httpx transport's, requests per CPU-second >= 2x, added TTFT p99 of a
short answer <= 2 ms; >= 25x LiteLLM's requests/s at concurrency 16).
Exits 0 unless ``--strict``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGET_TOKENS_PER_S = 30_000
TARGET_TTFT_MS = 3.0
TARGET_CPU_US = 20.0
TARGET_CPU_PER_REQUEST = 0.6
"""aiohttp transport's relay CPU per request over the httpx transport's (<=)."""
TARGET_REQUESTS_PER_CPU = 2.0
"""aiohttp transport's requests per relay CPU-second over the httpx transport's (>=)."""
TARGET_TTFT_P99_MS = 2.0
TARGET_VS_LITELLM = 25.0
LITELLM = "1.106.12"
"""The LiteLLM release compared (any but the compromised 1.82.7 and 1.82.8)."""
MODEL = "local:fake-model"
SHORT_MODEL = "fake-short"
"""The upstream answers a request naming this model with the short recording."""
LOADS = ("sdk", "raw", "sdk-short", "raw-short", "c16", "streams")
"""``--loads`` names of the rows: single SDK and raw streams (long and short answers), the
c16 short answers, ``--streams`` concurrent long streams."""
SCRIPT = str(Path(__file__).resolve())
PROMPT = "Count for me."
CONTENT = re.compile(rb'"content":\s*"[^"]')
"""A non-empty ``content`` of a chunk (``reasoning_content`` does not match: ``_``)."""

BYTE_RELAY = """
import os
import httpx
from starlette.applications import Starlette
from starlette.responses import StreamingResponse, Response
from starlette.routing import Route

UPSTREAM = os.environ["RELAY_UPSTREAM"]
http = httpx.AsyncClient(trust_env=False, timeout=120,
                         limits=httpx.Limits(max_connections=None, max_keepalive_connections=None))

async def chat(request):
    body = await request.body()
    upstream = await http.send(
        http.build_request("POST", UPSTREAM + "/v1/chat/completions", content=body,
                           headers={"content-type": "application/json",
                                    "authorization": "Bearer test-key"}),
        stream=True)
    async def forward():
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
    return StreamingResponse(forward(), status_code=upstream.status_code,
                             media_type=upstream.headers.get("content-type"))

async def health(request):
    return Response("ok")

app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                        Route("/health", health)])
"""


# -- child processes: the upstream and the load generator -------------------------------------


def _upstream_main(recording: str, short: str, mode: str, pace: float) -> None:
    """Serve the recording; streamed bodies per ``mode`` (see the module docstring).

    A request whose body names ``SHORT_MODEL`` gets the ``short`` recording instead.
    """
    import uvloop

    import _replay

    class Frames:
        """One write per frame, round-robin over the streams, one round per loop turn."""

        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            self.loop = loop
            self.streams: dict[Any, list[Any]] = {}
            self.scheduled = False

        def add(self, proto: Any, frames: list[bytes]) -> None:
            self.streams[proto] = [frames, 0]
            if not self.scheduled:
                self.scheduled = True
                if pace > 0:
                    self.loop.call_later(pace, self.tick)
                else:
                    self.loop.call_soon(self.tick)

        def tick(self) -> None:
            done = []
            for proto, state in self.streams.items():
                transport = proto.transport
                if transport is None or transport.is_closing():
                    done.append(proto)
                    continue
                frames, index = state
                transport.write(frames[index])
                index += 1
                if index == len(frames):
                    transport.write(b"0\r\n\r\n")
                    done.append(proto)
                else:
                    state[1] = index
            for proto in done:
                del self.streams[proto]
                proto.streaming = False
                proto.process()
            if self.streams:
                if pace > 0:
                    self.loop.call_later(pace, self.tick)
                else:
                    self.loop.call_soon(self.tick)
            else:
                self.scheduled = False

    class Protocol(_replay.ReplayProtocol):
        frames: Frames | None = None
        short_route: _replay.Route | None = None
        wants_short = False

        def process(self) -> None:
            # the relays do not pipeline: the buffer holds at most this request
            self.wants_short = SHORT_MODEL.encode() in self.buffer
            super().process()

        def stream(self, route: _replay.Route) -> None:
            if self.wants_short and self.short_route is not None:
                route = self.short_route
            # streamed bodies are handed to ``Frames`` (one event per write)
            if self.frames is None or self.transport is None:
                super().stream(route)
                return
            self.transport.write(route.head)
            self.streaming = True
            self.frames.add(self, route.frames)

    async def serve() -> None:
        routes = _replay.load_routes(Path(recording))
        shorts = _replay.load_routes(Path(short)).values()
        Protocol.short_route = next(r for r in shorts if r.streamed)
        loop = asyncio.get_running_loop()
        Protocol.frames = None if mode == "burst" and pace <= 0 else Frames(loop)
        server = await loop.create_server(
            lambda: Protocol(routes, None), "127.0.0.1", 0, backlog=4096
        )
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


class _LoadProtocol(asyncio.Protocol):
    """One raw streamed request: counts content tokens, notes the first one's time."""

    def __init__(self, request: bytes, done: asyncio.Future[None]) -> None:
        import httptools

        self.request = request
        self.done = done
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.tokens = 0
        self.first = 0.0
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as exc:
            self._finish(exc)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        data = self.rest + body if self.rest else body
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        if cut:
            if not self.tokens and CONTENT.search(data, 0, cut):
                self.first = time.perf_counter()  # before counting a large read
            self.tokens += len(CONTENT.findall(data, 0, cut))

    def on_message_complete(self) -> None:
        self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc or ConnectionError("closed before the end"))

    def _finish(self, exc: BaseException | None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


async def _raw_streams(
    url: str, streams: int, tokens: int, model: str = MODEL, repeat: int = 1
) -> dict[str, Any]:
    """``streams`` raw requests at once (each worker ``repeat`` of them in a row): TTFTs,
    tokens, wall, errors, requests answered in full, this process's CPU."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    ).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nAuthorization: Bearer test-key\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()

    async def one() -> tuple[float | None, int, bool]:
        t0 = time.perf_counter()
        done: asyncio.Future[None] = loop.create_future()
        proto = _LoadProtocol(request, done)
        try:
            await loop.create_connection(lambda: proto, host, int(port))
            await asyncio.wait_for(done, 300)
        except Exception:  # refused, reset, timed out, bad response: an error
            return None, proto.tokens, False
        ok = proto.status == 200 and proto.tokens == tokens
        return (proto.first - t0 if proto.tokens else None), proto.tokens, ok

    async def worker() -> list[tuple[float | None, int, bool]]:
        return [await one() for _ in range(repeat)]

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    results = [r for rs in await asyncio.gather(*(worker() for _ in range(streams))) for r in rs]
    wall = time.perf_counter() - t0
    return {
        "ttfts": [t for t, _, _ in results if t is not None],
        "tokens": sum(n for _, n, _ in results),
        "wall": wall,
        "errors": sum(1 for _, _, ok in results if not ok),
        "requests": sum(1 for _, _, ok in results if ok),
        "cpu": time.process_time() - cpu0,
    }


def _load_main() -> None:
    """Serve load jobs: one JSON line in (url, streams, tokens), one JSON line out."""
    import uvloop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print("READY", flush=True)
        while line := await reader.readline():
            job = json.loads(line)
            result = await _raw_streams(
                job["url"], job["streams"], job["tokens"], job["model"], job.get("repeat", 1)
            )
            print(json.dumps(result), flush=True)

    uvloop.run(serve())


# -- the parent: processes, loads, figures ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants (``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(x) for x in children)
        except (OSError, IndexError):
            continue
    return total


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc``)."""
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(x) for x in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def _rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MiB (``VmRSS``)."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Child:
    """A child process (``close()`` stops it); ``cpu()`` its tree's CPU seconds."""

    proc: subprocess.Popen[str]

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def rss_mib(self) -> float:
        return _rss_mib(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Relay(Child):
    """A relay server in a child process; ``url`` once ``/health`` answers."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        port: int,
        health: str = "/health",
        startup: float = 30.0,
    ) -> None:
        import httpx

        self.name = name
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}{health}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.close()
        raise RuntimeError(f"relay did not start: {args[:6]}")


class Upstream(Child):
    """The replayed OpenAI-compatible fake (this script's ``--child upstream``)."""

    def __init__(
        self, recording: Path, short: Path, mode: str, pace: float, env: dict[str, str]
    ) -> None:
        args = [sys.executable, SCRIPT, "--child", "upstream", str(recording), str(short)]
        args += ["--upstream", mode, "--pace", str(pace)]
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError("the upstream did not start")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"


class LoadGenerator(Child):
    """The raw load generator (this script's ``--child load``)."""

    def __init__(self, env: dict[str, str]) -> None:
        args = [sys.executable, SCRIPT, "--child", "load"]
        self.proc = subprocess.Popen(
            args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "READY":
            self.close()
            raise RuntimeError("the load generator did not start")

    def run(
        self, url: str, streams: int, tokens: int, model: str = MODEL, repeat: int = 1
    ) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        job = {"url": url, "streams": streams, "tokens": tokens, "model": model, "repeat": repeat}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return result


async def _sdk_stream(base_url: str, tokens: int, model: str = MODEL) -> dict[str, Any]:
    """One stream through the real ``openai`` SDK (new client and connection)."""
    import httpx
    import openai

    client = openai.AsyncOpenAI(
        base_url=f"{base_url}/v1",
        api_key="test-key",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(trust_env=False),
    )
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    ttft = None
    n = 0
    try:
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if n == 0:
                    ttft = time.perf_counter() - t0
                n += 1
    except (openai.OpenAIError, httpx.HTTPError):
        pass
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    await client.close()
    return {
        "ttfts": [ttft] if ttft is not None else [],
        "tokens": n,
        "wall": wall,
        "errors": int(n != tokens),
        "requests": int(n == tokens),
        "cpu": cpu,
    }


@dataclass
class Row:
    """Samples of one (relay, workers, streams, load)."""

    relay: str
    workers: int
    streams: int
    load: str
    ttfts: list[float] = field(default_factory=list)
    tokens: int = 0
    wall: float = 0.0
    errors: int = 0
    requests: int = 0
    relay_cpu: float = 0.0
    load_cpu: float = 0.0
    upstream_cpu: float = 0.0
    rounds: list[tuple[float, int]] = field(default_factory=list)
    """(relay CPU s, requests answered) of each round: paired with another relay's."""

    def add(self, result: dict[str, Any], relay_cpu: float, upstream_cpu: float) -> None:
        self.ttfts += result["ttfts"]
        self.tokens += result["tokens"]
        self.wall += result["wall"]
        self.errors += result["errors"]
        self.requests += result["requests"]
        self.load_cpu += result["cpu"]
        self.relay_cpu += relay_cpu
        self.upstream_cpu += upstream_cpu

    def ttft_ms(self, q: float) -> float:
        if not self.ttfts:
            return float("nan")
        if q == 0.5:
            return statistics.median(self.ttfts) * 1e3
        ordered = sorted(self.ttfts)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e3

    def per_token_us(self, cpu: float) -> float:
        return cpu / self.tokens * 1e6 if self.tokens else float("nan")

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall if self.wall else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.wall if self.wall else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.relay_cpu / self.requests * 1e3 if self.requests else float("nan")

    @property
    def requests_per_cpu_s(self) -> float:
        return self.requests / self.relay_cpu if self.relay_cpu else float("nan")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tokens", type=int, default=200, help="tokens per stream")
    parser.add_argument(
        "--ttft-tokens", type=int, default=5, help="tokens of the answer of the short rows"
    )
    parser.add_argument("--streams", type=int, default=100, help="concurrent streams")
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default 5; --quick: 3)"
    )
    parser.add_argument("--runs", type=int, default=3, help="SDK single runs per round (raw 4x)")
    parser.add_argument(
        "--ttft-runs",
        type=int,
        default=100,
        help="short-answer requests at c=1 (raw short) per relay and round, one after another: "
        "the added TTFT p99 needs a few hundred samples (with 24, p99 was the maximum)",
    )
    parser.add_argument("--workers", default="1,2", help="worker counts")
    parser.add_argument("--pace", type=float, default=0.0, help="seconds per upstream frame")
    parser.add_argument(
        "--upstream", choices=("frames", "burst"), default="frames", help="upstream writes"
    )
    parser.add_argument("--before", help="also serve llmrelay from this src (e.g. main's)")
    parser.add_argument(
        "--transports",
        default="httpx,aiohttp" if importlib.util.find_spec("aiohttp") else "httpx",
        help="llmrelay serve's transports to run (one relay each)",
    )
    parser.add_argument(
        "--litellm",
        action="store_true",
        help=f"also run LiteLLM's proxy {LITELLM} (installed into its own venv once)",
    )
    parser.add_argument("--c16", type=int, default=16, help="workers of the raw c16 load")
    parser.add_argument(
        "--c16-requests", type=int, default=8, help="requests per worker of the raw c16 load"
    )
    parser.add_argument(
        "--loads",
        default=",".join(LOADS),
        help=f"the loads to run, comma-separated (default: all of {','.join(LOADS)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds (unless --rounds), 1 worker"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("recording", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("short", nargs="?", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _print(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\nopenai SDK / raw load -> relay -> replayed OpenAI-compatible fake, {args.tokens} "
        f"tokens/stream, upstream {args.upstream}, pace {args.pace * 1e3:g} ms"
    )
    print(
        f"  {'relay':24} {'load':9} {'wrk':>3} {'streams':>7} {'TTFT p50':>9} {'+direct':>8} "
        f"{'p99':>8} {'+direct':>8} {'tokens/s':>9} {'req/s':>7} {'relay µs/tok':>12} "
        f"{'+byte':>7} {'ms/req':>7} {'req/CPU-s':>9} {'load µs/tok':>11} {'up µs/tok':>9} "
        f"{'errors':>6} {'n':>5}"
    )
    for r in rows:
        direct = _find(rows, "direct", r)
        byte = _find(rows, "byte relay", r)
        added = r.ttft_ms(0.5) - direct.ttft_ms(0.5) if direct else float("nan")
        added99 = r.ttft_ms(0.99) - direct.ttft_ms(0.99) if direct else float("nan")
        relayed = r.relay != "direct"
        cpu = r.per_token_us(r.relay_cpu)
        over = cpu - byte.per_token_us(byte.relay_cpu) if byte and relayed else None
        nan = float("nan")
        print(
            f"  {r.relay:24} {r.load:9} {r.workers:3d} {r.streams:7d} {r.ttft_ms(0.5):9.2f} "
            f"{added:+8.2f} {r.ttft_ms(0.99):8.2f} {added99:+8.2f} {r.tokens_per_s:9.0f} "
            f"{r.requests_per_s:7.1f} {cpu if relayed else nan:12.1f} "
            f"{'' if over is None else f'{over:+7.1f}':>7} "
            f"{r.cpu_ms_per_request if relayed else nan:7.2f} "
            f"{r.requests_per_cpu_s if relayed else nan:9.0f} "
            f"{r.per_token_us(r.load_cpu):11.1f} {r.per_token_us(r.upstream_cpu):9.1f} "
            f"{r.errors:6d} {len(r.ttfts):5d}"
        )


def _paired(rows: list[Row]) -> None:
    """Each relay's CPU per request over ``before``'s, round by round (same load)."""
    lines = []
    for r in rows:
        before = _find(rows, "llmrelay serve (before)", r)
        if before is None or before is r or r.relay == "direct":
            continue
        ratios = sorted(
            (a / n) / (b / m)
            for (a, n), (b, m) in zip(r.rounds, before.rounds, strict=True)
            if n and m and a and b
        )
        if ratios:
            q = len(ratios) // 4
            lines.append(
                f"  {r.relay:24} {r.load:9} {r.workers:3d}: median {statistics.median(ratios):.3f}"
                f" (quartiles {ratios[q]:.3f}-{ratios[-q - 1]:.3f}, {len(ratios)} rounds)"
            )
    if lines:
        print("\n  relay CPU per request over serve (before)'s, per-round ratios (10 ms ticks):")
        print("\n".join(lines))


def _find(rows: list[Row], relay: str, like: Row) -> Row | None:
    key = (relay, like.workers, like.streams, like.load)
    return next((r for r in rows if (r.relay, r.workers, r.streams, r.load) == key), None)


def run(args: argparse.Namespace) -> list[Any]:
    import _common as c
    from client_streaming import Check

    if args.quick:  # an explicit --rounds stays
        args.runs, args.workers = 2, "1"
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    scenario = next(s for s in c.scenarios() if s.name == "local")
    rows: dict[tuple[str, int, int, str], Row] = {}
    rss: dict[tuple[str, int], float] = {}
    # raw single streams are cheap: 4x the runs, for a TTFT p50 that resolves 0.5 ms
    plan = [
        (1, "sdk", args.runs),
        (1, "raw", 4 * args.runs),
        (1, "sdk short", args.runs),
        (1, "raw short", 1),  # ``--ttft-runs`` requests in a row (one job)
        (args.c16, "raw c16", 1),
        (args.streams, "raw", 1),
    ]
    wanted = set(args.loads.split(","))
    if unknown := wanted - set(LOADS):
        raise SystemExit(f"unknown loads: {', '.join(sorted(unknown))} (known: {', '.join(LOADS)})")
    plan = [p for p, name in zip(plan, LOADS, strict=True) if name in wanted]
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "recording.json"
        short = Path(tmp) / "short.json"
        for path, tokens in ((recording, args.tokens), (short, args.ttft_tokens)):
            rec = c.record(scenario, tokens)
            path.write_text(
                json.dumps(
                    [
                        {
                            "method": ex.method,
                            "path": ex.path,
                            "status": ex.status,
                            "content_type": ex.content_type,
                            "body": ex.body.decode("latin-1"),
                        }
                        for ex in rec.routes
                    ]
                )
            )
        env = dict(os.environ)
        here = str(Path(__file__).resolve().parent)
        env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
        up = Upstream(recording, short, args.upstream, args.pace, env)
        load = LoadGenerator(env)
        relays: list[Relay] = []
        try:
            config = Path(tmp) / "config.toml"
            config.write_text(
                f'[providers.local]\nkind = "openai"\nbase_url = "{up.url}/v1"\n'
                f'models = ["fake-model", "{SHORT_MODEL}"]\napi_key = "test-key"\n'
            )
            (Path(tmp) / "byte_relay.py").write_text(BYTE_RELAY)
            relay_env = dict(env)
            relay_env.update(LLMRELAY_CONFIG=str(config), LLMRELAY_HOME=str(Path(tmp) / "home"))
            relay_env["RELAY_UPSTREAM"] = up.url
            for workers in (int(w) for w in args.workers.split(",")):
                relays = _start_relays(args, workers, tmp, config, relay_env, c.SRC)
                targets: list[tuple[str, str, Relay | None]] = [("direct", up.url, None)]
                targets += [(r.name, r.url, r) for r in relays]
                for _, url, _relay in targets:  # warm-up (connections, imports, caches)
                    asyncio.run(_sdk_stream(url, args.tokens))
                    load.run(url, args.streams, args.tokens)
                for relay in relays:
                    rss[(relay.name, workers)] = relay.rss_mib()
                for round_ in range(args.rounds):
                    shift = round_ % len(targets)
                    for name, url, relay in targets[shift:] + targets[:shift]:
                        for streams, kind, runs in plan:
                            row = rows.setdefault(
                                (name, workers, streams, kind), Row(name, workers, streams, kind)
                            )
                            row.rounds.append((0.0, 0))
                            for _ in range(runs):
                                cpu0 = relay.cpu() if relay else 0.0
                                up0 = up.cpu()
                                short = f"local:{SHORT_MODEL}"
                                if kind == "sdk":
                                    result = asyncio.run(_sdk_stream(url, args.tokens))
                                elif kind == "sdk short":
                                    result = asyncio.run(_sdk_stream(url, args.ttft_tokens, short))
                                elif kind == "raw short":
                                    result = load.run(
                                        url, 1, args.ttft_tokens, short, args.ttft_runs
                                    )
                                elif kind == "raw c16":
                                    result = load.run(
                                        url, streams, args.ttft_tokens, short, args.c16_requests
                                    )
                                else:
                                    result = load.run(url, streams, args.tokens)
                                relay_cpu = relay.cpu() - cpu0 if relay else 0.0
                                row.add(result, relay_cpu, up.cpu() - up0)
                                cpu_sum, answered = row.rounds[-1]
                                answered += result["requests"]
                                row.rounds[-1] = (cpu_sum + relay_cpu, answered)
                for relay in relays:
                    relay.close()
                relays = []
        finally:
            for relay in relays:
                relay.close()
            load.close()
            up.close()
    ordered = sorted(
        rows.values(),
        key=lambda r: (r.workers, r.streams, r.load, [t[0] for t in rows].index(r.relay)),
    )
    _print(ordered, args)
    _paired(ordered)
    print("\n  RSS after the warm-up (the relay's process tree), MiB:")
    for (name, workers), mib in rss.items():
        print(f"    {name:24} {workers} worker(s): {mib:7.1f}")
    return _checks(ordered, Check)


def _start_relays(
    args: argparse.Namespace,
    workers: int,
    tmp: str,
    config: Path,
    env: dict[str, str],
    src: Path,
) -> list[Relay]:
    relays: list[Relay] = []
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "byte_relay:app", "--app-dir", tmp]
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    relays.append(Relay("byte relay", command, env, port))
    sources: list[tuple[str, Path, list[str]]] = [
        (f"llmrelay serve ({t})", src, ["--transport", t]) for t in args.transports.split(",")
    ]
    if args.before:
        sources.insert(0, ("llmrelay serve (before)", Path(args.before), []))
    for name, path, extra in sources:
        port = _free_port()
        command = [sys.executable, "-m", "llmrelay", "serve", "--port", str(port)]
        command += ["--workers", str(workers), "--config", str(config), *extra]
        relay_env = dict(env)
        relay_env["PYTHONPATH"] = os.pathsep.join([str(path), env["PYTHONPATH"]])
        relays.append(Relay(name, command, relay_env, port))
    if args.litellm:
        relays.append(_litellm(workers, tmp, env))
    return relays


def litellm_venv() -> Path:
    """The virtualenv holding LiteLLM ``LITELLM`` (made and filled on first use).

    Under ``$XDG_CACHE_HOME`` (default ``~/.cache``) ``/llmrelay-bench/litellm-<release>``,
    never the project's own environment.
    """
    if LITELLM in ("1.82.7", "1.82.8"):
        raise RuntimeError(f"LiteLLM {LITELLM} is a compromised release")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = cache / "llmrelay-bench" / f"litellm-{LITELLM}"
    binary = venv / "bin" / "litellm"
    if not binary.exists():
        print(f"  installing LiteLLM {LITELLM} into {venv} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, f"litellm[proxy]=={LITELLM}"], check=True)
    return venv


def _litellm(workers: int, tmp: str, env: dict[str, str]) -> Relay:
    """LiteLLM's proxy in front of the same upstream, as ``local:fake-model``."""
    venv = litellm_venv()
    config = Path(tmp) / "litellm.yaml"
    models = [("local:fake-model", "fake-model"), (f"local:{SHORT_MODEL}", SHORT_MODEL)]
    lines = ["model_list:"]
    for name, model in models:
        lines += [
            f'  - model_name: "{name}"',
            "    litellm_params:",
            f'      model: "openai/{model}"',
            f'      api_base: "{env["RELAY_UPSTREAM"]}/v1"',
            '      api_key: "test-key"',
        ]
    lines += ["litellm_settings:", "  telemetry: false", "  drop_params: true"]
    config.write_text("\n".join(lines) + "\n")
    port = _free_port()
    command = [str(venv / "bin" / "litellm"), "--config", str(config), "--port", str(port)]
    command += ["--host", "127.0.0.1", "--num_workers", str(workers)]
    litellm_env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "LLMRELAY_CONFIG")}
    # no network: the model cost map from the package, no telemetry, no UI build; no
    # master key, as llmrelay serve runs without a server key (LiteLLM refuses to start
    # keyless unless told this is on purpose)
    litellm_env.update(
        LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        DISABLE_ADMIN_UI="True",
        LITELLM_LOG="ERROR",
    )
    # its start-up imports take 10-50 s on this machine
    return Relay(f"litellm {LITELLM}", command, litellm_env, port, "/health/liveliness", 180)


def _checks(rows: list[Row], check: Any) -> list[Any]:
    checks = []
    for r in rows:
        if not r.relay.startswith("llmrelay serve (") or r.relay.endswith("(before)"):
            continue
        direct = _find(rows, "direct", r)
        byte = _find(rows, "byte relay", r)
        assert direct is not None
        assert byte is not None
        tag = f"{r.relay} {r.workers} worker(s), {r.streams} stream(s) {r.load}"
        if r.streams == 1:
            added = r.ttft_ms(0.5) - direct.ttft_ms(0.5)
            checks.append(
                check(f"{tag}: added TTFT", added, TARGET_TTFT_MS, "ms", added <= TARGET_TTFT_MS)
            )
        if r.load == "raw short" and r.relay.endswith("(aiohttp)"):
            added99 = r.ttft_ms(0.99) - direct.ttft_ms(0.99)
            ok = added99 <= TARGET_TTFT_P99_MS
            checks.append(check(f"{tag}: added TTFT p99", added99, TARGET_TTFT_P99_MS, "ms", ok))
        if r.relay.endswith("(aiohttp)") and r.load in ("raw c16", "raw") and r.streams > 1:
            slow = _find(rows, "llmrelay serve (httpx)", r)
            if slow is not None:
                cpu = r.cpu_ms_per_request / slow.cpu_ms_per_request
                ok = cpu <= TARGET_CPU_PER_REQUEST
                name = f"{tag}: CPU/request (x httpx transport)"
                checks.append(check(name, cpu, TARGET_CPU_PER_REQUEST, "x", ok))
                per = r.requests_per_cpu_s / slow.requests_per_cpu_s
                ok = per >= TARGET_REQUESTS_PER_CPU
                name = f"{tag}: requests per CPU-s (x httpx transport, >=)"
                checks.append(check(name, per, TARGET_REQUESTS_PER_CPU, "x", ok))
            litellm = next((x for x in rows if x.relay.startswith("litellm") and _same(x, r)), None)
            if litellm is not None and r.load == "raw c16":
                times = r.requests_per_s / litellm.requests_per_s
                ok = times >= TARGET_VS_LITELLM
                name = f"{tag}: requests/s (x LiteLLM, >=)"
                checks.append(check(name, times, TARGET_VS_LITELLM, "x", ok))
        if r.load.endswith("short") or r.load == "raw c16":  # per-request costs
            continue
        cpu = r.per_token_us(r.relay_cpu) - byte.per_token_us(byte.relay_cpu)
        checks.append(
            check(
                f"{tag}: CPU/token over byte relay", cpu, TARGET_CPU_US, "µs", cpu <= TARGET_CPU_US
            )
        )
        if r.streams > 1:
            checks.append(
                check(
                    f"{tag}: aggregate tokens/s (>=)",
                    r.tokens_per_s,
                    TARGET_TOKENS_PER_S,
                    "tokens/s",
                    r.tokens_per_s >= TARGET_TOKENS_PER_S,
                )
            )
    return checks


def _same(a: Row, b: Row) -> bool:
    return (a.workers, a.streams, a.load) == (b.workers, b.streams, b.load)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child == "upstream":
        _upstream_main(args.recording, args.short, args.upstream, args.pace)
        return 0
    if args.child == "load":
        _load_main()
        return 0
    from client_streaming import print_checks

    checks = run(args)
    print_checks(checks)
    return 1 if args.strict and not all(k.ok for k in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
