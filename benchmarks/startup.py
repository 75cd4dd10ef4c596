"""Start-up cost: `import llmrelay`, `llmrelay --help`, spawn -> first token of `llmrelay chat`.

Everything runs in fresh interpreters of this venv, interleaved:

llmrelay is byte-compiled first (``compileall``) and ``PYTHONDONTWRITEBYTECODE`` is
removed from the children's environment: an installed package has its ``.pyc`` files,
and compiling from source would add about 40 ms to every llmrelay figure.

* **import** (``--runs``): ``import llmrelay`` and ``import httpx`` timed inside the
  interpreter (``time.perf_counter`` around the statement), beside ``python -c pass``'s
  whole run; and ``import llmrelay`` plus constructing an ``AsyncClient`` on each
  transport (construction imports neither httpx nor aiohttp: the HTTP client is built at
  the first request);
* **--help** (``--runs``): wall time of ``python -m llmrelay --help`` from spawn to exit,
  beside ``python -c pass``;
* **first token** (``--chat-runs``, default 21): a ``kind = "openai"`` provider in the
  config file at its default place in a temporary ``HOME`` (as a user's chat finds it:
  no ``LLMRELAY_*`` variables), pointing at the fake OpenAI-compatible server's recorded
  3-token answer,
  replayed by ``_replay.py`` in a child process. Measured: ``python -m llmrelay chat -m
  local:fake-model hi`` and the **raw sync httpx script** (judged), which sends the same
  request (the body bytes and headers the chat sent, captured once before the runs and
  checked against the raw script's) to the same server and writes and flushes each delta
  as it comes, as the chat does. Shown beside them: the same script on
  ``httpx.AsyncClient`` + asyncio, and a *lean* sync script that skips what httpx does
  at start-up and llmrelay's chat does not (importing httpx's own CLI, ``httpx._main``,
  with rich and pygments; loading the CA bundle for a plain-http request).

  Every run starts each command once, in a rotating order. For each child: **wall**
  (spawn -> the first byte on its stdout), **cpu** (its time on a CPU until that byte:
  every live thread's ``se.sum_exec_runtime`` from ``/proc/<pid>/task/*/schedstat``, in
  ns), **wait** (its time runnable but without a CPU until then, the same file: what the
  other load of the machine costs it) and **run** (user + sys of the whole run from
  ``os.wait4``, after the answer too: the chat logs the exchange then). Reported:
  median and best of each, the **paired** difference chat - raw of each run (median,
  best), and a CPU probe per run (a fixed pure-Python workload, as ``compare.py``) so the
  fast/slow CPU modes of this guest are visible; when the probes split in two modes the
  paired differences are also given per mode.

Targets: (issue 10) ``import llmrelay`` <= 0.5x ``import httpx``; (issue 21) ``import
llmrelay`` plus a default ``AsyncClient`` <= 1.0x ``import httpx``; spawn -> first token
of ``llmrelay chat`` within 5 ms of the raw sync httpx script, judged on the median of
the paired wall differences and, beside it, on the paired CPU differences (the figure
the machine's load does not move). Exits 0 unless ``--strict``.

``--before SRC`` also measures another checkout's sources (``SRC`` = its ``src``
folder, e.g. the session's start) in the same loop, interleaved with this one: ``import
llmrelay``, ``import llmrelay`` plus ``AsyncClient()``, ``--help`` and ``llmrelay chat``
get a ``(before)`` row, and the chat's paired differences a ``before -> after`` line.

``--module-pairs N`` (with ``--before``) times the CPU (``time.process_time``) of
importing the modules the chat loads before its first token in fresh interpreters, this
tree and ``SRC`` alternating, with their third-party libraries (click, asyncio, anyio,
httpx, httpcore, h11, tomllib) imported first: llmrelay's own import cost on the chat's
path, which the whole chat's paired CPU resolves only over many runs on a busy machine.

``--trace`` also runs the chat and the raw script ``--trace-runs`` times more each,
alternating, under ``python -X importtime`` and a wrapper that notes milestones (ms since
spawn, and the child's own CPU then): the first import of llmrelay and of httpx, the
client's construction and build (llmrelay's functions wrapped by name: a diagnostic that
says what it could not find), the connect, the request sent, the first byte received and
the first token printed; the import time of each phase by top-level package, and the
imports done before the first token by one side and not the other (``-X importtime``
self times, minimum over the runs); ``--trace-modules N`` also lists the chat's N
costliest llmrelay modules there.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import _common as c
from client_streaming import Check, print_checks

TARGET_IMPORT_RATIO = 0.5
TARGET_CLIENT_RATIO = 1.0
CLIENT = "import llmrelay; llmrelay.AsyncClient()"
FAST_CLIENT = "import llmrelay; llmrelay.AsyncClient(transport='aiohttp')"
TARGET_FIRST_TOKEN_MS = 5.0
"""Issue 21: the chat's first token within 5 ms of the raw sync httpx script's."""
CHAT_ARGS = ["chat", "-m", "local:fake-model", "hi"]
HEADERS_SENT = ("accept", "accept-encoding", "authorization", "content-type", "user-agent")
"""Request headers the raw scripts copy from the chat's captured request."""

