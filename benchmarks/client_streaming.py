"""Client streaming cost per provider, beside the minimal correct raw loop of each transport.

For every provider on main that has a contract fake (``tests/contract``), the fake's
answer of ``--tokens`` tokens is recorded once (llmrelay against the live fake), then
replayed by ``_replay.py`` **in a separate process**, so ``time.process_time()`` here is
the client's own CPU (the sync ``Client``'s loop thread included).  ``replicate``,
``ai2`` and ``h2o`` carry per-request state (a prediction's stream URL, a session cookie,
a conversation id) that a byte replay cannot serve: they run against their live fake in
a child process, and their raw loop repeats the recorded requests with the state learnt
from the answers (``_common.LiveState``).  Variants, interleaved round by round so they
share machine noise:

* ``raw async`` / ``raw sync``: plain ``httpx`` repeating the requests of one warm
  llmrelay stream, bytes split on ``\\n`` by hand, ``json.loads`` + the minimal field
  access of the wire format (Gradio: diff apply; Replicate: ``output`` events' data
  lines; Ai2: the chunks' ``content``; h2o: TGI tokens): the baselines;
* ``raw aiohttp``: the same loop on an ``aiohttp.ClientSession``, the baseline of
  ``AsyncClient.stream aiohttp`` (llmrelay on its fast transport, ``transport="aiohttp"``;
  ``--transports httpx`` leaves both out);
* ``AsyncClient.stream`` and ``Client.stream``, counting ``str`` events, iterated
  directly by the timing loop as a caller would;
* ``chat.completions.create(stream=True)`` (async), counting chunks with content;
* each llmrelay variant also ``+total``: ``Timeouts(total=3600)``.

Modes: ``no delay`` (the body in one write: pure client cost; ``--tokens``, ``--runs``),
``paced`` (one frame per ``--pace`` s, default 20 ms: ``--paced-tokens``), and
``first token`` (a 3-token answer ``--ttft-runs`` times: resolves the 1 ms TTFT target).

Figures: tokens/s = tokens / stream wall time; CPU µs/token = process CPU of the stream /
tokens; TTFT = first text - request start.  Ratios are llmrelay / raw of medians.
Targets (issues 10 and 21): CPU/token <= 1.15x the raw loop of the same transport
(stream, with or without a total timeout), <= 1.3x for the OpenAI-shaped facade; TTFT
within 1 ms of raw; paced, the sync ``Client.stream`` <= 1.2x the raw *async* loop's
CPU/token.  Exits 0 unless
``--strict``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

import _common as c
import llmrelay

TARGET_STREAM = 1.15
TARGET_FACADE = 1.3
TARGET_TTFT_MS = 1.0
TARGET_SYNC_VS_ASYNC = 1.2
"""Issue 21: the sync ``Client.stream`` paced, CPU per token over the raw *async* loop
(its floor: it runs the async engine on a loop thread, plus one hand-off per batch)."""
TOTAL = 3600.0


@dataclass
class Sample:
    ttft_s: float
    wall_s: float
    cpu_s: float
    tokens: int
    text: str


@dataclass
class Row:
    variant: str
    baseline: str
    tokens_per_s: float
    cpu_us_per_token: float
    ttft_ms: float
    cpu_ratio: float = 1.0
    ttft_diff_ms: float = 0.0


@dataclass
class Check:
    """One target check, shared with compare.py."""

    name: str
    value: float
    target: float
    unit: str
    ok: bool


async def _time_async(deltas: AsyncIterator[str]) -> Sample:
    gc.collect()
    parts: list[str] = []
    first = 0.0
    c0 = time.process_time()
    t0 = time.perf_counter()
    async for delta in deltas:
        if not parts:
            first = time.perf_counter()
        parts.append(delta)
    t1 = time.perf_counter()
    c1 = time.process_time()
    return Sample(first - t0, t1 - t0, c1 - c0, len(parts), "".join(parts))


def _time_sync(deltas: Callable[[], Iterator[str]]) -> Sample:
    gc.collect()
    parts: list[str] = []
    first = 0.0
    c0 = time.process_time()
    t0 = time.perf_counter()
    for delta in deltas():
        if not parts:
            first = time.perf_counter()
        parts.append(delta)
    t1 = time.perf_counter()
    c1 = time.process_time()
    return Sample(first - t0, t1 - t0, c1 - c0, len(parts), "".join(parts))


async def _time_stream(client: llmrelay.AsyncClient, model: str) -> Sample:
    """``_time_async`` over ``AsyncClient.stream`` iterated directly, as a caller does
    (no wrapping generator: the raw loop's generator is its client, this is ours)."""
    gc.collect()
    parts: list[str] = []
    first = 0.0
    c0 = time.process_time()
    t0 = time.perf_counter()
    async for event in client.stream(c.PROMPT, model=model):
        if type(event) is str:
            if not parts:
                first = time.perf_counter()
            parts.append(event)
    t1 = time.perf_counter()
    c1 = time.process_time()
    return Sample(first - t0, t1 - t0, c1 - c0, len(parts), "".join(parts))


async def _time_facade(client: llmrelay.AsyncClient, model: str) -> Sample:
    """``_time_async`` over ``chat.completions.create(stream=True)``'s chunks, directly."""
    gc.collect()
    parts: list[str] = []
    first = 0.0
    c0 = time.process_time()
    t0 = time.perf_counter()
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": c.PROMPT}], stream=True
    )
    async with stream:
        async for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    if not parts:
                        first = time.perf_counter()
                    parts.append(content)
    t1 = time.perf_counter()
    c1 = time.process_time()
    return Sample(first - t0, t1 - t0, c1 - c0, len(parts), "".join(parts))


