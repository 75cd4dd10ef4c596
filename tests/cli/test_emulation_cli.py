"""``llmrelay chat --schema/--schema-file/--tool/--tool-emulation/--events`` against the
fake Space (no native tools: emulation), and the exchange log's record of tool calls."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from llmrelay.cli._schema import parse_schema
from tests.cli.conftest import Space, run
from tests.fakes.gradio_space import SpaceScript

TOOL = json.dumps(
    {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
)
CALL = '```json\n{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}\n```'


def script(space: Space, text: str) -> None:
    space[0].script = SpaceScript(chunks=[text[i : i + 9] for i in range(0, len(text), 9)])


def test_schema_answers_are_printed_as_json(space: Space) -> None:
    fake, _ = space
    script(space, '{"name": "Ada", "age": 36}')
    code, out, err = run("chat", "--schema", "name, age int: in years", "--tool-emulation", "Who?")
    assert code == 0, err
    assert json.loads(out) == {"name": "Ada", "age": 36}
    assert out == json.dumps({"name": "Ada", "age": 36}, indent=2) + "\n"
    system = fake.joins[0].json["data"][2]
    assert '"age": {"description": "in years", "type": "integer"}' in system


def test_a_schema_file_and_an_invalid_answer(space: Space, tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"type": "object", "required": ["name"]}))
    script(space, '{"nom": "Ada"}')
    code, out, err = run("chat", "--schema-file", str(path), "--tool-emulation", "Who?")
    assert code == 1
    assert out == ""
    assert "emulated response_format" in err
    assert "'name' is a required property" in err


def test_without_the_opt_in_the_provider_refuses_the_schema(space: Space) -> None:
    fake, _ = space
    code, _, err = run("chat", "--schema", "name", "Who?")
    assert code == 1
    assert "hf_spaces cannot honour response_format" in err
    assert fake.joins == []


def test_tool_calls_are_events_printed_and_logged(space: Space) -> None:
    script(space, CALL)
    code, out, err = run("chat", "--tool", TOOL, "--tool-emulation", "--events", "Weather?")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    [call] = [e for e in events if e["type"] == "tool_call"]
    assert (call["index"], call["name"], json.loads(call["arguments"])) == (
        0,
        "get_weather",
        {"city": "Oslo"},
    )
    assert events[-1] == {"type": "finish", "reason": "tool_calls"}
    script(space, CALL)
    code, out, err = run("chat", "--tool", TOOL, "--tool-emulation", "Weather?")
    assert code == 0, err
    [line] = out.splitlines()
    printed = json.loads(line)["tool_call"]
    assert printed["name"] == "get_weather"
    code, logged, _ = run("logs", "--json", "-n", "1")
    assert code == 0
    [entry] = json.loads(logged)
    assert entry["finish_reason"] == "tool_calls"
    assert entry["tool_calls"] == [printed]


def test_concise_schema_syntax() -> None:
    assert parse_schema("name, age int, score float: 0 to 1, ok bool") == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "score": {"type": "number", "description": "0 to 1"},
            "ok": {"type": "boolean"},
        },
        "required": ["name", "age", "score", "ok"],
    }
    assert list(parse_schema("name: full name, with a comma\nbio")["properties"]) == ["name", "bio"]
    for bad in ("age integer", "{not json", "[1]", " , "):
        with pytest.raises(click.BadParameter):
            parse_schema(bad)


def test_schema_and_schema_file_are_exclusive(space: Space, tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{}")
    code, _, err = run("chat", "--schema", "a", "--schema-file", str(path), "x")
    assert code == 2
    assert "not both" in err
