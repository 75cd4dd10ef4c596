"""The server under test on loopback, with scripted providers and the fake Space behind it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from tests.fakes._server import TestServer, serve
from tests.fakes.gradio_space import FakeSpace, SpaceScript
from tests.server import scripted

from llmrelay.server import ServerConfig, create_app

CONFIG_TOML = """
[aliases]
chain = ["alpha:m", "beta:m"]
"""


@contextlib.contextmanager
def run_app(app: Any, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve an app with its lifespan (the app creates and closes its client)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
    )
    server = TestServer(config)
    thread = threading.Thread(target=server.run, name="llmrelay-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def space_server() -> Iterator[tuple[FakeSpace, str]]:
    fake = FakeSpace()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def space(space_server: tuple[FakeSpace, str]) -> Iterator[FakeSpace]:
    fake, _ = space_server
    fake.script = SpaceScript()
    fake.requests.clear()
    yield fake
    assert fake.wait_streams_closed(5), "a queue/data stream was left open"


@pytest.fixture(scope="session")
def base_config(
    tmp_path_factory: pytest.TempPathFactory, space_server: tuple[FakeSpace, str]
) -> ServerConfig:
    cfg: Path = tmp_path_factory.mktemp("server-config") / "config.toml"
    cfg.write_text(CONFIG_TOML)
    return ServerConfig(
        client_kwargs={
            "providers": list(scripted.ALL),
            "base_urls": {"hf_spaces": space_server[1]},
            "config_path": str(cfg),
            "cooldown": 0,
            "retries": 0,  # these tests pin the fallback; retries: tests/failover
        }
    )


@pytest.fixture(scope="session")
def server_url(base_config: ServerConfig) -> Iterator[str]:
    """The default server: no key, default limits."""
    with run_app(create_app(config=base_config)) as url:
        yield url


@pytest.fixture
def make_server(base_config: ServerConfig) -> Iterator[Any]:
    """``make_server(**ServerConfig fields)`` -> URL of a server with that config."""
    stack = contextlib.ExitStack()

    def make(**changes: Any) -> str:
        return stack.enter_context(run_app(create_app(config=replace(base_config, **changes))))

    with stack:
        yield make


@pytest.fixture(autouse=True)
def _scripts() -> Iterator[None]:
    scripted.reset()
    yield
    scripted.reset()


@pytest.fixture
def base_url(server_url: str) -> str:
    """The OpenAI base URL of the default server."""
    return server_url + "/v1"
