"""Start-up cost: `import llmrelay`, `llmrelay --help`, spawn -> first token of `llmrelay chat`.

Everything runs in fresh interpreters of this venv, ``--runs`` times, interleaved (the
first-token commands in a rotating order):

llmrelay is byte-compiled first (``compileall``) and ``PYTHONDONTWRITEBYTECODE`` is
removed from the children's environment: an installed package has its ``.pyc`` files,
and compiling from source would add about 40 ms to every llmrelay figure.

* **import**: ``import llmrelay`` and ``import httpx`` timed inside the interpreter
  (``time.perf_counter`` around the statement), beside ``python -c pass``'s whole run;
  and ``import llmrelay`` plus constructing an ``AsyncClient`` on each transport
  (construction imports neither httpx nor aiohttp: the HTTP client is built at the
  first request);
* **--help**: wall time of ``python -m llmrelay --help`` from spawn to exit, beside
  ``python -c pass``;
* **first token**: a ``kind = "openai"`` provider in a temporary config file
  (``LLMRELAY_CONFIG``, ``LLMRELAY_HOME`` in a temporary directory) pointing at the fake
  OpenAI-compatible server's recorded 3-token answer, replayed by ``_replay.py`` in a
  child process; spawn -> the first byte of the answer on stdout, for
  ``python -m llmrelay chat -m local:fake-model PROMPT`` and for a raw httpx script
  that sends the same request and prints each delta (flushing) as it comes (judged), and
  the same script on ``httpx.AsyncClient`` + asyncio (shown: the sync script imports
  neither asyncio nor anyio's asyncio backend, which every async httpx client loads).

Targets (issue 10): ``import llmrelay`` <= 0.5x ``import httpx``; spawn -> first token
of ``llmrelay chat`` within 20 ms of the raw httpx script (difference of medians);
(issue 21) ``import llmrelay`` plus a default ``AsyncClient`` <= 1.0x ``import httpx``.
Exits 0 unless ``--strict``.

``--before SRC`` also measures another checkout's sources (``SRC`` = its ``src``
folder, e.g. main's) in the same loop, interleaved with this one: ``import llmrelay``,
``import llmrelay`` plus ``AsyncClient()``, ``--help`` and ``llmrelay chat`` get a
``(before)`` row, so before/after figures share the machine's noise.

``--trace`` also runs each command once more under ``python -X importtime`` with a
tracer that prints where the time to the first token goes: milestones (ms since the
interpreter started running code) and the largest top-level imports before the first
token. The tracer wraps a few of llmrelay's internal functions by name (a diagnostic:
it prints what it could not find and goes on).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c
from client_streaming import Check, print_checks

TARGET_IMPORT_RATIO = 0.5
TARGET_CLIENT_RATIO = 1.0
CLIENT = "import llmrelay; llmrelay.AsyncClient()"
FAST_CLIENT = "import llmrelay; llmrelay.AsyncClient(transport='aiohttp')"
TARGET_FIRST_TOKEN_MS = 20.0

RAW_SCRIPT = r"""
import json, sys
import httpx
url, key = sys.argv[1], sys.argv[2]
body = {"model": "fake-model", "messages": [{"role": "user", "content": sys.argv[3]}],
        "stream": True}
