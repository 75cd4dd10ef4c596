"""``llmrelay image`` against the fake Replicate, through click's CliRunner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmrelay.cli import cli
from llmrelay.providers import BUILTIN
from tests.fakes._server import serve
from tests.fakes.replicate import PNG_1X1, FakeReplicate, ReplicateScript

pytestmark = pytest.mark.skipif(
    "replicate" not in BUILTIN, reason="the lead registers replicate in providers.BUILTIN"
)
MODEL = "replicate:black-forest-labs/flux-schnell"


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[FakeReplicate, str]]:
    fake = FakeReplicate()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(
    _server: tuple[FakeReplicate, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[FakeReplicate, str]:
    fake, url = _server
    fake.reset()
    monkeypatch.setenv("LLMRELAY_REPLICATE_BASE_URL", f"{url}/v1")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_cli")
    return fake, url


def test_writes_the_image(fake: tuple[FakeReplicate, str], tmp_path: Path) -> None:
    server, _ = fake
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "llama.png"
    result = CliRunner().invoke(
        cli, ["image", "a llama", "-m", MODEL, "-o", str(out), "--size", "64x32", "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == PNG_1X1
    assert f"wrote {len(PNG_1X1)} bytes to {out}" in result.stderr
    assert result.stdout == ""
    sent = server.creations()[0].json["input"]
    assert sent["prompt"] == "a llama"
    assert sent["seed"] == 5
    assert (sent.get("width"), sent.get("height")) == (64, 32)
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_polled_image_to_stdout(fake: tuple[FakeReplicate, str]) -> None:
    server, _ = fake
    server.script = ReplicateScript(image_mode="poll")
    result = CliRunner().invoke(cli, ["image", "a llama", "-m", MODEL, "-o", "-"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == PNG_1X1


@pytest.mark.parametrize("size", ["64", "0x10", "axb", "64x32x2"])
def test_bad_size_is_a_usage_error(fake: tuple[FakeReplicate, str], size: str) -> None:
    server, _ = fake
    result = CliRunner().invoke(cli, ["image", "x", "-m", MODEL, "-o", "f.png", "--size", size])
    assert result.exit_code == 2
    assert "WIDTHxHEIGHT" in result.stderr
    assert server.requests == []


def test_provider_error_exits_1_and_writes_nothing(
    fake: tuple[FakeReplicate, str], tmp_path: Path
) -> None:
    server, _ = fake
    server.script = ReplicateScript(mode="http_error", error_status=422)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.png"
    result = CliRunner().invoke(cli, ["image", "a llama", "-m", MODEL, "-o", str(out)])
    assert result.exit_code == 1
    assert "prompt is required" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(out.parent.iterdir()) == []


def test_missing_key_exits_2(
    fake: tuple[FakeReplicate, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = fake
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    result = CliRunner().invoke(cli, ["image", "a llama", "-m", MODEL, "-o", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "REPLICATE_API_TOKEN" in result.stderr
    assert server.requests == []
