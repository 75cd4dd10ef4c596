"""hf_spaces against real Gradio servers running the Qwen-shaped demo Space."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from llmrelay import AsyncClient, Client, FinishReason, ProviderInfo
from tests.gradio_servers import launch_current, launch_subprocess, load_demo

pytestmark = [pytest.mark.gradio, pytest.mark.anyio]
pytest.importorskip("gradio")

QUERY = "Wie geht's? 你好"
SYSTEM = "You are a terse assistant."


@pytest.fixture(scope="module")
def current_space() -> Iterator[tuple[str, ModuleType]]:
    with launch_current() as served:
        yield served


@pytest.fixture(scope="module")
def gradio4_space() -> Iterator[str]:
    python = os.environ.get("LLMRELAY_GRADIO4_PYTHON")
    if not python:
        pytest.skip(
            "set LLMRELAY_GRADIO4_PYTHON to a Python with gradio 4.44 (scripts/test.sh does)"
        )
    with launch_subprocess(python) as url:
        yield url


def shown_answer(demo: ModuleType) -> str:
    # Gradio's Chatbot passes each message through inspect.cleandoc
    return inspect.cleandoc(demo.answer_text(QUERY, SYSTEM))


async def stream_from(url: str) -> list[object]:
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        return [e async for e in client.stream(QUERY, model="hf_spaces:qwen-2-72b", system=SYSTEM)]


def check_stream(events: list[object], expected: str) -> None:
    assert isinstance(events[0], ProviderInfo)
    assert events[-1] == FinishReason("stop")
    assert sum(isinstance(e, FinishReason) for e in events) == 1
    texts = [e for e in events if isinstance(e, str)]
    assert "".join(texts) == expected
    assert len(texts) >= 8, "the answer must arrive in many deltas, not at the end"
    assert QUERY in expected
    assert SYSTEM in expected
    assert "la la la" in expected


async def test_newest_gradio_streams_the_answer(current_space: tuple[str, ModuleType]) -> None:
    url, demo = current_space
    check_stream(await stream_from(url), shown_answer(demo))


def test_sync_client_against_newest_gradio(current_space: tuple[str, ModuleType]) -> None:
    url, demo = current_space
    with Client(base_urls={"hf_spaces": url}) as client:
        completion = client.complete(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUERY}],
            model="qwen-2-72b",
        )
    assert completion.text == shown_answer(demo)
    assert completion.finish_reason == "stop"


async def test_history_reaches_the_space_flattened(current_space: tuple[str, ModuleType]) -> None:
    url, _ = current_space
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
    ]
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        completion = await client.complete(messages, model="hf_spaces")
    # the demo echoes the prompt it received
    assert "User: first\nAssistant: reply\nUser: second\nAssistant:" in completion.text


async def test_gradio4_streams_the_answer(gradio4_space: str) -> None:
    # Gradio 4: no /gradio_api prefix, tuple chatbot, gr.Error text quoted
    check_stream(await stream_from(gradio4_space), shown_answer(load_demo()))


def test_main_job_cli_subprocess_against_newest_gradio(
    current_space: tuple[str, ModuleType],
) -> None:
    """The README's main job: `llmrelay chat` streaming from a real Gradio server."""
    url, demo = current_space
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmrelay.cli",
            "chat",
            "-m",
            "hf_spaces:qwen-2-72b",
            "-s",
            SYSTEM,
            QUERY,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "LLMRELAY_HF_SPACES_BASE_URL": url},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown_answer(demo) + "\n"
    assert result.stderr == ""
