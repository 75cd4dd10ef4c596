"""``llmrelay chat --first-token-timeout`` and ``--total-timeout`` bound an answer."""

from __future__ import annotations

import time

from tests.cli.conftest import Space, run
from tests.fakes.gradio_space import SpaceScript


def test_first_token_timeout_flag_bounds_a_silent_space(space: Space) -> None:
    fake, _ = space
    fake.script = SpaceScript(mode="heartbeats_only")  # a stuck queue: never any content
    started = time.monotonic()
    code, out, err = run("chat", "--no-log", "--first-token-timeout", "0.6", "hi")
    assert time.monotonic() - started < 10
    assert code != 0
    assert out == ""
    assert "first-token timeout of 0.6s" in err


def test_total_timeout_flag_bounds_a_slow_answer(space: Space) -> None:
    fake, _ = space
    fake.script = SpaceScript(chunk_delay=0.4)  # content comes, but slowly
    started = time.monotonic()
    code, _out, err = run("chat", "--no-log", "--total-timeout", "0.7", "hi")
    assert time.monotonic() - started < 10
    assert code != 0
    assert "total timeout of 0.7s" in err
    assert "first-token" not in err
