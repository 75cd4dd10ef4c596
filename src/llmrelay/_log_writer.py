"""The exchange log's background writer: an answer never waits on the database.

``LogWriter.enqueue`` takes a ``LogEntry`` and returns at once, whatever the database does
(stalled, partitioned, locked, down). One writer thread does the rest:

* It takes every queued entry, up to ``batch_size``, and writes them in one transaction
  (``ExchangeLog.add_many``): the more that wait, the larger the batches.
* A failed write (unreachable, timed out, locked) keeps its batch and is retried after a
  pause doubling from 0.2 s to 5 s; the connection is re-made (pre-ping). Each entry has a
  ``uid``, so a batch written again after an unclear failure adds no row twice.
* At most ``max_pending`` entries wait in memory (default 10,000; the batch being written
  included). Past that bound, entries
  are appended to a spill file (JSON lines, one ``LogEntry.to_dict()`` each) in
  ``spill_dir``, and replayed into the database once it takes writes again: by this
  process, by another writer using the same directory, or by the next one after a crash
  (a spill file is held with an exclusive ``flock`` while written or replayed, so each is
  replayed by one writer at a time, and only once complete).
* An entry the database refuses as invalid (e.g. PostgreSQL rejects NUL characters in
  text) is written alone; refused again, it is kept in ``rejected.jsonl`` in the spill
  directory with a warning, never retried.
* ``close`` waits up to ``drain_timeout`` for the queue to empty, then spills what is left.

No accepted entry is dropped silently: the only loss is an entry that could be neither
queued nor written to the spill file (disk full, unwritable directory), counted in
``WriterStats.lost`` and logged as an error. Spill files are not fsync'd: they survive the
process, not the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ._keys import user_dir
from ._log import ExchangeLog, LogEntry, LogError

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows: a spill file is replayed by its own writer)
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BATCH_SIZE",
    "DRAIN_TIMEOUT_S",
    "MAX_PENDING",
    "LogWriter",
    "WriterStats",
    "default_spill_dir",
]

log = logging.getLogger("llmrelay.log")

MAX_PENDING = 10_000
"""Entries waiting in memory before new ones go to the spill file."""
BATCH_SIZE = 500
"""Most entries written in one transaction."""
DRAIN_TIMEOUT_S = 5.0
"""Seconds ``close`` waits for the queue to be written before spilling the rest."""
_PAUSE_S = (0.2, 5.0)
_REPLAY_EVERY_S = 2.0
_SUFFIX = ".jsonl"
_REJECTED = "rejected.jsonl"


def default_spill_dir(exchange_log: ExchangeLog) -> Path:
    """``<user dir>/log-spill/<digest of the database URL without its password>``.

    One directory per database, so a spilled entry is only replayed into the database it
    was meant for.
    """
    digest = hashlib.sha256(exchange_log.display_url.encode()).hexdigest()[:16]
    return user_dir() / "log-spill" / digest


@dataclass(frozen=True)
class WriterStats:
    """Counts of a ``LogWriter`` since it was made.

    Attributes:
        pending: entries accepted and not yet written (in memory, or being written).
        written: rows written to the database (replayed ones included).
        spilled: entries written to a spill file (memory bound reached, or left at close).
        replayed: entries read back from spill files and written.
        failed: write attempts (batches) that failed and were retried.
        rejected: entries the database refused as invalid, kept in ``rejected.jsonl``.
        lost: entries neither written nor spilled (the spill file could not be written).
        spill_files: spill files waiting in the spill directory at the last look.
    """

    pending: int
    written: int
    spilled: int
    replayed: int
    failed: int
    rejected: int
    lost: int
    spill_files: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _line(entry: LogEntry) -> bytes:
    return json.dumps(entry.to_dict(), ensure_ascii=False).encode() + b"\n"


def _refused(exc: LogError) -> bool:
    """Whether the database refused the data itself (not worth retrying as is)."""
    from sqlalchemy.exc import DataError, IntegrityError

    return isinstance(exc.__cause__, DataError | IntegrityError)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _SpillFile:
    """This process's spill file: ``<uuid>.jsonl``, exclusively locked while open.

    Made as ``.tmp`` and locked before it gets its ``.jsonl`` name, so no replayer can take
    it before it is complete.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = uuid.uuid4().hex
        tmp = directory / f"{name}.tmp"
        self.fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.path = directory / f"{name}{_SUFFIX}"
            os.rename(tmp, self.path)
        except BaseException:
            os.close(self.fd)
            raise

    def write(self, data: bytes) -> None:
        _write_all(self.fd, data)

    def close(self) -> None:
        os.close(self.fd)


