"""``llmrelay._ids``: random ids from batched ``os.urandom`` reads, each handed out once."""

from __future__ import annotations

import os
import re
import threading

import pytest

from llmrelay import Conversation, _ids
from llmrelay._wire.openai_chat import new_completion_id

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_ids_are_32_hex_digits_of_os_urandom(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.urandom

    def counted(n: int) -> bytes:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(_ids.os, "urandom", counted)
    _ids._tokens.clear()
    ids = [_ids.token_hex16() for _ in range(600)]
    assert all(HEX32.fullmatch(i) for i in ids)
    assert len(set(ids)) == 600
    assert calls == [4096, 4096, 4096]  # one read per 256 ids
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", new_completion_id())
    assert HEX32.fullmatch(Conversation().id)
    assert Conversation(id="given").id == "given"


def test_the_batch_is_the_bytes_read_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 16
    monkeypatch.setattr(_ids.os, "urandom", lambda n: data[:n])
    _ids._tokens.clear()
    assert _ids.token_hex16() == data[:16].hex()
    assert _ids.token_hex16() == data[16:32].hex()
    _ids._tokens.clear()


def test_threads_never_get_the_same_id() -> None:
    _ids._tokens.clear()
    got: list[list[str]] = [[] for _ in range(8)]

    def take(out: list[str]) -> None:
        for _ in range(2000):
            out.append(_ids.token_hex16())

    threads = [threading.Thread(target=take, args=(out,)) for out in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in got for i in out]
    assert len(set(every)) == len(every) == 16000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_does_not_reuse_the_parents_bytes() -> None:
    _ids._tokens.clear()
    _ids.token_hex16()  # the parent holds 255 unused ids
    left = list(_ids._tokens)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then exit at once
        try:
            os.write(write, _ids.token_hex16().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert HEX32.fullmatch(child)
    assert child not in left
    assert list(_ids._tokens) == left  # the parent's are untouched
