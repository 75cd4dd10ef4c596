"""``benchmarks/startup.py`` measures what it says: the same request, CPU to the first byte.

The first-token rows judge ``llmrelay chat`` against a raw httpx script; both must send
the same request to the same server (the script copies the chat's captured body and
headers, and ``capture_request`` checks it), and the CPU column must be the child's
time on a CPU up to its first output byte, not the parent's or the whole run's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import startup

_ANSWER = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":" there"}}]}\n\ndata: [DONE]\n\n'
)


def test_the_raw_script_sends_the_chat_s_own_request(tmp_path: Path) -> None:
    body, headers = startup.capture_request(sys.executable, tmp_path, _ANSWER, "text/event-stream")
    assert '"content":"hi"' in body
    assert headers["authorization"] == "Bearer test-key"
    assert set(headers) == set(startup.HEADERS_SENT)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_cpu_is_the_child_s_own_up_to_its_first_byte() -> None:
    # the child burns ~60 ms of CPU, writes a byte, sleeps, then burns ~200 ms more
    code = (
        "import sys, time\n"
        "def burn(s):\n"
        "    t = time.process_time()\n"
        "    while time.process_time() - t < s: pass\n"
        "burn(0.06); sys.stdout.write('x'); sys.stdout.flush(); time.sleep(0.05); burn(0.2)\n"
    )
    sample = startup._first_token([sys.executable, "-c", code], {})
    assert sample.output == b"x"
    assert 0.06 <= sample.cpu < 0.2
    assert sample.run >= 0.26
    assert sample.wall >= sample.cpu - 0.01


def test_the_trace_puts_each_import_in_the_phase_it_ended() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 | site",
            "TRACE 1.0 0.5 interpreter ready",
            "import time:      2000 |       2000 |   llmrelay.types",
            "import time:       500 |       2500 | llmrelay",
            "TRACE 2.0 1.0 import llmrelay done",
            "TRACE 3.0 1.5 first token written",
            "import time:      9000 |       9000 | sqlalchemy",
        ]
    )
    phases, modules = startup._imports_by_phase(stderr)
    assert phases["interpreter ready"] == {"site": 100}
    assert phases["import llmrelay done"] == {"llmrelay": 2500}
    assert "sqlalchemy" not in modules  # after the first token