# argv: url, body (the chat's request body), headers (JSON, the chat's request headers)
_RAW_BODY = r"""
url, body, headers = sys.argv[1], sys.argv[2].encode(), json.loads(sys.argv[3])
with httpx.Client(trust_env=False{verify}) as http, http.stream(
        "POST", url + "/chat/completions", content=body, headers=headers) as r:
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
RAW_SCRIPT = "import json, sys\nimport httpx\n" + _RAW_BODY.format(verify="")
"""The judged baseline: a plain sync httpx script sending the chat's request."""

# httpx's `import httpx._main` is skipped (llmrelay's chat does the same) and no CA
# bundle is loaded (httpx loads one at Client(); llmrelay only at its first https request)
RAW_LEAN_SCRIPT = (
    "import json, sys\nsys.modules['httpx._main'] = None\nimport httpx\n"
    "del sys.modules['httpx._main']\n" + _RAW_BODY.format(verify=", verify=False")
)

# The same request with httpx's async client on asyncio (what llmrelay's stack is built
# on): shown beside the sync script, which imports neither asyncio nor anyio's backend.
RAW_ASYNC_SCRIPT = r"""
import asyncio, json, sys
import httpx
url, body, headers = sys.argv[1], sys.argv[2].encode(), json.loads(sys.argv[3])
async def main():
    async with httpx.AsyncClient(trust_env=False) as http, http.stream(
            "POST", url + "/chat/completions", content=body, headers=headers) as r:
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

# Runs a command (argv[1] = "chat": ``llmrelay`` with argv[2:]; "raw": RAW_SCRIPT with
# argv[2:]) noting milestones on stderr as "TRACE <monotonic s> <process s> <label>",
# in the same stream as -X importtime's lines, so each import falls in its phase.
TRACER = r"""
import sys, time, socket
def mark(label):
    sys.stderr.write(f"TRACE {time.monotonic():.6f} {time.process_time():.6f} {label}\n")
mark("interpreter ready")
seen = set()
def once(label):
    if label not in seen:
        seen.add(label)
        mark(label)
class Out:
    def __init__(self, f): self.f = f
    def write(self, text):
        if text.strip():
            once("first token written")
        return self.f.write(text)
    def __getattr__(self, name): return getattr(self.f, name)
