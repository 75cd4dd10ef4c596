"""Habits people bring from `llm` and the openai tools: pipes, -u, -o, keys, -v, python -m."""

from __future__ import annotations

import inspect
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import click
import pytest

from llmrelay.cli._options import resolve_options
from llmrelay.keys import keys_path, load_keys
from tests.cli.conftest import Space, run, run_process
from tests.fakes.gradio_space import DEFAULT_CHUNKS

ANSWER = inspect.cleandoc("".join(DEFAULT_CHUNKS))


def test_piped_stdin_comes_first_then_the_prompt(space: Space) -> None:
    fake, _ = space
    code, out, err = run("chat", "explain this", stdin="def f():\n    return 1\n")
    assert code == 0, err
    assert out == ANSWER + "\n"
    assert fake.joins[0].json["data"][0] == "def f():\n    return 1\n\nexplain this"


def test_piped_stdin_with_a_prompt_in_a_real_process(space: Space) -> None:
    fake, url = space
    result = run_process(
        "chat", "summarise", stdin=b"line one\nline two\n", env={"LLMRELAY_HF_SPACES_BASE_URL": url}
    )
    assert result.returncode == 0, result.stderr
    assert fake.joins[0].json["data"][0] == "line one\nline two\n\nsummarise"


def test_no_stream_prints_the_whole_answer_once(space: Space) -> None:
    code, out, _ = run("chat", "--no-stream", "hi")
    assert code == 0
    assert out == ANSWER + "\n"


def test_usage_goes_to_stderr(space: Space) -> None:
    code, out, err = run("chat", "-u", "hi")
    assert code == 0
    assert out == ANSWER + "\n"
    assert err.startswith("Token usage: ")


def test_undeclared_option_warns_and_strict_makes_it_an_error(space: Space) -> None:
    fake, _ = space
    code, out, err = run("chat", "-o", "frobnicate", "3", "hi")
    assert code == 0
    assert out == ANSWER + "\n"
    assert "hf_spaces declares no option 'frobnicate'" in err
    assert "ignored" in err
    joins = len(fake.joins)
    code, out, err = run("chat", "--strict", "-o", "frobnicate", "3", "hi")
    assert code == 2
    assert out == ""
    assert "hf_spaces declares no option 'frobnicate'" in err
    assert len(fake.joins) == joins


def _description(name: str, options: dict[str, dict[str, str]]) -> SimpleNamespace:
    return SimpleNamespace(name=name, options=options, models=("m",), aliases={})


def test_options_are_converted_to_their_declared_type() -> None:
    descriptions = [
        _description(
            "p",
            {
                "top_k": {"type": "int", "help": ""},
                "penalty": {"type": "float", "help": ""},
                "safe": {"type": "bool", "help": ""},
                "extra": {"type": "json", "help": ""},
                "name": {"type": "str", "help": ""},
            },
        ),
        _description("q", {"other": {"type": "int", "help": ""}}),
    ]
    pairs = [
        ("top_k", "40"),
        ("penalty", "1.5"),
        ("safe", "no"),
        ("extra", '{"a": 1}'),
        ("name", "x"),
    ]
    assert resolve_options(
        pairs, model="p:m", descriptions=descriptions, aliases={}, strict=True
    ) == {
        "top_k": 40,
        "penalty": 1.5,
        "safe": False,
        "extra": {"a": 1},
        "name": "x",
    }
    with pytest.raises(click.BadParameter, match="option top_k expects int; got 'many'"):
        resolve_options(
            [("top_k", "many")], model="p", descriptions=descriptions, aliases={}, strict=False
        )
    with pytest.raises(click.BadParameter, match="p declares no option 'other'"):
        resolve_options(
            [("other", "1")], model="p:m", descriptions=descriptions, aliases={}, strict=True
        )
    # an alias reaching both providers accepts either provider's options
    aliases = {"both": ["p:m", "q:m"]}
    assert resolve_options(
        [("other", "2")], model="both", descriptions=descriptions, aliases=aliases, strict=True
    ) == {"other": 2}


def test_keys_set_list_and_path(space: Space, home: Path) -> None:
    code, out, _ = run("keys", "path")
    assert out.strip() == str(home / "keys.json")
    assert keys_path() == home / "keys.json"
    code, out, err = run("keys", "set", "hf_spaces", stdin="hf_secret_value\n")
    assert code == 0, err
    assert out == ""
    assert load_keys() == {"hf_spaces": "hf_secret_value"}
    assert stat.S_IMODE(os.stat(home / "keys.json").st_mode) == 0o600
    code, out, _ = run("keys", "list")
    assert code == 0
    assert f"hf_spaces\tkeys file {home / 'keys.json'}\n" in out
    assert "hf_secret_value" not in out
    code, out, err = run("keys", "set", "hf_spaces", stdin="\n")
    assert code == 2
    assert "empty" in err
    assert load_keys() == {"hf_spaces": "hf_secret_value"}


def test_keys_list_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    code, out, _ = run("keys", "list")
    assert code == 0
    assert "hf_spaces\tenvironment (HF_TOKEN)\n" in out
    assert "hf_from_env" not in out


