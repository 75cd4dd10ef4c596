"""simonw's ``llm`` CLI against the server: ``--no-stream``, ``--schema`` and a tool chain.

``llm`` talks to any OpenAI-compatible server through ``extra-openai-models.yaml``
(https://llm.datasette.io/en/stable/other-models.html#openai-compatible-models) and the
``openai`` SDK. Issue reports it met: ``--no-stream`` crashed on ``"usage": null``,
``--schema`` printed prose (``response_format`` ignored), ``-T``/``--functions`` got no
tool calls. Run in-process through click's runner, ``LLM_USER_PATH`` in a temporary
directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from llmrelay import FinishReason
from tests.corpus.tool_streams import recorded
from tests.fakes.openai_server import FakeOpenAI, OpenAIScript
from tests.server import scripted

llm_cli = pytest.importorskip("llm.cli")

WEATHER_FUNCTION = '''
def GetWeatherArgs(city: str, country: str, units: str) -> str:
    """The weather in a city."""
    return f"12 degrees {units}, light rain in {city}, {country}"
'''


@pytest.fixture
def llm_home(tmp_path: Path, base_url: str) -> Path:
    models = [
        {"model_id": relay_id, "model_name": name, "api_base": base_url, **extra}
        for relay_id, name, extra in (
            ("relay-local", "local:fake-model", {"supports_schema": True, "supports_tools": True}),
            ("relay-alpha", "alpha:m", {}),
        )
    ]
    (tmp_path / "extra-openai-models.yaml").write_text(json.dumps(models))  # JSON is YAML
    return tmp_path


def run_llm(home: Path, *args: str) -> Result:
    result = CliRunner().invoke(
        llm_cli.cli, ["prompt", *args], env={"LLM_USER_PATH": str(home)}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


def test_no_stream_reads_usage_counted_by_the_relay(llm_home: Path, upstream: FakeOpenAI) -> None:
    scripted.SCRIPTS["alpha"] = ["An answer from a Space.", FinishReason("stop")]
    result = run_llm(llm_home, "-m", "relay-alpha", "--no-stream", "-u", "hi")
    assert "An answer from a Space." in result.output
    # 23 UTF-8 bytes / 4, rounded up: the relay's estimate, read by llm
    assert "6 output" in result.output


def test_schema_is_honoured_and_printed_as_json(llm_home: Path, upstream: FakeOpenAI) -> None:
    upstream.script.raw = recorded("oai-stream-structured.sse")
    schema = "city, temperature float, units"
    result = run_llm(llm_home, "-m", "relay-local", "--schema", schema, "Weather in SF?")
    assert json.loads(result.output) == {"city": "San Francisco", "temperature": 61, "units": "f"}
    sent = upstream.requests[-1].json["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "output"
    assert set(sent["json_schema"]["schema"]["properties"]) == {"city", "temperature", "units"}


def test_a_tool_chain_calls_the_function_and_answers(llm_home: Path, upstream: FakeOpenAI) -> None:
    answer = ["It is 12 degrees", " and raining in Edinburgh."]
    upstream.script = OpenAIScript(
        models=["fake-model"],
        raw=recorded("oai-stream-pydantic-tool.sse"),
        then=OpenAIScript(models=["fake-model"], chunks=answer),
    )
    result = run_llm(
        llm_home, "-m", "relay-local", "--functions", WEATHER_FUNCTION, "Weather in Edinburgh?"
    )
    assert "It is 12 degrees and raining in Edinburgh." in result.output
    first, second = (r.json for r in upstream.requests[-2:])
    assert [t["function"]["name"] for t in first["tools"]] == ["GetWeatherArgs"]
    call = second["messages"][1]["tool_calls"][0]
    assert call["function"]["name"] == "GetWeatherArgs"
    assert json.loads(call["function"]["arguments"]) == {
        "city": "Edinburgh",
        "country": "UK",
        "units": "c",
    }
    assert second["messages"][2] == {
        "role": "tool",
        "content": "12 degrees c, light rain in Edinburgh, UK",
        "tool_call_id": call["id"],
    }
