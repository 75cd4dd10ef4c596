"""Where ``client.responses`` keeps stored responses (``store: true``) and their state.

A stored response is the ``response`` object, its input items, and the conversation
after it (``llmrelay.Conversation.to_dict()``: the messages and each provider's own
state: Ai2's parent message, h2o's conversation, a Space's history), so that
``previous_response_id`` continues the provider's conversation.

* ``MemoryResponseStore``: in this process, the newest ``max_entries`` (the default of
  ``client.responses``, and of a server without a database).
* ``DatabaseResponseStore``: the exchange-log database (``llmrelay.log``: SQLite, or
  PostgreSQL so that every server worker sees every response), table ``responses``.
  ``put`` never waits for the database: a writer thread writes (retrying with a pause
  doubling from 0.2 s to 5 s while the database fails), and until then the record is
  read from memory. A worker that does not find a response made less than
  ``WAIT_FOR_WRITE`` seconds ago (the id carries its time) looks again until then: the
  worker that made it may not have written it yet.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import anyio.to_thread

from ._wire._common import id_age

__all__ = [
    "WAIT_FOR_WRITE",
    "DatabaseResponseStore",
    "MemoryResponseStore",
    "ResponseStore",
    "StoredResponse",
]

log = logging.getLogger("llmrelay.responses")

WAIT_FOR_WRITE = 5.0
"""Seconds a reader looks again for a just-made response another worker may be writing."""
_MAX_PENDING = 10_000
_PAUSE = (0.2, 5.0)


@dataclass(frozen=True)
class StoredResponse:
    """One stored response.

    Attributes:
        id: the response id (``resp_...``).
        response: the ``response`` object (JSON-ready).
        input_items: its input items, each with an id.
        conversation: ``Conversation.to_dict()`` after this response (with
            ``"instructions": true`` when its first message is the request's
            ``instructions``, which a continuation does not inherit), or ``None`` when
            it cannot be continued (it failed).
    """

    id: str
    response: Mapping[str, Any]
    input_items: Sequence[Mapping[str, Any]] = ()
    conversation: Mapping[str, Any] | None = field(default=None, repr=False)


class ResponseStore(Protocol):
    """Where stored responses live (``put`` must not block; reads may)."""

    def put(self, record: StoredResponse) -> None:
        """Keep ``record`` (replacing one with its id); returns at once."""
        ...

    async def get(self, response_id: str) -> StoredResponse | None:
        """The record of ``response_id``, or ``None``."""
        ...

    async def delete(self, response_id: str) -> bool:
        """Forget ``response_id``; whether it was stored."""
        ...


class MemoryResponseStore:
    """The newest ``max_entries`` responses, in this process.

    Args:
        max_entries: how many are kept (the oldest go first).
    """

    def __init__(self, max_entries: int = 1000) -> None:
        self.max_entries = max(1, max_entries)
        self._records: OrderedDict[str, StoredResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def put(self, record: StoredResponse) -> None:
        """Keep ``record``."""
        self._records[record.id] = record
        self._records.move_to_end(record.id)
        while len(self._records) > self.max_entries:
            self._records.popitem(last=False)

    async def get(self, response_id: str) -> StoredResponse | None:
        """The record, or ``None``."""
        return self._records.get(response_id)

    async def delete(self, response_id: str) -> bool:
        """Forget it; whether it was kept."""
        return self._records.pop(response_id, None) is not None


class DatabaseResponseStore:
    """Stored responses in the exchange-log database (see the module docstring).

    Args:
        url: SQLAlchemy URL of the log database (``llmrelay.log.database_url()``).
        wait_for_write: seconds to look again for a just-made response (default
            ``WAIT_FOR_WRITE``).

    Reads raise ``llmrelay.log.LogError`` when the database cannot be read.
    """

    def __init__(self, url: str, *, wait_for_write: float = WAIT_FOR_WRITE) -> None:
        from ._log import ExchangeLog

        self.log = ExchangeLog(url)
        self.wait_for_write = wait_for_write
        self._pending: dict[str, StoredResponse | None] = {}  # None: a delete to write
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closing = False
        self.written = 0
        self.failed = 0

    def __repr__(self) -> str:
        return f"<DatabaseResponseStore {self.log.display_url}>"

    def migrate(self) -> None:
        """Connect and create the schema now (raises ``LogError``)."""
        self.log.migrate()

    # -- writing -----------------------------------------------------------------------

    def put(self, record: StoredResponse) -> None:
        """Queue ``record`` for the writer thread; readable at once from this process."""
        self._queue(record.id, record)

    def _queue(self, response_id: str, record: StoredResponse | None) -> None:
        with self._lock:
            if len(self._pending) >= _MAX_PENDING and response_id not in self._pending:
                log.warning(
                    "response store: %d writes pending; %s not stored", _MAX_PENDING, response_id
                )
                return
            self._pending[response_id] = record
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="llmrelay-response-store", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        pause = _PAUSE[0]
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending:
                    return
                batch = dict(self._pending)
            try:
                self._write(batch)
            except Exception as exc:  # LogError, or a record that cannot be encoded
                self.failed += 1
                log.warning("response store: %s (retrying in %.1f s)", exc, pause)
                with self._lock:
                    if self._closing:
                        return
                    self._wake.wait(pause)
                pause = min(pause * 2, _PAUSE[1])
                continue
            pause = _PAUSE[0]
            with self._lock:
                for key, value in batch.items():
                    if self._pending.get(key, ...) is value:
                        del self._pending[key]
                self.written += len(batch)
                self._wake.notify_all()

    def _write(self, batch: Mapping[str, StoredResponse | None]) -> None:
        from sqlalchemy import delete, insert

        from ._log_schema import responses_table

        table = responses_table()
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self.log._begin() as conn:
            conn.execute(delete(table).where(table.c.id.in_(list(batch))))
            rows = [_row(record, now) for record in batch.values() if record is not None]
            if rows:
                conn.execute(insert(table), rows)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (waiting at most ``timeout`` s), stop the writer."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending and self._thread is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("response store: %d writes lost at close", len(self._pending))
                    break
                self._wake.wait(left)
            self._closing = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=1.0)
        self.log.close()

    async def aclose(self) -> None:
        """``close()`` in a worker thread."""
        await anyio.to_thread.run_sync(self.close)

    # -- reading -----------------------------------------------------------------------

    def _pending_record(self, response_id: str) -> tuple[bool, StoredResponse | None]:
        with self._lock:
            if response_id in self._pending:
                return True, self._pending[response_id]
        return False, None

    async def get(self, response_id: str) -> StoredResponse | None:
        """The record: from memory while its write is queued, else from the database."""
        deadline = time.monotonic()
        age = id_age(response_id, "resp_")
        if age is not None and 0 <= age < self.wait_for_write:
            deadline += self.wait_for_write - age
        pause = 0.05
        while True:
            known, record = self._pending_record(response_id)
            if known:
                return record
            record = await anyio.to_thread.run_sync(self._read, response_id)
            if record is not None or time.monotonic() >= deadline:
                return record
            await anyio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.5)

    def _read(self, response_id: str) -> StoredResponse | None:
        from sqlalchemy import select

        from ._log import LogError
        from ._log_schema import responses_table

        table = responses_table()
        with self.log._begin() as conn:
            row = conn.execute(select(table).where(table.c.id == response_id)).mappings().first()
        if row is None:
            return None
        try:
            conversation = json.loads(row["conversation"]) if row["conversation"] else None
            return StoredResponse(
                id=row["id"],
                response=json.loads(row["response"]),
                input_items=json.loads(row["input_items"]),
                conversation=conversation,
            )
        except ValueError as exc:
            raise LogError(f"response {response_id} is stored damaged") from exc

    async def delete(self, response_id: str) -> bool:
        """Forget it (queued like a write); whether it was stored."""
        known, record = self._pending_record(response_id)
        existed = record is not None if known else await self.get(response_id) is not None
        if existed:
            self._queue(response_id, None)
        return existed


def _row(record: StoredResponse, now: str) -> dict[str, Any]:
    response = record.response
    return {
        "id": record.id,
        "created_utc": now,
        "previous_id": response.get("previous_response_id"),
        "model": response.get("model"),
        "status": response.get("status"),
        "response": json.dumps(response, ensure_ascii=False),
        "input_items": json.dumps(list(record.input_items), ensure_ascii=False),
        "conversation": json.dumps(record.conversation, ensure_ascii=False)
        if record.conversation is not None
        else None,
    }
