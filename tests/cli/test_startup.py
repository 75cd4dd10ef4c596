"""Start-up: what `llmrelay chat` loads before its first token, and what it still logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cli.conftest import SRC, Space, run, run_process
from tests.fakes._server import serve
from tests.fakes.openai_server import FakeOpenAI

# A fresh interpreter runs the command with stdout wrapped: on the first write of answer
# text it notes which heavy libraries are already imported.
_PROBE = r"""
import json, sys
heavy = ("sqlalchemy", "pydantic", "rich")
seen = {}
class Probe:
    def __init__(self, f): self.f = f
    def write(self, text):
        if text.strip() and not seen:
            seen.update({name: name in sys.modules for name in heavy})
            seen["modules"] = sorted(sys.modules)
        return self.f.write(text)
    def __getattr__(self, name): return getattr(self.f, name)
sys.stdout = Probe(sys.stdout)
from llmrelay.cli import main
try:
    main(sys.argv[1:])
finally:
    import httpx, httpx._main  # httpx's own CLI still imports in this process
    seen["httpx_cli_importable"] = httpx._main.main is not httpx.main
    sys.stderr.write("PROBE " + json.dumps(seen) + "\n")
"""


def _probe(
    *args: str, url: str, **extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": SRC, "LLMRELAY_HF_SPACES_BASE_URL": url, **extra}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("PROBE "))
    return result, json.loads(line.removeprefix("PROBE "))


def test_first_token_comes_before_the_log_database_layer_and_the_turn_is_logged(
    space: Space, home: Path
) -> None:
    _, url = space
    result, seen = _probe("chat", "hi", url=url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello")
    # nothing heavy was imported (nor being imported by a thread) before the answer:
    # not the log's SQLAlchemy, not the facade's pydantic, not rich (httpx's own CLI)
    seen.pop("modules")
    assert seen == {
        "sqlalchemy": False,
        "pydantic": False,
        "rich": False,
        "httpx_cli_importable": True,
    }
    code, out, _ = run("logs", "--json")
    assert code == 0
    [entry] = json.loads(out)
    assert entry["prompt"] == "hi"
    assert entry["answer"] == result.stdout.rstrip("\n")


_OTHER_BUILTINS = ("replicate", "huggingface", "ai2", "h2o")


def test_one_prompt_imports_only_the_provider_it_uses_before_its_first_token(
    space: Space,
) -> None:
    _, url = space
    result, seen = _probe("chat", "-m", "hf_spaces", "hi", url=url)
    assert result.returncode == 0, result.stderr
    loaded = set(seen["modules"])
    assert "llmrelay.providers.hf_spaces" in loaded
    # without -o the chat describes no provider (each description imports its module)
    assert not {f"llmrelay.providers.{name}" for name in _OTHER_BUILTINS} & loaded
    # the exchange log's database layer (sqlite3, SQLAlchemy) loads when the turn is
    # logged, after it
    assert not {"sqlite3", "sqlalchemy"} & loaded
    # only the chat command's module of the command line (not even the modules of its
    # options -o, --schema and --tool when they are not given)
    other_commands = {"_image", "_keyscmd", "_listing", "_serve", "_options", "_schema"}
    assert not {f"llmrelay.cli.{name}" for name in other_commands} & loaded
    # the config file's default place is worked out without platformdirs (and tempfile)
    assert "platformdirs" not in loaded
    # (a Space's provider module loads the image-input helpers with its file uploads)
    assert not _NOT_BEFORE_THE_FIRST_TOKEN - {"llmrelay.providers._image_input"} & loaded


# What a plain chat (no tools, images, embeddings) needs not before its first token:
# llmrelay.types' classes for those (loaded through ``llmrelay.types.__getattr__``), the
# embeddings helpers, the image-input policy, tool emulation and the words explaining a
# refused field; nor the exchange log's module (its ``LogEntry`` is built after the answer,
# the log opened at the first token).
_NOT_BEFORE_THE_FIRST_TOKEN = {
    "llmrelay.log",
    "llmrelay._log",
    "llmrelay._lazy_types",
    "llmrelay._emulation",
    "llmrelay._fields",
    "llmrelay.providers._embeddings",
    "llmrelay.providers._image_input",
}


def _local_chat(
    tmp_path: Path, *options: str
) -> tuple[FakeOpenAI, subprocess.CompletedProcess[str], dict[str, Any]]:
    """``llmrelay chat OPTIONS -m local:m hi`` probed against a fake OpenAI-compatible server."""
    fake = FakeOpenAI()
    with serve(fake.app) as url:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[providers.local]\nkind = "openai"\nbase_url = "{url}/v1"\nmodels = ["m"]\n'
        )
        result, seen = _probe(
            "chat", *options, "-m", "local:m", "hi", url=url, LLMRELAY_CONFIG=str(config)
        )
    return fake, result, seen


def test_a_local_openai_compatible_chat_loads_only_what_its_first_token_needs(
    tmp_path: Path,
) -> None:
    # the judged start-up chat (benchmarks/startup.py): a kind = "openai" provider
    fake, result, seen = _local_chat(tmp_path, "--no-log")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == fake.expected_text
    loaded = set(seen["modules"])
    assert "llmrelay.providers._openai_compat" in loaded
    assert not _NOT_BEFORE_THE_FIRST_TOKEN & loaded


def test_the_log_entry_built_after_the_answer_keeps_what_the_stream_said(
    tmp_path: Path, home: Path
) -> None:
    # the chat gathers the turn while it streams and builds its LogEntry (importing the
    # log's module) after the answer: every field still reaches the log
    fake, result, seen = _local_chat(tmp_path, "--usage")
    assert result.returncode == 0, result.stderr
    assert not {"llmrelay.log", "llmrelay._log"} & set(seen["modules"])
    assert "Token usage: " in result.stderr
    code, out, _ = run("logs", "--json")
    assert code == 0
    [entry] = json.loads(out)
    assert (entry["prompt"], entry["answer"]) == ("hi", fake.expected_text)
    assert (entry["provider"], entry["model"], entry["model_requested"]) == (
        "local",
        "m",
        "local:m",
    )
    assert entry["finish_reason"] == "stop"
    usage = entry["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert isinstance(entry["first_token_ms"], int)
    assert entry["duration_ms"] >= entry["first_token_ms"]
    assert entry["attempts"] == [
        {"provider": "local", "model": "m", "outcome": "ok", "error_type": None, "message": None}
    ]
    assert (entry["error_type"], entry["error"], entry["tool_calls"]) == (None, None, None)


def test_an_error_still_names_where_the_configured_base_url_came_from(
    tmp_path: Path, home: Path
) -> None:
    # the provider descriptions behind the hint are built when the error is explained
    config = tmp_path / "config.toml"
    config.write_text(
        '[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["m"]\n'
    )
    result = run_process(
        "chat", "--no-log", "-m", "local:m", "hi", env={"LLMRELAY_CONFIG": str(config)}
    )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.count("\n") == 1, err
    # (the line is cut to its length limit inside the hint: the temporary path is long)
    assert "; is the service running at http://127.0.0.1:9/v1 (" in err


def test_no_log_never_imports_the_database_layer(space: Space) -> None:
    _, url = space
    code = (
        "import sys\n"
        "from llmrelay.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "finally:\n"
        "    sys.stderr.write('LOADED %s\\n' % ('sqlalchemy' in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC, "LLMRELAY_HF_SPACES_BASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-c", code, "chat", "--no-log", "hi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED False" in result.stderr


def test_help_loads_neither_the_event_loop_nor_the_http_stack() -> None:
    code = (
        "import sys\n"
        "from llmrelay.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "finally:\n"
        "    heavy = ('asyncio', 'httpx', 'sqlalchemy', 'pydantic')\n"
        "    sys.stderr.write('LOADED %s\\n' % [m for m in heavy if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "chat" in result.stdout
    assert "LOADED []" in result.stderr


def test_a_broken_alias_fails_the_chat_that_uses_it_and_a_session_at_once(
    space: Space, tmp_path: Path
) -> None:
    # one prompt resolves only its own model: a broken alias it does not use no longer
    # stops it (describing every alias would import every provider module first)
    _, url = space
    config = tmp_path / "config.toml"
    config.write_text('[aliases]\nloop = ["loop"]\n')
    env = {"LLMRELAY_CONFIG": str(config), "LLMRELAY_HF_SPACES_BASE_URL": url}
    result = run_process("chat", "--no-log", "-m", "hf_spaces", "hi", env=env)
    assert result.returncode == 0, result.stderr
    result = run_process("chat", "--no-log", "-m", "loop", "hi", env=env)
    assert result.returncode == 2
    assert "alias 'loop' refers to itself" in result.stderr.decode()
    # a chat session still checks every alias before the first line is typed
    import pexpect

    child = pexpect.spawn(
        sys.executable,
        ["-m", "llmrelay", "chat", "--no-log"],
        env={**os.environ, **env, "PYTHONPATH": SRC, "TERM": "dumb"},
        encoding="utf-8",
        timeout=20,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert "alias 'loop' refers to itself" in (child.before or "")


def test_help_lists_every_command_and_a_typo_gets_a_suggestion() -> None:
    # the commands' modules load when a command is used; --help still uses them all
    result = run_process("--help")
    assert result.returncode == 0
    listed = result.stdout.decode().split("Commands:\n", 1)[1].splitlines()
    names = [line.split()[0] for line in listed if line.startswith("  ")]
    assert names == ["chat", "embed", "image", "keys", "logs", "models", "providers", "serve"]
    assert "Generate an image for PROMPT" in result.stdout.decode()
    result = run_process("chta")
    assert result.returncode == 2
    assert "No such command 'chta'. Did you mean 'chat'?" in result.stderr.decode()


def test_a_plugin_that_cannot_load_is_a_warning_for_a_chat_that_does_not_use_it(
    tmp_path: Path, space: Space
) -> None:
    # the library warns and goes on (Registry.read_plugins); a one-prompt chat, which
    # no longer describes every provider first, now does the same instead of exiting 2
    _, url = space
    info = tmp_path / "site" / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[llmrelay.providers]\nbroken = llmrelay_no_such_module:Broken\n"
    )
    env = {"PYTHONPATH": str(tmp_path / "site"), "LLMRELAY_HF_SPACES_BASE_URL": url}
    result = run_process("chat", "--no-log", "-m", "hf_spaces", "hi", env=env)
    assert result.returncode == 0, result.stderr
    # a built-in needs no plugin: the entry points are not read, nothing is said
    assert "broken" not in result.stderr.decode()
    # a variable naming a provider no built-in is reads them: the warning, and the chat
    env["LLMRELAY_OTHER_API_KEY"] = "x"
    result = run_process("chat", "--no-log", "-m", "hf_spaces", "hi", env=env)
    assert result.returncode == 0, result.stderr
    assert "provider 'broken' (llmrelay_no_such_module:Broken) cannot be loaded" in (
        result.stderr.decode()
    )
    del env["LLMRELAY_OTHER_API_KEY"]
    # an error is still explained (describing the providers fails: no hint, no traceback)
    config = tmp_path / "config.toml"
    config.write_text(
        '[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmodels = ["m"]\n'
    )
    env["LLMRELAY_CONFIG"] = str(config)
    result = run_process("chat", "--no-log", "-m", "local:m", "hi", env=env)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "llmrelay: error: local (m): ConnectError talking to http://127.0.0.1:9/v1" in err
    assert "Traceback" not in err
