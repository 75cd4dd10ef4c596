"""Is the fake's multimodal ChatInterface faithful?  Real Gradio vs ``FakeSpace``.

``scripts/demo_chatinterface.py --multimodal`` (installed Gradio 6.x in process; Gradio
4.44 through ``LLMRELAY_GRADIO4_PYTHON``) against ``FakeSpace(app="multimodal")``: the
same API dependency and message component, the same answer to gradio_client's
``handle_file`` upload, the same upload answer's shape, and the same failure for a
``FileData`` whose path was never uploaded. Only httpx and gradio_client (no llmrelay).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.fakes._server import serve
from tests.fakes.gradio_space import FakeSpace, SpaceScript
from tests.gradio_servers import CHATINTERFACE, launch_subprocess
from tests.images_server import png

pytestmark = pytest.mark.gradio
gradio = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
VERSION = gradio.__version__.split(".", 1)[0]
MESSAGE = "Was ist das? 👀"
IMAGE = png(4, 3)


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_chatinterface_mm", CHATINTERFACE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_for(demo: ModuleType, version: str) -> FakeSpace:
    chunks = demo.answer_chunks(MESSAGE, demo.DEFAULT_SYSTEM, demo.DEFAULT_TEMPERATURE)
    return FakeSpace(
        SpaceScript(version=version, app="multimodal", chunks=chunks, files_at=3)  # type: ignore[arg-type]
    )


def api_dependency(config: dict[str, Any]) -> tuple[Any, ...]:
    components = {c["id"]: c for c in config["components"]}
    (dep,) = [
        d
        for d in config["dependencies"]
        if d["targets"]
        and components.get(d["targets"][0][0], {}).get("props", {}).get("value") == "Fake API"
    ]
    message = components[dep["inputs"][0]]
    props = message["props"]
    return (
        dep["id"],
        dep["api_name"],
        [components[i]["type"] for i in dep["inputs"]],
        [components[i]["type"] for i in dep["outputs"]],
        {k: props.get(k) for k in ("value", "file_count", "sources", "label")},
        config.get("api_prefix"),
    )


def gradio_client_answer(url: str, tmp_path: Path, api_name: str) -> Any:
    path = tmp_path / "picture.png"
    path.write_bytes(IMAGE)
    client = gradio_client.Client(url, verbose=False, download_files=False)
    message = {"text": MESSAGE, "files": [gradio_client.handle_file(str(path))]}
    return client.predict(message, api_name=api_name)


def upload_shape(url: str, prefix: str) -> list[tuple[int, bool, str]]:
    files = [("files", ("a.png", IMAGE, "image/png")), ("files", ("b.png", b"x", "image/png"))]
    answer = httpx.post(f"{url}{prefix}/upload", files=files).json()
    # "<upload dir>/<64 hex: a SHA-256 (seeded per server in Gradio 6)>/<name>"
    return [
        (len(Path(p).parent.name), int(Path(p).parent.name, 16) >= 0, Path(p).name) for p in answer
    ]


def not_uploaded(url: str, config: dict[str, Any]) -> list[str]:
    """The messages for a FileData path the server never received."""
    prefix = config.get("api_prefix", "")
    components = {c["id"]: c for c in config["components"]}
    (dep,) = [d for d in config["dependencies"] if d["targets"] and components.get(
        d["targets"][0][0], {}).get("props", {}).get("value") == "Fake API"]  # fmt: skip
    session = secrets.token_hex(6)
    file = {"path": "/etc/hostname", "orig_name": "x.png", "meta": {"_type": "gradio.FileData"}}
    body = {"data": [{"text": "x", "files": [file]}, None, "s", 0.7], "event_data": None,
            "fn_index": dep["id"], "trigger_id": dep["targets"][0][0], "session_hash": session}  # fmt: skip
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post(f"{prefix}/queue/join?", json=body).status_code == 200
        with client.stream("GET", f"{prefix}/queue/data", params={"session_hash": session}) as r:
            messages = [json.loads(line[6:]) for line in r.iter_lines() if line]
    completed = [m for m in messages if m["msg"] == "process_completed"]
    return [m["msg"] for m in messages if m["msg"] != "heartbeat"] + [
        json.dumps([c["success"], c["output"]]) for c in completed
    ]


def compare(real_url: str, fake_url: str, demo: ModuleType, tmp_path: Path, api: str) -> None:
    real_config = httpx.get(f"{real_url}/config").json()
    fake_config = httpx.get(f"{fake_url}/config").json()
    assert api_dependency(real_config) == api_dependency(fake_config)
    expected = demo.answer_text(MESSAGE, demo.DEFAULT_SYSTEM, demo.DEFAULT_TEMPERATURE, [IMAGE])
    assert gradio_client_answer(real_url, tmp_path, api) == expected
    assert gradio_client_answer(fake_url, tmp_path, api) == expected
    prefix = real_config.get("api_prefix", "")
    assert upload_shape(real_url, prefix) == upload_shape(fake_url, prefix)
    assert not_uploaded(real_url, real_config) == not_uploaded(fake_url, fake_config)


def test_the_fake_multimodal_chatinterface_matches_gradio(demo: ModuleType, tmp_path: Path) -> None:
    if VERSION != "6":
        pytest.skip(f"no multimodal capture for Gradio {gradio.__version__}")
    url, close = demo.launch_in_thread(multimodal=True)
    try:
        with serve(fake_for(demo, "6").app) as fake_url:
            compare(url, fake_url, demo, tmp_path, "/respond")
    finally:
        close()


@pytest.fixture(scope="module")
def gradio4_python() -> str:
    # read before the per-test isolation clears LLMRELAY_* variables
    python = os.environ.get("LLMRELAY_GRADIO4_PYTHON")
    if not python:
        pytest.skip("set LLMRELAY_GRADIO4_PYTHON to a Python with gradio 4.44 (scripts/test.sh)")
    return python


def test_the_fake_multimodal_chatinterface_matches_gradio4(
    demo: ModuleType, tmp_path: Path, gradio4_python: str
) -> None:
    python = gradio4_python
    with (
        launch_subprocess(python, script=CHATINTERFACE, args=("--multimodal",)) as url,
        serve(fake_for(demo, "4").app) as fake_url,
    ):
        compare(url, fake_url, demo, tmp_path, "/chat")
