"""Many concurrent streams to one host at a realistic pace: llmrelay on each transport.

The OpenAI-compatible provider's fake (``kind = "openai"``, the simplest wire format, so
the figures are about concurrency rather than parsing) answers ``--tokens`` tokens; the
recording is replayed by ``_replay.py`` in a child process at ``--pace`` (20 ms) per
frame, one shared timer for every stream.  Each configuration runs in a fresh child
interpreter (a clean peak RSS): ``N`` streams started together with
``AsyncClient.stream`` (one client: its shared pool, no connection limit) on each of its
transports (``--transports``: ``httpx``, the default, and ``aiohttp``, the fast one), or
with the raw loop of the same library: ``raw httpx`` (``httpx.AsyncClient`` without pool
limits) and ``raw aiohttp`` (an ``aiohttp.ClientSession``, same bytes, same line
splitting), for N = 1, 100, 1000.  ``--httpx-aiohttp`` adds llmrelay over the
``httpx-aiohttp`` package's transport (``http_client=``: the alternative to llmrelay's own
adapter, measured beside it), ``--unbounded-keepalive`` llmrelay over httpx's own pool
(httpcore's assignment pass, the one ``llmrelay._pool`` replaces).

Figures: wall (first request to last token) and its ratio to a single stream, aggregate
tokens/s, errors, peak RSS (``ru_maxrss``), and RSS per open stream = (RSS once every
stream has its first token - RSS before the first request) / N, and the client's CPU per
token (process time from the first request to the last token / tokens: at 1000 streams
the client is CPU-bound, so this is what the wall follows).
``--before SRC`` adds llmrelay from another checkout's sources on each transport
(``llmrelay <transport> (before)``, same run, rows interleaved).
Targets: issue 10's (1000 streams complete with wall <= 1.3x a single stream, zero
errors, <= 20 KiB of RSS per open stream) and issue 21's (at 1000 streams, wall <= 1.05x
raw httpx's on the httpx transport and <= 1.15x raw aiohttp's on the aiohttp one; RSS per
open stream <= 1.25x raw httpx's).  Exits 0 unless ``--strict``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import _common as c
import llmrelay

TARGET_WALL = 1.3
TARGET_RSS_KIB = 20.0
TARGET_VS_RAW = {"httpx": 1.05, "aiohttp": 1.15}
"""Wall at 1000 streams over the raw loop of the same library (issue 21)."""
TARGET_RSS_VS_RAW = 1.25


@dataclass
class Result:
    client: str
    streams: int
    wall_s: float
    tokens: int
    errors: int
    rss_open_kib: float
    peak_rss_kib: int
    ttft_p50_ms: float
    cpu_us_per_token: float


async def _child(
    spec: dict[str, Any], url: str, client: str, streams: int, keepalive: str = "default"
) -> dict[str, Any]:
    rec = c.Recording(
        c.Scenario("local", lambda: None, lambda f, n: None, c.OpenAIExtractor),
        spec["tokens"],
        [],
        [
            c.Exchange(**{**e, "request_body": e["request_body"].encode()})
            for e in spec["per_stream"]
        ],
        lambda u: {},
    )
    kwargs = _local_kwargs(url)
    if keepalive in ("httpx", "aiohttp"):  # one of llmrelay's transports
        kwargs["transport"] = keepalive
    elif keepalive == "httpx-aiohttp":  # llmrelay over httpx-aiohttp's transport
        kwargs["http_client"] = _aiohttp_httpx_client()
    elif keepalive != "default":  # llmrelay over httpx's own pool (httpcore's pass)
        kwargs["http_client"] = httpx.AsyncClient(
            trust_env=False,
            timeout=httpx.Timeout(120, connect=10),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        )
    first_tokens = 0
    all_open = asyncio.Event()
    ttfts: list[float] = []
    counts: list[int] = []
    errors = 0

    async def one(stream_iter: Any, t0: float) -> None:
        nonlocal first_tokens, errors
        n = 0
        try:
            async for _ in stream_iter:
                if n == 0:
                    ttfts.append(time.perf_counter() - t0)
                    first_tokens += 1
                    if first_tokens == streams:
                        all_open.set()
                n += 1
        except Exception as exc:
            errors += 1
            if errors == 1:
                print(f"first error: {exc!r}", file=sys.stderr)
            first_tokens += 1
            if first_tokens == streams:
                all_open.set()
        counts.append(n)

    async def relay_deltas(client_: llmrelay.AsyncClient) -> Any:
        async for event in client_.stream(c.PROMPT, model="local"):
            if type(event) is str:
                yield event

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with (
        llmrelay.AsyncClient(**kwargs) as relay,
        httpx.AsyncClient(trust_env=False, timeout=60, limits=limits) as http,
    ):
        session = c.aiohttp_session() if client == "raw-aiohttp" else None

        def source() -> Any:
            if client == "llmrelay":
                return relay_deltas(relay)
            if session is not None:
                return _raw_aiohttp_deltas(session, url, rec)
            return c.raw_deltas(http, url, rec)

        # warm-up (one stream) so both sides have imported and initialised everything
        async for _ in source():
            pass
        gc.collect()
        rss_before = c.rss_kib()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(one(source(), t0)) for _ in range(streams)]
        await all_open.wait()
        rss_open = c.rss_kib()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        if session is not None:
            await session.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "client": client,
        "streams": streams,
        "wall_s": wall,
        "tokens": sum(counts),
        "errors": sum(1 for n in counts if n != spec["tokens"]),
        "rss_open_kib": (rss_open - rss_before) / streams,
        "peak_rss_kib": peak,
        "ttft_p50_ms": statistics.median(ttfts) * 1e3 if ttfts else float("nan"),
        "cpu_us_per_token": cpu / max(1, sum(counts)) * 1e6,
    }


def floor(rec: c.Recording, per_read: list[int], rounds: int = 5) -> list[tuple[int, float, float]]:
    """Client CPU per token with no sockets: the recording's streamed answer, chunked as
    the replay sends it (one HTTP chunk per event), fed to httpx by httpcore's own mock
    network backend ``k`` chunks per read; raw httpx loop and llmrelay, best of
    ``rounds``. What is left is httpx, httpcore and h11 (the floor under both) and what
    each client adds on top of it.
    """
    import httpcore

    from _replay import Route

    route = next(r for r in rec.routes if r.content_type.startswith("text/event-stream"))
    frames = Route(route.status, route.content_type, route.body).frames
    # each answer on its own connection (the mock backend replays one answer per connection)
    head = Route(route.status, route.content_type, route.body).head
    head = head.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n")
    out = []
    for k in per_read:
        reads = [head, *(b"".join(frames[i : i + k]) for i in range(0, len(frames), k))]
        reads.append(b"0\r\n\r\n")

        def mock(client: httpx.AsyncClient, reads: list[bytes] = reads) -> httpx.AsyncClient:
            pool = client._transport._pool  # type: ignore[attr-defined]
            pool._network_backend = httpcore.AsyncMockBackend(reads)
            return client

        async def measure() -> tuple[float, float]:
            url = "http://127.0.0.1:9"
            best = {"raw": float("inf"), "llmrelay": float("inf")}
            for _ in range(rounds):
                for name in best:  # clients made and warmed outside the timed stream
                    http = mock(httpx.AsyncClient(trust_env=False))
                    relay = llmrelay.AsyncClient(**_local_kwargs(url), http_client=http)
                    n = 0
                    for _timed in (False, True):
                        t0 = time.process_time()
                        n = 0
                        if name == "raw":
                            async for _ in c.raw_deltas(http, url, rec):
                                n += 1
                        else:
                            async for event in relay.stream(c.PROMPT, model="local"):
                                n += type(event) is str
                        cpu = (time.process_time() - t0) / max(1, n) * 1e6
                    await relay.aclose()
                    await http.aclose()
                    if n != rec.tokens:
                        raise RuntimeError(f"{name}: {n} tokens of {rec.tokens}")
                    best[name] = min(best[name], cpu)
            return best["raw"], best["llmrelay"]

        raw_us, relay_us = asyncio.run(measure())
        out.append((k, raw_us, relay_us))
    return out


def _aiohttp_httpx_client() -> httpx.AsyncClient:
    """``httpx.AsyncClient`` over ``httpx_aiohttp.AiohttpTransport`` (its default connector
    caps connections at 100 when httpx's limit is ``None``: hand it a session)."""
    from httpx_aiohttp import AiohttpTransport

    return httpx.AsyncClient(
        transport=AiohttpTransport(client=c.aiohttp_session),
        trust_env=False,
        timeout=httpx.Timeout(120, connect=10),
    )


async def _raw_aiohttp_deltas(session: Any, url: str, rec: c.Recording) -> Any:
    """``_common.raw_deltas`` with aiohttp: same requests, bytes split on ``\\n`` by hand."""
    context: list[Any] = []
    for ex in rec.per_stream:
        if not ex.streamed:
            async with session.request(
                ex.method, url + ex.target, data=ex.request_body, headers=ex.request_headers
            ) as response:
                context.append(await response.json(content_type=None))
            continue
        extractor = rec.scenario.extractor(context)
        line = extractor.line
        async with session.request(
            ex.method, url + ex.target, data=ex.request_body, headers=ex.request_headers
        ) as response:
            buffer = b""
            async for chunk in response.content.iter_any():
                *lines, buffer = (buffer + chunk).split(b"\n")
                for raw in lines:
                    delta = line(raw.rstrip(b"\r"))
                    if delta:
                        yield delta
                    if extractor.done:
                        return


def _has_aiohttp() -> bool:
    import importlib.util

    return importlib.util.find_spec("aiohttp") is not None


def _local_kwargs(url: str) -> dict[str, Any]:
    from tests.contract.fake_openai_compat import OpenAICompatContractFake

    return OpenAICompatContractFake().prepare_client_kwargs(url)


def run_child(
    rec_path: Path,
    url: str,
    client: str,
    streams: int,
    keepalive: str = "default",
    src: str | None = None,
) -> Result:
    """One row in a fresh interpreter (``keepalive``: the transport, for llmrelay;
    ``src``: another checkout's llmrelay sources, ``--before``)."""
    args = [sys.executable, __file__, "--child", str(rec_path), url, client, str(streams)]
    args.append(keepalive)
    env = {**os.environ, "LLMRELAY_BENCH_SRC": src} if src else None
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"child {client} x{streams} failed:\n{out.stderr[-2000:]}")
    return Result(**json.loads(out.stdout.strip().splitlines()[-1]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tokens", type=int, default=100, help="tokens per stream")
    parser.add_argument("--pace", type=float, default=0.02, help="seconds per frame")
    parser.add_argument("--streams", default="100,1000", help="concurrency levels")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--transports",
        default="httpx,aiohttp" if _has_aiohttp() else "httpx",
        help="llmrelay's transports to run (httpx: the default; aiohttp: llmrelay[fast])",
    )
    parser.add_argument(
        "--unbounded-keepalive",
        action="store_true",
        help="also run llmrelay over httpx's own pool (httpcore's pass; http_client=)",
    )
    parser.add_argument(
        "--httpx-aiohttp",
        action="store_true",
        help="also run llmrelay over the httpx-aiohttp package's transport (http_client=)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also print client CPU per token without sockets (httpcore's mock backend, "
        "1 and 10 events per read): the httpx/httpcore/h11 floor and each client on it",
    )
    parser.add_argument(
        "--before",
        metavar="SRC",
        help="also run llmrelay from this checkout's src on each transport (rows "
        "'llmrelay <transport> (before)', interleaved with the others)",
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[Any]:
    from client_streaming import Check

    scenario = next(s for s in c.scenarios() if s.name == "local")
    rec = c.record(scenario, args.tokens)
    spec_file = Path(c.tempfile.mkstemp(suffix=".json", prefix="llmrelay-conc-")[1])
    spec_file.write_text(
        json.dumps(
            {
                "tokens": args.tokens,
                "per_stream": [
                    {
                        "method": e.method,
                        "target": e.target,
                        "request_headers": e.request_headers,
                        "request_body": e.request_body.decode(),
                        "status": e.status,
                        "content_type": e.content_type,
                    }
                    for e in rec.per_stream
                ],
            }
        )
    )
    if args.floor:
        print("\nno sockets (httpcore mock backend), CPU us/token, best of 5:")
        print(f"  {'events/read':>11} {'raw httpx':>9} {'llmrelay':>9} {'x raw':>6}")
        for k, raw_us, relay_us in floor(rec, [1, 10]):
            print(f"  {k:11d} {raw_us:9.2f} {relay_us:9.2f} {relay_us / raw_us:6.2f}")
    levels = [1, *(int(x) for x in args.streams.split(","))]
    results: list[Result] = []
    try:
        with c.ReplayServer(rec.routes, args.pace) as server:
            for streams in levels:
                clients = [("raw httpx", "raw", "default")]
                if _has_aiohttp():
                    clients.append(("raw aiohttp", "raw-aiohttp", "default"))
                for transport in args.transports.split(","):
                    clients.append((f"llmrelay {transport}", "llmrelay", transport))
                    if args.before:
                        clients.append((f"llmrelay {transport} (before)", "llmrelay", transport))
                if args.httpx_aiohttp:
                    clients.append(("llmrelay h-aio", "llmrelay", "httpx-aiohttp"))
                if args.unbounded_keepalive:
                    clients.append(("llmrelay*", "llmrelay", "none"))
                # interleaved: each level's rows in a rotating order
                shift = levels.index(streams) % len(clients)
                for label, name, keepalive in clients[shift:] + clients[:shift]:
                    src = args.before if label.endswith("(before)") else None
                    r = run_child(spec_file, server.url, name, streams, keepalive, src)
                    r.client = label
                    results.append(r)
    finally:
        spec_file.unlink(missing_ok=True)
    single = {r.client: r.wall_s for r in results if r.streams == 1}
    print(
        f"\n{args.tokens} tokens per stream at {args.pace * 1e3:g} ms/frame, one host "
        f"(replay server in a child process); each row a fresh interpreter"
    )
    print(
        f"  {'client':25} {'streams':>7} {'wall s':>7} {'x single':>8} {'tokens/s':>9} "
        f"{'errors':>6} {'TTFT p50 ms':>11} {'KiB/stream':>10} {'peak RSS MiB':>12} "
        f"{'CPU us/token':>12}"
    )
    if args.unbounded_keepalive:
        print("  (llmrelay* = llmrelay with http_client= httpx's own pool, httpcore's pass)")
    if args.httpx_aiohttp:
        print("  (llmrelay h-aio = llmrelay with http_client= httpx over httpx-aiohttp 0.2)")
    order = [label for label, _, _ in clients]
    results.sort(key=lambda r: (r.streams, order.index(r.client)))
    for r in results:
        print(
            f"  {r.client:25} {r.streams:7d} {r.wall_s:7.3f} {r.wall_s / single[r.client]:8.2f} "
            f"{r.tokens / r.wall_s:9.0f} {r.errors:6d} {r.ttft_p50_ms:11.2f} "
            f"{r.rss_open_kib if r.streams > 1 else float('nan'):10.1f} "
            f"{r.peak_rss_kib / 1024:12.1f} {r.cpu_us_per_token:12.1f}"
        )
    checks = []
    raw = {(r.client, r.streams): r for r in results}
    for r in results:
        if (
            not r.client.startswith("llmrelay ")
            or r.streams == 1
            or r.client == "llmrelay h-aio"
            or r.client.endswith("(before)")
        ):
            continue
        transport = r.client.removeprefix("llmrelay ")
        base = raw.get((f"raw {transport}", r.streams))
        if base is not None and r.streams >= 1000:
            ratio = r.wall_s / base.wall_s
            target = TARGET_VS_RAW[transport]
            name = f"{r.client} {r.streams} streams: wall over raw {transport}"
            checks.append(Check(name, ratio, target, "x raw", ratio <= target))
            rss = r.rss_open_kib / raw[("raw httpx", r.streams)].rss_open_kib
            checks.append(
                Check(
                    f"{r.client} {r.streams} streams: RSS per open stream over raw httpx",
                    rss,
                    TARGET_RSS_VS_RAW,
                    "x raw httpx",
                    rss <= TARGET_RSS_VS_RAW,
                )
            )
        ratio = r.wall_s / single[r.client]
        checks.append(
            Check(
                f"{r.client} {r.streams} streams: wall",
                ratio,
                TARGET_WALL,
                "x single",
                ratio <= TARGET_WALL,
            )
        )
        checks.append(
            Check(f"{r.client} {r.streams} streams: errors", r.errors, 0, "errors", r.errors == 0)
        )
        checks.append(
            Check(
                f"{r.client} {r.streams} streams: RSS per open stream",
                r.rss_open_kib,
                TARGET_RSS_KIB,
                "KiB",
                r.rss_open_kib <= TARGET_RSS_KIB,
            )
        )
    return checks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        rec_path, url, client, streams, keepalive = args.child
        spec = json.loads(Path(rec_path).read_text())
        print(json.dumps(asyncio.run(_child(spec, url, client, int(streams), keepalive))))
        return 0
    from client_streaming import print_checks

    checks = run(args)
    print_checks(checks)
    return 1 if args.strict and not all(k.ok for k in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
