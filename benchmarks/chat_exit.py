"""``llmrelay chat``: time and CPU from the answer's last token to the process's exit.

After the answer the chat writes the exchange log (SQLAlchemy's import, the connection,
the migration check, the write). A loopback OpenAI-compatible server streams a paced
answer (``--tokens`` chunks, ``--gap`` seconds apart, as a hosted model does); for each
run the script reads the chat's stdout until the whole answer is there, notes the time
and the process's CPU (``/proc/<pid>/stat``, ended threads included), then waits for the exit.
Runs alternate between this tree's ``src`` and ``--before SRC`` (paired figures).

Usage: ``python benchmarks/chat_exit.py --before /path/to/old/src --runs 15``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from startup import CHAT_ARGS, _config, _env

WORD = "tok "


def _server(tokens: int, gap: float) -> tuple[ThreadingHTTPServer, str]:
    """A loopback ``/v1/chat/completions`` streaming ``tokens`` chunks, ``gap`` s apart."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            for i in range(tokens):
                chunk = {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "fake-model",
                    "choices": [{"index": 0, "delta": {"content": WORD}, "finish_reason": None}],
                }
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()
                if i < tokens - 1:
                    time.sleep(gap)
            end = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "fake-model",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            self.wfile.write(b"data: " + json.dumps(end).encode() + b"\n\ndata: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _cpu(pid: int) -> float:
    """User + system CPU s of ``pid``, its ended threads included (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(env: dict[str, str], answer: bytes) -> tuple[float, float, float]:
    """(s from the last token to exit, CPU s after the last token, CPU s of the run)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmrelay", *CHAT_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        bufsize=0,
    )
    assert proc.stdout is not None
    got = b""
    while not got.rstrip().endswith(answer.rstrip()):
        data = proc.stdout.read(65536)
        if not data:
            raise RuntimeError(f"the chat ended before its answer: {got!r}")
        got += data
    t_last = time.perf_counter()
    cpu_last = _cpu(proc.pid)
    proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    t_exit = time.perf_counter()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("the chat failed")
    run = usage.ru_utime + usage.ru_stime
    return t_exit - t_last, run - cpu_last, run


def main(argv: list[str] | None = None) -> int:
    """Print paired figures: this tree against ``--before`` (ms, medians)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", type=Path, required=True, help="the old tree's src")
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between chunks")
    args = parser.parse_args(argv)
    server, url = _server(args.tokens, args.gap)
    answer = (WORD * args.tokens).encode()
    sides: dict[str, list[tuple[float, float, float]]] = {"after": [], "before": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            envs = {
                "after": _env(c.SRC, **_config(Path(tmp) / "a", url)),
                "before": _env(args.before, **_config(Path(tmp) / "b", url)),
            }
            for env in envs.values():  # first runs: a fresh log database, compiled files
                one(env, answer)
            for _ in range(args.runs):
                for name, env in envs.items():
                    sides[name].append(one(env, answer))
    finally:
        server.shutdown()
    for i, label in enumerate(("last token -> exit, wall", "CPU after the last token", "CPU, run")):
        after = statistics.median(s[i] for s in sides["after"]) * 1000
        before = statistics.median(s[i] for s in sides["before"]) * 1000
        diffs = [(a[i] - b[i]) * 1000 for a, b in zip(sides["after"], sides["before"], strict=True)]
        print(
            f"{label:28} after {after:7.1f} ms  before {before:7.1f} ms  "
            f"paired diff median {statistics.median(diffs):+7.1f} ms  ({args.runs} pairs)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