with httpx.Client(trust_env=False) as http, http.stream(
    "POST", url + "/chat/completions", json=body,
    headers={"authorization": "Bearer " + key, "accept": "text/event-stream"}) as r:
    buffer = b""
    out = sys.stdout
    for chunk in r.iter_bytes():
        *lines, buffer = (buffer + chunk).split(b"\n")
        for line in lines:
            if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                choices = json.loads(line[6:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    out.write(choices[0]["delta"]["content"])
                    out.flush()
"""

# The same request with httpx's async client on asyncio (what llmrelay's stack is built
# on): shown beside the sync script, which imports neither asyncio nor anyio's backend.
RAW_ASYNC_SCRIPT = r"""
import asyncio, json, sys
import httpx
url, key = sys.argv[1], sys.argv[2]
body = {"model": "fake-model", "messages": [{"role": "user", "content": sys.argv[3]}],
        "stream": True}
async def main():
    async with httpx.AsyncClient(trust_env=False) as http, http.stream(
        "POST", url + "/chat/completions", json=body,
        headers={"authorization": "Bearer " + key, "accept": "text/event-stream"}) as r:
        buffer = b""
        out = sys.stdout
        async for chunk in r.aiter_bytes():
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                    choices = json.loads(line[6:])["choices"]
                    if choices and choices[0]["delta"].get("content"):
                        out.write(choices[0]["delta"]["content"])
                        out.flush()
asyncio.run(main())
"""

# Runs `llmrelay chat` (argv) with milestones; prints them on stderr as "TRACE ms label".
TRACER = r"""
import sys, time
T0 = time.perf_counter()
marks = []
def mark(label):
    marks.append(((time.perf_counter() - T0) * 1e3, label))
class Out:
    def __init__(self, f): self.f = f; self.first = True
    def write(self, text):
        if self.first and text.strip():
            self.first = False
            mark("first token written")
        return self.f.write(text)
    def __getattr__(self, name): return getattr(self.f, name)
sys.stdout = Out(sys.stdout)
def wrap(module, owner, name, label):
    import importlib
    try:
        obj = importlib.import_module(module)
        target = getattr(obj, owner) if owner else obj
        real = getattr(target, name)
    except (ImportError, AttributeError):
        mark(f"(not traced: {module}.{owner or ''}.{name})")
        return
    def traced(*args, **kwargs):
        mark(label + " start")
        try:
            return real(*args, **kwargs)
        finally:
            mark(label + " end")
    setattr(target, name, traced)
import llmrelay
mark("import llmrelay done")
import llmrelay.cli
orig_getattr = llmrelay.__getattr__
def lazy(name):
    first = name not in vars(llmrelay) and name in getattr(llmrelay, "_LAZY", {})
    if first: mark(f"llmrelay.{name}: import start")
    value = orig_getattr(name)
    if first:
        mark(f"llmrelay.{name}: import end")
        if name == "AsyncClient":
            wrap("llmrelay._registry", None, "_entry_points", "registry: entry points")
            wrap("llmrelay._registry", "Registry", "settings_specs", "registry: settings_specs")
            wrap("llmrelay._client", "AsyncClient", "_build", "engine + HTTP client build")
            real_init = value.__init__
            def init(self, *a, **k):
                mark("AsyncClient() start"); real_init(self, *a, **k); mark("AsyncClient() end")
            value.__init__ = init
    return value
llmrelay.__getattr__ = lazy
import atexit
@atexit.register
def report():
    mark("exit")
    for ms, label in marks:
        sys.stderr.write(f"TRACE {ms:8.1f} {label}\n")
mark("llmrelay.cli.main()")
llmrelay.cli.main(sys.argv[1:])
"""

RAW_TRACER = r"""
import json, sys, time
T0 = time.perf_counter()
def mark(label): sys.stderr.write(f"TRACE {(time.perf_counter() - T0) * 1e3:8.1f} {label}\n")
import httpx
mark("import httpx done")
url, key = sys.argv[1], sys.argv[2]
body = {"model": "fake-model", "messages": [{"role": "user", "content": sys.argv[3]}],
        "stream": True}
with httpx.Client(trust_env=False) as http:
    mark("httpx.Client() built")
    with http.stream("POST", url + "/chat/completions", json=body,
                     headers={"authorization": "Bearer " + key}) as r:
        for chunk in r.iter_bytes():
            mark("first bytes of the body")
            break
"""


def _trace(name: str, args: list[str], env: dict[str, str]) -> None:
    """Run ``args`` once under ``-X importtime``; print milestones and the big imports."""
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    marks = [line[6:] for line in out.stderr.splitlines() if line.startswith("TRACE ")]
    print(f"\n  trace of {name} (ms since the interpreter ran the first line):")
    for line in marks:
        print(f"    {line}")
    imports: list[tuple[int, str]] = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, module = line.split("|")
        if module.startswith(" ") and not module.startswith("  "):  # top level
            imports.append((int(cumulative), module.strip()))
    print("    largest top-level imports (cumulative ms, the whole run: after the answer too)")
    for micros, module in sorted(imports, reverse=True)[:12]:
        print(f"      {micros / 1e3:7.1f} {module}")


def _inner_time(statement: str, env: dict[str, str] | None = None) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env or _env()
    )
    return float(out.stdout)


def _wall(args: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True, env=env or _env())
    return time.perf_counter() - t0


def _first_byte(args: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, bufsize=0
    )
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    t1 = time.perf_counter()
    rest, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:4]} failed: {err.decode(errors='replace')[-1000:]}")
    return t1 - t0, first + rest


def _env(src: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
    paths = [str(src or c.SRC), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per figure")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--trace", action="store_true", help="also trace where the time to the first token goes"
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="SRC",
        help="also measure llmrelay from this src folder (e.g. main's), interleaved",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[Check]:
    runs = args.runs
    python = sys.executable
    # byte-compile llmrelay first, as installing the wheel does: with
    # PYTHONDONTWRITEBYTECODE set, every fresh interpreter would compile it from source
    before: Path | None = args.before.resolve() if args.before else None
    for src in filter(None, [c.SRC, before]):
        subprocess.run([python, "-m", "compileall", "-q", str(src / "llmrelay")], check=True)
    imports: dict[str, list[float]] = {"import llmrelay": [], "import httpx": [], CLIENT: []}
    if importlib.util.find_spec("aiohttp"):
        imports[FAST_CLIENT] = []
    walls: dict[str, list[float]] = {"python -c pass": [], "llmrelay --help": []}
    if before:
        imports["import llmrelay (before)"] = []
        imports[f"{CLIENT} (before)"] = []
        walls["llmrelay --help (before)"] = []
    for _ in range(runs):
        for statement, times in imports.items():
            if statement.endswith(" (before)"):
                times.append(_inner_time(statement.removesuffix(" (before)"), _env(before)))
            else:
                times.append(_inner_time(statement))
        walls["python -c pass"].append(_wall([python, "-c", "pass"]))
        walls["llmrelay --help"].append(_wall([python, "-m", "llmrelay", "--help"]))
        if before:
            help_ = [python, "-m", "llmrelay", "--help"]
            walls["llmrelay --help (before)"].append(_wall(help_, _env(before)))

    scenario = next(s for s in c.scenarios() if s.name == "local")
    rec = c.record(scenario, 3)
    firsts: dict[str, list[float]] = {
        "raw httpx script": [],
        "raw async httpx script": [],
        "llmrelay chat": [],
    }
    if before:
        firsts["llmrelay chat (before)"] = []
    outputs: set[bytes] = set()
    with tempfile.TemporaryDirectory() as tmp, c.ReplayServer(rec.routes) as server:
        config = Path(tmp) / "config.toml"
        config.write_text(
            "[providers.local]\n"
            'kind = "openai"\n'
            f'base_url = "{server.url}/v1"\n'
            'models = ["fake-model"]\n'
            'api_key = "test-key"\n'
        )
        files = {"LLMRELAY_CONFIG": str(config), "LLMRELAY_HOME": str(Path(tmp) / "home")}
        env = _env(**files)
        envs = {"llmrelay chat (before)": _env(before, **files)} if before else {}
        commands = {
            "raw httpx script": [python, "-c", RAW_SCRIPT, f"{server.url}/v1", "test-key", "hi"],
            "raw async httpx script": [
                python,
                "-c",
                RAW_ASYNC_SCRIPT,
                f"{server.url}/v1",
                "test-key",
                "hi",
            ],
            "llmrelay chat": [python, "-m", "llmrelay", "chat", "-m", "local:fake-model", "hi"],
        }
        if before:
            commands["llmrelay chat (before)"] = commands["llmrelay chat"]
        names = list(commands)
        for run_index in range(runs):
            # rotate the order each run: no command always follows the same one
            shift = run_index % len(names)
            for name in names[shift:] + names[:shift]:
                seconds, output = _first_byte(commands[name], envs.get(name, env))
                firsts[name].append(seconds)
                outputs.add(output.strip())
        if args.trace:
            chat = commands["llmrelay chat"]
            _trace(
                "llmrelay chat",
                [python, "-X", "importtime", "-c", TRACER, *chat[chat.index("chat") :]],
                env,
            )
            raw = commands["raw httpx script"]
            _trace(
                "raw httpx script", [python, "-X", "importtime", "-c", RAW_TRACER, *raw[3:]], env
            )
    if len(outputs) != 1:
        print(f"note: the two commands printed different answers: {outputs!r}")

    def med(values: list[float]) -> float:
        return statistics.median(values) * 1e3

    print(f"\nStart-up, median of {runs} fresh interpreters (ms)")
    for name, times in {**imports, **walls, **firsts}.items():
        print(f"  {name:62} {med(times):8.1f}   min {min(times) * 1e3:7.1f}")
    ratio = med(imports["import llmrelay"]) / med(imports["import httpx"])
    client_ratio = med(imports[CLIENT]) / med(imports["import httpx"])
    print(f"  import llmrelay + AsyncClient() / import httpx: {client_ratio:.2f}")
    if before:
        before_client = med(imports[f"{CLIENT} (before)"]) / med(imports["import httpx"])
        print(f"  import llmrelay + AsyncClient() (before) / import httpx: {before_client:.2f}")
    help_extra = med(walls["llmrelay --help"]) - med(walls["python -c pass"])
    first_diff = med(firsts["llmrelay chat"]) - med(firsts["raw httpx script"])
    print(f"  import llmrelay / import httpx: {ratio:.2f}")
    print(f"  llmrelay --help over python -c pass: {help_extra:+.1f} ms")
    print(f"  first token, llmrelay chat - raw httpx script: {first_diff:+.1f} ms")
    async_diff = med(firsts["llmrelay chat"]) - med(firsts["raw async httpx script"])
    print(f"  first token, llmrelay chat - raw async httpx script: {async_diff:+.1f} ms")
    if before:
        before_diff = med(firsts["llmrelay chat (before)"]) - med(firsts["raw httpx script"])
        print(f"  first token, llmrelay chat (before) - raw httpx script: {before_diff:+.1f} ms")
    return [
        Check(
            "startup: import llmrelay / import httpx",
            ratio,
            TARGET_IMPORT_RATIO,
            "x httpx",
            ratio <= TARGET_IMPORT_RATIO,
        ),
        Check(
            "startup: import llmrelay + AsyncClient() / import httpx",
            client_ratio,
            TARGET_CLIENT_RATIO,
            "x httpx",
            client_ratio <= TARGET_CLIENT_RATIO,
        ),
        Check(
            "startup: spawn -> first token, chat over raw",
            first_diff,
            TARGET_FIRST_TOKEN_MS,
            "ms",
            first_diff <= TARGET_FIRST_TOKEN_MS,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checks = run(args)
    print_checks(checks)
    return 1 if args.strict and not all(k.ok for k in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
