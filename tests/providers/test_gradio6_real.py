"""A real Gradio 6.31 Space with what today's Spaces have (``scripts/demo_gradio6.py``).

A function-named ``gr.ChatInterface`` (``/reply``) with extra inputs (a system textbox,
a slider, a dropdown), a private chat-shaped endpoint before it, ZeroGPU-shaped errors
and a one-worker queue. The official client (``gradio_client`` 2.x) and llmrelay are
checked against the same server: they agree on what is callable and what it answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

from llmrelay import (
    AsyncClient,
    FinishReason,
    ProtocolError,
    ProviderUnavailable,
    Queued,
    RateLimitError,
)
from tests.gradio_servers import load_demo

pytestmark = [pytest.mark.gradio, pytest.mark.anyio]
gradio = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
if int(gradio.__version__.split(".", 1)[0]) < 6:
    pytest.skip("a Gradio 6 app", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_gradio6.py"
SPACE = "someone/gradio6-space"
MODEL = f"hf_spaces:{SPACE}"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, ModuleType]]:
    demo = load_demo(SCRIPT)
    url, close = demo.launch_in_thread()
    try:
        yield url, demo
    finally:
        close()


def official(url: str) -> Any:
    return gradio_client.Client(url, verbose=False, download_files=False)


async def complete(url: str, messages: Any, **kwargs: Any) -> str:
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        return (await client.complete(messages, model=MODEL, **kwargs)).text


async def test_function_named_endpoint_found_and_answers_like_the_official_client(
    served: tuple[str, ModuleType],
) -> None:
    url, demo = served
    expected = demo.answer_text("hi", [], "Be brief.", 0.7, "plain")
    # gradio_client calls the function-named endpoint; llmrelay finds it from /config
    assert official(url).predict("hi", "Be brief.", api_name="/reply") == expected
    assert await complete(url, "hi", system="Be brief.") == expected


async def test_extra_inputs_by_label_and_history(served: tuple[str, ModuleType]) -> None:
    url, demo = served
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": "second"},
    ]
    text = await complete(url, messages, options={"inputs": {"Temperature": 1.3, "style": "fancy"}})
    # ChatInterface's history is a gr.State: Gradio gives the function the session's
    # own value (empty) whatever is sent, so the conversation travels in the message
    flat = "User: first\nAssistant: answer one\nUser: second\nAssistant:"
    assert text == demo.answer_text(flat, [], demo.DEFAULT_SYSTEM, 1.3, "fancy")


def test_a_state_input_ignores_the_value_sent(served: tuple[str, ModuleType]) -> None:
    """Why the history is not sent to a ChatInterface's state: the server drops it."""
    url, demo = served
    config = httpx.get(f"{url}/config").json()
    (dep,) = [d for d in config["dependencies"] if d["api_name"] == "reply"]
    history = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "one"}]
    body = {"data": ["m", history, "S", 0.7, "plain"], "event_data": None,
            "fn_index": dep["id"], "trigger_id": dep["targets"][0][0], "session_hash": "st8"}  # fmt: skip
    with httpx.Client(base_url=f"{url}/gradio_api", timeout=30) as http:
        assert http.post("/queue/join", json=body).status_code == 200
        with http.stream("GET", "/queue/data", params={"session_hash": "st8"}) as response:
            lines = [json.loads(line[6:]) for line in response.iter_lines() if line]
    (done,) = [m for m in lines if m["msg"] == "process_completed"]
    assert done["output"]["data"][0] == demo.answer_text("m", [], "S", 0.7, "plain")


def test_the_private_endpoint_cannot_be_called_and_is_never_chosen(
    served: tuple[str, ModuleType],
) -> None:
    url, _ = served
    with pytest.raises(ValueError, match="/secret"):
        official(url).predict("x", api_name="/secret")
    # it is the first dependency and chat-shaped (textbox in, chatbot out): the known
    # Qwen row forced onto this app meets it at fn_index 0 and refuses
    with pytest.raises(ProtocolError, match="'secret' is private"):
        asyncio.run(_complete_default(url))


async def _complete_default(url: str) -> str:
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        return (await client.complete("hi", model="hf_spaces:qwen-2-72b")).text


async def test_zerogpu_quota_error(served: tuple[str, ModuleType]) -> None:
    url, demo = served
    with pytest.raises(gradio_client.exceptions.AppError, match="GPU quota"):
        official(url).predict("quota", api_name="/reply")
    with pytest.raises(RateLimitError) as info:
        await complete(url, "quota")
    assert info.value.retry_after == demo.QUOTA_WAIT
    with pytest.raises(ProviderUnavailable, match="No GPU"):
        await complete(url, "nogpu")


