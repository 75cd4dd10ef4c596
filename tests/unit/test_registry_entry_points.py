"""The entry points: one ``importlib.metadata`` scan per process (and import path).

(When a client reads them at all: ``test_registry_lazy.py``.)

Every layout importlib.metadata's path finder reads is built here for real (a folder on
``sys.path``, a zip on ``sys.path``, an ``.egg`` folder, another finder on
``sys.meta_path``) and ``_entry_points()`` must equal what
``importlib.metadata.entry_points(group=...)`` returns for it; a second client does not
scan again.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterable
from importlib.metadata import PathDistribution, entry_points
from pathlib import Path

import pytest

import llmrelay._registry
from llmrelay._registry import ENTRY_POINT_GROUP, _entry_points

DECLARED = f"[{ENTRY_POINT_GROUP}]\ndemo = llmrelay_demo_plugin:Demo\n"
METADATA = "Metadata-Version: 2.1\nName: llmrelay-demo-plugin\nVersion: 0.1\n"


def _reference() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _write_info(folder: Path, entry_points_txt: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(METADATA)
    (folder / "PKG-INFO").write_text(METADATA)
    (folder / "entry_points.txt").write_text(entry_points_txt)
    return folder


def _found_like_importlib() -> None:
    assert _entry_points() == _reference()
    assert _entry_points()["demo"] == "llmrelay_demo_plugin:Demo"


@pytest.mark.parametrize(
    "folder",
    ["llmrelay_demo_plugin-0.1.dist-info", "llmrelay_demo_plugin.egg-info", "Demo-0.1.DIST-INFO"],
)
def test_a_distribution_folder_on_sys_path_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    _write_info(tmp_path / folder, DECLARED)
    monkeypatch.syspath_prepend(str(tmp_path))
    _found_like_importlib()


def test_a_zip_on_sys_path_is_left_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "plugin.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("llmrelay_demo_plugin-0.1.dist-info/METADATA", METADATA)
        zf.writestr("llmrelay_demo_plugin-0.1.dist-info/entry_points.txt", DECLARED)
    monkeypatch.syspath_prepend(str(archive))
    _found_like_importlib()


def test_an_egg_folder_on_sys_path_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    egg = tmp_path / "llmrelay_demo_plugin-0.1-py3.11.egg"
    _write_info(egg / "EGG-INFO", DECLARED)
    monkeypatch.syspath_prepend(str(egg))
    _found_like_importlib()


class _Finder:
    """A meta-path finder that provides a distribution from outside ``sys.path``."""

    def __init__(self, info: Path) -> None:
        self.info = info

    def find_spec(self, *args: object) -> None:
        return None

    def find_distributions(self, *args: object) -> Iterable[PathDistribution]:
        return [PathDistribution(self.info)]


def test_another_finder_that_provides_distributions_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = _write_info(tmp_path / "elsewhere" / "llmrelay_demo_plugin-0.1.dist-info", DECLARED)
    monkeypatch.setattr(sys, "meta_path", [_Finder(info), *sys.meta_path])
    _found_like_importlib()


def test_other_groups_do_not_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_info(tmp_path / "other-1.0.dist-info", "[console_scripts]\nother = other:main\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _reference() == {}  # this venv has no llmrelay plugin installed
    assert _entry_points() == {}


def test_the_installed_distributions_are_scanned_once_per_process() -> None:
    # three clients that list their providers (which reads the plugins), one scan; a
    # client of a built-in reads none (test_registry_lazy.py)
    code = (
        "import importlib.metadata as m, llmrelay\n"
        "calls = []\n"
        "real = m.entry_points\n"
        "m.entry_points = lambda **kw: calls.append(kw) or real(**kw)\n"
        "llmrelay.AsyncClient(model='ai2').candidates()\n"
        "for _ in range(3):\n"
        "    llmrelay.AsyncClient(model='ai2').providers()\n"
        "print(calls)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == f"[{{'group': '{ENTRY_POINT_GROUP}'}}]", out.stderr


def test_a_changed_import_path_is_scanned_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _entry_points() == {}
    _write_info(tmp_path / "late-0.1.dist-info", DECLARED)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _entry_points() == {"demo": "llmrelay_demo_plugin:Demo"}
    assert llmrelay._registry._scan.cache_info().currsize >= 2
