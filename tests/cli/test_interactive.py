"""The interactive chat, driven through a pseudo-terminal (pexpect) as a person would."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pexpect
import pytest

from llmrelay.log import ExchangeLog
from tests.cli.conftest import SRC, Space
from tests.fakes.gradio_space import SpaceScript

END = "done."


def _spawn(url: str, *args: str) -> pexpect.spawn:
    env = {
        **os.environ,
        "LLMRELAY_HF_SPACES_BASE_URL": url,
        "PYTHONPATH": SRC,
        "TERM": "dumb",
    }
    child = pexpect.spawn(
        sys.executable,
        ["-m", "llmrelay", "chat", *args],
        env=env,
        encoding="utf-8",
        timeout=20,
        dimensions=(24, 200),
    )
    child.expect_exact("Type '!multi' to enter multiple lines")
    child.expect_exact("> ")
    return child


def _answer(child: pexpect.spawn) -> None:
    child.expect_exact(END)
    child.expect_exact("> ")


def test_turns_multi_line_and_exit_each_logged(space: Space, home: Path) -> None:
    fake, url = space
    child = _spawn(url, "-s", "Be kind.")
    child.sendline("first turn")
    _answer(child)
    child.sendline("!multi")
    child.sendline("line one")
    child.sendline("line two")
    child.sendline("!end")
    _answer(child)
    child.sendline("   ")  # nothing to send: a new prompt, no request
    child.expect_exact("> ")
    child.sendline("quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    assert fake.joins[0].json["data"][0] == "first turn"
    # the second turn's message, after the first turn in the Space's chatbot value
    assert fake.joins[1].json["data"][0] == "line one\nline two"
    assert fake.joins[1].json["data"][1][0] == {"role": "user", "content": "first turn"}
    assert [j.json["data"][2] for j in fake.joins] == ["Be kind.", "Be kind."]
    assert len(fake.joins) == 2
    with ExchangeLog() as log:
        entries = log.entries(limit=None)
    assert [e.prompt for e in entries] == ["first turn", "line one\nline two"]
    assert entries[0].conversation_id == entries[1].conversation_id


def test_ctrl_d_leaves_and_ctrl_c_cancels_only_the_answer(space: Space, home: Path) -> None:
    fake, url = space
    fake.script = SpaceScript(chunk_delay=0.5)  # slow enough to interrupt
    child = _spawn(url)
    child.sendline("slow one")
    child.expect_exact("Hello")
    child.sendintr()
    child.expect_exact("answer cancelled")
    child.expect_exact("> ")
    assert fake.wait_streams_closed(10)  # the cancelled stream's connection was closed
    fake.script = SpaceScript()
    child.sendline("fast one")
    _answer(child)
    child.sendintr()  # Ctrl-C at the prompt: a fresh prompt, not an exit
    child.expect_exact("Ctrl-D to leave")
    child.expect_exact("> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    with ExchangeLog() as log:
        entries = log.entries(limit=None)
    assert [e.prompt for e in entries] == ["slow one", "fast one"]
    assert entries[0].error_type in ("KeyboardInterrupt", "CancelledError")
    assert entries[0].answer.startswith("Hello")
    assert entries[1].error_type is None
    # the cancelled turn is not part of the history sent next
    assert "slow one" not in str(fake.joins[-1].json["data"][:2])


def test_continue_in_interactive_mode(space: Space, home: Path) -> None:
    fake, url = space
    child = _spawn(url)
    child.sendline("remember me")
    _answer(child)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child = _spawn(url, "-c")
    child.sendline("and now?")
    _answer(child)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    assert "remember me" in str(fake.joins[-1].json["data"][:2])


@pytest.mark.parametrize("columns", [30, 200])
def test_tables_on_a_terminal_never_cut_a_model_id(columns: int) -> None:
    import re

    import llmrelay

    env = {**os.environ, "PYTHONPATH": SRC, "TERM": "xterm-256color"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "llmrelay", "models"],
        env=env,
        encoding="utf-8",
        timeout=20,
        dimensions=(24, columns),
    )
    child.expect(pexpect.EOF)
    output = re.sub(r"\x1b\[[0-9;]*m", "", child.before.replace("\r\n", "\n"))
    assert "━" in output  # a table, not the plain rows
    assert "default" in output
    with llmrelay.Client() as client:
        descriptions = client.providers()
    for d in descriptions:
        for model in d.models:
            assert f" {d.name}:{model} " in output  # whole, on one line
        for alias in d.aliases:
            assert f" {alias} " in output
    assert output.count("*") == len(descriptions)  # one default per provider, shown


def test_ctrl_c_while_waiting_for_the_answer_exits_130(space: Space) -> None:
    fake, url = space
    fake.script = SpaceScript(first_event_delay=30)
    env = {**os.environ, "LLMRELAY_HF_SPACES_BASE_URL": url, "PYTHONPATH": SRC}
    child = pexpect.spawn(
        sys.executable, ["-m", "llmrelay", "chat", "hi"], env=env, encoding="utf-8", timeout=20
    )
    while not fake.joins:  # the request went out: start-up is over
        child.expect(pexpect.TIMEOUT, timeout=0.05)
    child.kill(signal.SIGINT)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "Traceback" not in child.before
    assert "interrupted" in child.before


def test_a_damaged_log_warns_once_per_session(space: Space, home: Path) -> None:
    _, url = space
    home.mkdir()
    (home / "logs.db").write_bytes(b"not a database at all" * 64)
    child = _spawn(url)
    seen = ""
    for prompt in ("one", "two"):
        child.sendline(prompt)
        child.expect_exact(END)
        seen += child.before
        child.expect_exact("> ")
        seen += child.before
    child.sendline("exit")
    child.expect(pexpect.EOF)
    seen += child.before
    child.close()
    assert child.exitstatus == 0
    assert seen.count("this exchange was not logged") == 1
