"""The exchange log's storage: migrations, search, concurrent writers, damaged databases."""

from __future__ import annotations

import inspect
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from llmrelay.log import ExchangeLog, LogEntry, LogError, default_log_path
from tests.cli.conftest import Space, run
from tests.fakes.gradio_space import DEFAULT_CHUNKS

ANSWER = inspect.cleandoc("".join(DEFAULT_CHUNKS))


def test_default_path_follows_llmrelay_home(home: Path) -> None:
    assert default_log_path() == home / "logs.db"
    with ExchangeLog() as log:
        assert log.path == home / "logs.db"
        assert log.entries() == []
    assert (home / "logs.db").is_file()


def test_migrations_are_recorded_once_and_the_database_is_wal(home: Path) -> None:
    for _ in range(2):
        with ExchangeLog() as log:
            log.migrate()
    with sqlite3.connect(home / "logs.db") as db:
        names = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY name")]
        assert names == ["m001_initial", "m002_sqlite_fts", "m003_exchange_uid"]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"conversations", "exchanges", "exchanges_fts", "_migrations"} <= tables


def test_an_older_database_is_upgraded_without_losing_rows(home: Path) -> None:
    with ExchangeLog() as log:
        log.add(LogEntry(prompt="kept", answer="yes", conversation_id="c"))
    with sqlite3.connect(home / "logs.db") as db:  # as a release before m002 left it
        db.executescript(
            "DROP TABLE exchanges_fts; DROP TRIGGER exchanges_fts_ai; "
            "DROP TRIGGER exchanges_fts_ad; DROP TRIGGER exchanges_fts_au; "
            "DELETE FROM _migrations WHERE name = 'm002_sqlite_fts';"
        )
    with ExchangeLog() as log:
        assert [e.prompt for e in log.entries(query="kept")] == ["kept"]


def test_entry_round_trip_and_like_fallback(home: Path) -> None:
    entry = LogEntry(
        prompt="100% sure_thing",
        answer="ok",
        conversation_id="c1",
        attempts=[{"provider": "a", "model": "m", "outcome": "failed"}],
        usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    )
    with ExchangeLog() as log:
        log.add(entry, conversation={"messages": []})
        (stored,) = log.entries()
        assert stored.to_dict() == entry.to_dict()
        log._fts = False  # a database without FTS5 (e.g. PostgreSQL): LIKE, wildcards escaped
        assert [e.prompt for e in log.entries(query="100%")] == ["100% sure_thing"]
        assert log.entries(query="1%0") == []
        assert log.entries(query="sure_") != []
        assert log.entries(query="surex") == []


def test_database_url_selects_another_database(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "elsewhere.db"
    monkeypatch.setenv("LLMRELAY_DATABASE_URL", f"sqlite:///{other}")
    with ExchangeLog() as log:
        log.add(LogEntry(prompt="p", answer="a"))
    assert other.is_file()
    assert not (home / "logs.db").exists()
    _, out, _ = run("logs", "path")
    assert out.strip() == str(other)


def test_concurrent_writer_processes_lose_no_row(space: Space, home: Path) -> None:
    # several real CLI processes at once, each logging two exchanges on a fresh database
    import subprocess
    import sys

    from tests.cli.conftest import SRC

    _, url = space
    env = {**os.environ, "LLMRELAY_HF_SPACES_BASE_URL": url, "PYTHONPATH": SRC}
    code = (
        "import sys\nfrom llmrelay.log import ExchangeLog, LogEntry\n"
        "n = sys.argv[1]\n"
        "with ExchangeLog() as log:\n"
        "    for i in range(15):\n"
        "        log.add(LogEntry(prompt=f'{n}-{i}', answer='a', conversation_id=n),"
        " conversation={'n': i})\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, str(n)], env=env) for n in range(3)]
    chats = [
        subprocess.Popen(
            [sys.executable, "-m", "llmrelay", "chat", f"chat {n}"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(2)
    ]
    for process in writers:
        assert process.wait(timeout=60) == 0
    for process in chats:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert err == b""
    with ExchangeLog() as log:
        prompts = {e.prompt for e in log.entries(limit=None)}
    assert prompts == {f"{n}-{i}" for n in range(3) for i in range(15)} | {
        f"chat {n}" for n in range(2)
    }


def test_corrupt_database_warns_once_and_keeps_the_answer(space: Space, home: Path) -> None:
    home.mkdir()
    (home / "logs.db").write_bytes(b"this is not a database" * 100)
    code, out, err = run("chat", "hello")
    assert code == 0
    assert out == ANSWER + "\n"
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("llmrelay: warning: this exchange was not logged: ")
    assert "logs.db" in lines[0]
    assert "not a database" in lines[0]
    code, _, err = run("logs")
    assert code == 1
    assert "not a database" in err
    code, _, err = run("chat", "-c", "hello")
    assert code == 1
    assert "cannot continue the conversation" in err


def test_read_only_database_warns_and_keeps_the_answer(
    space: Space, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExchangeLog() as log:
        log.migrate()
    # read-only as SQLite sees it (chmod does not stop root, who runs some CI)
    monkeypatch.setenv(
        "LLMRELAY_DATABASE_URL", f"sqlite:///file:{home / 'logs.db'}?mode=ro&uri=true"
    )
    code, out, err = run("chat", "hello")
    assert code == 0
    assert out == ANSWER + "\n"
    assert err.count("\n") == 1
    assert "not logged" in err
    assert "readonly" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files")
def test_read_only_file_warns_and_keeps_the_answer(space: Space, home: Path) -> None:
    with ExchangeLog() as log:
        log.migrate()
    os.chmod(home / "logs.db", 0o444)
    os.chmod(home, 0o555)
    try:
        code, out, err = run("chat", "hello")
    finally:
        os.chmod(home, 0o755)
    assert (code, out) == (0, ANSWER + "\n")
    assert err.count("\n") == 1
    assert "not logged" in err


def test_locked_database_warns_and_keeps_the_answer(
    space: Space, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExchangeLog() as log:
        log.migrate()
    monkeypatch.setattr("llmrelay._log.BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(home / "logs.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, out, err = run("chat", "hello")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (code, out) == (0, ANSWER + "\n")
    assert err.count("\n") == 1
    assert "database is locked" in err


def test_log_errors_name_the_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(LogError, match=r"bad\.db is not usable: file is not a database"):
        ExchangeLog(f"sqlite:///{bad}").entries()


def test_a_writer_thread_and_a_reader_share_the_database(home: Path) -> None:
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with ExchangeLog() as log:
                for i in range(30):
                    log.add(LogEntry(prompt=f"t{i}", answer="a"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    with ExchangeLog() as log:
        while thread.is_alive():
            log.entries(limit=5)
    thread.join()
    assert errors == []
    with ExchangeLog() as log:
        assert len(log.entries(limit=None)) == 30
