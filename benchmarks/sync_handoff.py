"""The sync bridge's hand-off alone: one event per ``--pace`` s, async loop vs ``Bridge``.

``Client.stream`` runs the async stream on the client's loop thread and hands each event
to the calling thread (``llmrelay._portal.Bridge``). Paced, as a real model's tokens
arrive, every event is one hand-off: the consumer waits, is woken, takes the GIL, runs,
waits again. This script measures that cost without HTTP or parsing: a source that
sleeps ``--pace`` s (``asyncio.sleep``) and yields, ``--events`` times, read

* ``async``: by an ``async for`` on the portal's loop (``Portal.call``): no hand-off;
* ``bridge``: by a ``for`` over a ``Bridge`` in the main thread: one hand-off per event.

Figures per event: process CPU (both threads: ``time.process_time``), the hand-off
(``bridge`` less ``async`` of the same interpreter), and on Linux the context switches
of each thread from ``/proc/self/task/<tid>/status`` (voluntary: the thread blocked;
involuntary: it was preempted). Each variant of each source runs in a fresh interpreter,
interleaved with the others round by round (``--rounds``), so they share the machine's
noise; medians are printed. ``--before SRC`` adds another checkout's sources (e.g. the
tree before a change), run the same way. The issue-21 goal itself (sync ``Client.stream``
paced <= 1.2x the raw async loop's CPU per token) is judged by ``client_streaming.py``'s
paced rows; this script says how much of it is the hand-off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _switches(tid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/self/task/{tid}/status") as status:
            for line in status:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    key, value = line.split(":")
                    out["vol" if key.startswith("vol") else "invol"] = int(value)
    except OSError:  # not Linux
        pass
    return out


def child(variant: str, events: int, pace: float) -> dict[str, float]:
    """Run one variant in this interpreter; figures per event."""
    import asyncio
    import threading

    from llmrelay import _portal

    class Paced:
        def __init__(self) -> None:
            self.left = events

        def __aiter__(self) -> Paced:
            return self

        async def __anext__(self) -> int:
            if not self.left:
                raise StopAsyncIteration
            await asyncio.sleep(pace)
            self.left -= 1
            return self.left

        async def aclose(self) -> None:
            pass

    portal = _portal.Portal()

    async def consume() -> int:
        n = 0
        async for _ in Paced():
            n += 1
        return n

    def run() -> int:
        if variant == "async":
            return portal.call(consume())
        n = 0
        for _ in _portal.Bridge(portal, Paced()):
            n += 1
        return n

    try:
        run()  # warm
        threads = {"consumer": threading.get_native_id(), "loop": portal.thread.native_id}
        before = {name: _switches(tid) for name, tid in threads.items()}
        cpu0 = time.process_time()
        n = run()
        cpu = time.process_time() - cpu0
        after = {name: _switches(tid) for name, tid in threads.items()}
    finally:
        portal.close()
    out = {"cpu_us": cpu / n * 1e6}
    for name in threads:
        for key, value in after[name].items():
            out[f"{name}_{key}"] = (value - before[name][key]) / n
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1000, help="events per run")
    parser.add_argument("--pace", type=float, default=0.002, help="seconds between events")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--before", help="also measure this src (another checkout's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.events, args.pace)))
        return 0
    sources = [("after", str(ROOT / "src"))]
    if args.before:
        sources.insert(0, ("before", str(Path(args.before).resolve())))
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for label, src in sources:
            for variant in ("async", "bridge"):
                env = {**os.environ, "PYTHONPATH": src}
                cmd = [sys.executable, __file__, "--child", variant]
                cmd += ["--events", str(args.events), "--pace", str(args.pace)]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                runs.setdefault((label, variant), []).append(json.loads(done.stdout))
    print(
        f"sync hand-off: {args.events} events, one per {args.pace * 1e3:g} ms, "
        f"{args.rounds} interleaved rounds (medians; switches per event)"
    )
    keys = ["consumer_vol", "consumer_invol", "loop_vol", "loop_invol"]
    print(
        f"  {'source':8} {'variant':7} {'CPU µs/event':>13} {'hand-off µs':>12} "
        + " ".join(f"{k:>14}" for k in keys)
    )
    figures: dict[str, dict[str, float]] = {}
    for label, _ in sources:
        base = statistics.median(r["cpu_us"] for r in runs[(label, "async")])
        for variant in ("async", "bridge"):
            rows = runs[(label, variant)]
            med = {k: statistics.median(r.get(k, float("nan")) for r in rows) for k in rows[0]}
            handoff = med["cpu_us"] - base if variant == "bridge" else 0.0
            cells = " ".join(f"{med.get(k, float('nan')):14.2f}" for k in keys)
            print(f"  {label:8} {variant:7} {med['cpu_us']:13.1f} {handoff:12.1f} {cells}")
            figures[f"{label} {variant}"] = {**med, "handoff_us": handoff}
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
