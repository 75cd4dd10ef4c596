"""The response stores: memory (bounded) and the exchange-log database (writes off the
response path, read-your-writes in the writing process, a just-made id waited for by
another process, retries while the database fails)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from llmrelay import DatabaseResponseStore, MemoryResponseStore, StoredResponse
from llmrelay._wire._common import new_id

pytestmark = pytest.mark.anyio


def record(response_id: str | None = None, text: str = "hi") -> StoredResponse:
    rid = response_id or new_id("resp_")
    return StoredResponse(
        id=rid,
        response={
            "id": rid,
            "status": "completed",
            "model": "a:m",
            "output": [],
            "previous_response_id": None,
        },
        input_items=[
            {
                "id": "msg_1",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            }
        ],
        conversation={
            "messages": [{"role": "user", "content": text}],
            "states": {"ai2": {"data": {"parent": "p1"}, "index": 1}},
        },
    )


async def test_memory_keeps_the_newest() -> None:
    store = MemoryResponseStore(max_entries=2)
    first, second, third = record(), record(), record()
    for item in (first, second, third):
        store.put(item)
    assert await store.get(first.id) is None
    assert await store.get(third.id) == third
    assert await store.delete(second.id)
    assert not await store.delete(second.id)


async def test_database_round_trip_across_stores(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer, reader = DatabaseResponseStore(url), DatabaseResponseStore(url, wait_for_write=0)
    item = record()
    try:
        writer.put(item)
        assert await writer.get(item.id) == item  # at once, from memory
        writer.close()
        stored = await reader.get(item.id)
        assert stored is not None
        assert stored.conversation == item.conversation  # the provider state survives
        assert list(stored.input_items) == list(item.input_items)
        assert await reader.delete(item.id)
        reader.close()
        assert await DatabaseResponseStore(url, wait_for_write=0).get(item.id) is None
    finally:
        writer.close()
        reader.close()


async def test_put_does_not_wait_for_a_locked_database(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    url = f"sqlite:///{path}"
    store = DatabaseResponseStore(url)
    store.migrate()
    lock = sqlite3.connect(path, timeout=0)
    lock.execute("BEGIN EXCLUSIVE")  # every write waits (busy timeout), then fails
    try:
        item = record()
        started = time.monotonic()
        store.put(item)
        # a write would wait for the lock (the 10 s busy timeout), then fail
        assert time.monotonic() - started < 2
        assert await store.get(item.id) == item  # readable while its write waits
    finally:
        lock.rollback()
        lock.close()
    store.close(timeout=30)
    assert store.written >= 1
    assert await DatabaseResponseStore(url, wait_for_write=0).get(item.id) is not None


async def test_another_worker_waits_for_a_just_made_response(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer, reader = DatabaseResponseStore(url), DatabaseResponseStore(url, wait_for_write=3)
    writer.migrate()
    item = record()
    timer = threading.Timer(0.3, writer.put, args=(item,))
    timer.start()
    try:
        started = time.monotonic()
        assert await reader.get(item.id) is not None  # not there yet: looked again
        assert time.monotonic() - started > 0.2
        # an old id is not waited for
        old = "resp_" + "0" * 12 + "ab" * 16
        started = time.monotonic()
        assert await reader.get(old) is None
        assert time.monotonic() - started < 2.5  # not the 3 s wait
    finally:
        timer.join()
        writer.close()
        reader.close()