def _time_sync_stream(client: llmrelay.Client, model: str) -> Sample:
    """``_time_sync`` over ``Client.stream`` iterated directly, as a caller does."""
    gc.collect()
    parts: list[str] = []
    first = 0.0
    c0 = time.process_time()
    t0 = time.perf_counter()
    for event in client.stream(c.PROMPT, model=model):
        if type(event) is str:
            if not parts:
                first = time.perf_counter()
            parts.append(event)
    t1 = time.perf_counter()
    c1 = time.process_time()
    return Sample(first - t0, t1 - t0, c1 - c0, len(parts), "".join(parts))


VARIANTS = (
    ("raw async", "raw async"),
    ("AsyncClient.stream", "raw async"),
    ("AsyncClient.stream +total", "raw async"),
    ("raw sync", "raw sync"),
    ("Client.stream", "raw sync"),
    ("Client.stream +total", "raw sync"),
    ("completions.create", "raw async"),
    ("completions.create +total", "raw async"),
)
FAST_VARIANTS = (
    ("raw aiohttp", "raw aiohttp"),
    ("AsyncClient.stream aiohttp", "raw aiohttp"),
)
"""The fast transport's rows (``--transports ...,aiohttp``)."""


def variants(transports: str, only: str | None = None) -> tuple[tuple[str, str], ...]:
    """The (variant, baseline) pairs measured for ``--transports`` (``only``: a
    comma-separated subset of the variants; their baselines are kept)."""
    pairs = VARIANTS + (FAST_VARIANTS if "aiohttp" in transports.split(",") else ())
    if only is None:
        return pairs
    chosen = set(only.split(","))
    unknown = chosen - {name for name, _ in pairs}
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(sorted(unknown))}")
    keep = chosen | {base for name, base in pairs if name in chosen}
    return tuple((name, base) for name, base in pairs if name in keep)


