"""Load: many concurrent streaming clients against one ``llmrelay serve`` process.

A bounded asyncio driver (no locust). It starts ``python -m llmrelay serve`` (one worker,
loopback) with the ``paced`` fake provider of ``tests/scaleout/plugin.py`` in the server
process: each stream answers ``<prompt>#0 <prompt>#1 ...`` with ``--tokens`` tokens, one
every ``--pace`` seconds, and counts started / finished / cancelled streams into a file.
Then, for ``--rounds`` rounds, ``--clients`` clients each open one streaming
``POST /v1/chat/completions`` at once over raw HTTP/1.1 sockets (the driver itself must stay
cheap on 2 vCPU), and:

* each checks its own deterministic answer token by token: a token of another client's
  prompt is *mixed*, a missing or out-of-order token is *lost*; a status other than 200,
  a malformed frame or a stream without ``[DONE]`` is an *error*;
* every ``--disconnect-every``-th client hangs up after 3 tokens; the round then waits
  (bounded) until the fake saw exactly that many cancelled streams and no stream is open;
* the server's resident memory (``/proc/<pid>/status`` VmRSS) is sampled: before the
  first round (baseline, after one warm-up request), at the peak of every round, and
  after each round.

Printed figures: peak concurrent streams (client side: connected and not finished; server
side: the fake's open streams), errors, mixed and lost tokens, cancellations seen, memory
per stream ((round-1 peak - baseline) / clients), memory after each round and after the
last one against the baseline. Exit status 1 when any error, mixed or lost token or missing
cancellation occurred.

    python benchmarks/load.py                      # 1000 clients, 10 rounds
    python benchmarks/load.py --clients 100 --rounds 3 --tokens 20

Everything stays on 127.0.0.1; every wait is bounded (``--timeout`` per round).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from tests.scaleout.workers import serve_worker  # noqa: E402

DISCONNECT_AFTER = 3


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def read_counters(path: Path) -> dict[str, int]:
    try:
        data: dict[str, int] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"started": 0, "finished": 0, "cancelled": 0}
    return data


@dataclass
class Round:
    clients: int
    ok: int = 0
    errors: int = 0
    mixed: int = 0
    lost: int = 0
    tokens: int = 0
    disconnected: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    peak_server_open: int = 0
    peak_rss_kib: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _chunks(reader: asyncio.StreamReader, chunked: bool):  # type: ignore[no-untyped-def]
    if not chunked:
        while data := await reader.read(65536):
            yield data
        return
    while True:
        size_line = await reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]


async def one_client(
    host: str,
    port: int,
    index: int,
    round_no: int,
    tokens: int,
    disconnect: bool,
    stats: Round,
) -> None:
    prompt = f"c{index}r{round_no}"
    body = json.dumps(
        {"model": "paced", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    ).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    writer: asyncio.StreamWriter | None = None
    counted = False
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        await writer.drain()
        status, headers = await _read_head(reader)
        if status != 200:
            stats.error(f"{prompt}: HTTP {status}")
            return
        stats.in_flight += 1
        counted = True
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        chunked = "chunked" in headers.get("transfer-encoding", "")
        buffer = b""
        seen = 0
        done = False
        async for data in _chunks(reader, chunked):
            buffer += data
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                if not frame.startswith(b"data: "):
                    continue
                payload = frame[6:]
                if payload == b"[DONE]":
                    done = True
                    continue
                chunk = json.loads(payload)
                if "error" in chunk:
                    stats.error(f"{prompt}: error frame {chunk['error']}")
                    return
                for choice in chunk["choices"]:
                    text = choice["delta"].get("content")
                    if not text:
                        continue
                    for token in text.split():
                        owner, _, number = token.partition("#")
                        if owner != prompt:
                            stats.mixed += 1
                        elif number != str(seen):
                            stats.lost += 1
                        seen += 1
                        stats.tokens += 1
                if disconnect and seen >= DISCONNECT_AFTER:
                    stats.disconnected += 1
                    return  # hang up: the server must cancel the upstream stream
        if not done:
            stats.error(f"{prompt}: no [DONE] after {seen} tokens")
        elif seen != tokens:
            stats.lost += abs(tokens - seen)
        else:
            stats.ok += 1
    except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
        stats.error(f"{prompt}: {type(exc).__name__}: {exc}")
    finally:
        if counted:
            stats.in_flight -= 1
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def run_round(
    host: str,
    port: int,
    pid: int,
    counters: Path,
    round_no: int,
    clients: int,
    tokens: int,
    disconnect_every: int,
    round_timeout: float,
) -> Round:
    stats = Round(clients)
    before = read_counters(counters)
    started = time.monotonic()

    async def sample() -> None:
        while True:
            c = read_counters(counters)
            server_open = c["started"] - c["finished"] - c["cancelled"]
            stats.peak_server_open = max(stats.peak_server_open, server_open)
            stats.peak_rss_kib = max(stats.peak_rss_kib, rss_kib(pid))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    try:
        async with asyncio.timeout(round_timeout):
            await asyncio.gather(
                *(
                    one_client(
                        host,
                        port,
                        i,
                        round_no,
                        tokens,
                        disconnect_every > 0 and i % disconnect_every == disconnect_every - 1,
                        stats,
                    )
                    for i in range(clients)
                )
            )
    except TimeoutError:
        stats.error(f"round {round_no} did not finish within {round_timeout}s")
    # the fake must see every stream end, the hung-up ones as cancellations (bounded wait)
    deadline = time.monotonic() + 30
    while True:
        c = read_counters(counters)
        started_now = c["started"] - before["started"]
        ended = (c["finished"] - before["finished"]) + (c["cancelled"] - before["cancelled"])
        cancelled = c["cancelled"] - before["cancelled"]
        if (started_now == clients and ended == clients) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    stats.seconds = time.monotonic() - started
    if started_now != clients or ended != clients:
        stats.error(f"fake saw {started_now} streams start and {ended} end of {clients}")
    if cancelled != stats.disconnected:
        stats.error(f"fake saw {cancelled} cancellations for {stats.disconnected} hang-ups")
    return stats


@dataclass
class Report:
    clients: int
    rounds: list[Round]
    baseline_kib: int
    after_kib: list[int]

    @property
    def failed(self) -> bool:
        return any(r.errors or r.mixed or r.lost for r in self.rounds)

    def lines(self) -> list[str]:
        first = self.rounds[0]
        per_stream = (first.peak_rss_kib - self.baseline_kib) / max(1, self.clients)
        out = [
            f"clients per round:        {self.clients} (rounds: {len(self.rounds)})",
            "peak concurrent streams:  "
            f"client side {max(r.peak_in_flight for r in self.rounds)}, "
            f"server side {max(r.peak_server_open for r in self.rounds)}",
            "  per round (client/server): "
            + ", ".join(f"{r.peak_in_flight}/{r.peak_server_open}" for r in self.rounds),
            f"completed streams:        {sum(r.ok for r in self.rounds)}",
            f"errors:                   {sum(r.errors for r in self.rounds)}",
            f"mixed tokens:             {sum(r.mixed for r in self.rounds)}",
            f"lost tokens:              {sum(r.lost for r in self.rounds)}",
            f"hang-ups / cancellations: {sum(r.disconnected for r in self.rounds)} "
            "(each seen by the fake as a cancelled upstream stream)",
            f"round seconds:            {', '.join(f'{r.seconds:.1f}' for r in self.rounds)}",
            f"tokens delivered:         {sum(r.tokens for r in self.rounds)} "
            f"({sum(r.tokens for r in self.rounds) / sum(r.seconds for r in self.rounds):.0f}"
            " per second over all streams)",
            f"server RSS baseline:      {self.baseline_kib / 1024:.1f} MiB",
            f"memory per stream:        {per_stream:.1f} KiB "
            f"(round-1 peak {first.peak_rss_kib / 1024:.1f} MiB)",
            "RSS after each round:     "
            + ", ".join(f"{kib / 1024:.1f}" for kib in self.after_kib)
            + " MiB",
            f"after the last round:     {self.after_kib[-1] / 1024:.1f} MiB "
            f"({(self.after_kib[-1] - self.baseline_kib) / 1024:+.1f} MiB on the baseline, "
            f"{(self.after_kib[-1] - self.after_kib[0]) / 1024:+.1f} MiB on round 1)",
        ]
        for r in self.rounds:
            out.extend(f"  e.g. {s}" for s in r.error_samples[:3])
        return out


async def drive(
    url: str,
    pid: int,
    counters: Path,
    *,
    clients: int,
    rounds: int,
    tokens: int,
    disconnect_every: int,
    round_timeout: float,
    progress: bool = True,
) -> Report:
    host_port = url.removeprefix("http://")
    host, _, port_text = host_port.partition(":")
    port = int(port_text)
    warm = Round(1)
    await one_client(host, port, 0, 0, tokens, False, warm)  # warm-up (imports, first paths)
    if warm.errors:
        raise RuntimeError(f"warm-up failed: {warm.error_samples}")
    await asyncio.sleep(0.5)  # let the warm-up's log lines and buffers settle
    baseline = rss_kib(pid)
    done: list[Round] = []
    after: list[int] = []
    for round_no in range(1, rounds + 1):
        stats = await run_round(
            host, port, pid, counters, round_no, clients, tokens, disconnect_every, round_timeout
        )
        done.append(stats)
        after.append(rss_kib(pid))
        if progress:
            print(
                f"round {round_no}: {stats.ok} ok, {stats.errors} errors, {stats.mixed} mixed, "
                f"{stats.lost} lost, {stats.disconnected} hung up, peak {stats.peak_in_flight} "
                f"streams, {stats.seconds:.1f}s, RSS {after[-1] / 1024:.1f} MiB",
                flush=True,
            )
    return Report(clients, done, baseline, after)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--pace", type=float, default=0.02)
    parser.add_argument("--disconnect-every", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per round")
    parser.add_argument("--redis-url", help="LLMRELAY_REDIS_URL for the server (shared state)")
    parser.add_argument(
        "--database-url", help="LLMRELAY_DATABASE_URL for the server (exchanges are counted)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llmrelay-load-") as tmp:
        counters = Path(tmp) / "counters.json"
        env = {
            "LLMRELAY_TEST_COUNTERS": str(counters),
            "LLMRELAY_TEST_TOKENS": str(args.tokens),
            "LLMRELAY_TEST_PACE": str(args.pace),
        }
        if args.redis_url:
            env["LLMRELAY_REDIS_URL"] = args.redis_url
        if args.database_url:
            env["LLMRELAY_DATABASE_URL"] = args.database_url
        with serve_worker(Path(tmp), "load", env=env) as worker:
            print(
                f"server pid {worker.pid} at {worker.url}; {args.clients} clients x "
                f"{args.rounds} rounds, {args.tokens} tokens at {args.pace * 1000:.0f} ms, "
                f"every {args.disconnect_every}th client hangs up after {DISCONNECT_AFTER}",
                flush=True,
            )
            report = asyncio.run(
                drive(
                    worker.url,
                    worker.pid,
                    counters,
                    clients=args.clients,
                    rounds=args.rounds,
                    tokens=args.tokens,
                    disconnect_every=args.disconnect_every,
                    round_timeout=args.timeout,
                )
            )
    print("\n".join(report.lines()))
    failed = report.failed
    if args.database_url:
        from llmrelay.log import ExchangeLog

        with ExchangeLog(args.database_url) as log:
            rows = log.entries(limit=None)
        streams = 1 + args.clients * args.rounds  # with the warm-up
        print(f"exchanges logged:         {len(rows)} of {streams} streams")
        failed = failed or len(rows) != streams
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
