"""The server relay: the real ``openai`` SDK -> ``llmrelay serve`` -> a fake provider.

The OpenAI-compatible fake's answer of ``--tokens`` tokens is recorded and replayed by
``_replay.py`` (child process, no delay unless ``--pace``).  In front of it, in turn:

* **direct**: no relay (the SDK talks to the replay server): the baseline TTFT;
* **byte relay**: a minimal Starlette app (``uvicorn``, same worker count) that forwards
  ``POST /v1/chat/completions`` with httpx and streams the upstream bytes back untouched:
  the baseline relay;
* **llmrelay serve**: ``python -m llmrelay serve --workers W`` with a ``kind = "openai"``
  provider in a temporary config file.

For 1 stream (``--runs`` times) and ``--streams`` concurrent streams, with 1 and 2 workers:
added TTFT (p50 over direct), TTFT p50/p99, aggregate tokens/s (all tokens / wall), and
the relay's CPU per token (utime + stime of the server process and its workers from
``/proc``, divided by the tokens relayed).  The SDK client runs in this process; with
100 streams it is itself a bottleneck (the ``openai`` SDK parses about 11k tokens/s on
this machine), which caps the aggregate figures of every relay alike.
Targets (issue 10): >= 30k tokens/s aggregate over 100 streams, <= 3 ms added TTFT,
<= 20 µs CPU per token added (llmrelay's CPU/token minus the byte relay's).
Exits 0 unless ``--strict``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

import _common as c
from client_streaming import Check, print_checks

TARGET_TOKENS_PER_S = 30_000
TARGET_TTFT_MS = 3.0
TARGET_CPU_US = 20.0
MODEL = "local:fake-model"

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


class Relay:
    """A relay server in a child process; ``url`` once ``/health`` answers."""

    def __init__(self, args: list[str], env: dict[str, str], port: int) -> None:
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.close()
        raise RuntimeError(f"relay did not start: {args[:6]}")

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Figures:
    relay: str
    workers: int
    streams: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    tokens_per_s: float
    cpu_us_per_token: float
    errors: int


async def _load(base_url: str, streams: int, tokens: int) -> tuple[list[float], int, float, int]:
    """``streams`` concurrent SDK streams: (TTFTs, tokens, wall, errors)."""
    client = openai.AsyncOpenAI(
        base_url=f"{base_url}/v1",
        api_key="test-key",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
        ),
    )
    ttfts: list[float] = []
    counts: list[int] = []

    async def one() -> None:
        t0 = time.perf_counter()
        n = 0
        try:
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": c.PROMPT}],
                stream=True,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    if n == 0:
                        ttfts.append(time.perf_counter() - t0)
                    n += 1
        except openai.OpenAIError:
            pass
        counts.append(n)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(streams)))
    wall = time.perf_counter() - t0
    await client.close()
    return ttfts, sum(counts), wall, sum(1 for n in counts if n != tokens)


CONTENT = re.compile(rb'"content":\s*"[^"]')


async def _load_raw(
    base_url: str, streams: int, tokens: int
) -> tuple[list[float], int, float, int]:
    """``_load`` with a byte-counting httpx client (a load generator cheaper than the SDK)."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    body = {"model": MODEL, "messages": [{"role": "user", "content": c.PROMPT}], "stream": True}
    ttfts: list[float] = []
    counts: list[int] = []
    async with httpx.AsyncClient(trust_env=False, timeout=120, limits=limits) as http:

        async def one() -> None:
            t0 = time.perf_counter()
            n = 0
            async with http.stream(
                "POST",
                f"{base_url}/v1/chat/completions",
                json=body,
                headers={"authorization": "Bearer test-key"},
            ) as response:
                buffer = b""
                async for chunk in response.aiter_bytes():
                    *lines, buffer = (buffer + chunk).split(b"\n")
                    for line in lines:
                        if CONTENT.search(line):
                            if n == 0:
                                ttfts.append(time.perf_counter() - t0)
                            n += 1
            counts.append(n)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(streams)))
        wall = time.perf_counter() - t0
    return ttfts, sum(counts), wall, sum(1 for n in counts if n != tokens)


