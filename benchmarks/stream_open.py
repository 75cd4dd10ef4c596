"""The engine's own cost per stream: open, iterate and close a short chat stream.

A scripted in-process provider (registered through ``AsyncClient(providers=[...])``, no
HTTP) yields ``--tokens`` text deltas and a finish; ``AsyncClient.stream`` opens,
iterates and closes it, one stream at a time (``sequential``) and ``--concurrent``
streams at once (``concurrent``, the shape of ``concurrency.py``'s 1000 streams without
sockets). What is left is llmrelay's engine: routing, the trial loop, the open phase's
deadline, the stream's watchdog, the event bookkeeping, closing. A third figure
(``create+sse``) is ``llmrelay serve``'s use of the library: 16 workers each sending
``--streams / 16`` requests one after another through ``chat.completions.create(
stream=True, progress=True)`` with OpenAI-shaped messages, reading its ``sse()`` frames
(the request's validation, the turn, the open phase, the chunk encoder; no server).

Figures: CPU microseconds (``time.process_time``) per stream, best and median of
``--rounds`` rounds. With ``--before SRC`` each round also runs another checkout's
``src`` (e.g. the session start's), each source in its own child interpreter, the
rounds interleaved (before, after, before, ...) so both see the same machine.
Run ``python benchmarks/stream_open.py [--tokens 3] [--streams 2000] [--concurrent 1000]
[--rounds 5] [--before SRC]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("sequential", "concurrent", "create")


def _child(tokens: int, streams: int, concurrent: int) -> dict[str, float]:
    from collections.abc import AsyncGenerator

    import llmrelay
    from llmrelay.providers import Capability, Provider
    from llmrelay.types import ChatRequest, Event, FinishReason

    deltas = ["w0", *(f" w{i}" for i in range(1, tokens))]
    finish = FinishReason("stop")

    class Scripted(Provider):
        name = "scripted"
        label = "Scripted"
        capabilities = frozenset({Capability.CHAT, Capability.STREAM})
        default_model = "m"
        models = ("m",)
        endpoints = MappingProxyType({"base_url": "http://127.0.0.1:9"})

        async def stream(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
            for delta in deltas:
                yield delta
            yield finish

    async def one(client: llmrelay.AsyncClient) -> None:
        n = 0
        async with client.stream("Count for me.", model="scripted") as stream:
            async for event in stream:
                n += type(event) is str
        if n != tokens:
            raise RuntimeError(f"{n} tokens of {tokens}")

    messages = [{"role": "user", "content": "Count for me."}]

    async def served(client: llmrelay.AsyncClient) -> None:
        frames = 0
        stream = await client.chat.completions.create(
            messages=messages, model="scripted", stream=True, progress=True
        )
        async with stream:
            async for _frame in stream.sse():
                frames += 1
        if frames != tokens + 2:  # the deltas (the first with the role), the finish, [DONE]
            raise RuntimeError(f"{frames} frames for {tokens} tokens")

    async def worker(client: llmrelay.AsyncClient, n: int) -> None:
        for _ in range(n):
            await served(client)

    async def main() -> dict[str, float]:
        async with llmrelay.AsyncClient(providers=[Scripted]) as client:
            for _ in range(50):  # warm-up
                await one(client)
                await served(client)
            gc.collect()
            t0 = time.process_time()
            for _ in range(streams):
                await one(client)
            sequential = (time.process_time() - t0) / streams * 1e6
            gc.collect()
            t0 = time.process_time()
            await asyncio.gather(*(one(client) for _ in range(concurrent)))
            together = (time.process_time() - t0) / concurrent * 1e6
            gc.collect()
            each = max(1, streams // 16)
            t0 = time.process_time()
            await asyncio.gather(*(worker(client, each) for _ in range(16)))
            create = (time.process_time() - t0) / (each * 16) * 1e6
        return {"sequential": sequential, "concurrent": together, "create": create}

    return asyncio.run(main())


def run_child(src: Path, tokens: int, streams: int, concurrent: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    args = [sys.executable, __file__, "--child", str(tokens), str(streams), str(concurrent)]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tokens", type=int, default=3, help="text deltas per stream")
    parser.add_argument("--streams", type=int, default=2000, help="sequential streams per round")
    parser.add_argument("--concurrent", type=int, default=1000, help="streams at once")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", help="also measure this checkout's src (interleaved)")
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    sources = [("after", ROOT / "src")]
    if args.before:
        sources.insert(0, ("before", Path(args.before)))
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sources}
    for round_ in range(args.rounds):
        for name, src in sources[round_ % 2 :] + sources[: round_ % 2]:  # alternate the first
            results[name].append(run_child(src, args.tokens, args.streams, args.concurrent))
    print(
        f"\nCPU us per stream (open, {args.tokens} deltas + finish, close; scripted provider), "
        f"{args.rounds} rounds, best / median"
    )
    print(
        f"  {'source':8} {'sequential':>19} {f'{args.concurrent} at once':>19} "
        f"{'create+sse, 16 at once':>22}"
    )
    summary: dict[str, Any] = {}
    for name, rows in results.items():
        cells = []
        for key in KEYS:
            values = [r[key] for r in rows]
            summary[(name, key)] = min(values)
            cells.append(f"{min(values):8.1f} / {statistics.median(values):8.1f}")
        print(f"  {name:8} {cells[0]:>19} {cells[1]:>19} {cells[2]:>22}")
    if args.before:
        for key in KEYS:
            ratio = summary[("after", key)] / summary[("before", key)]
            print(f"  after/before {key}: {ratio:.2f}x (best)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
