"""First-use defects, each reproduced as a new user met it."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmrelay.cli._text import clean_error_text
from tests.cli.conftest import SRC, Space, run, run_process
from tests.fakes._server import serve
from tests.fakes.gradio_space import DEFAULT_CHUNKS, SpaceScript

ANSWER = inspect.cleandoc("".join(DEFAULT_CHUNKS))


# -- input that is not UTF-8 --------------------------------------------------------------


def test_non_utf8_stdin_is_one_clear_error_naming_the_offset(space: Space) -> None:
    fake, _ = space
    code, out, err = run("chat", stdin=b"caf\xe9 au lait")
    assert code == 2
    assert out == ""
    assert "standard input is not valid utf-8: byte 0xe9 at offset 3" in err
    assert "--encoding" in err
    assert "Traceback" not in err
    assert fake.joins == []


def test_encoding_option_decodes_stdin(space: Space) -> None:
    fake, _ = space
    code, _, err = run("chat", "--encoding", "latin-1", stdin=b"caf\xe9")
    assert code == 0, err
    assert fake.joins[0].json["data"][0] == "café"


def test_non_utf8_argument_in_a_real_process(space: Space) -> None:
    fake, url = space
    env = {"LLMRELAY_HF_SPACES_BASE_URL": url, "LC_ALL": "C.UTF-8"}
    result = run_process("chat", b"na\xefve", env=env)
    assert result.returncode == 2
    assert result.stdout == b""
    assert b"the prompt argument is not valid utf-8: byte 0xef at offset 2" in result.stderr
    assert b"Traceback" not in result.stderr
    result = run_process("chat", "--encoding", "latin-1", b"na\xefve", env=env)
    assert result.returncode == 0, result.stderr
    assert fake.joins[-1].json["data"][0] == "naïve"


def test_unknown_encoding_is_a_usage_error(space: Space) -> None:
    code, _, err = run("chat", "--encoding", "klingon", stdin=b"x")
    assert code == 2
    assert "unknown encoding 'klingon'" in err


class _Surrogates:
    """Turns ``LONE_SURROGATE`` in the fake's event stream into the JSON escape ``\\ud800``
    (valid JSON that decodes to a lone surrogate, as a broken server may send)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def patched(message: Any) -> None:
            if message["type"] == "http.response.body":
                body = message.get("body", b"").replace(b"LONE_SURROGATE", b"\\ud800")
                message = {**message, "body": body}
            await send(message)

        await self.app(scope, receive, patched)


def test_a_lone_surrogate_in_the_answer_never_crashes_the_output(space: Space) -> None:
    fake, _ = space
    fake.script = SpaceScript(chunks=["bad ", "LONE_SURROGATE", " end"])
    with serve(_Surrogates(fake.app)) as url:
        env = {"LLMRELAY_HF_SPACES_BASE_URL": url, "PYTHONIOENCODING": "utf-8"}
        result = run_process("chat", "hi", env=env)
        events = run_process("chat", "--events", "hi", env=env)
    assert result.returncode == 0, result.stderr
    # the library mends a lone surrogate into U+FFFD (issue 24 item 4): valid UTF-8 out
    assert result.stdout == "bad \ufffd end\n".encode()
    assert events.returncode == 0, events.stderr
    texts = [json.loads(line) for line in events.stdout.decode().splitlines()]
    # a surrogate ending a delta waits for the next one (it may be half of a pair)
    assert [t["text"] for t in texts if t["type"] == "text"] == ["bad ", "\ufffd end"]


# -- errors that say what to do ---------------------------------------------------------


def test_refused_connection_names_the_base_url_and_its_setting() -> None:
    result = run_process(
        "chat", "-m", "hf_spaces", "hi", env={"LLMRELAY_HF_SPACES_BASE_URL": "http://127.0.0.1:9"}
    )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.count("\n") == 1
    assert "http://127.0.0.1:9" in err
    assert "LLMRELAY_HF_SPACES_BASE_URL" in err


def test_proxy_failure_blames_the_proxy(space: Space) -> None:
    code, _, err = run("chat", "--proxy", "http://127.0.0.1:9", "hi")
    assert code == 1
    assert "proxy http://127.0.0.1:9" in err
    assert "is the service running" not in err


