"""The health seam: a client takes any ``HealthStore``; one with ``refresh()`` is refreshed
before each resolve; ``LLMRELAY_REDIS_URL`` chooses Redis; deploy files stay consistent."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import llmrelay
from llmrelay import errors
from llmrelay._router import MemoryHealth, Target
from llmrelay.scale import RedisHealth
from tests.scaleout.workers import REPO
from tests.unit.scripted_provider import scripted

TOML = '[aliases]\npair = ["flaky:shared-model", "steady:shared-model"]\n'


class Recording(MemoryHealth):
    def __init__(self) -> None:
        super().__init__()
        self.refreshed = 0
        self.failures: list[Target] = []

    def failed(self, target: Target, until: float) -> None:
        self.failures.append(target)
        super().failed(target, until)

    async def refresh(self) -> None:
        self.refreshed += 1


def _providers() -> list[type]:
    flaky, _ = scripted(
        "flaky", [errors.ProviderUnavailable("down", provider="flaky", model="shared-model")]
    )
    steady, _ = scripted("steady", ["hello", llmrelay.types.FinishReason("stop")])
    return [flaky, steady]


def test_sync_client_passes_its_health_store_to_the_router(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(TOML)
    store = Recording()
    with llmrelay.Client(
        config_path=str(config), providers=_providers(), health=store, retries=0
    ) as client:
        first = client.complete("hi", model="pair")
        second = client.complete("hi", model="pair")
    assert [a.provider for a in first.attempts] == ["flaky", "steady"]
    assert [a.provider for a in second.attempts] == ["steady"]
    assert store.failures == [Target("flaky", "shared-model")]
    assert store.refreshed == 2  # once before each resolve


@pytest.mark.anyio
async def test_no_refresh_without_cooldowns(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(TOML)
    store = Recording()
    async with llmrelay.AsyncClient(
        config_path=str(config), providers=_providers(), health=store, cooldown=0
    ) as client:
        await client.complete("hi", model="pair")
    assert store.refreshed == 0


def test_redis_url_in_the_environment_chooses_redis_health(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMRELAY_REDIS_URL", "redis://127.0.0.1:1/0")  # never connected
    client = llmrelay.AsyncClient()
    assert isinstance(client._engine.router.health, RedisHealth)
    monkeypatch.delenv("LLMRELAY_REDIS_URL")
    assert isinstance(llmrelay.AsyncClient()._engine.router.health, MemoryHealth)


def test_invalid_redis_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMRELAY_REDIS_URL", "http://not-redis")
    with pytest.raises(errors.ConfigError, match="LLMRELAY_REDIS_URL"):
        llmrelay.AsyncClient()


def test_compose_file_wires_redis_postgres_and_the_balancer() -> None:
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"lb", "worker", "redis", "postgres"}
    env = services["worker"]["environment"]
    assert env["LLMRELAY_REDIS_URL"].startswith("redis://redis:")
    assert env["LLMRELAY_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["LLMRELAY_DATABASE_URL"]
    assert services["worker"]["command"][:2] == ["llmrelay", "serve"]
    nginx = (REPO / "deploy" / "nginx.conf").read_text()
    assert "proxy_buffering off;" in nginx
    assert "server worker:8000;" in nginx


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "LLMRELAY_DATABASE_URL",
            "postgresql+psycopg://u:s3cret-pw@127.0.0.1:{port}/x",
            "the log database postgresql+psycopg://u:***@127.0.0.1:",
        ),
        ("LLMRELAY_REDIS_URL", "http://not-redis", "LLMRELAY_REDIS_URL is not a valid Redis URL"),
    ],
)
def test_serve_refuses_unusable_shared_config_in_one_line(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    import subprocess
    import sys

    from tests.scaleout.servers import free_port
    from tests.scaleout.workers import worker_env

    env = worker_env(tmp_path, {name: value.format(port=free_port())})
    done = subprocess.run(
        [sys.executable, "-m", "llmrelay", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("llmrelay: error: " + message)
    assert "s3cret-pw" not in done.stderr
