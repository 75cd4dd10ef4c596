"""Agent tests: the fake OpenAI-compatible upstream, a library client and a server on it.

The upstream is ``[providers.local]`` (``kind = "openai"``) of a config file pointing at
``FakeOpenAI``; the scripted providers (no tools) stand for services without native tools.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import llmrelay
from llmrelay.providers import Capability
from llmrelay.server import ServerConfig, create_app
from tests.fakes._server import serve
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript
from tests.server import scripted
from tests.server.conftest import run_app

Upstream = tuple[FakeOpenAI, str]


@pytest.fixture(autouse=True)
def scripted_without_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scripted providers play services without native tools (Spaces, Ai2, ...).

    ``tests/server/scripted.py`` gives them tools and structured output for the
    Responses/Messages tests; here they have neither, as the services they stand for.
    """
    native = {Capability.TOOLS, Capability.STRUCTURED_OUTPUT}
    for cls in scripted.ALL:
        monkeypatch.setattr(cls, "capabilities", cls.capabilities - native)


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[Upstream]:
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def upstream(upstream_server: Upstream) -> Iterator[FakeOpenAI]:
    fake, _ = upstream_server
    fake.script = OpenAIScript(models=["fake-model"])
    fake.recorder.requests.clear()
    scripted.reset()
    yield fake
    if fake.script.gate is not None:
        fake.script.gate.set()
    assert fake.wait_closed(5), "a stream was left open"
    scripted.reset()


@pytest.fixture(scope="session")
def agent_config_path(tmp_path_factory: pytest.TempPathFactory, upstream_server: Upstream) -> Path:
    path: Path = tmp_path_factory.mktemp("agent-config") / "config.toml"
    path.write_text(
        "[providers.local]\n"
        'kind = "openai"\n'
        f'base_url = "{upstream_server[1]}/v1"\n'
        'models = ["fake-model"]\n'
    )
    return path


@pytest.fixture(scope="session")
def client_kwargs(agent_config_path: Path) -> dict[str, Any]:
    return {
        "providers": list(scripted.ALL),
        "config_path": str(agent_config_path),
        "cooldown": 0,
        # one upstream request per attempt: these tests count what the clients' own
        # retries send (the relay's same-candidate retries are tests/failover's)
        "retries": 0,
    }


@pytest.fixture
async def client(client_kwargs: dict[str, Any]) -> AsyncIterator[llmrelay.AsyncClient]:
    async with llmrelay.AsyncClient(**client_kwargs) as aclient:
        yield aclient


@pytest.fixture(scope="session")
def agent_server(client_kwargs: dict[str, Any]) -> Iterator[str]:
    with run_app(create_app(config=ServerConfig(client_kwargs=client_kwargs))) as url:
        yield url


@pytest.fixture
def base_url(agent_server: str) -> str:
    return agent_server + "/v1"