def test_a_proxy_from_the_environment_or_config_file_is_blamed_by_its_setting(
    space: Space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMRELAY_PROXY", "http://user:pw@127.0.0.1:9")
    code, _, err = run("chat", "hi")
    assert code == 1
    assert "could not get through the proxy set by LLMRELAY_PROXY" in err
    assert "is the service running" not in err
    assert "pw@" not in err  # the proxy's URL (and its password) is not repeated
    monkeypatch.delenv("LLMRELAY_PROXY")
    config = tmp_path / "config.toml"
    config.write_text('proxy = "http://127.0.0.1:9"\n')
    monkeypatch.setenv("LLMRELAY_CONFIG", str(config))
    code, _, err = run("chat", "hi")
    assert code == 1
    assert "could not get through the proxy set by config file proxy" in err


HTML = (
    "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>502 Bad Gateway</title>"
    "<style>body{font:12px}</style></head><body><h1>502 Bad Gateway</h1>"
    + "<p>nginx</p>" * 200
    + "</body></html>"
)


def test_html_error_page_is_summarised(space: Space) -> None:
    fake, _ = space
    fake.script = SpaceScript(join_status=502, join_body=HTML)
    code, _, err = run("chat", "hi")
    assert code == 1
    line = err.strip()
    assert "\n" not in line
    # an upstream page is described, never quoted (not even its title)
    assert f"HTTP 502 with an HTML page ({len(HTML)} bytes)" in line
    assert "Bad Gateway" not in line
    assert "nginx" not in line
    assert "<" not in line


def test_control_characters_and_escapes_are_stripped_and_text_capped(space: Space) -> None:
    fake, _ = space
    # the Space's own error message (FastAPI's {"detail"}) is relayed: cleaned, bounded
    detail = "\x1b[31mboom\x1b[0m\x07\x1b]0;title\x07 " + "x" * 5000
    fake.script = SpaceScript(join_status=500, join_body=json.dumps({"detail": detail}))
    code, _, err = run("chat", "hi")
    assert code == 1
    assert "\x1b" not in err
    assert "\x07" not in err
    assert "boom" in err
    assert len(err.strip()) <= len("llmrelay: error: ") + 300


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\x1b[1;31mb\x1b[0mc\x00d\te\nf", "abc d e f"),
        (
            "HTTP 503: <html><title>503 Service Unavailable</title>",
            "HTTP 503: an HTML error page titled 'Service Unavailable'",
        ),
        ("<html><body>no title</body></html>", "an HTML error page"),
        ("x" * 400, "x" * 299 + "…"),
        ("lone \ud800 surrogate", "lone surrogate"),
    ],
)
def test_clean_error_text(raw: str, expected: str) -> None:
    assert clean_error_text(raw) == expected


def test_base_url_without_scheme_is_a_config_error(
    space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = space
    monkeypatch.setenv("LLMRELAY_HF_SPACES_BASE_URL", "127.0.0.1:7860")
    code, out, err = run("chat", "hi")
    assert code == 2
    assert out == ""
    assert "LLMRELAY_HF_SPACES_BASE_URL='127.0.0.1:7860'" in err
    assert "http://" in err
    assert fake.joins == []


def test_bad_environment_value_names_the_variable(
    space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMRELAY_READ_TIMEOUT", "abc")
    code, _, err = run("chat", "hi")
    assert code == 2
    assert "LLMRELAY_READ_TIMEOUT" in err


def test_bad_config_value_names_the_file_and_key(
    space: Space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[timeouts]\nread = "abc"\n')
    monkeypatch.setenv("LLMRELAY_CONFIG", str(config))
    code, _, err = run("chat", "hi")
    assert code == 2
    assert str(config) in err
    assert "read" in err
    assert "timeouts" in err


# -- interruptions and partial answers ---------------------------------------------------


def _env(url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    if url:
        env["LLMRELAY_HF_SPACES_BASE_URL"] = url
    return env


def test_ctrl_c_while_waiting_for_stdin_exits_130() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "llmrelay", "-v", "chat", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert b"reading standard input" in line
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 130
    assert out == b""
    assert b"Traceback" not in err
    assert b"interrupted" in err


def test_ctrl_c_during_start_up_prints_no_traceback() -> None:
    # KeyboardInterrupt raised while the commands' libraries are being imported
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def fake(name, *args, **kwargs):\n"
        "    if name == 'click':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = fake\n"
        "from llmrelay.cli import main\n"
        "main(['chat', 'hi'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=_env(), timeout=30, check=False
    )
    assert result.returncode == 130
    assert b"Traceback" not in result.stderr
    assert result.stderr.strip() == b"llmrelay: interrupted"


def test_partial_answer_then_error_ends_the_line_first(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(mode="disconnect", fail_after=3)
    result = run_process("chat", "hi", env={"LLMRELAY_HF_SPACES_BASE_URL": url})
    assert result.returncode == 1
    assert result.stdout.startswith(b"Hello, world")
    assert result.stdout.endswith(b"\n")
    assert result.stdout.count(b"\n") == 1
    # on a terminal both streams interleave: the error starts on its own line
    merged = subprocess.run(
        [sys.executable, "-m", "llmrelay", "chat", "hi"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(url),
        timeout=30,
        check=False,
    ).stdout.decode()
    error_line = next(line for line in merged.splitlines() if "llmrelay: error" in line)
    assert error_line.startswith("llmrelay: error: ")


def test_events_failure_ends_with_one_error_object(space: Space) -> None:
    fake, _ = space
    fake.script = SpaceScript(mode="disconnect", fail_after=3)
    code, out, err = run("chat", "--events", "hi")
    assert code == 1
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["type"] == "error"
    assert events[-1]["error"] == "StreamInterrupted"
    assert set(events[-1]) == {"type", "error", "provider", "model", "message"}
    assert [e["type"] for e in events].count("error") == 1
    assert "stream interrupted" in err
    fake.script = SpaceScript(join_status=503)
    code, out, _ = run("chat", "--events", "hi")
    assert code == 1
    (event,) = [json.loads(line) for line in out.splitlines()]
    assert event["type"] == "error"
    assert event["error"] == "ProviderUnavailable"
    assert (event["provider"], event["model"]) == ("hf_spaces", "Qwen/Qwen2-72B-Instruct")
    assert "503" in event["message"]


# -- tables ------------------------------------------------------------------------------


def test_tables_are_tab_separated_rows_when_not_a_terminal() -> None:
    code, out, _ = run("models")
    assert code == 0
    assert any(
        line.startswith("hf_spaces:Qwen/Qwen2-72B-Instruct\t") and "qwen-2-72b" in line
        for line in out.splitlines()
    )
    assert all(line.count("\t") == 2 for line in out.splitlines())
    code, out, _ = run("providers")
    rows = [line.split("\t") for line in out.splitlines()]
    assert ["hf_spaces", "Hugging Face Spaces (Gradio)"] in [row[:2] for row in rows]
    assert {len(row) for row in rows} == {6}
    assert "━" not in out


def test_models_aliases_shows_the_resolved_chains() -> None:
    code, out, _ = run("models", "--aliases")
    assert code == 0
    assert "qwen-2-72b\thf_spaces:Qwen/Qwen2-72B-Instruct -> " in out  # the whole chain
    code, out, _ = run("models", "--aliases", "--json")
    assert json.loads(out)["qwen-2-72b"][0] == "hf_spaces:Qwen/Qwen2-72B-Instruct"


def test_base_url_without_scheme_in_the_config_file_names_file_and_key(
    space: Space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, _ = space
    monkeypatch.delenv("LLMRELAY_HF_SPACES_BASE_URL")
    config = tmp_path / "config.toml"
    config.write_text('[providers.hf_spaces]\nbase_url = "127.0.0.1:7860"\n')
    monkeypatch.setenv("LLMRELAY_CONFIG", str(config))
    code, out, err = run("chat", "hi")
    assert code == 2
    assert out == ""
    assert f"{config} [providers.hf_spaces] base_url" in err
    assert fake.joins == []


def test_a_decoding_error_is_one_line(space: Space) -> None:
    code, _, err = run("chat", stdin=b"\xff")
    assert code == 2
    assert err == (
        "llmrelay: error: standard input is not valid utf-8: byte 0xff at offset 0; "
        "give its encoding with --encoding (e.g. --encoding latin-1)\n"
    )


def test_a_redis_url_is_not_mistaken_for_a_provider_url(
    space: Space, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the CLI's own URL check exited 2 on any LLMRELAY_*_URL not http(s); the settings
    # table knows LLMRELAY_REDIS_URL (and LLMRELAY_SERVER_API_KEY) are not provider settings
    pytest.importorskip("redis")
    monkeypatch.setenv("LLMRELAY_REDIS_URL", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("LLMRELAY_SERVER_API_KEY", "server-key-0123456789")
    code, out, err = run("chat", "hi")
    assert code == 0, err
    assert out
    assert "names no provider setting" not in err + caplog.text
