"""The chat opens its exchange log beside the answer (``ExchangeLog.open_in_background``).

The import, connection and migration check run in a thread from the first token on; the
record is still written after the answer, in the chat's thread, and nothing of the log's
content, schema or migrations changes.
"""

from __future__ import annotations

import inspect
import sqlite3
import threading
from pathlib import Path

import pytest

from llmrelay._log_schema import MIGRATIONS
from llmrelay.log import ExchangeLog, LogEntry, LogError
from tests.cli.conftest import Space, run, run_process
from tests.fakes.gradio_space import DEFAULT_CHUNKS

ANSWER = inspect.cleandoc("".join(DEFAULT_CHUNKS))


def _migrations(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY name")]


def test_a_fresh_database_is_created_and_migrated_in_the_background(home: Path) -> None:
    log = ExchangeLog()
    thread = log.open_in_background()
    thread.join(30)
    assert not thread.is_alive()
    assert _migrations(home / "logs.db") == sorted(name for name, _ in MIGRATIONS)
    log.add(LogEntry(prompt="p", answer="a", conversation_id="c"), conversation={"id": "c"})
    log.close()
    with ExchangeLog() as again:
        assert [(e.prompt, e.answer) for e in again.entries()] == [("p", "a")]


def test_an_out_of_date_database_is_migrated_in_the_background(home: Path) -> None:
    with ExchangeLog() as log:
        log.add(LogEntry(prompt="old", answer="row", conversation_id="c"))
    with sqlite3.connect(home / "logs.db") as db:  # as a release before m005 left it
        db.executescript(
            "ALTER TABLE exchanges DROP COLUMN tool_calls; "
            "DELETE FROM _migrations WHERE name = 'm005_tool_calls';"
        )
    log = ExchangeLog()
    log.open_in_background().join(30)
    assert "m005_tool_calls" in _migrations(home / "logs.db")
    calls = [{"id": "1", "name": "f", "arguments": "{}"}]
    log.add(LogEntry(prompt="new", answer="", conversation_id="c", tool_calls=calls))
    log.close()
    with ExchangeLog() as again:
        entries = again.entries()
    assert [e.prompt for e in entries] == ["old", "new"]
    assert entries[1].tool_calls == calls


def test_a_failure_in_the_background_is_raised_by_the_write(home: Path) -> None:
    home.mkdir()
    (home / "logs.db").write_bytes(b"this is not a database" * 100)
    log = ExchangeLog()
    log.open_in_background().join(30)
    with pytest.raises(LogError, match="not a database"):
        log.add(LogEntry(prompt="p", answer="a"))
    log.close()


def test_close_waits_for_the_background_open(home: Path) -> None:
    log = ExchangeLog()
    thread = log.open_in_background()
    log.close()
    assert not thread.is_alive()
    assert log._engine is None  # nothing opened after close (no connection left behind)


def test_the_chat_opens_the_log_in_its_background_thread(
    space: Space, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    original = ExchangeLog._open_locked

    def traced(self: ExchangeLog) -> object:
        opened.append(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(ExchangeLog, "_open_locked", traced)
    code, out, err = run("chat", "hello")
    assert (code, out, err) == (0, ANSWER + "\n", "")
    assert opened == ["llmrelay-log-open"]
    code, out, _ = run("logs", "--json")
    assert code == 0
    assert '"prompt": "hello"' in out
    assert ANSWER.splitlines()[0] in out


def test_no_log_opens_nothing(space: Space, home: Path) -> None:
    code, out, _ = run("chat", "--no-log", "hello")
    assert (code, out) == (0, ANSWER + "\n")
    assert not (home / "logs.db").exists()


def test_a_chat_process_leaves_its_record_for_logs(space: Space, home: Path) -> None:
    done = run_process("chat", "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == ANSWER + "\n"
    assert _migrations(home / "logs.db") == sorted(name for name, _ in MIGRATIONS)
    shown = run_process("logs", "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"prompt": "hello"' in shown.stdout.decode()