class Rounds:
    """The variants of ``pairs`` over ``url`` (serving ``rec``'s scenario), one round at a
    time: ``round()`` runs each variant once, in order, and returns its samples."""

    def __init__(
        self, rec: c.Recording, url: str, pairs: tuple[tuple[str, str], ...] = VARIANTS
    ) -> None:
        kwargs = rec.client_kwargs(url)
        model = rec.scenario.model_name
        self.names = [name for name, _ in pairs]
        timeouts = llmrelay.Timeouts(total=TOTAL)
        self.runner = runner = asyncio.Runner()
        self.loop_clients = loop_clients = {}

        async def make() -> None:
            loop_clients["http"] = httpx.AsyncClient(trust_env=False, timeout=60)
            loop_clients["plain"] = llmrelay.AsyncClient(**kwargs)
            loop_clients["total"] = llmrelay.AsyncClient(**kwargs, timeouts=timeouts)
            if "raw aiohttp" in self.names:
                loop_clients["session"] = c.aiohttp_session()
                loop_clients["fast"] = llmrelay.AsyncClient(**kwargs, transport="aiohttp")

        runner.run(make())
        self.http_sync = http_sync = httpx.Client(trust_env=False, timeout=60)
        self.sync_plain = sync_plain = llmrelay.Client(**kwargs)
        self.sync_total = sync_total = llmrelay.Client(**kwargs, timeouts=timeouts)
        self.actions: dict[str, Callable[[], Sample]] = {
            "raw async": lambda: runner.run(
                _time_async(c.raw_deltas(loop_clients["http"], url, rec))
            ),
            "AsyncClient.stream": lambda: runner.run(_time_stream(loop_clients["plain"], model)),
            "AsyncClient.stream +total": lambda: runner.run(
                _time_stream(loop_clients["total"], model)
            ),
            "raw sync": lambda: _time_sync(lambda: c.raw_deltas_sync(http_sync, url, rec)),
            "Client.stream": lambda: _time_sync_stream(sync_plain, model),
            "Client.stream +total": lambda: _time_sync_stream(sync_total, model),
            "completions.create": lambda: runner.run(_time_facade(loop_clients["plain"], model)),
            "completions.create +total": lambda: runner.run(
                _time_facade(loop_clients["total"], model)
            ),
            "raw aiohttp": lambda: runner.run(
                _time_async(c.raw_deltas_aiohttp(loop_clients["session"], url, rec))
            ),
            "AsyncClient.stream aiohttp": lambda: runner.run(
                _time_stream(loop_clients["fast"], model)
            ),
        }

    def round(self) -> dict[str, Sample]:
        return {name: self.actions[name]() for name in self.names}

    def close(self) -> None:
        self.sync_plain.close()
        self.sync_total.close()
        self.http_sync.close()
        loop_clients = self.loop_clients

        async def close() -> None:
            for name, client in loop_clients.items():
                await (client.close() if name == "session" else client.aclose())

        self.runner.run(close())
        self.runner.close()


def _same_text(scenario: str, *sample_sets: dict[str, list[Sample]]) -> None:
    texts = {s.text for samples in sample_sets for runs_ in samples.values() for s in runs_}
    if len(texts) != 1:
        raise AssertionError(f"{scenario}: the variants saw different texts")


def measure(
    rec: c.Recording, url: str, runs: int, pairs: tuple[tuple[str, str], ...] = VARIANTS
) -> dict[str, list[Sample]]:
    """Warm each variant once, then ``runs`` interleaved rounds.

    ``url`` serves ``rec``'s scenario: its replay, or for a live scenario its live fake.
    Every variant must see the same text (the raw loops' included).
    """
    rounds = Rounds(rec, url, pairs)
    samples: dict[str, list[Sample]] = {name: [] for name in rounds.names}
    try:
        rounds.round()
        for _ in range(runs):
            for name, sample in rounds.round().items():
                samples[name].append(sample)
    finally:
        rounds.close()
    _same_text(rec.scenario.name, samples)
    return samples


