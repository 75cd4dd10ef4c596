"""A real multimodal Gradio app receives the uploaded image (issue 23, images in).

``scripts/demo_chatinterface.py --multimodal``: ``gr.ChatInterface(multimodal=True)``
whose answer names each file its function received (size, type by magic number,
SHA-256). Under the installed Gradio (6.x, in process) and Gradio 4.44 (a subprocess
through ``LLMRELAY_GRADIO4_PYTHON``); gradio_client (``handle_file``) against the same
app gives the same answer.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from llmrelay import AsyncClient, ProviderError
from tests.gradio_servers import CHATINTERFACE, launch_subprocess, load_demo
from tests.images_server import DOT, ImageServer, png, serve_images

pytestmark = [pytest.mark.gradio, pytest.mark.anyio]
pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

SPACE = "hf_spaces:someone/multimodal-chat"
QUESTION = "What is in the picture? 🖼"
IMAGE = png(7, 5)


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return load_demo(CHATINTERFACE)


@pytest.fixture(scope="module")
def multimodal6(demo: ModuleType) -> Iterator[str]:
    url, close = demo.launch_in_thread(multimodal=True)
    try:
        yield url
    finally:
        close()


@pytest.fixture(scope="module")
def multimodal4() -> Iterator[str]:
    python = os.environ.get("LLMRELAY_GRADIO4_PYTHON")
    if not python:
        pytest.skip("set LLMRELAY_GRADIO4_PYTHON to a Python with gradio 4.44 (scripts/test.sh)")
    with launch_subprocess(python, script=CHATINTERFACE, args=("--multimodal",)) as url:
        yield url


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    with serve_images() as served:
        yield served


def question(*urls: str) -> list[dict[str, Any]]:
    images = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return [{"role": "user", "content": [{"type": "text", "text": QUESTION}, *images]}]


def data_url(data: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


async def ask(url: str, messages: Any) -> str:
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        return (await client.complete(messages, model=SPACE)).text


def with_gradio_client(url: str, tmp_path: Path, api_name: str) -> Any:
    path = tmp_path / "picture.png"
    path.write_bytes(IMAGE)
    client = gradio_client.Client(url, verbose=False, download_files=False)
    message = {"text": QUESTION, "files": [gradio_client.handle_file(str(path))]}
    return client.predict(message, api_name=api_name)


async def test_gradio6_receives_the_uploaded_image(
    demo: ModuleType, multimodal6: str, tmp_path: Path
) -> None:
    expected = demo.answer_text(QUESTION, demo.DEFAULT_SYSTEM, demo.DEFAULT_TEMPERATURE, [IMAGE])
    assert demo.file_note(IMAGE) in expected
    assert await ask(multimodal6, question(data_url(IMAGE))) == expected
    assert with_gradio_client(multimodal6, tmp_path, "/respond") == expected


async def test_gradio6_receives_several_images(demo: ModuleType, multimodal6: str) -> None:
    second = png(2, 9)
    expected = demo.answer_text(
        QUESTION, demo.DEFAULT_SYSTEM, demo.DEFAULT_TEMPERATURE, [IMAGE, second]
    )
    assert await ask(multimodal6, question(data_url(IMAGE), data_url(second))) == expected


async def test_gradio6_refuses_to_download_a_loopback_url(
    multimodal6: str, images: ImageServer
) -> None:
    """Gradio 6 downloads a URL FileData itself, public addresses only (safehttpx)."""
    with pytest.raises(ProviderError, match="without an error message"):
        await ask(multimodal6, question(f"{images.url}/dot.png"))


async def test_gradio4_receives_the_uploaded_image_and_a_url(
    demo: ModuleType, multimodal4: str, images: ImageServer, tmp_path: Path
) -> None:
    expected = demo.answer_text(QUESTION, demo.DEFAULT_SYSTEM, demo.DEFAULT_TEMPERATURE, [IMAGE])
    assert await ask(multimodal4, question(data_url(IMAGE))) == expected
    assert with_gradio_client(multimodal4, tmp_path, "/chat") == expected
    # Gradio 4 downloads a URL FileData itself (any address): the Space fetched it
    before = images.hits["/dot.png"]
    by_url = demo.answer_text(QUESTION, demo.DEFAULT_SYSTEM, demo.DEFAULT_TEMPERATURE, [DOT])
    assert await ask(multimodal4, question(f"{images.url}/dot.png")) == by_url
    assert images.hits["/dot.png"] == before + 1
