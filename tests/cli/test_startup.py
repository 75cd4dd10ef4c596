"""Start-up: what `llmrelay chat` loads before its first token, and what it still logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import SRC, Space, run

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


def _probe(*args: str, url: str) -> tuple[subprocess.CompletedProcess[str], dict[str, bool]]:
    env = {**os.environ, "PYTHONPATH": SRC, "LLMRELAY_HF_SPACES_BASE_URL": url}
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
