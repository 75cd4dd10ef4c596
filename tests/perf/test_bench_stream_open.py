"""``benchmarks/stream_open.py`` measures what it says: whole streams, every delta read.

Its child raises when a stream delivers fewer deltas than scripted, or ``sse()`` fewer
frames (a benchmark that measured a stream ending early would flatter the engine); this
runs it small.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import stream_open


def test_the_child_measures_whole_streams_in_every_shape() -> None:
    figures = stream_open._child(tokens=4, streams=32, concurrent=20)
    assert set(figures) == {"sequential", "concurrent", "create"}
    assert all(value > 0 for value in figures.values())
