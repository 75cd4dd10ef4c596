"""``llmrelay models huggingface --live``: the router's catalogue as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cli.conftest import run
from tests.fakes._server import serve
from tests.fakes._streaming import Fault
from tests.fakes.hf_router import FakeHFRouter, RouterScript


@pytest.fixture(scope="module")
def _router() -> Iterator[tuple[FakeHFRouter, str]]:
    fake = FakeHFRouter()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def router(_router: tuple[FakeHFRouter, str], monkeypatch: pytest.MonkeyPatch) -> FakeHFRouter:
    fake, url = _router
    fake.script = RouterScript()
    fake.recorder.requests.clear()
    monkeypatch.setenv("LLMRELAY_HUGGINGFACE_ROUTER_URL", url + "/v1")
    monkeypatch.setenv("HF_TOKEN", "hf_cli_secret_token")
    return fake


def test_live_json(router: FakeHFRouter) -> None:
    code, out, _ = run("models", "huggingface", "--live", "--json")
    assert code == 0
    rows = json.loads(out)
    assert rows[0]["reference"] == "huggingface:meta-llama/Llama-3.1-8B-Instruct"
    assert rows[0]["context_length"] == 16384
    assert rows[0]["supports_tools"] is True
    assert rows[0]["offers"][0] == {
        "provider": "novita",
        "status": "live",
        "context_length": 16384,
        "input_price": 0.02,
        "output_price": 0.05,
        "supports_tools": False,
        "supports_structured_output": False,
    }
    assert router.requests[0].headers["authorization"] == "Bearer hf_cli_secret_token"
    assert "hf_cli_secret_token" not in out


def test_live_rows(router: FakeHFRouter) -> None:
    code, out, _ = run("models", "--live")  # huggingface is the provider with a catalogue
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split("\t") == [
        "huggingface:meta-llama/Llama-3.1-8B-Instruct",
        "novita, cerebras, featherless-ai",
        "16384",
        "yes",
        "no",
        "0.02 / 0.05 (novita)",
    ]
    deepseek = next(line for line in lines if "DeepSeek-R1" in line).split("\t")
    assert deepseek[1] == "together, fireworks-ai (staging)"
    vl = next(line for line in lines if "VL" in line).split("\t")
    assert vl[4] == "yes"


def test_live_errors(router: FakeHFRouter) -> None:
    code, _, err = run("models", "ai2", "--live")
    assert code == 2
    assert "ai2 has no live model catalogue" in err
    router.script.fault = Fault("http_error", status=401, body={"error": "Invalid credentials"})
    code, out, err = run("models", "huggingface", "--live")
    assert code == 1
    assert out == ""
    assert err.count("llmrelay: error:") == 1
    assert "Invalid credentials" in err
    code, _, err = run("models", "nosuch", "--live")
    assert code == 2