async def _queued_at_least(url: str, size: int, within: float = 10.0) -> None:
    """Wait until the Space's queue holds ``size`` waiting events (Gradio's
    ``GET /gradio_api/queue/status``: ``queue_size`` counts those not yet running)."""
    async with httpx.AsyncClient(base_url=url) as http:
        with anyio.fail_after(within):
            while True:
                status = (await http.get("/gradio_api/queue/status")).json()
                if status["queue_size"] >= size:
                    return
                await asyncio.sleep(0.02)


async def test_queue_estimation_gives_queued_events(served: tuple[str, ModuleType]) -> None:
    url, _ = served
    async with AsyncClient(base_urls={"hf_spaces": url}) as client:
        busy = [asyncio.create_task(client.complete("slow 1.5", model=MODEL)) for _ in range(2)]
        await _queued_at_least(url, 1)  # both joined: one runs, one waits
        events = [e async for e in client.stream("hi", model=MODEL)]
        await asyncio.gather(*busy)
    queued = [e for e in events if isinstance(e, Queued)]
    assert queued, events
    assert queued[0].position is not None
    assert queued[0].position >= 1  # one request ahead in the queue
    assert [q.position for q in queued] == sorted((q.position or 0 for q in queued), reverse=True)
    assert all(q.queue_size is not None and q.queue_size >= 1 for q in queued)
    assert events[-1] == FinishReason("stop")


def cli(url: str, *args: str, stderr: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmrelay.cli", *args],
        stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=60, check=False,
        env={**os.environ, "LLMRELAY_HF_SPACES_BASE_URL": url},
    )  # fmt: skip


def test_cli_describes_the_space_and_sets_inputs_by_label(served: tuple[str, ModuleType]) -> None:
    url, demo = served
    described = cli(url, "models", MODEL, "--json")
    assert described.returncode == 0, described.stderr
    info = json.loads(described.stdout)
    assert (info["api_name"], info["visibility"], info["reply"]) == ("reply", "public", "json")
    assert [(i["role"], i["component"], i["label"], i["default"]) for i in info["inputs"]] == [
        ("message", "textbox", None, None),
        ("state", "state", None, None),
        ("system", "textbox", "System message", demo.DEFAULT_SYSTEM),
        ("input", "slider", "Temperature", demo.DEFAULT_TEMPERATURE),
        ("input", "dropdown", "Style", demo.DEFAULT_STYLE),
    ]
    table = cli(url, "models", MODEL)
    assert table.returncode == 0, table.stderr
    assert "endpoint /reply, fn_index" in table.stdout
    assert "input\tslider\tTemperature\t0.7" in table.stdout
    chat = cli(url, "chat", "--no-log", "-m", MODEL, "-o", "inputs", '{"Style": "fancy"}', "hi")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout == demo.answer_text("hi", [], demo.DEFAULT_SYSTEM, 0.7, "fancy") + "\n"
    bad = cli(url, "chat", "--no-log", "-m", MODEL, "-o", "inputs", '{"Colour": 1}', "hi")
    assert bad.returncode == 1
    assert "no input labelled Colour" in bad.stderr


def test_cli_shows_the_queue_position_on_a_terminal(served: tuple[str, ModuleType]) -> None:
    url, _ = served
    hold = [
        subprocess.Popen([sys.executable, "-c", _HOLD, url], stdout=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        leader, follower = pty.openpty()
        try:
            result = cli(url, "chat", "--no-log", "-m", MODEL, "hi", stderr=follower)
        finally:
            os.close(follower)
        seen = b""
        try:
            while chunk := os.read(leader, 4096):
                seen += chunk
        except OSError:  # the pty's other side is closed
            pass
        os.close(leader)
    finally:
        for process in hold:
            process.wait(timeout=30)
    assert result.returncode == 0
    assert result.stdout.startswith("Echo: hi")
    status = seen.decode()
    assert "\rqueued " in status  # e.g. "queued 2nd, ~1 s"
    assert status.endswith("\r\x1b[K")  # erased before the answer
    # on a pipe, no status at all
    piped = cli(url, "chat", "--no-log", "-m", MODEL, "hi")
    assert piped.stderr == ""


_HOLD = """
import sys, llmrelay
with llmrelay.Client(base_urls={"hf_spaces": sys.argv[1]}) as client:
    client.complete("slow 1.5", model="hf_spaces:someone/gradio6-space")
"""