def measure(
    name: str,
    url: str,
    relay: Relay | None,
    workers: int,
    streams: int,
    runs: int,
    tokens: int,
    load: str = "sdk",
) -> Figures:
    loader = _load if load == "sdk" else _load_raw
    asyncio.run(loader(url, 1, tokens))  # warm-up
    ttfts: list[float] = []
    total_tokens = 0
    wall = 0.0
    errors = 0
    cpu0 = relay.cpu() if relay else 0.0
    for _ in range(runs):
        t, n, w, e = asyncio.run(loader(url, streams, tokens))
        ttfts += t
        total_tokens += n
        wall += w
        errors += e
    cpu = (relay.cpu() - cpu0) if relay else float("nan")
    ttfts.sort()
    return Figures(
        f"{name} ({load})",
        workers,
        streams,
        statistics.median(ttfts) * 1e3 if ttfts else float("nan"),
        ttfts[min(len(ttfts) - 1, int(len(ttfts) * 0.99))] * 1e3 if ttfts else float("nan"),
        total_tokens / wall if wall else 0.0,
        cpu / total_tokens * 1e6 if total_tokens else float("nan"),
        errors,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tokens", type=int, default=200, help="tokens per stream")
    parser.add_argument("--streams", type=int, default=100, help="concurrent streams")
    parser.add_argument("--runs", type=int, default=9, help="runs of the single stream")
    parser.add_argument("--workers", default="1,2", help="worker counts")
    parser.add_argument("--pace", type=float, default=0.0, help="seconds per upstream frame")
    parser.add_argument("--quick", action="store_true", help="fewer runs, 1 worker")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[Check]:
    if args.quick:
        args.runs, args.workers = 3, "1"
    scenario = next(s for s in c.scenarios() if s.name == "local")
    rec = c.record(scenario, args.tokens)
    rows: list[Figures] = []
    with tempfile.TemporaryDirectory() as tmp, c.ReplayServer(rec.routes, args.pace) as up:
        config = Path(tmp) / "config.toml"
        config.write_text(
            f'[providers.local]\nkind = "openai"\nbase_url = "{up.url}/v1"\n'
            'models = ["fake-model"]\napi_key = "test-key"\n'
        )
        (Path(tmp) / "byte_relay.py").write_text(BYTE_RELAY)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(c.SRC), *filter(None, [env.get("PYTHONPATH")])])
        env.update(LLMRELAY_CONFIG=str(config), LLMRELAY_HOME=str(Path(tmp) / "home"))
        env["RELAY_UPSTREAM"] = up.url
        plan = ((1, args.runs, "sdk"), (args.streams, 1, "sdk"), (args.streams, 1, "raw"))
        for streams, runs, load in plan:
            rows.append(measure("direct", up.url, None, 0, streams, runs, args.tokens, load))
        for workers in (int(w) for w in args.workers.split(",")):
            for name in ("byte relay", "llmrelay serve"):
                port = _free_port()
                if name == "byte relay":
                    command = [sys.executable, "-m", "uvicorn", "byte_relay:app"]
                    command += ["--app-dir", tmp, "--port", str(port)]
                    command += ["--workers", str(workers), "--log-level", "warning"]
                else:
                    command = [sys.executable, "-m", "llmrelay", "serve", "--port", str(port)]
                    command += ["--workers", str(workers), "--config", str(config)]
                relay = Relay(command, env, port)
                try:
                    for streams, runs, load in plan:
                        rows.append(
                            measure(
                                name, relay.url, relay, workers, streams, runs, args.tokens, load
                            )
                        )
                finally:
                    relay.close()
    direct = {(r.streams, r.relay.split()[-1]): r for r in rows if r.relay.startswith("direct")}
    print(
        f"\nopenai SDK -> relay -> replayed OpenAI-compatible fake, {args.tokens} tokens/stream, "
        f"pace {args.pace * 1e3:g} ms"
    )
    print(
        f"  {'relay (load)':21} {'workers':>7} {'streams':>7} {'TTFT p50':>9} {'+direct':>8} "
        f"{'p99':>8} {'tokens/s':>9} {'relay CPU µs/tok':>16} {'errors':>6}"
    )
    for r in rows:
        added = r.ttft_p50_ms - direct[(r.streams, r.relay.split()[-1])].ttft_p50_ms
        print(
            f"  {r.relay:21} {r.workers:7d} {r.streams:7d} {r.ttft_p50_ms:9.2f} {added:+8.2f} "
            f"{r.ttft_p99_ms:8.2f} {r.tokens_per_s:9.0f} {r.cpu_us_per_token:16.2f} {r.errors:6d}"
        )
    checks = []
    for r in rows:
        if not r.relay.startswith("llmrelay serve"):
            continue
        load = r.relay.split()[-1]
        base = next(
            b
            for b in rows
            if b.relay == f"byte relay {load}" and b.workers == r.workers and b.streams == r.streams
        )
        tag = f"server {r.workers} worker(s), {r.streams} stream(s) {load}"
        added = r.ttft_p50_ms - direct[(r.streams, load)].ttft_p50_ms
        if r.streams == 1:
            checks.append(
                Check(f"{tag}: added TTFT", added, TARGET_TTFT_MS, "ms", added <= TARGET_TTFT_MS)
            )
        cpu = r.cpu_us_per_token - base.cpu_us_per_token
        checks.append(
            Check(
                f"{tag}: CPU/token over byte relay", cpu, TARGET_CPU_US, "µs", cpu <= TARGET_CPU_US
            )
        )
        if r.streams > 1 and load == "(raw)":
            checks.append(
                Check(
                    f"{tag}: aggregate tokens/s (>=)",
                    r.tokens_per_s,
                    TARGET_TOKENS_PER_S,
                    "tokens/s",
                    r.tokens_per_s >= TARGET_TOKENS_PER_S,
                )
            )
    return checks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checks = run(args)
    print_checks(checks)
    return 1 if args.strict and not all(k.ok for k in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
