"""After start-up: the process's long-lived objects out of the garbage collector's way.

CPython's cyclic collector runs a full (generation 2) collection over every tracked object
the process holds -- after ``llmrelay serve``'s start-up about 90,000 (the imported
modules, FastAPI's routes, pydantic's schemas, the providers) -- taking 30-150 ms on a
2-vCPU guest; one landing on a request shows as that request's time to first token.
``freeze_heap`` collects once and then moves every object alive into the permanent
generation (``gc.freeze``, https://docs.python.org/3/library/gc.html#gc.freeze), which
later collections skip: objects made while serving are collected as before, the start-up
objects are never scanned again (nor freed: they live as long as the process anyway).
"""

from __future__ import annotations

import gc

__all__ = ["freeze_heap"]


def freeze_heap() -> int:
    """Collect, then freeze every object alive; the number frozen (``gc.get_freeze_count``)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
