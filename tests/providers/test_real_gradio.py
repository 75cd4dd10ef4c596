"""hf_spaces against real Gradio servers running the Qwen-shaped demo Space."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from llmrelay import AsyncClient, Client, FinishReason, ProviderInfo, Queued
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
    # the queue's estimation messages (progress) may come before the answer
    events = [e for e in events if not isinstance(e, Queued)]
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


def received_history(major: int, turns: list[tuple[str, str]]) -> list[object]:
    """The history value ``model_chat`` receives for ``turns``: pairs in Gradio 4, the
    Chatbot's preprocessed messages (content parts) in Gradio 6."""
    if major < 5:
        return [[user, bot] for (_, user), (_, bot) in zip(turns[::2], turns[1::2], strict=True)]
    return [
        {"role": role, "metadata": None, "content": [{"text": text, "type": "text"}],
         "options": None}
        for role, text in turns
    ]  # fmt: skip


async def check_second_turn(url: str, major: int) -> None:
    """Two turns: the second sends the first as the chatbot's value, not flattened."""
    demo = load_demo()
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        first = await client.complete("first", model="hf_spaces", system=SYSTEM)
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": first.text},
            {"role": "user", "content": "second"},
        ]
        second = await client.complete(messages, model="hf_spaces")
    received = received_history(major, [("user", "first"), ("assistant", first.text)])
    # the demo echoes what model_chat received: the last message, the system prompt in
    # the hidden system_state box, and the history in the chatbot
    assert second.text == inspect.cleandoc(demo.answer_text("second", SYSTEM, received))
    assert "User: first" not in second.text


async def test_second_turn_history_reaches_the_chatbot_newest_gradio(
    current_space: tuple[str, ModuleType],
) -> None:
    url, demo = current_space
    await check_second_turn(url, demo.GRADIO_MAJOR)


async def test_second_turn_history_reaches_the_chatbot_gradio4(gradio4_space: str) -> None:
    await check_second_turn(gradio4_space, 4)


async def test_gradio4_streams_the_answer(gradio4_space: str) -> None:
    # Gradio 4: no /gradio_api prefix, tuple chatbot, gr.Error text quoted
    check_stream(await stream_from(gradio4_space), shown_answer(load_demo()))


def main_job(url: str) -> subprocess.CompletedProcess[str]:
    """The README's main job: ``llmrelay chat -m hf_spaces:qwen-2-72b -s ... PROMPT``."""
    return subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", "chat", "--no-log", "-m", "hf_spaces:qwen-2-72b",
         "-s", "Answer in one line.", QUERY],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "LLMRELAY_HF_SPACES_BASE_URL": url},
    )  # fmt: skip


def test_main_job_cli_subprocess_against_newest_gradio(
    current_space: tuple[str, ModuleType],
) -> None:
    url, demo = current_space
    result = main_job(url)
    assert result.returncode == 0, result.stderr
    # the demo echoes what model_chat received: the system prompt came through the
    # hidden system_state box (the labelled "System" box is not model_chat's input)
    expected = inspect.cleandoc(demo.answer_text(QUERY, "Answer in one line."))
    assert result.stdout == expected + "\n"
    assert "System: Answer in one line.\n" in result.stdout
    assert result.stderr == ""


def test_main_job_cli_subprocess_against_gradio4(gradio4_space: str) -> None:
    result = main_job(gradio4_space)
    assert result.returncode == 0, result.stderr
    expected = inspect.cleandoc(load_demo().answer_text(QUERY, "Answer in one line."))
    assert result.stdout == expected + "\n"
    assert result.stderr == ""
