"""The web page ships in the package and needs nothing from the network."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

from llmrelay.server._routes import WEB_DIR

ROOT = Path(__file__).parents[2]


OWN_FILES = ("index.html", "app.js", "api.js", "images.js", "markdown.js", "store.js", "style.css")


def test_web_files_reference_no_external_resource() -> None:
    assert {p.name for p in WEB_DIR.iterdir() if p.is_file()} == set(OWN_FILES)
    for name in OWN_FILES:
        text = (WEB_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
        for module in re.findall(r'^import .* from "([^"]+)";$', text, re.M):
            assert module.startswith("./"), (name, module)
            assert (WEB_DIR / module).is_file(), (name, module)
    # every script and stylesheet the page names is one of ours, under /static/
    page = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    for ref in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert ref.startswith("/static/") or ref == "data:,", ref
        if ref.startswith("/static/"):
            assert (WEB_DIR / ref.removeprefix("/static/")).is_file(), ref


def test_vendored_libraries_are_the_published_files() -> None:
    """``vendor/README.md`` lists each vendored file's SHA-256 (as published on npm)."""
    readme = (WEB_DIR / "vendor" / "README.md").read_text(encoding="utf-8")
    sums = dict(
        (name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M)
    )
    files = {
        p.relative_to(WEB_DIR / "vendor").as_posix()
        for p in (WEB_DIR / "vendor").rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert files == set(sums), "vendor/README.md must list every vendored file"
    for name, digest in sums.items():
        data = (WEB_DIR / "vendor" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
    # the versions the README names are the ones in the files' banners
    assert "marked v18.3.0" in (WEB_DIR / "vendor/marked/marked.umd.js").read_text()
    assert "DOMPurify 3.5.0" in (WEB_DIR / "vendor/dompurify/purify.min.js").read_text()
    assert "| 18.3.0 |" in readme
    assert "| 3.5.0 |" in readme


def test_page_and_assets_are_served(server_url: str) -> None:
    page = httpx.get(server_url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert "/static/vendor/dompurify/purify.min.js" in assets
    for asset in assets:
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
    web = {
        "llmrelay/server/web/" + p.relative_to(WEB_DIR).as_posix()
        for p in WEB_DIR.rglob("*")
        if p.is_file()
    }
    assert {f"llmrelay/server/web/{n}" for n in OWN_FILES} <= web
    assert "llmrelay/server/web/vendor/dompurify/purify.min.js" in web
    assert web <= names, sorted(web - names)
