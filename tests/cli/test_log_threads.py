"""Several threads logging for the first time at once (the import of the database layer)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_first_use_from_many_threads_at_once(tmp_path: Path) -> None:
    # a fresh interpreter, so SQLAlchemy is not imported yet when the threads start
    code = f"""
import threading
from llmrelay._log import ExchangeLog, LogEntry
log = ExchangeLog("sqlite:///{tmp_path / "logs.db"}")
errors = []
barrier = threading.Barrier(8)
def write(i):
    barrier.wait()
    try:
        log.add(LogEntry(prompt=f"p{{i}}", answer="a", model_requested="m"))
    except BaseException as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(log.entries(limit=100)), errors)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "8 []"
