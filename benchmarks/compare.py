"""Run every benchmark and print each ratio against issue 10's targets (PASS/FAIL).

``python benchmarks/compare.py [--quick] [--only client,concurrency,startup,server]
[--strict]``: runs ``client_streaming.py``, ``concurrency.py``, ``startup.py`` and, when
the server is on main, ``server_relay.py`` with their default (bounded) sizes — or
smaller ones with ``--quick`` — prints each script's tables, then one summary of every
target.  Exits 0 even when a target is missed, unless ``--strict``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from typing import Any

import _common as c
import client_streaming
import concurrency
import startup

QUICK: dict[str, list[str]] = {
    "client": ["--runs", "3", "--paced-tokens", "20", "--ttft-runs", "9"],
    "concurrency": ["--tokens", "50", "--streams", "100,1000"],
    "startup": ["--runs", "5"],
    "server": ["--quick"],
}


def _server_module() -> Any:
    if importlib.util.find_spec("llmrelay.server") is None:
        return None
    try:
        import server_relay
    except ImportError:
        return None
    return server_relay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (about 2 minutes)")
    parser.add_argument("--only", help="comma-separated: client,concurrency,startup,server")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args(argv)
    chosen = (
        set(args.only.split(",")) if args.only else {"client", "concurrency", "startup", "server"}
    )
    modules: dict[str, Any] = {
        "client": client_streaming,
        "concurrency": concurrency,
        "startup": startup,
        "server": _server_module(),
    }
    checks: list[client_streaming.Check] = []
    for name, module in modules.items():
        if name not in chosen:
            continue
        if module is None:
            print(f"\n== {name}: skipped (llmrelay.server is not on this branch yet)")
            continue
        print(f"\n== {name}")
        t0 = time.perf_counter()
        checks += module.run(module.parse_args(QUICK[name] if args.quick else []))
        print(f"   ({time.perf_counter() - t0:.0f} s)")
    print("\n== Summary against issue 10's targets")
    client_streaming.print_checks(checks)
    failed = [k for k in checks if not k.ok]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} targets met ({c.verdict(not failed)})")
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
