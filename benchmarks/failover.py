"""The failoverbench grid: sixteen scenarios x verdict, for llmrelay as a server and a library.

llmrelay is put in front of the project's own fault wall (``tests/fakes/fault_wall.py``,
written from failoverbench's public catalogue and methodology) the way failoverbench runs
a gateway: an OpenAI-compatible primary and fallback and an alias chain per scenario
(``tests/failover/harness.py``), every call scored from the caller's result and the
wall's attempt log: ``pass`` / ``partial`` / ``safe`` / ``fail``.

Rows: ``server`` (``llmrelay serve`` on loopback, read by a careful OpenAI SSE client)
and ``library`` (``AsyncClient.stream``), each with llmrelay's **defaults** and with
timeouts **tuned** for the benchmark (the methodology's baseline: a 30 s request
timeout; here first token 30 s, silence 5 s, stall 5 s; retries and cool-down left at
their defaults). ``--profile full`` uses the catalogue's timings (20 s first token, 30 s
stall, 120 s silence, 60 s outage, 15 ms between tokens: about 12 minutes for the four
rows); ``--profile short`` (the tests' timings, a minute) scales the client timeouts
down with them.

The same-run baseline: rows ``server-off`` and ``library-off`` run the same wall with
the failover work of issue 19 switched off where a setting allows it -- no
same-candidate retry (``retries=0``), no rescue (``rescue=False``), no silence or stall
bound (``silence=None, stall=None``: first token and read timeouts only, as before),
and ``strict=True`` (an unparsable event ends the stream) -- with the defaults'
timeouts. What has no switch stays on in them: the half-open probe (S15) and the
context-length move to the next candidate (S12). The printed ``gain`` column is the
verdict that changed between ``library-defaults`` and ``library-off``.

Usage::

    python benchmarks/failover.py [--profile full|short] [--rows server-defaults,...]
        [--only S06,S09] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for entry in (str(ROOT / "src"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from tests.failover.harness import (  # noqa: E402
    IDS,
    Library,
    Result,
    Server,
    System,
    config_file,
    grid,
    run_scenario,
)
from tests.fakes.fault_wall import FULL, SHORT, fault_wall  # noqa: E402

import llmrelay  # noqa: E402

ROWS = (
    "server-off",
    "server-defaults",
    "server-tuned",
    "library-off",
    "library-defaults",
    "library-tuned",
)
OFF: dict[str, object] = {"retries": 0, "rescue": False, "strict": True}
"""The baseline rows' switches (besides ``silence=None, stall=None``)."""


def client_kwargs(row: str, profile: str) -> dict[str, object]:
    """The llmrelay arguments of a row (defaults: none)."""
    if row.endswith("off"):
        first = 5 if profile == "short" else 120  # the default first-token bound
        timeouts = llmrelay.Timeouts(first_token=first, silence=None, stall=None)
        return {"timeouts": timeouts, **OFF}
    if row.endswith("defaults"):
        if profile == "short":  # the defaults scaled to the short wall (x 1/24)
            return {"timeouts": llmrelay.Timeouts(first_token=5, silence=0.4, stall=1.25)}
        return {}
    if profile == "short":
        return {"timeouts": llmrelay.Timeouts(first_token=3, silence=0.25, stall=0.25)}
    return {"timeouts": llmrelay.Timeouts(first_token=30, silence=5, stall=5)}


async def run_row(row: str, profile: str, only: list[str], verbose: bool) -> list[Result]:
    timing = FULL if profile == "full" else SHORT
    sequence = (20, 4.0) if profile == "full" else (12, 0.25)
    results: list[Result] = []
    with fault_wall(timing) as wall, tempfile.TemporaryDirectory() as tmp:
        config = config_file(Path(tmp), wall)
        kind = Server if row.startswith("server") else Library
        system: System = kind(config, **client_kwargs(row, profile))
        try:
            for sid in IDS:
                if only and sid not in only:
                    continue
                result = await run_scenario(system, wall, sid, sequence=sequence)
                results.append(result)
                if verbose:
                    print(f"  {row:<17} {result.line()}", flush=True)
        finally:
            await system.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=("full", "short"), default="full")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--only", default="", help="scenario ids, e.g. S06,S09")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.getLogger("llmrelay").setLevel(logging.INFO if args.verbose else logging.ERROR)
    only = [s.strip().upper() for s in args.only.split(",") if s.strip()]
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    started = time.monotonic()
    done: dict[str, list[Result]] = {}
    for row in rows:
        print(f"{row} ({args.profile} profile) ...", flush=True)
        done[row] = asyncio.run(run_row(row, args.profile, only, args.verbose))
    print()
    print(grid(done) if not only else "\n".join(r.line() for rs in done.values() for r in rs))
    before, after = done.get("library-off"), done.get("library-defaults")
    if before and after:
        changed = [
            f"{b.sid} {b.verdict}->{a.verdict}"
            for b, a in zip(before, after, strict=True)
            if b.verdict != a.verdict
        ]
        print("gain (library, off -> defaults): " + (", ".join(changed) or "none"))
    print()
    for row, results in done.items():
        for result in results:
            if result.verdict != "pass":
                print(f"{row}: {result.line()}")
    print(f"\n{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