class Worker:
    """``Rounds`` in a child process on another checkout's sources (``--before``).

    The child (this script with ``--worker``, ``LLMRELAY_BENCH_SRC=src``) builds its
    clients against ``url``, warms each variant once, then runs one round per line read
    from its stdin and answers the samples as one JSON line; the parent interleaves two
    of them (before, after) round by round, so both share the machine's noise.
    """

    def __init__(
        self, src: Path, rec: c.Recording, url: str, pairs: tuple[tuple[str, str], ...]
    ) -> None:
        spec = {
            "scenario": rec.scenario.name,
            "tokens": rec.tokens,
            "url": url,
            "pairs": pairs,
            "per_stream": [
                {**asdict(ex), "request_body": ex.request_body.decode("latin-1"), "body": ""}
                for ex in rec.per_stream
            ],
        }
        env = {**os.environ, "LLMRELAY_BENCH_SRC": str(src)}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.round()  # the warm-up round

    def round(self) -> dict[str, Sample]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark worker exited")
        return {name: Sample(**sample) for name, sample in json.loads(line).items()}

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _worker() -> None:
    """The child side of ``Worker``: a spec line, then one round per ``round`` line."""
    spec = json.loads(sys.stdin.readline())
    everything = {s.name: s for s in [*c.scenarios(), *c.live_scenarios()]}
    scenario = everything[spec["scenario"]]
    per_stream = [
        c.Exchange(**{**ex, "request_body": ex["request_body"].encode("latin-1"), "body": b""})
        for ex in spec["per_stream"]
    ]
    rec = c.Recording(
        scenario, spec["tokens"], [], per_stream, scenario.make_fake().prepare_client_kwargs
    )
    rounds = Rounds(rec, spec["url"], tuple((a, b) for a, b in spec["pairs"]))
    try:
        for _ in sys.stdin:
            answer = {name: asdict(sample) for name, sample in rounds.round().items()}
            print(json.dumps(answer), flush=True)
    finally:
        rounds.close()


def measure_before_after(
    rec: c.Recording,
    url: str,
    runs: int,
    pairs: tuple[tuple[str, str], ...],
    before: Path,
) -> tuple[dict[str, list[Sample]], dict[str, list[Sample]]]:
    """``measure`` in two workers, this checkout's sources and ``before``, interleaved
    round by round (the order alternating); returns (after, before) samples."""
    workers = {}
    try:
        workers["after"] = Worker(c.SRC, rec, url, pairs)
        workers["before"] = Worker(before, rec, url, pairs)
        samples: dict[str, dict[str, list[Sample]]] = {
            side: {name: [] for name, _ in pairs} for side in workers
        }
        for i in range(runs):
            for side in ("after", "before") if i % 2 == 0 else ("before", "after"):
                for name, sample in workers[side].round().items():
                    samples[side][name].append(sample)
    finally:
        for worker in workers.values():
            worker.close()
    _same_text(rec.scenario.name, samples["after"], samples["before"])
    return samples["after"], samples["before"]


def summarize(
    samples: dict[str, list[Sample]], pairs: tuple[tuple[str, str], ...] = VARIANTS
) -> list[Row]:
    med: dict[str, Row] = {}
    for name, baseline in pairs:
        if name not in samples:
            continue
        runs = samples[name]
        tokens = runs[0].tokens
        med[name] = Row(
            name,
            baseline,
            statistics.median(s.tokens / s.wall_s for s in runs),
            statistics.median(s.cpu_s / s.tokens * 1e6 for s in runs),
            statistics.median(s.ttft_s * 1e3 for s in runs),
        )
        assert tokens > 0
    for row in med.values():
        base = med[row.baseline]
        row.cpu_ratio = row.cpu_us_per_token / base.cpu_us_per_token
        row.ttft_diff_ms = row.ttft_ms - base.ttft_ms
    return list(med.values())


