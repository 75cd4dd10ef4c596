"""The exchange log's background writer on SQLite: never blocks, batches, spills, replays,
and loses nothing it accepted."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrelay.log import ExchangeLog, LogEntry, LogWriter

# a locked SQLite file fails a write after this busy timeout (the default is 10 s)
BUSY = 0.2


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("llmrelay._log.BUSY_TIMEOUT_S", BUSY)
    path = tmp_path / "log.db"
    with ExchangeLog(f"sqlite:///{path}") as log:
        log.migrate()
    return path


def _writer(db: Path, **kwargs: object) -> LogWriter:
    writer = LogWriter(ExchangeLog(f"sqlite:///{db}"), spill_dir=db.parent / "spill", **kwargs)  # type: ignore[arg-type]
    writer.open()
    return writer


def _prompts(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT prompt FROM exchanges ORDER BY id")]


def _wait_rows(db: Path, n: int, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _prompts(db)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


@pytest.fixture
def lock(db: Path) -> Iterator[sqlite3.Connection]:
    """Hold the database's write lock (as another process's long transaction would).

    Writers made in a test are opened (connected, migrated) before the lock is taken.
    """
    with ExchangeLog(f"sqlite:///{db}") as log:
        log.migrate()
    holder = sqlite3.connect(db, isolation_level=None)
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def _take(lock: sqlite3.Connection) -> None:
    lock.execute("BEGIN EXCLUSIVE")


def test_a_locked_database_holds_no_enqueue_and_every_row_arrives_after(
    db: Path, lock: sqlite3.Connection
) -> None:
    writer = _writer(db)
    _take(lock)
    try:
        started = time.monotonic()
        for i in range(300):
            writer.enqueue(LogEntry(prompt=f"p{i}", answer="a"))
        # a write waits BUSY s per attempt: 300 of them in line would take a minute
        assert time.monotonic() - started < 2
        deadline = time.monotonic() + 10
        while writer.stats().failed == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = writer.stats()
        assert stats.failed >= 1
        assert stats.written == 0
        assert stats.pending == 300
        lock.execute("ROLLBACK")
        assert sorted(_wait_rows(db, 300)) == sorted(f"p{i}" for i in range(300))
        assert writer.wait_idle(5)
        stats = writer.stats()
        assert (stats.written, stats.pending, stats.spilled, stats.lost) == (300, 0, 0, 0)
    finally:
        writer.close()


def test_one_transaction_per_batch(db: Path) -> None:
    from sqlalchemy import event

    writer = LogWriter(
        ExchangeLog(f"sqlite:///{db}"), spill_dir=db.parent / "spill", batch_size=150
    )
    writer.log.migrate()
    commits: list[int] = []
    assert writer.log._engine is not None
    event.listen(writer.log._engine, "commit", lambda conn: commits.append(1))
    try:
        for i in range(400):  # all waiting before the thread starts (as behind a stall)
            writer.enqueue(LogEntry(prompt=f"p{i}", answer="a"))
        writer.start()
        assert len(_wait_rows(db, 400)) == 400
        # 400 rows waiting, at most 150 a batch: 3 transactions (one per row would be 400)
        assert len(commits) == 3
    finally:
        writer.close()


def test_past_the_bound_entries_spill_and_are_replayed(
    db: Path, lock: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    writer = _writer(db, max_pending=10)
    _take(lock)
    try:
        with caplog.at_level(logging.WARNING, "llmrelay.log"):
            for i in range(50):
                writer.enqueue(LogEntry(prompt=f"p{i}", answer="a"))
        stats = writer.stats()
        # at most 10 in memory (the batch being tried included): the rest are spilled
        assert stats.pending + stats.spilled == 50
        assert stats.pending <= 10
        assert stats.spilled >= 40
        assert stats.lost == 0
        spilled = list((db.parent / "spill").glob("*.jsonl"))
        assert len(spilled) == 1
        assert len(spilled[0].read_bytes().splitlines()) == stats.spilled
        assert f"further exchanges go to {spilled[0]}" in caplog.text
        lock.execute("ROLLBACK")
        assert sorted(_wait_rows(db, 50)) == sorted(f"p{i}" for i in range(50))
        deadline = time.monotonic() + 10
        while writer.stats().replayed < stats.spilled and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = writer.stats()
        assert stats.replayed == stats.spilled
        assert stats.written == 50
        assert list((db.parent / "spill").glob("*.jsonl")) == []
    finally:
        writer.close()
    assert len(_prompts(db)) == 50  # nothing written twice


def test_close_with_a_stalled_database_is_bounded_and_the_next_writer_writes_the_rest(
    db: Path, lock: sqlite3.Connection
) -> None:
    writer = _writer(db, drain_timeout=0.5)
    _take(lock)
    for i in range(20):
        writer.enqueue(LogEntry(prompt=f"p{i}", answer="a"))
    started = time.monotonic()
    writer.close()
    assert time.monotonic() - started < 0.5 + 2 * BUSY + 1
    assert writer.stats().spilled == 20
    writer.enqueue(LogEntry(prompt="late", answer="a"))  # after close: spilled, not lost
    assert writer.stats().spilled == 21
    writer._spill_lock.acquire()  # the late entry's file is ours until the process ends
    assert writer._spill is not None
    writer._spill.close()
    writer._spill = None
    writer._spill_lock.release()
    lock.execute("ROLLBACK")
    assert _prompts(db) == []
    again = _writer(db)
    try:
        rows = _wait_rows(db, 21)
        assert sorted(rows) == sorted([*(f"p{i}" for i in range(20)), "late"])
    finally:
        again.close()


def test_a_spill_file_still_being_written_is_not_replayed_until_closed(
    db: Path, lock: sqlite3.Connection
) -> None:
    spilling = _writer(db, max_pending=1, drain_timeout=0.2)
    _take(lock)
    for i in range(5):
        spilling.enqueue(LogEntry(prompt=f"p{i}", answer="a"))
    assert spilling.stats().spilled >= 3
    lock.execute("ROLLBACK")
    other = _writer(db)
    try:
        other._replay()  # another process's writer looks now: the file is held
        assert other.stats().replayed == 0
        spilling.close()  # writes what it queued, releases its spill file
        rows = _wait_rows(db, 5)
        assert sorted(rows) == sorted(f"p{i}" for i in range(5))
        assert spilling.stats().replayed + other.stats().replayed == spilling.stats().spilled
    finally:
        other.close()
    assert len(_prompts(db)) == 5


def test_writing_a_batch_again_adds_no_row_twice(db: Path) -> None:
    entries = [LogEntry(prompt=f"p{i}", answer="a") for i in range(3)]
    with ExchangeLog(f"sqlite:///{db}") as log:
        log.add_many(entries)
        log.add_many(entries)
        log.add_many([*entries, LogEntry(prompt="new", answer="a")])
        uids = [e.uid for e in log.entries(limit=None)]
    assert sorted(_prompts(db)) == ["new", "p0", "p1", "p2"]
    assert len(set(uids)) == 4
    assert all(uid and len(uid) == 32 for uid in uids)


def test_a_row_the_database_refuses_is_kept_aside_and_the_others_written(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = _writer(db)
    try:
        with caplog.at_level(logging.WARNING, "llmrelay.log"):
            writer.enqueue(LogEntry(prompt="before", answer="a"))
            writer.enqueue(LogEntry(prompt=None, answer="a"))  # type: ignore[arg-type]
            writer.enqueue(LogEntry(prompt="after", answer="a"))
            assert writer.wait_idle(5)
        assert sorted(_prompts(db)) == ["after", "before"]
        stats = writer.stats()
        assert (stats.written, stats.rejected, stats.lost) == (2, 1, 0)
        (kept,) = (db.parent / "spill" / "rejected.jsonl").read_text().splitlines()
        assert json.loads(kept)["prompt"] is None
        assert "refused" in caplog.text
    finally:
        writer.close()


def test_a_damaged_spill_line_is_counted_and_reported_the_others_replayed(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spill = db.parent / "spill"
    spill.mkdir()
    good = json.dumps(LogEntry(prompt="good", answer="a").to_dict())
    (spill / "orphan.jsonl").write_text(good + "\n" + '{"prompt": "cut' + "\n")
    with caplog.at_level(logging.ERROR, "llmrelay.log"):
        writer = _writer(db)
        try:
            assert _wait_rows(db, 1) == ["good"]
            deadline = time.monotonic() + 5
            while (spill / "orphan.jsonl").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert writer.stats().lost == 1
            assert writer.stats().replayed == 1
        finally:
            writer.close()
    assert "damaged" in caplog.text
    assert not (spill / "orphan.jsonl").exists()


def test_an_unwritable_spill_directory_is_a_loud_loss(
    db: Path, lock: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = db.parent / "not-a-dir"
    blocker.write_text("")
    writer = LogWriter(ExchangeLog(f"sqlite:///{db}"), spill_dir=blocker / "spill", max_pending=1)
    _take(lock)
    with caplog.at_level(logging.ERROR, "llmrelay.log"):
        writer.enqueue(LogEntry(prompt="p0", answer="a"))
        writer.enqueue(LogEntry(prompt="p1", answer="a"))
    assert writer.stats().lost == 1
    assert "1 exchanges lost" in caplog.text


def test_a_database_from_before_uids_is_upgraded_keeping_its_rows(db: Path) -> None:
    with ExchangeLog(f"sqlite:///{db}") as log:
        log.add(LogEntry(prompt="old", answer="a"))
    with sqlite3.connect(db) as conn:  # as a release before m003 left it
        conn.executescript(
            "DROP INDEX ix_exchanges_uid; ALTER TABLE exchanges DROP COLUMN uid; "
            "DELETE FROM _migrations WHERE name = 'm003_exchange_uid';"
        )
    writer = _writer(db)
    try:
        writer.enqueue(LogEntry(prompt="new", answer="a"))
        assert writer.wait_idle(5)
    finally:
        writer.close()
    with ExchangeLog(f"sqlite:///{db}") as log:
        got = log.entries(limit=None)
    assert [e.prompt for e in got] == ["old", "new"]
    assert got[0].uid is None
    assert got[1].uid is not None
