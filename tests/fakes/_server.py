"""Run an ASGI app on a real socket in a background thread (the encode/httpx test pattern).

``serve(app)`` starts uvicorn on ``127.0.0.1`` port 0 in a daemon thread, yields the base
URL ``http://127.0.0.1:PORT`` once the socket is bound, and stops the server on exit.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

__all__ = ["TestServer", "serve"]


class TestServer(uvicorn.Server):
    """A ``uvicorn.Server`` that leaves signal handling to the test runner."""

    __test__ = False  # not a pytest test class

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handlers (we run in a non-main thread)."""
        yield

    def install_signal_handlers(self) -> None:
        """Install no signal handlers (older uvicorn versions call this)."""

    @property
    def port(self) -> int:
        """The port the listening socket is bound to (valid once ``started``)."""
        sockets = [sock for server in self.servers for sock in server.sockets]
        return int(sockets[0].getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` on ``127.0.0.1:0``; yield ``"http://127.0.0.1:PORT"``; stop on exit."""
    # h11 and the asyncio loop always, whatever extras are installed (httptools would
    # normalise a proxy's absolute-form request target), so fakes behave the same.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        access_log=False,
        http="h11",
        loop="asyncio",
    )
    server = TestServer(config)
    thread = threading.Thread(target=server.run, name="fake-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
