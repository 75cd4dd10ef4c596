"""``llmrelay embed`` against the feature-extraction fake, through click's CliRunner."""

from __future__ import annotations

import array
import base64
import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from llmrelay.cli import cli
from tests.fakes._server import serve
from tests.fakes._streaming import Fault, combine
from tests.fakes.embeddings import f32, vector_for
from tests.fakes.tgi import FakeTGI, TGIScript

BGE = "BAAI/bge-small-en-v1.5"
MODEL = f"huggingface:{BGE}"


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[FakeTGI, str]]:
    fake = FakeTGI()
    with serve(combine(fake)) as url:
        yield fake, url


@pytest.fixture
def fake(_server: tuple[FakeTGI, str], monkeypatch: pytest.MonkeyPatch) -> FakeTGI:
    fake, url = _server
    fake.script = TGIScript()
    fake.recorder.requests.clear()
    monkeypatch.setenv("LLMRELAY_HUGGINGFACE_BASE_URL", url)
    return fake


def vectors(output: str) -> list[list[float]]:
    answer = json.loads(output)
    assert answer["object"] == "list"
    assert answer["model"] == MODEL
    return [[f32(x) for x in item["embedding"]] for item in answer["data"]]


def test_one_text_argument(fake: FakeTGI) -> None:
    result = CliRunner().invoke(cli, ["embed", "hello world", "-m", MODEL])
    assert result.exit_code == 0, result.output
    assert vectors(result.stdout) == [vector_for(BGE, "hello world", 8)]
    assert fake.requests[-1].json == {"inputs": "hello world"}


def test_several_texts_and_an_option(fake: FakeTGI) -> None:
    result = CliRunner().invoke(cli, ["embed", "a", "b", "-m", MODEL, "-o", "normalize", "false"])
    assert result.exit_code == 0, result.output
    assert vectors(result.stdout) == [vector_for(BGE, t, 8, normalize=False) for t in "ab"]
    assert fake.requests[-1].json == {"inputs": ["a", "b"], "normalize": False}


def test_standard_input_and_base64(fake: FakeTGI) -> None:
    result = CliRunner().invoke(
        cli, ["embed", "-m", MODEL, "--encoding", "base64"], input="from stdin\n"
    )
    assert result.exit_code == 0, result.output
    item = json.loads(result.stdout)["data"][0]["embedding"]
    assert array.array("f", base64.b64decode(item)).tolist() == vector_for(BGE, "from stdin\n", 8)
    assert fake.requests[-1].json == {"inputs": "from stdin\n"}


def test_a_refused_field_exits_1_naming_it(fake: FakeTGI) -> None:
    result = CliRunner().invoke(cli, ["embed", "x", "-m", MODEL, "--dimensions", "4"])
    assert result.exit_code == 1
    assert "huggingface cannot honour 'dimensions'" in result.stderr
    assert fake.requests == []


def test_upstream_failure_exits_1(fake: FakeTGI) -> None:
    fake.script = TGIScript(fault=Fault("http_error", status=404))
    result = CliRunner().invoke(cli, ["embed", "x", "-m", MODEL])
    assert result.exit_code == 1
    assert result.stderr.startswith("llmrelay: error: ")


def test_usage_errors(fake: FakeTGI) -> None:
    assert CliRunner().invoke(cli, ["embed", "", "-m", MODEL]).exit_code == 2
    assert CliRunner().invoke(cli, ["embed", "x"]).exit_code == 2  # -m is required
    unknown = CliRunner().invoke(cli, ["embed", "x", "-m", "nosuch:model"])
    assert unknown.exit_code == 2
    assert fake.requests == []
