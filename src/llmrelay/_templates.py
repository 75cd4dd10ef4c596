r"""Chat templates for raw text-generation endpoints (pure functions, no I/O).

A text-generation server (Hugging Face TGI's ``/generate_stream``) takes one prompt
string, so the conversation is rendered in the format the model was trained on. The
format is chosen from the model's hub metadata (``config.model_type`` and
``config.tokenizer_config.eos_token``) by ``choose_template``:

* ``plain`` — ``User: …\nAssistant:`` (``llmrelay._prompts.format_plain``), for base
  models (``gpt2``, ``gpt_neo``, ``gemma``, ``gemma2``) and anything unrecognised;
* ``mistral`` — ``<s>[INST] … [/INST] …</s>`` (model type ``mistral``/``mixtral`` by
  ``mistralai``), https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.2 "Instruction
  format"; the system text opens the first instruction, separated by a blank line;
* ``chatml`` — ``<|im_start|>role\n…<|im_end|>\n`` (eos ``<|im_end|>``: Qwen and other
  ChatML models), https://huggingface.co/docs/transformers/main/en/chat_templating;
* ``llama3`` — ``<|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>``
  (eos ``<|eot_id|>``), https://www.llama.com/docs/model-cards-and-prompt-formats/meta-llama-3/;
* ``deepseek`` — ``<｜begin▁of▁sentence｜>system<｜User｜>…<｜Assistant｜>…<｜end▁of▁sentence｜>``
  (eos ``<｜end▁of▁sentence｜>``), the ``chat_template`` of
  https://huggingface.co/deepseek-ai/DeepSeek-R1/blob/main/tokenizer_config.json;
* ``zephyr`` — ``<|role|>\n…{end}\n`` with the model's own end token (eos ``</s>``,
  ``<|endoftext|>`` or ``<eos>``), https://huggingface.co/HuggingFaceH4/zephyr-7b-beta
  (its ``chat_template``).

Every template has a ``continue`` form: when the last message is an assistant turn, it
is left open (no end token, no new assistant header) so the model carries on writing it.
``fit`` drops the oldest turns (never a system message, never the last message) until the
rendered prompt fits a character budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._prompts import format_plain
from .types import Message

__all__ = [
    "TEMPLATES",
    "Template",
    "choose_template",
    "fit",
    "format_chatml",
    "format_deepseek",
    "format_llama3",
    "format_mistral",
    "format_zephyr",
    "render",
    "token_text",
]

Template = Callable[[Sequence[Message], str], str]
"""``(messages, end_token) -> prompt``; ``end_token`` is used by ``zephyr`` only."""

_PLAIN_TYPES = frozenset({"gpt2", "gpt_neo", "gemma", "gemma2"})
_ZEPHYR_ENDS = frozenset({"</s>", "<|endoftext|>", "<eos>"})
DEEPSEEK_EOS = "<｜end▁of▁sentence｜>"


def _continues(messages: Sequence[Message]) -> bool:
    return bool(messages) and messages[-1].role == "assistant"


def _require(messages: Sequence[Message]) -> None:
    if not messages:
        raise ValueError("cannot format an empty conversation")


def format_mistral(messages: Sequence[Message], end_token: str = "</s>") -> str:
    """Mistral instruct: ``<s>[INST] {user} [/INST] {assistant}</s>[INST] …``.

    System messages are joined and open the first instruction, then a blank line.
    """
    _require(messages)
    system = "\n".join(m.content for m in messages if m.role == "system")
    parts = ["<s>"]
    pending_system = system
    last = len(messages) - 1
    for index, message in enumerate(messages):
        if message.role == "system":
            continue
        if message.role == "user":
            text = f"{pending_system}\n\n{message.content}" if pending_system else message.content
            pending_system = ""
            parts.append(f"[INST] {text} [/INST]")
        elif index == last:
            parts.append(f" {message.content}")
        else:
            parts.append(f" {message.content}</s>")
    if pending_system:  # system only, no user turn
        parts.append(f"[INST] {pending_system} [/INST]")
    return "".join(parts)


def format_chatml(messages: Sequence[Message], end_token: str = "<|im_end|>") -> str:
    """ChatML: ``<|im_start|>{role}``, newline, content, ``<|im_end|>``, newline; per message."""
    _require(messages)
    parts = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
    if _continues(messages):
        parts[-1] = f"<|im_start|>assistant\n{messages[-1].content}"
    else:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def format_llama3(messages: Sequence[Message], end_token: str = "<|eot_id|>") -> str:
    """Llama 3: ``<|begin_of_text|>``, then a header, a blank line and ``{content}<|eot_id|>``."""
    _require(messages)

    def header(role: str) -> str:
        return f"<|start_header_id|>{role}<|end_header_id|>\n\n"

    parts = ["<|begin_of_text|>"]
    parts += [f"{header(m.role)}{m.content}<|eot_id|>" for m in messages]
    if _continues(messages):
        parts[-1] = f"{header('assistant')}{messages[-1].content}"
    else:
        parts.append(header("assistant"))
    return "".join(parts)


def format_deepseek(messages: Sequence[Message], end_token: str = DEEPSEEK_EOS) -> str:
    """DeepSeek V3/R1: system text after BOS, then ``<｜User｜>``/``<｜Assistant｜>`` turns."""
    _require(messages)
    system = "\n".join(m.content for m in messages if m.role == "system")
    parts = [f"<｜begin▁of▁sentence｜>{system}"]
    last = len(messages) - 1
    for index, message in enumerate(messages):
        if message.role == "user":
            parts.append(f"<｜User｜>{message.content}")
        elif message.role == "assistant":
            end = "" if index == last else DEEPSEEK_EOS
            parts.append(f"<｜Assistant｜>{message.content}{end}")
    if not _continues(messages):
        parts.append("<｜Assistant｜>")
    return "".join(parts)


def format_zephyr(messages: Sequence[Message], end_token: str = "</s>") -> str:
    """Zephyr: ``<|{role}|>``, newline, ``{content}{end_token}``, newline; per message.

    ``end_token`` is the model's own end of turn (``</s>``, ``<|endoftext|>``, ``<eos>``).
    """
    _require(messages)
    parts = [f"<|{m.role}|>\n{m.content}{end_token}\n" for m in messages]
    if _continues(messages):
        parts[-1] = f"<|assistant|>\n{messages[-1].content}"
    else:
        parts.append("<|assistant|>\n")
    return "".join(parts)


def _format_plain(messages: Sequence[Message], end_token: str = "") -> str:
    return format_plain(messages)


TEMPLATES: Mapping[str, Template] = {
    "plain": _format_plain,
    "mistral": format_mistral,
    "chatml": format_chatml,
    "llama3": format_llama3,
    "deepseek": format_deepseek,
    "zephyr": format_zephyr,
}
"""Template name -> renderer."""


def token_text(token: Any) -> str | None:
    """A tokenizer-config token as text: a string, or ``{"content": str, ...}``."""
    if isinstance(token, str):
        return token
    if isinstance(token, Mapping) and isinstance(token.get("content"), str):
        return str(token["content"])
    return None


def choose_template(
    model_type: str | None, eos_token: Any, author: str | None = None
) -> tuple[str, str]:
    """Pick the template for a model from its hub metadata.

    Args:
        model_type: ``config.model_type`` (``"mistral"``, ``"llama"``, …) or ``None``.
        eos_token: ``config.tokenizer_config.eos_token``: a string, ``{"content": …}`` or
            ``None``.
        author: the repository owner (``"mistralai"``), or ``None``.

    Returns:
        ``(name, end_token)``: a key of ``TEMPLATES`` and the end token it uses.
    """
    if model_type in _PLAIN_TYPES:
        return "plain", ""
    if model_type in ("mistral", "mixtral") and author == "mistralai":
        return "mistral", "</s>"
    eos = token_text(eos_token)
    if eos == "<|im_end|>":
        return "chatml", eos
    if eos == "<|eot_id|>":
        return "llama3", eos
    if eos == DEEPSEEK_EOS:
        return "deepseek", eos
    if eos in _ZEPHYR_ENDS:
        return "zephyr", eos
    return "plain", ""


def render(name: str, messages: Sequence[Message], end_token: str = "") -> str:
    """Render ``messages`` with the template ``name`` (a key of ``TEMPLATES``).

    Raises:
        KeyError: unknown template name.
        ValueError: ``messages`` is empty.
    """
    template = TEMPLATES[name]
    return template(messages, end_token) if end_token else template(messages, _default_end(name))


def _default_end(name: str) -> str:
    return {"zephyr": "</s>", "chatml": "<|im_end|>", "llama3": "<|eot_id|>"}.get(name, "</s>")


def fit(
    messages: Sequence[Message], prompt_of: Callable[[Sequence[Message]], str], limit: int
) -> str:
    """Render ``messages`` with ``prompt_of``, dropping the oldest turns until it fits.

    System messages and the last message are always kept; when even that is too long,
    that shortest form is returned (the server then says what is wrong).

    Args:
        messages: the conversation.
        prompt_of: renders a conversation to a prompt.
        limit: the budget in characters.
    """
    kept = list(messages)
    prompt = prompt_of(kept)
    while len(prompt) > limit:
        droppable = [i for i, m in enumerate(kept[:-1]) if m.role != "system"]
        if not droppable:
            break
        first = droppable[0]
        del kept[first]
        # a dropped user turn takes its answer with it, so turns stay paired
        if first < len(kept) - 1 and kept[first].role == "assistant":
            del kept[first]
        prompt = prompt_of(kept)
    return prompt
