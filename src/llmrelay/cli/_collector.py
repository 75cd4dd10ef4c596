"""The cyclic garbage collector is paused while the command line starts.

Start-up (the commands' modules, the client, the first request) allocates tens of
thousands of objects that live as long as the process and makes next to no garbage: in
``llmrelay chat`` the collector ran about 70 times before the first token, found about
450 objects to free and took 15-20 ms of CPU (measured with ``gc.callbacks``).
``main()`` pauses it (``gc.disable``) and it resumes at the end of start-up: the chat's
first event, the chat session's first prompt, any other command's start, or ``main()``'s
end. Resuming freezes what start-up allocated (``gc.freeze``): those objects (modules,
classes, the client) live as long as the process, so no later collection walks them,
neither the young ones nor the full ones that a large import after the answer (the
exchange log's SQLAlchemy) and the interpreter's exit run. They stay frozen: moving them
back (``gc.unfreeze``) put all of them into the next full collection and cost a chat
30-80 ms of CPU after its answer. The cost is that a reference cycle among start-up's
own objects that becomes garbage later is not freed; reference counting frees objects
as usual meanwhile, and everything allocated after start-up is collected as usual.
https://docs.python.org/3/library/gc.html
"""

from __future__ import annotations

import gc

__all__ = ["pause", "resume"]

_paused = False


def pause() -> None:
    """Stop automatic collection, unless the caller's process already had it off."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Restart automatic collection paused by ``pause()`` (idempotent)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
