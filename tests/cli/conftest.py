"""CLI test fixtures: one fake Space for the session, an isolated llmrelay home per test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmrelay.cli import cli
from tests.fakes._server import serve
from tests.fakes.gradio_space import FakeSpace, SpaceScript

Space = tuple[FakeSpace, str]
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="session")
def _server() -> Iterator[Space]:
    fake = FakeSpace()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``LLMRELAY_HOME``: the log and keys of this test only."""
    path = tmp_path / "llmrelay-home"
    monkeypatch.setenv("LLMRELAY_HOME", str(path))
    return path


@pytest.fixture
def space(_server: Space, monkeypatch: pytest.MonkeyPatch) -> Space:
    fake, url = _server
    fake.script = SpaceScript()
    fake.requests.clear()
    monkeypatch.setenv("LLMRELAY_HF_SPACES_BASE_URL", url)
    monkeypatch.setenv("LLMRELAY_MODEL", "hf_spaces")  # whatever other providers exist
    return fake, url


def run(*args: str, stdin: str | bytes | None = None) -> tuple[int, str, str]:
    """Run the CLI in-process through click's runner: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli, list(args), input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def run_process(
    *args: str | bytes,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[bytes]:
    """``python -m llmrelay ARGS`` as a real process (stdin: the bytes, or /dev/null)."""
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = SRC + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "llmrelay", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        env=environ,
        timeout=timeout,
        check=False,
    )
