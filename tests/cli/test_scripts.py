"""scripts/_venv.sh: idempotent, offline once set up, rebuilds an unusable .venv, says what it does.

A stub stands in for Python's venv and pip (it records each call), so no package is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

STUB = """#!/usr/bin/env bash
echo "$*" >> "{log}"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then exit 0; fi
exec "{real}" "$@"
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "_venv.sh", tmp_path / "scripts" / "_venv.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    stub = tmp_path / "python-stub"
    stub.write_text(STUB.format(log=tmp_path / "calls.log", real=sys.executable))
    stub.chmod(0o755)
    return tmp_path


def _setup(project: Path, python: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail; source scripts/_venv.sh dev"],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(python or project / "python-stub")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _pip_calls(project: Path) -> list[str]:
    log = project / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith("-m pip install")]


def test_first_run_says_what_it_does_and_later_runs_install_nothing(project: Path) -> None:
    first = _setup(project)
    assert first.returncode == 0, first.stderr
    assert "creating .venv" in first.stderr
    assert "installing llmrelay[dev]" in first.stderr
    assert _pip_calls(project)[-1] == "-m pip install --quiet -e .[dev]"
    calls = len(_pip_calls(project))

    again = _setup(project)
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    assert len(_pip_calls(project)) == calls  # offline: pip is not run

    with (project / "pyproject.toml").open("a") as handle:
        handle.write("\n# changed\n")
    changed = _setup(project)
    assert "installing llmrelay[dev]" in changed.stderr
    assert len(_pip_calls(project)) == calls + 1


def test_a_venv_from_an_unusable_python_is_rebuilt_with_a_message(project: Path) -> None:
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").symlink_to(project / "gone" / "python3.9")
    result = _setup(project)
    assert result.returncode == 0, result.stderr
    assert "rebuilding it" in result.stderr
    assert (project / ".venv" / "bin" / "python").is_file()
    assert _pip_calls(project)


def test_a_too_old_python_is_refused_with_advice(project: Path) -> None:
    old = project / "python-old"
    old.write_text("#!/usr/bin/env bash\nexit 1\n")
    old.chmod(0o755)
    result = _setup(project, python=old)
    assert result.returncode == 2
    assert "PYTHON=" in result.stderr
    assert not (project / ".venv").exists()
