"""Real Gradio servers running the demo Spaces for the tests.

Demos: ``scripts/demo_space.py`` (the Qwen-shaped ``gr.Blocks`` app, ``DEMO``) and
``scripts/demo_chatinterface.py`` (a ``gr.ChatInterface`` no row describes,
``CHATINTERFACE``).

* ``launch_current(script)`` runs one in-process under the installed (newest) Gradio;
* ``launch_subprocess(python, script=...)`` runs one under another interpreter, e.g. a
  Gradio 4 environment named by ``LLMRELAY_GRADIO4_PYTHON``.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import httpx

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo_space.py"
CHATINTERFACE = DEMO.with_name("demo_chatinterface.py")


def load_demo(script: Path = DEMO) -> ModuleType:
    """Import a demo script as a module (it imports gradio)."""
    spec = importlib.util.spec_from_file_location(f"llmrelay_{script.stem}", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def launch_current(script: Path = DEMO) -> Iterator[tuple[str, ModuleType]]:
    """Serve a demo under the installed Gradio; yield ``(base_url, demo_module)``."""
    demo = load_demo(script)
    url, close = demo.launch_in_thread()
    try:
        yield url, demo
    finally:
        close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def launch_subprocess(
    python: str, *, script: Path = DEMO, timeout: float = 90.0, args: tuple[str, ...] = ()
) -> Iterator[str]:
    """Serve a demo with another interpreter (``args``: its further options); yield its URL."""
    port = _free_port()
    process = subprocess.Popen(
        [python, str(script), "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"the demo Space exited: {err[-2000:]}")
        try:
            if httpx.get(f"{url}/config", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the demo Space did not start in time")
