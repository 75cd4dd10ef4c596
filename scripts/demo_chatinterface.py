"""A local ``gr.ChatInterface`` Space that no row of ``hf_spaces.SPACES`` describes.

A REAL Gradio app: ``gr.ChatInterface(respond, additional_inputs=[system textbox,
temperature slider])``, streaming a deterministic answer that names the message, the
system prompt and the temperature it received (so tests see what arrived, and that the
system textbox keeps its own default when no system prompt is given).  ``hf_spaces``
must find its chat dependency from ``GET /config`` alone (the Blocks config that
gradio_client reads: gradio-app/gradio, client/python/gradio_client/client.py).

Runs offline (analytics off, no share link, no SSR); Gradio 4.44, 5.x and 6.x.

Usage: ``python scripts/demo_chatinterface.py --host 127.0.0.1 --port 7861``.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr

GRADIO_MAJOR = int(gr.__version__.split(".", 1)[0])
DEFAULT_SYSTEM = "You are a friendly chatbot."
DEFAULT_TEMPERATURE = 0.7


def answer_chunks(message: str, system: str, temperature: float) -> list[str]:
    """The deterministic answer, chunk by chunk (repeated words, newline, emoji)."""
    return [
        "Echo",
        ": ",
        message,
        "\n",
        "[system: ",
        system,
        "] ",
        f"[t={temperature}]",
        " la",
        " la",
        " 🚀",
        " done.",
    ]


def answer_text(message: str, system: str, temperature: float) -> str:
    """The full answer: ``"".join(answer_chunks(...))``."""
    return "".join(answer_chunks(message, system, temperature))


def respond(message: Any, history: Any, system: str, temperature: float) -> Iterator[str]:
    """Stream the answer as the growing reply string (ChatInterface's generator form).

    ``message`` is a string, or ``{"text", "files"}`` for a multimodal ChatInterface.
    """
    if isinstance(message, dict):
        message = message.get("text", "")
    text = ""
    for chunk in answer_chunks(message, system, temperature):
        text += chunk
        yield text


def build_demo(multimodal: bool = False) -> gr.ChatInterface:
    """The ChatInterface with a system textbox and a temperature slider."""
    kwargs: dict[str, Any] = {"multimodal": multimodal}
    if GRADIO_MAJOR == 5:
        kwargs["type"] = "messages"
    return gr.ChatInterface(
        respond,
        additional_inputs=[
            gr.Textbox(value=DEFAULT_SYSTEM, label="System message"),
            gr.Slider(0.1, 2.0, value=DEFAULT_TEMPERATURE, step=0.1, label="Temperature"),
        ],
        title="Local ChatInterface demo",
        analytics_enabled=False,
        **kwargs,
    )


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _launch_kwargs(host: str, port: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"server_name": host, "server_port": port, "share": False}
    if GRADIO_MAJOR >= 5:
        kwargs["ssr_mode"] = False
    return kwargs


def launch_in_thread(
    port: int | None = None, multimodal: bool = False
) -> tuple[str, Callable[[], None]]:
    """Launch in Gradio's own server thread; return ``(base_url, close)``."""
    demo = build_demo(multimodal)
    demo.queue(default_concurrency_limit=40)
    demo.launch(
        prevent_thread_lock=True,
        quiet=True,
        **_launch_kwargs("127.0.0.1", port if port is not None else _free_port()),
    )
    return f"http://127.0.0.1:{demo.server_port}", demo.close


def main(argv: list[str] | None = None) -> None:
    """Parse ``--host``/``--port`` and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--multimodal", action="store_true", help="a multimodal textbox")
    args = parser.parse_args(argv)
    demo = build_demo(args.multimodal)
    demo.queue(default_concurrency_limit=40)
    demo.launch(**_launch_kwargs(args.host, args.port))


if __name__ == "__main__":
    main()