sys.stdout = Out(sys.stdout)
S = socket.socket
def patch(name, label, when):
    real = getattr(S, name)
    def traced(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        if when(result):
            once(label)
        return result
    setattr(S, name, traced)
def connecting(name):
    real = getattr(S, name)
    def traced(self, *args, **kwargs):
        once("connect")
        return real(self, *args, **kwargs)
    setattr(S, name, traced)
connecting("connect"); connecting("connect_ex")
for name in ("send", "sendall"):
    patch(name, "request sent", lambda result: True)
patch("recv", "first byte received", bool)
patch("recv_into", "first byte received", bool)
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
        once(label + " start")
        try:
            return real(*args, **kwargs)
        finally:
            once(label + " end")
    setattr(target, name, traced)
class Finder:
    # notes when a top-level module is first imported (before its code runs)
    watched = {"httpx", "llmrelay", "click", "asyncio", "anyio"}
    def find_spec(self, name, path=None, target=None):
        if name in self.watched:
            self.watched.discard(name)
            mark(f"import {name} starts")
        return None
sys.meta_path.insert(0, Finder())
def run():
  mode, argv = sys.argv[1], sys.argv[2:]
  if mode == "chat":
    import llmrelay
    mark("import llmrelay done")
    real_getattr = llmrelay.__getattr__
    def lazy(name):
        value = real_getattr(name)
        if name == "AsyncClient":
            wrap("llmrelay._client", "AsyncClient", "__init__", "AsyncClient()")
            wrap("llmrelay._client", "AsyncClient", "prepare", "client.prepare() (build)")
            wrap("llmrelay._client", "AsyncClient", "stream", "client.stream()")
        return value
    llmrelay.__getattr__ = lazy
    from llmrelay.cli import main
    mark("llmrelay.cli.main()")
    main(argv)
  else:
    sys.argv = ["-c", *argv]
    exec(compile(RAW_SCRIPT, "<raw>", "exec"), {"__name__": "__main__"})
"""


@dataclass
class Sample:
    """One child's run: seconds to its first output byte, and its CPU."""

    wall: float
    """Spawn -> the first byte on its stdout."""
    cpu: float
    """Time on a CPU until that byte (every live thread; NaN without ``/proc``)."""
    wait: float
    """Time runnable but without a CPU until that byte (NaN without ``/proc``)."""
    run: float
    """User + system CPU of the whole run (``os.wait4``)."""
    output: bytes


def _schedstat(pid: int) -> tuple[float, float]:
    """(on-CPU s, run-queue wait s) summed over ``pid``'s live threads, or NaNs."""
    cpu = wait = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return math.nan, math.nan
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                ran, waited, _ = f.read().split()
        except (OSError, ValueError):
            continue  # a thread that ended meanwhile
        cpu += int(ran) / 1e9
        wait += int(waited) / 1e9
    return cpu, wait


def _first_token(args: list[str], env: dict[str, str]) -> Sample:
    """Start ``args``; time its first output byte, read its CPU then and at its end."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, env=env, bufsize=0)
        assert proc.stdout is not None
        first = proc.stdout.read(1)
        t1 = time.perf_counter()
        cpu, wait = _schedstat(proc.pid)
        rest = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0 or not first:
            err.seek(0)
            text = err.read().decode(errors="replace")[-1000:]
            raise RuntimeError(f"{args[:5]} failed ({proc.returncode}): {text}")
    return Sample(t1 - t0, cpu, wait, usage.ru_utime + usage.ru_stime, first + rest)


class _Capture:
    """A loopback server that keeps each request and answers with one recorded body."""

    def __init__(self, body: bytes, content_type: str) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("content-length") or 0))
                owner.requests.append(({k.lower(): v for k, v in self.headers.items()}, data))
                self.send_response(200)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _env(src: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMRELAY_", "XDG_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
    paths = [str(src or c.SRC), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def _config(tmp: Path, url: str) -> dict[str, str]:
    """A user's set-up naming ``url`` as provider ``local``: the env variables to use it.

    As a user's chat runs: ``HOME`` is a new temporary directory, the config file is at
    its default place (``~/.config/llmrelay/config.toml``, platformdirs' user config
    directory on Linux) and the exchange log at its own (``~/.local/share/llmrelay``);
    ``_env`` drops the caller's ``LLMRELAY_*`` and ``XDG_*`` variables.
    """
    home = tmp / url.rsplit(":", 1)[1]
    config = home / ".config" / "llmrelay" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "[providers.local]\n"
        'kind = "openai"\n'
        f'base_url = "{url}/v1"\n'
        'models = ["fake-model"]\n'
        'api_key = "test-key"\n'
    )
    return {"HOME": str(home)}


def capture_request(
    python: str, tmp: Path, body: bytes, content_type: str
) -> tuple[str, dict[str, str]]:
    """The request ``llmrelay chat`` sends: (body, the ``HEADERS_SENT`` it sent).

    Checked: the raw sync script, given them, sends the same body and those headers.
    """
    capture = _Capture(body, content_type)
    try:
        env = _env(**_config(tmp, capture.url))
        subprocess.run(
            [python, "-m", "llmrelay", *CHAT_ARGS], env=env, check=True, capture_output=True
        )
        [(headers, sent)] = capture.requests
        chosen = {k: v for k, v in headers.items() if k in HEADERS_SENT}
        text = sent.decode()
        raw = [python, "-c", RAW_SCRIPT, f"{capture.url}/v1", text, json.dumps(chosen)]
        subprocess.run(raw, env=env, check=True, capture_output=True)
        raw_headers, raw_sent = capture.requests[1]
        raw_chosen = {k: v for k, v in raw_headers.items() if k in HEADERS_SENT}
        if raw_sent != sent or raw_chosen != chosen:
            raise RuntimeError(
                f"the raw script's request differs: {raw_sent!r} {raw_chosen} against "
                f"the chat's {sent!r} {chosen}"
            )
        return text, chosen
    finally:
        capture.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per figure")
    parser.add_argument(
        "--chat-runs", type=int, default=21, help="interleaved runs of the first-token commands"
    )
    parser.add_argument(
        "--only-chat", action="store_true", help="only the first-token rows (no import/--help)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--trace", action="store_true", help="also trace where the time to the first token goes"
    )
    parser.add_argument("--trace-runs", type=int, default=5, help="traced runs of each side")
    parser.add_argument(
        "--trace-modules",
        type=int,
        default=0,
        metavar="N",
        help="with --trace: the chat's N costliest llmrelay modules before its first token",
    )
    parser.add_argument(
        "--module-pairs",
        type=int,
        default=0,
        metavar="N",
        help="CPU of importing the chat path's llmrelay modules: N fresh pairs with --before",
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="SRC",
        help="also measure llmrelay from this src folder (e.g. main's), interleaved",
    )
    return parser.parse_args(argv)


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


def _ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3


def run_imports(args: argparse.Namespace, before: Path | None) -> list[Check]:
    """The import and ``--help`` rows."""
    runs, python = args.runs, sys.executable
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
    print(f"\nStart-up, median of {runs} fresh interpreters (ms)")
    for name, times in {**imports, **walls}.items():
        print(f"  {name:62} {_ms(times):8.1f}   min {min(times) * 1e3:7.1f}")
    ratio = _ms(imports["import llmrelay"]) / _ms(imports["import httpx"])
    client_ratio = _ms(imports[CLIENT]) / _ms(imports["import httpx"])
    print(f"  import llmrelay + AsyncClient() / import httpx: {client_ratio:.2f}")
    if before:
        before_client = _ms(imports[f"{CLIENT} (before)"]) / _ms(imports["import httpx"])
        print(f"  import llmrelay + AsyncClient() (before) / import httpx: {before_client:.2f}")
    help_extra = _ms(walls["llmrelay --help"]) - _ms(walls["python -c pass"])
    print(f"  import llmrelay / import httpx: {ratio:.2f}")
    print(f"  llmrelay --help over python -c pass: {help_extra:+.1f} ms")
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
    ]


def _paired(samples: dict[str, list[Sample]], name: str, base: str, field: str) -> list[float]:
    """``name - base`` of each run (seconds) for ``field`` of the samples."""
    return [
        getattr(a, field) - getattr(b, field)
        for a, b in zip(samples[name], samples[base], strict=True)
    ]


def _best(items: list[Sample], field: str) -> float:
    return min(getattr(s, field) for s in items)


def _line(label: str, diffs: list[float], bests: tuple[float, float] | None = None) -> str:
    """Median and middle half of paired differences (ms); the best runs' difference."""
    clean = [d for d in diffs if not math.isnan(d)]
    if not clean:
        return f"{label} n/a"
    low, _, high = statistics.quantiles(clean, n=4) if len(clean) > 1 else clean * 3
    text = f"{label} {_ms(clean):+7.1f}  (middle half {low * 1e3:+.1f} .. {high * 1e3:+.1f}"
    if bests is not None and not any(math.isnan(b) for b in bests):
        text += f"; best - best {(bests[0] - bests[1]) * 1e3:+.1f}"
    return text + f"; n={len(clean)})"


def run_first_token(
    args: argparse.Namespace, before: Path | None, tmp: Path
) -> tuple[list[Check], dict[str, Any]]:
    """The first-token rows: every command once per run, rotating; paired differences."""
    from compare import modes, probe

    python = sys.executable
    scenario = next(s for s in c.scenarios() if s.name == "local")
    rec = c.record(scenario, 3)
    [answer] = [ex for ex in rec.routes if ex.streamed]
    body, headers = capture_request(python, tmp, answer.body, answer.content_type)
    print(f"\nThe chat's request (the raw scripts send the same; checked): {body}")
    samples: dict[str, list[Sample]] = defaultdict(list)
    probes: list[float] = []
    with c.ReplayServer(rec.routes) as server:
        files = _config(tmp, server.url)
        env = _env(**files)
        raw_args = [f"{server.url}/v1", body, json.dumps(headers)]
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "raw httpx script": ([python, "-c", RAW_SCRIPT, *raw_args], env),
            "llmrelay chat": ([python, "-m", "llmrelay", *CHAT_ARGS], env),
            "raw httpx script, lean": ([python, "-c", RAW_LEAN_SCRIPT, *raw_args], env),
            "raw async httpx script": ([python, "-c", RAW_ASYNC_SCRIPT, *raw_args], env),
        }
        if before:
            commands["llmrelay chat (before)"] = (
                [python, "-m", "llmrelay", *CHAT_ARGS],
                _env(before, **files),
            )
        names = list(commands)
        for run_index in range(args.chat_runs):
            probes.append(probe())
            # rotate the order each run: no command always follows the same one
            shift = run_index % len(names)
            for name in names[shift:] + names[:shift]:
                command, command_env = commands[name]
                samples[name].append(_first_token(command, command_env))
        if args.trace:
            trace(python, env, raw_args, args.trace_runs, args.trace_modules)
    outputs = {s.output.strip() for runs in samples.values() for s in runs}
    if len(outputs) != 1:
        print(f"note: the commands printed different answers: {outputs!r}")

    runs = args.chat_runs
    print(
        f"\nSpawn -> first token, {runs} runs (ms; median / best). cpu: the child's time on "
        "a CPU to its first byte; wait: runnable without a CPU; run: user+sys of the whole run"
    )
    print(f"  {'':30} {'wall':>15} {'cpu':>15} {'wait':>15} {'run':>7}")
    for name, items in samples.items():
        cells = []
        for field in ("wall", "cpu", "wait"):
            values = [getattr(s, field) for s in items]
            cells.append(f"{_ms(values):7.1f} /{min(values) * 1e3:6.1f}")
        run_cpu = _ms([s.run for s in items])
        print(f"  {name:30} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} {run_cpu:7.1f}")
    labels = modes(probes)
    print(
        f"  CPU probe per run (ms of a fixed workload): median {statistics.median(probes):.1f},"
        f" min {min(probes):.1f}, max {max(probes):.1f}; modes: "
        + ", ".join(f"{m} {labels.count(m)}" for m in ("fast", "slow") if m in labels)
    )
    figures: dict[str, Any] = {}
    compared = ["llmrelay chat"] + (["llmrelay chat (before)"] if before else [])
    bases = ["raw httpx script", "raw httpx script, lean", "raw async httpx script"]
    print("  paired differences (this run's command minus the baseline's, same run):")
    for name in compared:
        for base in bases:
            for field in ("wall", "cpu"):
                diffs = _paired(samples, name, base, field)
                figures[(name, base, field)] = diffs
                bests = (_best(samples[name], field), _best(samples[base], field))
                print("    " + _line(f"{name} - {base}, {field:4}:", diffs, bests))
                if len(set(labels)) > 1 and base == bases[0]:
                    for mode in ("fast", "slow"):
                        chosen = [d for d, m in zip(diffs, labels, strict=True) if m == mode]
                        print("      " + _line(f"{mode} runs:", chosen))
    if before:
        for field in ("wall", "cpu"):
            after = _ms(figures[("llmrelay chat", bases[0], field)])
            earlier = _ms(figures[("llmrelay chat (before)", bases[0], field)])
            print(
                f"  before -> after, chat - raw httpx script, {field}: "
                f"{earlier:+.1f} -> {after:+.1f}"
            )
        for field in ("wall", "cpu"):
            diffs = _paired(samples, "llmrelay chat", "llmrelay chat (before)", field)
            print("  " + _line(f"after - before, {field}:", diffs))
    wall = _ms(figures[("llmrelay chat", bases[0], "wall")])
    cpu = _ms([d for d in figures[("llmrelay chat", bases[0], "cpu")] if not math.isnan(d)] or [0])
    checks = [
        Check(
            "startup: spawn -> first token, chat over raw (paired wall)",
            wall,
            TARGET_FIRST_TOKEN_MS,
            "ms",
            wall <= TARGET_FIRST_TOKEN_MS,
        ),
        Check(
            "startup: CPU to first token, chat over raw (paired)",
            cpu,
            TARGET_FIRST_TOKEN_MS,
            "ms",
            cpu <= TARGET_FIRST_TOKEN_MS,
        ),
    ]
    return checks, {"samples": samples, "probes": probes}


