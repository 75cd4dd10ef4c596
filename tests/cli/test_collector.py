"""The garbage collector is paused while the command line starts, and only then.

``llmrelay.cli.main()`` pauses automatic collection (``cli._collector``); it must be on
again when start-up is over: a chat's first event, a chat session's first prompt, any
other command's start, and main()'s end, also on an error or ``--help``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llmrelay.cli
from llmrelay.cli import _chat, _listing, _repl
from tests.cli.conftest import SRC, Space

# At the first write of answer text: how many collections ran since main() was called,
# and whether collection is on again; at the end, whether it is on.
_PROBE = r"""
import gc, json, sys
runs = []
gc.callbacks.append(lambda phase, info: phase == "start" and runs.append(info["generation"]))
seen = {}
class Probe:
    def __init__(self, f): self.f = f
    def write(self, text):
        if text.strip() and not seen:
            seen.update(collections=len(runs), enabled=gc.isenabled())
        return self.f.write(text)
    def __getattr__(self, name): return getattr(self.f, name)
from llmrelay.cli import main
sys.stdout = Probe(sys.stdout)
runs.clear()
try:
    main(sys.argv[1:])
finally:
    seen["enabled at exit"] = gc.isenabled()
    seen["frozen at exit"] = gc.get_freeze_count() > 0
    sys.stderr.write("PROBE " + json.dumps(seen) + "\n")
"""


def test_no_collection_runs_before_the_chat_s_first_token_and_it_is_on_after(
    space: Space,
) -> None:
    _, url = space
    env = {**os.environ, "PYTHONPATH": SRC, "LLMRELAY_HF_SPACES_BASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, "chat", "hi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello")
    line = next(x for x in result.stderr.splitlines() if x.startswith("PROBE "))
    seen = json.loads(line.removeprefix("PROBE "))
    # without the pause the collector ran ~70 times here (unloaded machine, this probe)
    assert seen == {
        "collections": 0,
        "enabled": True,
        "enabled at exit": True,
        "frozen at exit": True,  # start-up's objects stay out of the exit's collections
    }


def _main(*args: str) -> int:
    try:
        llmrelay.cli.main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        gc.unfreeze()  # main() leaves start-up frozen; give the test process's heap back
    return 0


def test_other_commands_run_with_the_collector_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = _listing.providers.callback
    assert real is not None

    def providers(*args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(_listing.providers, "callback", providers)
    assert _main("providers", "--json") == 0
    assert seen == [True]


def test_a_chat_session_waits_for_its_first_line_with_the_collector_on(
    space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def read_line(prompt: str) -> str:
        seen.append(gc.isenabled())
        return "exit"

    monkeypatch.setattr(_chat, "_stdin_is_terminal", lambda: True)
    monkeypatch.setattr(_repl, "_read_line", read_line)
    assert _main("chat", "--no-log") == 0  # main() pauses the collector as it starts
    assert seen == [True]


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("no-such-command",)])
def test_main_leaves_the_collector_on_whatever_the_outcome(args: tuple[str, ...]) -> None:
    assert gc.isenabled()
    _main(*args)
    assert gc.isenabled()


def test_a_caller_that_turned_the_collector_off_keeps_it_off(tmp_path: Path) -> None:
    gc.disable()
    try:
        _main("--version")
        assert not gc.isenabled()
    finally:
        gc.enable()
