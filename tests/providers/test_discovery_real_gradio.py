"""Discovery against REAL Gradio apps that no row describes (issue 7).

Both shapes — ``gr.ChatInterface`` with additional inputs (``scripts/demo_chatinterface.py``)
and ``gr.Blocks`` with a chatbot (``scripts/demo_space.py``, named by an id that is not the
Qwen row) — under the installed Gradio (6.x, in-process) and Gradio 4.44 (a subprocess
through ``LLMRELAY_GRADIO4_PYTHON``). The base URL override is the host: no Hub is asked.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import httpx
import pytest

from llmrelay import AsyncClient, FinishReason, Message, ProviderInfo, Queued
from llmrelay.providers.hf_spaces import HFSpaces
from llmrelay.types import ChatRequest
from tests.gradio_servers import CHATINTERFACE, DEMO, launch_current, launch_subprocess, load_demo

pytestmark = [pytest.mark.gradio, pytest.mark.anyio]
pytest.importorskip("gradio")

MESSAGE = "Wie geht's? 你好"
SYSTEM = "Answer in verse."
UNKNOWN_CHAT = "someone/local-chat-interface"
UNKNOWN_BLOCKS = "someone/blocks-with-a-chatbot"


@pytest.fixture(scope="module")
def chatinterface6() -> Iterator[tuple[str, ModuleType]]:
    with launch_current(CHATINTERFACE) as served:
        yield served


@pytest.fixture(scope="module")
def blocks6() -> Iterator[tuple[str, ModuleType]]:
    with launch_current(DEMO) as served:
        yield served


def gradio4_python() -> str:
    python = os.environ.get("LLMRELAY_GRADIO4_PYTHON")
    if not python:
        pytest.skip("set LLMRELAY_GRADIO4_PYTHON to a Python with gradio 4.44 (scripts/test.sh)")
    return python


@pytest.fixture(scope="module")
def chatinterface4() -> Iterator[str]:
    with launch_subprocess(gradio4_python(), script=CHATINTERFACE) as url:
        yield url


@pytest.fixture(scope="module")
def blocks4() -> Iterator[str]:
    with launch_subprocess(gradio4_python(), script=DEMO) as url:
        yield url


async def chat(url: str, model: str, system: str | None = None) -> list[object]:
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        stream = client.stream(MESSAGE, model=f"hf_spaces:{model}", system=system)
        return [event async for event in stream]


def text_of(events: list[object]) -> str:
    # the queue's estimation messages (progress) may come before the answer
    events = [e for e in events if not isinstance(e, Queued)]
    assert isinstance(events[0], ProviderInfo)
    assert events[-1] == FinishReason("stop")
    assert sum(isinstance(e, FinishReason) for e in events) == 1
    texts = [e for e in events if isinstance(e, str)]
    assert len(texts) >= 6, "the answer must stream in many deltas"
    return "".join(texts)


def chatinterface_answer(system: str) -> str:
    demo = load_demo(CHATINTERFACE)
    return str(demo.answer_text(MESSAGE, system, demo.DEFAULT_TEMPERATURE))


def blocks_answer(system: str) -> str:
    demo = load_demo(DEMO)
    return inspect.cleandoc(demo.answer_text(MESSAGE, system))  # the Chatbot cleans text


async def check_chatinterface(url: str) -> None:
    demo = load_demo(CHATINTERFACE)
    # no system prompt: the system textbox keeps its own default; the slider its value
    assert text_of(await chat(url, UNKNOWN_CHAT)) == chatinterface_answer(demo.DEFAULT_SYSTEM)
    assert text_of(await chat(url, UNKNOWN_CHAT, SYSTEM)) == chatinterface_answer(SYSTEM)


async def check_blocks(url: str) -> None:
    demo = load_demo(DEMO)
    assert text_of(await chat(url, UNKNOWN_BLOCKS)) == blocks_answer(demo.DEFAULT_SYSTEM)
    assert text_of(await chat(url, UNKNOWN_BLOCKS, SYSTEM)) == blocks_answer(SYSTEM)


async def test_chatinterface_newest_gradio(chatinterface6: tuple[str, ModuleType]) -> None:
    await check_chatinterface(chatinterface6[0])


async def test_blocks_newest_gradio(blocks6: tuple[str, ModuleType]) -> None:
    await check_blocks(blocks6[0])


async def test_chatinterface_gradio4(chatinterface4: str) -> None:
    await check_chatinterface(chatinterface4)


async def test_blocks_gradio4(blocks4: str) -> None:
    await check_blocks(blocks4)


def test_cli_chat_with_a_chatinterface_no_row_describes(
    chatinterface6: tuple[str, ModuleType],
) -> None:
    """``llmrelay chat -m hf_spaces:OWNER/SPACE`` against a local ChatInterface app."""
    url, _ = chatinterface6
    result = subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", "chat", "-m", f"hf_spaces:{UNKNOWN_CHAT}",
         "-s", SYSTEM, MESSAGE],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "LLMRELAY_HF_SPACES_BASE_URL": url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == chatinterface_answer(SYSTEM) + "\n"
    assert result.stderr == ""


async def test_inputs_option_sets_the_slider(chatinterface6: tuple[str, ModuleType]) -> None:
    url, demo = chatinterface6
    async with httpx.AsyncClient(timeout=30) as http:
        provider = HFSpaces(http, endpoints={"base_url": url})
        request = ChatRequest(
            (Message("user", MESSAGE),),
            model=UNKNOWN_CHAT,
            options={"inputs": {"Temperature": 1.3}},
        )
        events = [event async for event in provider.stream(request)]
    assert events[-1] == FinishReason("stop")
    assert "".join(e for e in events if isinstance(e, str)) == demo.answer_text(
        MESSAGE, demo.DEFAULT_SYSTEM, 1.3
    )


async def test_multimodal_chatinterface_newest_gradio() -> None:
    """``gr.ChatInterface(multimodal=True)``: the message is ``{"text", "files"}``."""
    demo = load_demo(CHATINTERFACE)
    url, close = demo.launch_in_thread(multimodal=True)
    try:
        events = await chat(url, UNKNOWN_CHAT, SYSTEM)
    finally:
        close()
    assert text_of(events) == chatinterface_answer(SYSTEM)


def test_default_model_on_a_chatinterface_is_an_error_not_an_empty_answer(
    chatinterface6: tuple[str, ModuleType],
) -> None:
    """Issue 17: the Qwen row forced onto a self-hosted ``gr.ChatInterface`` (whose
    ``fn_index`` 0 is ``_clear_and_save_textbox``) answered "" with exit status 0."""
    url, _ = chatinterface6
    result = subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", "chat", "--no-log", "-m", "hf_spaces:qwen-2-72b",
         MESSAGE],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "LLMRELAY_HF_SPACES_BASE_URL": url},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert "not laid out like Qwen/Qwen2-72B-Instruct" in result.stderr
    assert "-m hf_spaces:<owner>/<space>" in result.stderr
