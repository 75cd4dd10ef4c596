"""Random ids of the request path, with one ``getrandom`` system call per 256 of them.

Every streamed request through ``llmrelay serve`` takes two ids (the ``chatcmpl-`` id and
the server's conversation id); each ``os.urandom(16)`` is a system call, and
``uuid.uuid4()`` is one too, plus a ``UUID`` object. ``token_hex16()`` hands out 16-byte
slices of one ``os.urandom`` read of 4 KiB instead: the same operating-system random
bytes (https://docs.python.org/3/library/os.html#os.urandom), each used once.

A forked child starts with none of its parent's unused bytes (``os.register_at_fork``),
so parent and child never hand out the same id. Threads may call it at once: the slices
sit in a ``collections.deque``, whose ``popleft`` is atomic, so no slice is handed out
twice.
"""

from __future__ import annotations

import os
from collections import deque

__all__ = ["token_hex16"]

_BATCH = 256
"""16-byte tokens read per ``os.urandom`` call."""

_tokens: deque[str] = deque()


def _refill() -> None:
    data = os.urandom(16 * _BATCH).hex()
    _tokens.extend(data[i : i + 32] for i in range(0, len(data), 32))


def token_hex16() -> str:
    """32 lower-case hex digits: 128 random bits from ``os.urandom``, never handed out twice.

    As unguessable as ``os.urandom(16).hex()`` (the same source), without a system call
    for 255 of every 256 calls.
    """
    try:
        return _tokens.popleft()
    except IndexError:
        _refill()
        return _tokens.popleft()


def _forget() -> None:
    """In a forked child: drop the parent's unused bytes (the child reads its own)."""
    _tokens.clear()


os.register_at_fork(after_in_child=_forget)
