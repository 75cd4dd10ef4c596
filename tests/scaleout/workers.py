"""``llmrelay serve`` worker processes for the scale-out tests and the load driver."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.scaleout.plugin import plugin_site
from tests.scaleout.servers import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def worker_env(tmp: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker: the fakes on PYTHONPATH, nothing from LLMRELAY_* inherited."""
    site = plugin_site(tmp / "site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMRELAY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), str(site)])
    env["LLMRELAY_HOME"] = str(tmp / "home")
    env.update(extra or {})
    return env


@contextlib.contextmanager
def serve_worker(
    tmp: Path,
    name: str,
    *,
    config: str = "",
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    startup_timeout: float = 60.0,
) -> Iterator[Worker]:
    """Run ``python -m llmrelay serve`` on a free loopback port until the block ends."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "home").mkdir(exist_ok=True)
    cfg = tmp / f"{name}.toml"
    cfg.write_text(config)
    port = free_port()
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmrelay",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--config",
                str(cfg),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=worker_env(tmp, env),
            cwd=tmp,
        )
    worker = Worker(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited {proc.returncode}:\n{worker.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(worker.url + "/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start:\n{worker.output()}")
            time.sleep(0.05)
        yield worker
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