def _traced(args: list[str], env: dict[str, str]) -> tuple[list[tuple[float, float, str]], str]:
    """Run ``args``; its milestones (ms since spawn, CPU ms, label) and its stderr."""
    spawn = time.monotonic()
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"traced {args[5:7]} failed: {out.stderr[-1000:]}")
    marks = []
    for line in out.stderr.splitlines():
        if line.startswith("TRACE "):
            _, at, cpu, label = line.split(" ", 3)
            marks.append(((float(at) - spawn) * 1e3, float(cpu) * 1e3, label))
    return marks, out.stderr


def _imports_by_phase(stderr: str) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """-X importtime self times (µs) by phase and top-level package; and by module.

    A phase is named by the milestone that ends it; only imports before the first token.
    """
    phases: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    modules: dict[str, int] = {}
    pending: list[tuple[str, int]] = []
    for line in stderr.splitlines():
        if line.startswith("TRACE "):
            label = line.split(" ", 3)[3]
            for module, micros in pending:
                phases[label][module.split(".")[0]] += micros
            pending = []
            if label == "first token written":
                break
        elif line.startswith("import time:") and "cumulative" not in line:
            self_us, _, module = line.removeprefix("import time:").split("|")
            pending.append((module.strip(), int(self_us)))
            modules[module.strip()] = int(self_us)
    return phases, modules


