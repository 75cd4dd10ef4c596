"""``llmrelay serve`` talks to the providers over aiohttp when installed, unless told not to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from llmrelay._aiohttp import AiohttpTransport
from llmrelay._pool import HttpcoreTransport
from llmrelay.cli import cli


def _served_transport(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], env: dict[str, str]
) -> Any:
    """The transport of the client the app ``serve`` builds (its lifespan run)."""
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(app=app))
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, value in env.items():  # read when the app starts, after the command returned
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["serve", "--port", "1", *args])
    assert result.exit_code == 0, result.output
    with TestClient(seen["app"]):
        client = seen["app"].state.llmrelay.client
        assert client._built is not None  # built at start-up, not at the first request
        return type(client._engine.http._transport)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, AiohttpTransport),  # serve's default: auto, aiohttp is installed
        ([], {"LLMRELAY_TRANSPORT": "httpx"}, HttpcoreTransport),  # the user's variable wins
        (["--transport", "httpx"], {}, HttpcoreTransport),
        (["--transport", "aiohttp"], {"LLMRELAY_TRANSPORT": "httpx"}, AiohttpTransport),
        ([], {"LLMRELAY_PROXY": "socks5://127.0.0.1:1080"}, HttpcoreTransport),  # no socks
    ],
)
def test_serve_s_transport(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    expected: type,
) -> None:
    assert _served_transport(monkeypatch, tmp_path, args, env) is expected


def test_a_config_file_s_transport_beats_serve_s_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('transport = "httpx"\n')
    transport = _served_transport(monkeypatch, tmp_path, ["--config", str(config)], {})
    assert transport is HttpcoreTransport
