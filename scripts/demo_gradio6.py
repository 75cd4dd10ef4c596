"""A local Gradio 6 Space with what today's Spaces have: a function-named ChatInterface.

A REAL Gradio 6 app (``gr.Blocks``) holding:

* a chat-shaped dependency first, ``secret`` (a textbox in, a chatbot out), with
  ``api_visibility="private"``: it cannot be called through the API, and discovery must
  never pick it although it comes first;
* ``gr.ChatInterface(reply, additional_inputs=[System message textbox, Temperature
  slider, Style dropdown])``: Gradio 6 names its API endpoint after the wrapped function
  (``/reply``, not ``/chat``) and marks it ``api_visibility="public"``;
* ``concurrency_limit=1``: a second request waits in the queue, so the Space sends
  ``estimation`` messages with a rank;
* ZeroGPU-shaped failures: the message ``quota`` raises the ``gr.Error`` the ``spaces``
  package raises when the GPU quota is spent (``spaces/zero/client.py``,
  https://pypi.org/project/spaces/), ``nogpu`` the one it raises when no GPU is free;
  ``slow N`` holds the worker N seconds before answering.

``reply`` streams a deterministic answer echoing what it received (message, history,
system prompt, temperature, style). Runs offline (analytics off, no SSR).

Usage: ``python scripts/demo_gradio6.py --host 127.0.0.1 --port 7862``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr

DEFAULT_SYSTEM = "You are a friendly chatbot."
DEFAULT_TEMPERATURE = 0.7
STYLES = ("plain", "fancy")
DEFAULT_STYLE = "plain"
QUOTA_ERROR = (
    "You have exceeded your GPU quota (46s left vs. 60s requested). "
    '<a href="https://huggingface.co/join">Sign-up on Hugging Face</a> to get more '
    "quotas or retry in 0:09:48"
)
"""The ``gr.Error`` text of a spent ZeroGPU quota (the ``spaces`` package's wording)."""
QUOTA_WAIT = 9 * 60 + 48
NO_GPU_ERROR = "No GPU is currently available"


def answer_chunks(
    message: str, history: list[Any], system: str, temperature: float, style: str
) -> list[str]:
    """The deterministic answer, chunk by chunk, echoing every input it received."""
    seen = json.dumps(history, ensure_ascii=False, separators=(",", ":"))
    return [
        *("Echo", ": ", message, "\n", f"[history: {seen}]", "\n", f"[system: {system}]"),
        *(" ", f"[t={temperature}]", " ", f"[style={style}]", " la", " la", " 🚀", " done."),
    ]


def answer_text(
    message: str,
    history: list[Any] | None = None,
    system: str = DEFAULT_SYSTEM,
    temperature: float = DEFAULT_TEMPERATURE,
    style: str = DEFAULT_STYLE,
) -> str:
    """The full answer: ``"".join(answer_chunks(...))``."""
    return "".join(answer_chunks(message, history or [], system, temperature, style))


def reply(
    message: str, history: list[Any], system: str, temperature: float, style: str
) -> Iterator[str]:
    """The chat function (ChatInterface's generator form): the growing reply string."""
    if message == "quota":
        raise gr.Error(QUOTA_ERROR)
    if message == "nogpu":
        raise gr.Error(NO_GPU_ERROR)
    if message.startswith("slow "):
        time.sleep(float(message.split()[1]))
    text = ""
    for chunk in answer_chunks(message, history, system, temperature, style):
        text += chunk
        yield text


def secret(message: str) -> list[dict[str, str]]:
    """A private, chat-shaped function: never callable through the API."""
    return [{"role": "user", "content": message}, {"role": "assistant", "content": "secret"}]


def build_demo() -> gr.Blocks:
    """The Blocks app: the private ``secret`` dependency first, then the ChatInterface."""
    with gr.Blocks(analytics_enabled=False, title="Gradio 6 Space (local demo)") as demo:
        with gr.Row(visible=False):
            secret_box = gr.Textbox(label="Secret")
            secret_chat = gr.Chatbot(label="Secret chat")
        secret_box.submit(
            secret, [secret_box], [secret_chat], api_name="secret", api_visibility="private"
        )
        gr.ChatInterface(
            reply,
            additional_inputs=[
                gr.Textbox(value=DEFAULT_SYSTEM, label="System message"),
                gr.Slider(0.1, 2.0, value=DEFAULT_TEMPERATURE, step=0.1, label="Temperature"),
                gr.Dropdown(list(STYLES), value=DEFAULT_STYLE, label="Style"),
            ],
            concurrency_limit=1,
            analytics_enabled=False,
        )
    return demo


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def launch_in_thread(port: int | None = None) -> tuple[str, Callable[[], None]]:
    """Launch in Gradio's own server thread; return ``(base_url, close)``."""
    demo = build_demo()
    demo.queue()
    demo.launch(
        prevent_thread_lock=True,
        quiet=True,
        server_name="127.0.0.1",
        server_port=port if port is not None else _free_port(),
        share=False,
        ssr_mode=False,
    )
    return f"http://127.0.0.1:{demo.server_port}", demo.close


def main(argv: list[str] | None = None) -> None:
    """Parse ``--host``/``--port`` and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7862)
    args = parser.parse_args(argv)
    demo = build_demo()
    demo.queue()
    demo.launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False)


if __name__ == "__main__":
    main()