def print_rows(title: str, rows: list[Row], *, per_token: bool = True) -> None:
    print(f"\n{title}")
    print(
        f"  {'variant':27} {'tokens/s':>10} {'CPU µs/tok':>11} {'x raw':>6} "
        f"{'TTFT ms':>8} {'Δ ms':>7}"
    )
    for r in rows:
        tps = f"{r.tokens_per_s:10.0f}" if per_token else f"{'':>10}"
        cpu = f"{r.cpu_us_per_token:11.2f} {r.cpu_ratio:6.2f}" if per_token else f"{'':>18}"
        print(f"  {r.variant:27} {tps} {cpu} {r.ttft_ms:8.3f} {r.ttft_diff_ms:+7.3f}")
    if per_token:
        for variant, ratio in sync_vs_async(rows).items():
            print(f"  {variant} CPU/token x raw async: {ratio:.2f}")


def sync_vs_async(rows: list[Row]) -> dict[str, float]:
    """CPU per token of each ``Client.stream`` row over the raw async row's."""
    base = next((r for r in rows if r.variant == "raw async"), None)
    if base is None:
        return {}
    return {
        r.variant: r.cpu_us_per_token / base.cpu_us_per_token
        for r in rows
        if r.variant.startswith("Client.stream")
    }


def checks_for(provider: str, mode: str, rows: list[Row], *, cpu: bool, ttft: bool) -> list[Check]:
    out = []
    if cpu and mode.startswith("paced"):
        for variant, ratio in sync_vs_async(rows).items():
            out.append(
                Check(
                    f"client {provider} {mode}: {variant} CPU/token vs raw async",
                    ratio,
                    TARGET_SYNC_VS_ASYNC,
                    "x raw async",
                    ratio <= TARGET_SYNC_VS_ASYNC,
                )
            )
    for r in rows:
        if r.variant.startswith("raw"):
            continue
        if cpu:
            target = TARGET_FACADE if r.variant.startswith("completions") else TARGET_STREAM
            out.append(
                Check(
                    f"client {provider} {mode}: {r.variant} CPU/token",
                    r.cpu_ratio,
                    target,
                    "x raw",
                    r.cpu_ratio <= target,
                )
            )
        if ttft:
            out.append(
                Check(
                    f"client {provider} {mode}: {r.variant} TTFT",
                    r.ttft_diff_ms,
                    TARGET_TTFT_MS,
                    "ms over raw",
                    r.ttft_diff_ms <= TARGET_TTFT_MS,
                )
            )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tokens", type=int, default=1000, help="tokens, no-delay mode")
    parser.add_argument("--runs", type=int, default=5, help="rounds, no-delay mode")
    parser.add_argument("--paced-tokens", type=int, default=60, help="tokens, paced mode")
    parser.add_argument("--paced-runs", type=int, default=2, help="rounds, paced mode")
    parser.add_argument("--pace", type=float, default=0.02, help="seconds per frame, paced")
    parser.add_argument("--ttft-runs", type=int, default=15, help="rounds, first-token mode")
    parser.add_argument(
        "--live-ttft-runs", type=int, default=9, help="rounds, first-token mode, live fakes"
    )
    parser.add_argument("--providers", help="comma-separated subset")
    parser.add_argument(
        "--transports",
        default="httpx,aiohttp" if importlib.util.find_spec("aiohttp") else "httpx",
        help="llmrelay's transports (aiohttp adds its rows beside a raw aiohttp loop)",
    )
    parser.add_argument(
        "--variants",
        help="comma-separated subset of the variants (their raw baselines are kept), e.g. "
        "'AsyncClient.stream aiohttp'",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="also measure this checkout's src (e.g. the session start's), each side in "
        "its own worker process, interleaved round by round",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[Check]:
    chosen = set(args.providers.split(",")) if args.providers else None
    pairs = variants(args.transports, args.variants)
    checks: list[Check] = []
    figures: dict[str, Any] = {}
    for scenario in c.scenarios():
        if chosen is not None and scenario.name not in chosen:
            continue
        modes = (
            ("no delay", args.tokens, args.runs, 0.0, True, False),
            (
                f"paced {args.pace * 1e3:g} ms",
                args.paced_tokens,
                args.paced_runs,
                args.pace,
                True,
                False,
            ),
            ("first token", 3, args.ttft_runs, 0.0, False, True),
        )
        for mode, tokens, runs, pace, cpu, ttft in modes:
            if runs < 1:
                continue
            rec = c.record(scenario, tokens)
            title = f"{scenario.name}, {mode}: {tokens} tokens x {runs} rounds (median)"
            with c.ReplayServer(rec.routes, pace) as server:
                rows = _measure_rows(args, rec, server.url, runs, pairs, title, cpu)
            checks += checks_for(scenario.name, mode, rows, cpu=cpu, ttft=ttft)
            figures[f"{scenario.name} / {mode}"] = [asdict(r) for r in rows]
    for scenario in c.live_scenarios():
        if chosen is not None and scenario.name not in chosen:
            continue
        for mode, tokens, runs, cpu, ttft in (
            ("no delay", args.tokens, args.runs, True, False),
            ("first token", 3, args.live_ttft_runs, False, True),
        ):
            if runs < 1:
                continue
            rec = c.record(scenario, tokens)  # the requests the raw loop repeats
            title = (
                f"{scenario.name}, {mode}, live fake in a child process: {tokens} tokens x "
                f"{runs} rounds (median)"
            )
            with c.LiveFakeServer(scenario, tokens) as server:
                rows = _measure_rows(args, rec, server.url, runs, pairs, title, cpu)
            checks += checks_for(scenario.name, f"live {mode}", rows, cpu=cpu, ttft=ttft)
            figures[f"{scenario.name} / live {mode}"] = [asdict(r) for r in rows]
    if args.json:
        print(json.dumps(figures, indent=2))
    return checks


def _measure_rows(
    args: argparse.Namespace,
    rec: c.Recording,
    url: str,
    runs: int,
    pairs: tuple[tuple[str, str], ...],
    title: str,
    cpu: bool,
) -> list[Row]:
    """Measure, print the rows (with ``--before``: both sides and their comparison) and
    return this checkout's rows."""
    if args.before is None:
        rows = summarize(measure(rec, url, runs, pairs), pairs)
        print_rows(title, rows, per_token=cpu)
        return rows
    after, before = measure_before_after(rec, url, runs, pairs, args.before)
    rows, old = summarize(after, pairs), summarize(before, pairs)
    print_rows(f"{title}; this checkout", rows, per_token=cpu)
    print_rows(f"{title}; before ({args.before})", old, per_token=cpu)
    print("  before -> after (CPU µs/token, x its raw; TTFT ms)")
    for new, was in zip(rows, old, strict=True):
        if new.variant.startswith("raw"):
            continue
        print(
            f"  {new.variant:27} {was.cpu_us_per_token:7.2f} -> {new.cpu_us_per_token:7.2f} "
            f"({was.cpu_ratio:.2f}x -> {new.cpu_ratio:.2f}x; "
            f"{new.cpu_us_per_token / was.cpu_us_per_token:.2f} of before)  "
            f"TTFT {was.ttft_ms:.3f} -> {new.ttft_ms:.3f}"
        )
    return rows


def print_checks(checks: list[Check]) -> None:
    print("\nTargets")
    for k in checks:
        sign = ">=" if ">=)" in k.name else "<="
        print(f"  {k.name:70} {k.value:8.3f} {k.unit:12} {sign} {k.target:g}: {c.verdict(k.ok)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"llmrelay {llmrelay.__version__}, httpx {httpx.__version__}, Python "
        f"{sys.version.split()[0]}; replay server in a child process (client CPU only)"
    )
    checks = run(args)
    print_checks(checks)
    return 1 if args.strict and not all(k.ok for k in checks) else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _worker()
    else:
        sys.exit(main())