class LogWriter:
    """Writes ``LogEntry`` rows to an ``ExchangeLog`` from a thread; see the module docstring.

    Args:
        exchange_log: where the rows go.
        spill_dir: where entries past ``max_pending`` wait (default ``default_spill_dir``).
        max_pending: entries kept in memory before spilling.
        batch_size: most entries per transaction.
        drain_timeout: seconds ``close`` waits for the queue to be written.

    ``open()`` (or ``start()``) starts the thread; ``close()`` stops it. ``enqueue`` and
    ``stats`` are safe from any thread and never block on the database.
    """

    def __init__(
        self,
        exchange_log: ExchangeLog,
        *,
        spill_dir: Path | None = None,
        max_pending: int = MAX_PENDING,
        batch_size: int = BATCH_SIZE,
        drain_timeout: float = DRAIN_TIMEOUT_S,
    ) -> None:
        self.log = exchange_log
        self.spill_dir = spill_dir if spill_dir is not None else default_spill_dir(exchange_log)
        self.max_pending = max(1, max_pending)
        self.batch_size = max(1, batch_size)
        self.drain_timeout = drain_timeout
        self._cond = threading.Condition()
        self._queue: deque[LogEntry] = deque()
        self._inflight: list[LogEntry] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._failing = False
        self._next_replay = 0.0
        self._spill_lock = threading.Lock()
        self._spill: _SpillFile | None = None
        self._spilling = False
        self._written = self._spilled = self._replayed = 0
        self._failed = self._rejected = self._lost = self._spill_files = 0

    def __repr__(self) -> str:
        return f"<LogWriter {self.log.display_url}>"

    # -- the caller's side -------------------------------------------------------------

    def open(self) -> None:
        """Connect and migrate now (raises ``LogError``), then ``start()``."""
        self.log.migrate()
        self.start()

    def start(self) -> None:
        """Start the writer thread (once)."""
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="llmrelay-log-writer", daemon=True
            )
            self._thread.start()

    def enqueue(self, entry: LogEntry) -> None:
        """Accept ``entry`` for writing; returns at once and never raises.

        Sets ``entry.uid`` and ``entry.datetime_utc`` (now) when missing. Past
        ``max_pending`` waiting entries, or after ``close``, the entry goes to the spill file.
        """
        entry.uid = entry.uid or uuid.uuid4().hex
        entry.datetime_utc = entry.datetime_utc or _now()
        with self._cond:
            if not self._closed and len(self._queue) + len(self._inflight) < self.max_pending:
                self._queue.append(entry)
                self._cond.notify()
                return
        self._spill_entries([entry])

    def stats(self) -> WriterStats:
        """The counts now."""
        with self._cond:
            pending = len(self._queue) + len(self._inflight)
            return WriterStats(
                pending=pending,
                written=self._written,
                spilled=self._spilled,
                replayed=self._replayed,
                failed=self._failed,
                rejected=self._rejected,
                lost=self._lost,
                spill_files=self._spill_files,
            )

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pending in memory; whether that happened in ``timeout`` s."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and not self._inflight, timeout=timeout
            )

    def close(self) -> None:
        """Write what is queued (at most ``drain_timeout`` s), spill the rest, stop.

        Bounded even when the database hangs: the thread is then left behind (a daemon)
        and its batch is spilled too (its ``uid``s keep a late commit from doubling rows).
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(self.drain_timeout)
        alive = thread is not None and thread.is_alive()
        with self._cond:
            rest = [*(self._inflight if alive else ()), *self._queue]
            self._queue.clear()
            self._closed = True
            self._cond.notify_all()
        if rest:
            self._spill_entries(rest)
            log.warning(
                "exchange log: %d exchanges not written yet were kept in %s; "
                "the next writer of this database writes them",
                len(rest),
                self.spill_dir,
            )
        with self._spill_lock:
            if self._spill is not None:
                self._spill.close()
                self._spill = None
        if not alive:
            self.log.close()

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        pause = 0.0
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    wait = self._next_replay - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._closed or (self._stopping and (not self._queue or self._failing)):
                    return  # close() spills what is left
                size = min(len(self._queue), self.batch_size)
                batch = [self._queue.popleft() for _ in range(size)]
                self._inflight = batch
            try:
                if batch:
                    rest = self._write(batch)
                else:
                    rest = []
                    self._replay()
            except Exception:  # a bug, not the database: keep the batch, keep going
                log.exception("exchange log: the writer failed")
                rest = batch
            with self._cond:
                self._inflight = []
                if self._closed:
                    return
                if rest:
                    self._queue.extendleft(reversed(rest))
                self._cond.notify_all()
            if rest:
                pause = min(max(pause * 2, _PAUSE_S[0]), _PAUSE_S[1])
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(pause)
            else:
                pause = 0.0
                if batch:
                    self._after_success()

    def _write(self, batch: Sequence[LogEntry]) -> list[LogEntry]:
        """Write ``batch`` in one transaction; returns the entries still to write."""
        try:
            self.log.add_many(batch)
        except LogError as exc:
            if not _refused(exc):
                with self._cond:
                    self._failed += 1
                if not self._failing:
                    self._failing = True
                    log.warning("exchange log: %s; retrying (answers are not held)", exc)
                return list(batch)
            if len(batch) == 1:
                self._reject(batch[0], exc)
                return []
            for i, entry in enumerate(batch):  # find the refused entries, write the others
                if self._write([entry]):
                    return list(batch[i:])
            return []
        with self._cond:
            self._written += len(batch)
        if self._failing:
            self._failing = False
            log.warning("exchange log: writing again")
        return []

    def _after_success(self) -> None:
        """Close this process's spill file once the queue is short again (it is replayed)."""
        with self._cond:
            short = len(self._queue) < self.max_pending // 2
        if not short:
            return
        with self._spill_lock:
            if self._spill is not None:
                self._spill.close()
                self._spill = None
                self._spilling = False
                self._next_replay = 0.0

    def _reject(self, entry: LogEntry, exc: LogError) -> None:
        try:
            self.spill_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.spill_dir / _REJECTED, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                _write_all(fd, _line(entry))
            finally:
                os.close(fd)
        except OSError as error:
            with self._cond:
                self._lost += 1
            log.error(
                "exchange log: exchange %s refused (%s) and not kept: %s", entry.uid, exc, error
            )
            return
        with self._cond:
            self._rejected += 1
        log.warning(
            "exchange log: the database refused exchange %s (%s); kept in %s",
            entry.uid,
            exc,
            self.spill_dir / _REJECTED,
        )

    # -- spilling and replaying ----------------------------------------------------------

    def _spill_entries(self, entries: Sequence[LogEntry]) -> None:
        data = b"".join(_line(e) for e in entries)
        with self._spill_lock:
            try:
                if self._spill is None:
                    self._spill = _SpillFile(self.spill_dir)
                self._spill.write(data)
            except OSError as exc:
                with self._cond:
                    self._lost += len(entries)
                log.error(
                    "exchange log: %d exchanges lost: the spill file in %s cannot be written: %s",
                    len(entries),
                    self.spill_dir,
                    exc,
                )
                return
            first = not self._spilling
            self._spilling = True
            path = self._spill.path
        with self._cond:
            self._spilled += len(entries)
        if first:
            log.warning(
                "exchange log: %d writes waiting; further exchanges go to %s until the "
                "database catches up",
                self.max_pending,
                path,
            )

    def _replay(self) -> None:
        """Write the spill files no one holds, one batch at a time, then delete them."""
        self._next_replay = time.monotonic() + _REPLAY_EVERY_S
        try:
            paths = sorted(self.spill_dir.glob("*" + _SUFFIX))
        except OSError:
            return
        paths = [p for p in paths if p.name != _REJECTED]
        with self._cond:
            self._spill_files = len(paths)
        for path in paths:
            fd = self._claim(path)
            if fd is None:
                continue
            try:
                done = self._replay_file(path, fd)
            finally:
                os.close(fd)
            if not done:
                return
            with self._cond:
                self._spill_files = max(0, self._spill_files - 1)
                if self._queue or self._stopping:
                    return  # live entries first

    def _claim(self, path: Path) -> int | None:
        """An open, exclusively locked descriptor of ``path``, or ``None`` (held, or gone)."""
        with self._spill_lock:
            if self._spill is not None and self._spill.path == path:
                return None  # ours, still being written
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return None
        if os.fstat(fd).st_nlink == 0:  # replayed and removed since we listed it
            os.close(fd)
            return None
        return fd

    def _replay_file(self, path: Path, fd: int) -> bool:
        """Write the entries of a claimed spill file; delete it when all are written."""
        with os.fdopen(os.dup(fd), "rb") as lines:
            for chunk in _chunks(self._parse(path, lines), self.batch_size):
                if self._stopping or self._write(chunk):
                    return False  # stopping, or the database failed again: the file stays
                with self._cond:
                    self._replayed += len(chunk)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        log.info("exchange log: replayed %s", path)
        return True

    def _parse(self, path: Path, lines: Iterator[bytes]) -> Iterator[LogEntry]:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = LogEntry(**json.loads(line))
            except (ValueError, TypeError) as exc:
                with self._cond:
                    self._lost += 1
                log.error("exchange log: %s line %d is damaged and skipped: %s", path, number, exc)
                continue
            yield entry


def _chunks(entries: Iterator[LogEntry], size: int) -> Iterator[list[LogEntry]]:
    chunk: list[LogEntry] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
