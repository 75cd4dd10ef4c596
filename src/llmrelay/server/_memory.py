"""Provider conversation state for stateless OpenAI clients.

OpenAI clients send the whole history every turn. Providers that keep a conversation on
their side (ai2's ``parent`` message, h2o's conversation id) continue it only if they get
their state back. After each answered turn the server stores the ``llmrelay.Conversation``
states under a hash of the messages up to and including the answer; a later request
whose history starts with those messages gets them back.

``StateStore`` is the interface (async, so Redis can back it); ``MemoryStateStore`` is a
bounded LRU with expiry.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["MemoryStateStore", "StateStore", "history_keys"]


class StateStore(Protocol):
    """Where remembered provider states live (keys are hex digests)."""

    async def get(self, key: str) -> Mapping[str, Any] | None:
        """The states stored under ``key``, or ``None`` (missing or expired)."""

    async def put(self, key: str, states: Mapping[str, Any]) -> None:
        """Store ``states`` (JSON-serialisable) under ``key``."""


class MemoryStateStore:
    """In-process ``StateStore``: at most ``max_entries``, each valid for ``ttl`` seconds."""

    def __init__(
        self,
        max_entries: int = 4096,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max(1, max_entries)
        self._ttl = ttl
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    async def get(self, key: str) -> Mapping[str, Any] | None:
        """See ``StateStore.get``; a hit becomes the most recently used entry."""
        item = self._data.get(key)
        if item is None:
            return None
        expires, blob = item
        if self._clock() >= expires:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        value: Mapping[str, Any] = json.loads(blob)
        return value

    async def put(self, key: str, states: Mapping[str, Any]) -> None:
        """See ``StateStore.put``; the least recently used entries go first when full."""
        self._data[key] = (self._clock() + self._ttl, json.dumps(states))
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)


def history_keys(messages: Sequence[tuple[str, str]]) -> list[str]:
    """Chained digests: ``keys[i]`` identifies ``messages[: i + 1]`` (role, text) pairs.

    Roles ``developer`` and ``system`` hash alike (the library treats them alike).
    """
    keys: list[str] = []
    digest = hashlib.sha256(b"llmrelay-history-v1")
    for role, text in messages:
        role = "system" if role == "developer" else role
        digest.update(json.dumps([role, text]).encode())
        keys.append(digest.copy().hexdigest())
    return keys