def test_keys_set_prompts_with_hidden_input_on_a_terminal(home: Path) -> None:
    import sys

    import pexpect

    from tests.cli.conftest import SRC

    child = pexpect.spawn(
        sys.executable,
        ["-m", "llmrelay", "keys", "set", "hf_spaces"],
        env={**os.environ, "PYTHONPATH": SRC},
        encoding="utf-8",
        timeout=20,
    )
    child.expect_exact("Key for hf_spaces: ")
    child.sendline("typed_secret")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "typed_secret" not in child.before  # not echoed
    assert load_keys() == {"hf_spaces": "typed_secret"}


def test_a_damaged_keys_file_is_named(home: Path) -> None:
    home.mkdir()
    (home / "keys.json").write_text("{not json")
    code, _, err = run("keys", "list")
    assert code == 2
    assert str(home / "keys.json") in err


@pytest.mark.parametrize("args", [("-v", "chat", "hi"), ("chat", "-v", "hi"), ("chat", "hi", "-v")])
def test_verbose_before_or_after_the_command(space: Space, args: tuple[str, ...]) -> None:
    code, out, err = run(*args)
    assert code == 0
    assert out == ANSWER + "\n"
    assert "INFO: llmrelay.cli: answered by hf_spaces:Qwen/Qwen2-72B-Instruct" in err
    assert "first token" in err
    assert "httpx" not in err


def test_very_verbose_adds_the_wire_detail(space: Space) -> None:
    code, _, err = run("chat", "-vv", "hi")
    assert code == 0
    assert "httpx" in err or "httpcore" in err


def test_python_dash_m_llmrelay(space: Space) -> None:
    _, url = space
    result = run_process("chat", "Hello", env={"LLMRELAY_HF_SPACES_BASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == ANSWER + "\n"
    assert result.stderr == b""
    result = run_process("--version")
    assert result.returncode == 0
    assert b"version" in result.stdout


def test_logs_json_carries_every_field(space: Space) -> None:
    run("chat", "-s", "sys", "-m", "qwen-2-72b", "hi")
    _, out, _ = run("logs", "--json")
    (entry,) = json.loads(out)
    assert entry["model_requested"] == "qwen-2-72b"
    assert entry["system"] == "sys"
    assert entry["provider"] == "hf_spaces"
    assert set(entry) >= {
        "conversation_id",
        "prompt",
        "system",
        "answer",
        "model_requested",
        "provider",
        "model",
        "attempts",
        "first_token_ms",
        "duration_ms",
        "usage",
        "finish_reason",
        "error_type",
        "error",
    }


def test_attempts_are_logged_without_the_error_object() -> None:
    from dataclasses import dataclass

    from llmrelay.cli._session import _attempts

    @dataclass
    class Attempt:
        provider: str
        model: str
        outcome: str
        error_type: str | None
        message: str | None
        error: BaseException | None

    stream = SimpleNamespace(
        attempts=[
            Attempt("a", "m1", "failed", "ProviderUnavailable", "HTTP 503", RuntimeError("x")),
            Attempt("b", "m2", "ok", None, None, None),
        ]
    )
    logged = _attempts(stream)
    assert json.loads(json.dumps(logged)) == [
        {
            "provider": "a",
            "model": "m1",
            "outcome": "failed",
            "error_type": "ProviderUnavailable",
            "message": "HTTP 503",
        },
        {"provider": "b", "model": "m2", "outcome": "ok", "error_type": None, "message": None},
    ]


def test_a_parameter_the_provider_cannot_take_warns_or_fails_with_strict(space: Space) -> None:
    fake, _ = space
    code, out, err = run("chat", "--temperature", "0.5", "hi")
    assert code == 0
    assert out == ANSWER + "\n"
    assert err == "llmrelay: warning: hf_spaces does not take temperature; ignored\n"
    code, out, err = run("chat", "--strict", "--temperature", "0.5", "hi")
    assert code != 0
    assert out == ""
    assert "temperature" in err
    assert len(fake.joins) == 1


def test_options_follow_the_config_files_default_model(
    space: Space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # -o is checked against the provider the request goes to: with no -m and no
    # LLMRELAY_MODEL, the config file's default (here not the first provider)
    fake, _ = space
    monkeypatch.delenv("LLMRELAY_MODEL")
    config = tmp_path / "config.toml"
    config.write_text('model = "replicate:meta/meta-llama-3-70b-instruct"\n')
    monkeypatch.setenv("LLMRELAY_CONFIG", str(config))
    joins = len(fake.joins)
    code, out, err = run("chat", "--strict", "-o", "inputs", "{}", "hi")
    assert code == 2
    assert out == ""
    assert "replicate declares no option 'inputs'" in err  # hf_spaces' option, not its
    assert len(fake.joins) == joins
    config.write_text('model = "hf_spaces"\n')
    code, out, err = run("chat", "--strict", "-o", "inputs", "{}", "hi")
    assert code == 0, err
    assert out == ANSWER + "\n"
