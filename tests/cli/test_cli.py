"""The CLI through click's runner and as a real subprocess, against the fake Space."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import pytest

from tests.cli.conftest import Space, run
from tests.fakes.gradio_space import DEFAULT_CHUNKS, SpaceScript

ANSWER = inspect.cleandoc("".join(DEFAULT_CHUNKS))


def test_chat_streams_only_the_answer_to_stdout(space: Space) -> None:
    fake, _ = space
    code, out, err = run("chat", "-m", "hf_spaces:qwen-2-72b", "-s", "Be brief.", "Hello")
    assert code == 0, err
    assert out == ANSWER + "\n"
    assert err == ""
    assert fake.joins[0].json["data"] == ["Hello", [], "Be brief."]


def test_chat_reads_the_prompt_from_stdin(space: Space) -> None:
    fake, _ = space
    code, out, _ = run("chat", "-", stdin="from stdin")
    assert code == 0
    assert out == ANSWER + "\n"
    assert fake.joins[0].json["data"][0] == "from stdin"


def test_events_are_json_lines_with_a_type(space: Space) -> None:
    code, out, _ = run("chat", "--events", "Hello")
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    # zero or more "queued" (the Space's queue, live), then the provider, ... one finish
    first = next(i for i, e in enumerate(events) if e["type"] != "queued")
    assert events[first] == {
        "type": "provider",
        "provider": "hf_spaces",
        "model": "Qwen/Qwen2-72B-Instruct",
        "label": events[first]["label"],
    }
    assert events[-1] == {"type": "finish", "reason": "stop"}
    assert "".join(e["text"] for e in events if e["type"] == "text") == ANSWER
    # the Space's estimation message (its queue position) comes as a "queued" event
    assert {e["type"] for e in events} == {"provider", "queued", "text", "finish"}
    assert {"type": "queued", "position": 0, "queue_size": 1, "eta": None} in events


def test_provider_error_is_one_line_and_exit_1(space: Space) -> None:
    fake, _ = space
    fake.script = SpaceScript(join_status=503)
    code, out, err = run("chat", "Hello")
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("llmrelay: error: hf_spaces (Qwen/Qwen2-72B-Instruct): ")
    assert "503" in lines[0]


def test_interrupted_stream_keeps_the_text_and_exits_1(space: Space) -> None:
    fake, _ = space
    fake.script = SpaceScript(mode="disconnect", fail_after=3)
    code, out, err = run("chat", "Hello")
    assert code == 1
    assert out.startswith("Hello, world")
    assert "stream interrupted" in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["chat", "-m", "nosuch:model", "hi"], "unknown provider 'nosuch'"),
        (
            ["chat", "-m", "hf_spaces:gpt-9", "hi"],
            "valid models: Qwen/Qwen2-72B-Instruct, qwen-2-72b, qwen-qwen2-72b-instruct",
        ),
        (["chat", "--temperature", "-1", "hi"], "--temperature"),
        (["chat", "  "], "the prompt is empty"),
        (["chat", "--bogus", "hi"], "No such option"),
    ],
)
def test_bad_usage_exits_2(space: Space, args: list[str], fragment: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert out == ""
    assert fragment in err


def test_providers_lists_auth_and_key_status(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run("providers", "--json")
    assert code == 0
    (entry,) = [e for e in json.loads(out) if e["name"] == "hf_spaces"]
    assert entry["auth"] == "optional"
    assert entry["env_var"] == "HF_TOKEN"
    assert entry["key_set"] is False
    assert "system_prompt" in entry["capabilities"]
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    code, out, _ = run("providers", "--json")
    assert json.loads(out)[0]["key_set"] is True
    assert "hf_secret_value" not in out
    code, table, _ = run("providers")
    assert code == 0
    assert "hf_spaces" in table
    assert "HF_TOKEN" in table
    assert "hf_secret_value" not in table


def test_models_lists_aliases() -> None:
    code, out, _ = run("models", "hf_spaces", "--json")
    assert code == 0
    assert json.loads(out) == [
        {
            "provider": "hf_spaces",
            "model": "Qwen/Qwen2-72B-Instruct",
            "aliases": ["qwen-2-72b", "qwen-qwen2-72b-instruct"],
            "default": True,
            "reference": "hf_spaces:Qwen/Qwen2-72B-Instruct",
        }
    ]
    code, _, err = run("models", "nosuch")
    assert code == 2
    assert "unknown provider 'nosuch'" in err


def test_real_subprocess_streams_and_exits_0(space: Space) -> None:
    _, url = space
    env = {**os.environ, "LLMRELAY_HF_SPACES_BASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", "chat", "-m", "qwen-2-72b", "Hello"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"
    assert result.stderr == ""


def test_real_subprocess_reports_a_refused_connection() -> None:
    env = {**os.environ, "LLMRELAY_HF_SPACES_BASE_URL": "http://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", "chat", "-m", "hf_spaces", "Hello"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "hf_spaces (Qwen/Qwen2-72B-Instruct): ConnectError" in result.stderr
