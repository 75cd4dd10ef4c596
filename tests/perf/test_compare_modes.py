"""``benchmarks/compare.py`` splits repetitions into the guest's fast and slow CPU modes."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import compare


def test_probes_within_the_gap_are_one_mode() -> None:
    assert compare.modes([10.0, 11.0, 12.0]) == ["fast", "fast", "fast"]


def test_probes_are_split_at_the_largest_gap() -> None:
    assert compare.modes([10.0, 19.0, 10.5, 18.0, 11.0]) == [
        "fast",
        "slow",
        "fast",
        "slow",
        "fast",
    ]


def test_the_summary_judges_the_median_and_keeps_the_best_and_each_mode() -> None:
    def check(name: str, value: float, target: float) -> SimpleNamespace:
        return SimpleNamespace(name=name, value=value, target=target, unit="x", ok=True)

    runs = [
        ([check("cpu", 1.0, 1.15), check("rate (>=)", 30.0, 25.0)], 10.0),
        ([check("cpu", 1.3, 1.15), check("rate (>=)", 20.0, 25.0)], 20.0),
        ([check("cpu", 1.2, 1.15), check("rate (>=)", 22.0, 25.0)], 10.5),
    ]
    cpu, rate = compare.summarize(runs)
    assert (cpu["median"], cpu["best"], cpu["ok"]) == (1.2, 1.0, False)
    assert cpu["modes"] == {"fast": 1.1, "slow": 1.3}
    assert (rate["median"], rate["best"], rate["ok"]) == (22.0, 30.0, False)
