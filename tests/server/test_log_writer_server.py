"""The server's exchange log (``LLMRELAY_DATABASE_URL``) never holds an answer: a locked
SQLite file (or a stalled PostgreSQL, ``tests/scaleout/test_log_load.py``) costs no time
on the response path, the rows arrive once the database takes writes, ``/metrics`` shows
the writer's counts."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

HI = [{"role": "user", "content": "hi"}]


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_answers_do_not_wait_for_a_locked_log_and_the_rows_arrive_after(
    make_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "log.db"
    monkeypatch.setenv("LLMRELAY_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("LLMRELAY_HOME", str(tmp_path / "home"))
    url = make_server()  # migrated at startup; SQLite's busy timeout is 10 s
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's long write
    try:
        # before: the JSON answer waited out the busy timeout, the stream's body never
        # ended before it (the log write sat on the response path)
        answer = httpx.post(
            url + "/v1/chat/completions", json={"model": "alpha:m", "messages": HI}, timeout=5
        )
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["content"] == "Hello, world!"
        with httpx.stream(
            "POST",
            url + "/v1/chat/completions",
            json={"model": "alpha:m", "messages": HI, "stream": True},
            timeout=5,
        ) as stream:
            body = stream.read()
        assert body.endswith(b"data: [DONE]\n\n")
        assert _metric(url, "llmrelay_log_pending_writes") == 2
        assert _metric(url, "llmrelay_log_written_rows_total") == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    deadline = time.monotonic() + 15
    while _metric(url, "llmrelay_log_written_rows_total") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _metric(url, "llmrelay_log_pending_writes") == 0
    assert _metric(url, "llmrelay_log_lost_rows_total") == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT prompt, answer FROM exchanges ORDER BY id").fetchall()
    assert rows == [("hi", "Hello, world!"), ("hi", "Hello, world!")]