def trace(
    python: str, env: dict[str, str], raw_args: list[str], runs: int, top_modules: int = 0
) -> None:
    """Where each side's time to the first token goes (``--trace``)."""
    code = TRACER + f"\nRAW_SCRIPT = {RAW_SCRIPT!r}\nrun()\n"
    sides = {
        "llmrelay chat": [python, "-X", "importtime", "-c", code, "chat", *CHAT_ARGS],
        "raw httpx script": [python, "-X", "importtime", "-c", code, "raw", *raw_args],
    }
    marks: dict[str, list[list[tuple[float, float, str]]]] = defaultdict(list)
    phases: dict[str, list[dict[str, dict[str, int]]]] = defaultdict(list)
    modules: dict[str, list[dict[str, int]]] = defaultdict(list)
    for index in range(runs):
        order = list(sides) if index % 2 == 0 else list(reversed(sides))
        for name in order:
            found, stderr = _traced(sides[name], env)
            marks[name].append(found)
            by_phase, by_module = _imports_by_phase(stderr)
            phases[name].append(by_phase)
            modules[name].append(by_module)
    print(
        f"\nTrace (-X importtime, {runs} runs each, alternating; medians): milestones in ms "
        "since spawn (the child's CPU ms then), and import self time before each milestone "
        "by top-level package (the phase that milestone ends)"
    )
    for name in sides:
        print(f"\n  {name}")
        labels = [label for _, _, label in marks[name][0]]
        for label in labels:
            at = [m[0] for run in marks[name] for m in run if m[2] == label]
            cpu = [m[1] for run in marks[name] for m in run if m[2] == label]
            print(f"    {statistics.median(at):8.1f} ({statistics.median(cpu):6.1f} cpu) {label}")
            packages: dict[str, list[int]] = defaultdict(list)
            for run in phases[name]:
                for package, micros in run.get(label, {}).items():
                    packages[package].append(micros)
            biggest = sorted(
                ((statistics.median(v + [0] * (runs - len(v))), p) for p, v in packages.items()),
                reverse=True,
            )
            total = sum(m for m, _ in biggest)
            if total:
                parts = ", ".join(f"{p} {m / 1e3:.1f}" for m, p in biggest[:8] if m >= 300)
                print(f"{'':28}imports {total / 1e3:.1f} ms: {parts}")
    best = {
        name: {m: min(run.get(m, 10**9) for run in runs_) for m in set().union(*runs_)}
        for name, runs_ in modules.items()
    }
    chat, raw = best["llmrelay chat"], best["raw httpx script"]
    for label, mine, other in (("chat only", chat, raw), ("raw script only", raw, chat)):
        only = {m: v for m, v in mine.items() if m not in other}
        packages: dict[str, int] = defaultdict(int)
        for module, micros in only.items():
            packages[module.split(".")[0]] += micros
        top = sorted(((v, p) for p, v in packages.items()), reverse=True)
        print(
            f"\n  imported before the first token by the {label}: {len(only)} modules, "
            f"{sum(only.values()) / 1e3:.1f} ms (sum of minimum self times): "
            + ", ".join(f"{p} {v / 1e3:.1f}" for v, p in top[:14])
        )
    if top_modules:
        own = sorted(
            ((v, m) for m, v in chat.items() if m.split(".")[0] == "llmrelay"), reverse=True
        )
        print(
            f"\n  the chat's llmrelay modules before its first token: {len(own)}, "
            f"{sum(v for v, _ in own) / 1e3:.1f} ms (minimum self times); the costliest: "
            + ", ".join(f"{m} {v / 1e3:.1f}" for v, m in own[:top_modules])
        )


