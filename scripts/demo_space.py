"""A local demo Space laid out exactly like the Qwen2-72B-Instruct Hugging Face Space.

It is a REAL Gradio app (``gr.Blocks``) copying the component tree and the event
wiring of the Space's public ``app.py``
(https://huggingface.co/spaces/Qwen/Qwen2-72B-Instruct/blob/main/app.py): a visible
``gr.Textbox(label="System")`` used only by the "Set system prompt" button, a **hidden,
unlabelled** ``system_state = gr.Textbox(value=default_system, visible=False)``, and
the chat dependency ``textbox.submit(model_chat, inputs=[textbox, chatbot,
system_state], outputs=[textbox, chatbot, system_input])`` (``api_name`` ``model_chat``,
``fn_index`` 0), the Send button's ``click`` wired the same way (``model_chat_1``).
So the system prompt reaches ``model_chat`` only through the hidden box.

``model_chat`` streams a deterministic answer (see :func:`answer_chunks`) that echoes
what it received — the query, the system prompt and, when there is one, the history —
so tests can check what the app got (Gradio's queue protocol: https://www.gradio.app/guides/querying-gradio-apps-with-curl).

Runs offline: analytics/version check off, no share link, no SSR (node) server.
Works with Gradio 6.x (content-parts messages), 5.x (``type="messages"``) and
4.44 (``type="tuples"``, like the real Space).

Usage: ``python scripts/demo_space.py --host 127.0.0.1 --port 7860``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr

GRADIO_MAJOR = int(gr.__version__.split(".", 1)[0])
"""Major version of the installed Gradio (4, 5 or 6)."""

DEFAULT_SYSTEM = "You are a helpful assistant."

History = list[Any]
"""Chatbot value: list of message dicts (Gradio >= 5) or ``[user, bot]`` pairs (4.x)."""


def history_line(history: History | None) -> str:
    """How the answer echoes a non-empty history: ``"History: <compact JSON>\\n"``.

    The JSON is the history value exactly as ``model_chat`` received it (pairs in
    Gradio 4, message dicts from Gradio 5); ``""`` for an empty history.
    """
    if not history:
        return ""
    return "History: " + json.dumps(history, ensure_ascii=False, separators=(",", ":")) + "\n"


def answer_chunks(query: str, system: str, history: History | None = None) -> list[str]:
    """Return the deterministic answer to ``query`` as the streamed chunks.

    The text mentions the query and the system prompt (so tests see that both arrived),
    then the history when there is one (:func:`history_line`), has repeated words
    ("la la la"), a blank line, ``"\\n"``/``"\\n\\n"`` chunks, non-ASCII, emoji and
    one empty-string chunk.
    """
    echoed = history_line(history)
    return [
        "You",
        " said",
        ": ",
        query,
        "\n",
        "System",
        ": ",
        system,
        *(["\n", echoed, "\n"] if echoed else ["\n\n"]),
        "la",
        " la",
        " la",
        "",
        "\n",
        "Ура",
        " ура",
        " 🚀",
        "🚀",
        "\n",
        "done",
        ".",
    ]


def answer_text(query: str, system: str, history: History | None = None) -> str:
    """Return the full answer: ``"".join(answer_chunks(query, system, history))``."""
    return "".join(answer_chunks(query, system, history))


def _with_turn(history: History | None, query: str, reply: str) -> History:
    """Append one user/assistant turn in the format the installed Gradio wants."""
    base = list(history or [])
    if GRADIO_MAJOR < 5:
        return [*base, [query, reply]]
    return [
        *base,
        {"role": "user", "content": query},
        {"role": "assistant", "content": reply},
    ]


def model_chat(
    query: str, history: History | None, system: str
) -> Iterator[tuple[str, History, str]]:
    """Stream the answer: yield ``("", history + [user, assistant so far], system)``.

    One yield per chunk of :func:`answer_chunks` (so one ``process_generating``
    message each), mirroring the real Space's ``model_chat``: its outputs are the
    message textbox, the chatbot and the *visible* System box.
    """
    text = ""
    for chunk in answer_chunks(query or "", system or "", history):
        text += chunk
        yield "", _with_turn(history, query or "", text), system


def clear_session() -> tuple[str, History]:
    """Reset the textbox and the chat history (the Space's "Clear History" button)."""
    return "", []


def modify_system_session(system: str) -> tuple[str, str, History]:
    """Set a new system prompt and clear the history (the "Set system prompt" button).

    Outputs ``[system_state, system_input, chatbot]``: the only writer of the hidden box.
    """
    system = system or DEFAULT_SYSTEM
    return system, system, []


def build_demo() -> gr.Blocks:
    """Build the Blocks app with the real Space's components, in its order.

    ``model_chat`` is registered first, so it is ``fn_index`` 0.
    """
    chatbot_kwargs: dict[str, Any] = {"label": "qwen2-72B-instruct"}
    if GRADIO_MAJOR < 5:
        chatbot_kwargs["type"] = "tuples"
    elif GRADIO_MAJOR == 5:
        chatbot_kwargs["type"] = "messages"
    demo = gr.Blocks(analytics_enabled=False, title="Qwen2-72B-Instruct (local demo)")
    with demo:
        gr.Markdown("<center><font size=8>Qwen2-72B-instruct Chat (local demo)</center>")
        with gr.Row():
            with gr.Column(scale=3):
                system_input = gr.Textbox(value=DEFAULT_SYSTEM, lines=1, label="System")
            with gr.Column(scale=1):
                modify_system = gr.Button("🛠️ Set system prompt and clear history", scale=2)
            system_state = gr.Textbox(value=DEFAULT_SYSTEM, visible=False)
        chatbot = gr.Chatbot(**chatbot_kwargs)
        textbox = gr.Textbox(lines=1, label="Input")
        with gr.Row():
            clear_history = gr.Button("🧹 Clear history")
            submit = gr.Button("🚀 Send")

        inputs = [textbox, chatbot, system_state]
        outputs = [textbox, chatbot, system_input]
        textbox.submit(
            model_chat, inputs=inputs, outputs=outputs, api_name="model_chat", concurrency_limit=40
        )
        submit.click(model_chat, inputs=inputs, outputs=outputs, concurrency_limit=40)
        clear_history.click(
            fn=clear_session, inputs=[], outputs=[textbox, chatbot], concurrency_limit=40
        )
        modify_system.click(
            fn=modify_system_session,
            inputs=[system_input],
            outputs=[system_state, system_input, chatbot],
            concurrency_limit=40,
        )
    return demo


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _launch_kwargs(host: str, port: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"server_name": host, "server_port": port, "share": False}
    if GRADIO_MAJOR >= 5:
        kwargs["ssr_mode"] = False
    return kwargs


def launch_in_thread(port: int | None = None) -> tuple[str, Callable[[], None]]:
    """Launch the demo in Gradio's own server thread; return ``(base_url, close)``.

    ``base_url`` is ``http://127.0.0.1:PORT`` (no trailing slash); ``close()`` stops
    the server.  ``port=None`` picks a free port.
    """
    demo = build_demo()
    demo.queue(default_concurrency_limit=40)
    demo.launch(
        prevent_thread_lock=True,
        quiet=True,
        **_launch_kwargs("127.0.0.1", port if port is not None else _free_port()),
    )
    base_url = f"http://127.0.0.1:{demo.server_port}"
    return base_url, demo.close


def main(argv: list[str] | None = None) -> None:
    """Parse ``--host``/``--port`` and serve the demo until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    demo = build_demo()
    demo.queue(default_concurrency_limit=40)
    demo.launch(**_launch_kwargs(args.host, args.port))


if __name__ == "__main__":
    main()
