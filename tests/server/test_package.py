"""The web page ships in the package and needs nothing from the network."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from llmrelay.server._routes import WEB_DIR

ROOT = Path(__file__).parents[2]


def test_web_files_reference_no_external_resource() -> None:
    files = sorted(WEB_DIR.iterdir())
    assert {f.name for f in files} >= {"index.html", "app.js", "style.css"}
    for file in files:
        text = file.read_text(encoding="utf-8")
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), file.name


def test_page_and_assets_are_served(server_url: str) -> None:
    page = httpx.get(server_url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert httpx.get(server_url + asset).status_code == 200, asset


def test_the_wheel_ships_the_web_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("llmrelay-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"llmrelay/server/web/{n}" for n in ("index.html", "app.js", "style.css")} <= names