# The modules a ``llmrelay chat -m local:...`` start imports before its first token, its
# third-party libraries imported first so that only llmrelay's own cost is timed.
CHAT_PATH_LIBRARIES = (
    "click, asyncio, anyio, anyio._backends._asyncio, httpx, httpcore, h11, tomllib"
)
CHAT_PATH_MODULES = (
    "llmrelay, llmrelay.cli._app, llmrelay.cli._chat, llmrelay.cli._session, llmrelay._sync, "
    "llmrelay._client, llmrelay._engine, llmrelay._stream, llmrelay.providers._openai_compat"
)
_MODULE_CPU = (
    "import time\nimport {libraries}\n"
    "t = time.process_time()\nimport {modules}\nprint(time.process_time() - t)\n"
)


def run_module_pairs(pairs: int, before: Path) -> None:
    """CPU of importing the chat path's llmrelay modules, this tree and ``before`` alternating."""
    code = _MODULE_CPU.format(libraries=CHAT_PATH_LIBRARIES, modules=CHAT_PATH_MODULES)
    times: dict[str, list[float]] = {"after": [], "before": []}
    for index in range(pairs):
        order = ["after", "before"] if index % 2 == 0 else ["before", "after"]
        for side in order:
            env = _env(before) if side == "before" else _env()
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
            )
            times[side].append(float(out.stdout))
    diffs = [a - b for a, b in zip(times["after"], times["before"], strict=True)]
    print(
        f"\nCPU of importing the chat path's llmrelay modules ({pairs} fresh pairs, "
        "alternating; third-party libraries imported first; ms median / best)"
    )
    for side, values in times.items():
        print(f"  {side:8} {_ms(values):7.1f} / {min(values) * 1e3:6.1f}")
    print("  " + _line("after - before:", diffs))


def run(args: argparse.Namespace) -> list[Check]:
    python = sys.executable
    # byte-compile llmrelay first, as installing the wheel does: with
    # PYTHONDONTWRITEBYTECODE set, every fresh interpreter would compile it from source
    before: Path | None = args.before.resolve() if args.before else None
    for src in filter(None, [c.SRC, before]):
        subprocess.run([python, "-m", "compileall", "-q", str(src / "llmrelay")], check=True)
    if args.module_pairs and before:
        run_module_pairs(args.module_pairs, before)
    checks = [] if args.only_chat else run_imports(args, before)
    if not args.chat_runs:  # e.g. --only-chat --chat-runs 0 --module-pairs 30
        return checks
    with tempfile.TemporaryDirectory() as tmp:
        first, _ = run_first_token(args, before, Path(tmp))
    return checks + first


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checks = run(args)
    print_checks(checks)
    return 1 if args.strict and not all(k.ok for k in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
