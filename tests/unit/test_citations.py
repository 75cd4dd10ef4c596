"""Code, tests and docs cite public sources: never the team's private notes or a machine path.

The project's protocol notes live outside the repository; a docstring that points at them
(or at a path on the machine it was written on) sends a reader nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("src", "tests", "scripts", "benchmarks", "docs", "README.md")
SUFFIXES = {".py", ".md", ".sh", ".toml", ".js", ".mjs", ".ts", ".html", ".css"}
SKIPPED_PARTS = {"node_modules", "vendor", "__pycache__", "recordings"}
# built from pieces so that this file does not match itself
PRIVATE = re.compile(
    r"\b(?:"
    + "PROTOCOLS"
    + r"(?:\.md)?\s*§|"
    + "PROTOCOLS"
    + r"\.md|"
    + "DESIGN"
    + r"\.md|"
    + "SPEC"
    + r"\.md)|\.\./"
    + "shared/|/"
    + "work/(?:main|wt|shared)"
)


def _files() -> list[Path]:
    found: list[Path] = []
    for name in SCANNED:
        top = ROOT / name
        paths = [top] if top.is_file() else top.rglob("*")
        for path in paths:
            if (
                path.is_file()
                and path.suffix in SUFFIXES
                and not SKIPPED_PARTS & set(path.relative_to(ROOT).parts)
            ):
                found.append(path)
    return found


def test_the_scan_sees_the_sources() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _files()}
    assert "src/llmrelay/__init__.py" in names
    assert "tests/fakes/tgi.py" in names
    assert "README.md" in names


def test_no_private_note_or_machine_path_is_cited() -> None:
    offenders = []
    for path in _files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if PRIVATE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert offenders == []


def test_the_pattern_catches_what_it_is_for() -> None:
    for line in (
        "Ground truth: " + "PROTOCOLS" + ".md §2.4",
        "(" + "PROTOCOLS" + " §4)",
        "see ../" + "shared/recordings/x.json",
        "/" + "work/main/src/llmrelay",
    ):
        assert PRIVATE.search(line), line
    assert not PRIVATE.search("sorted(PROTOCOLS.values())")
