"""Token counts llmrelay makes when a provider reports none (OpenAI clients expect usage).

``estimate_usage(messages, text, tool_calls, model)`` counts:

* with a tokenizer the model publishes, when one is at hand: the model is a Hugging Face
  Hub id, the ``tokenizers`` library is installed and the model's ``tokenizer.json`` is
  already in the local Hugging Face cache (``huggingface_hub.try_to_load_from_cache``;
  nothing is downloaded) — each message's text is encoded without special tokens;
* otherwise an estimate: a quarter of the UTF-8 bytes of each text, rounded up (about
  what BPE tokenizers give for English; more tokens per character for other scripts is
  covered by counting bytes, not characters).

Either way each message costs 3 tokens of framing and the reply 3 more (the per-message
overhead of OpenAI's chat format:
https://github.com/openai/openai-cookbook/blob/main/examples/How_to_count_tokens_with_tiktoken.ipynb),
and a tool call counts its name and arguments. The counts are marked as
estimated wherever they are reported (``Completion.usage_estimated``, the server's
``x-llmrelay-usage: estimated`` header).
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence

from .types import Message, ToolCall, Usage

__all__ = ["count_tokens", "estimate_usage"]

log = logging.getLogger("llmrelay")

_PER_MESSAGE = 3
_REPLY = 3
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


@functools.lru_cache(maxsize=16)
def _tokenizer(model: str) -> Callable[[str], int] | None:
    """A counter from the model's cached ``tokenizer.json``, or ``None``."""
    if not _HUB_ID.match(model):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
        from tokenizers import Tokenizer
    except ImportError:
        return None
    try:
        path = try_to_load_from_cache(model, "tokenizer.json")
        if not isinstance(path, str):
            return None
        tokenizer = Tokenizer.from_file(path)
    except Exception as exc:  # a broken cache entry: estimate instead
        log.debug("no tokenizer for %s: %r", model, exc)
        return None

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text``: the model's own tokenizer when at hand, else ``ceil(bytes / 4)``."""
    if not text:
        return 0
    counter = _tokenizer(model.partition(":")[0]) if model else None
    if counter is not None:
        return counter(text)
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) / 4)


def estimate_usage(
    messages: Sequence[Message],
    text: str,
    tool_calls: Iterable[ToolCall] = (),
    model: str | None = None,
) -> Usage:
    """The usage of one turn: ``messages`` sent, ``text`` and ``tool_calls`` answered.

    Returns:
        ``Usage`` with every count set (``total`` their sum).
    """
    prompt = _REPLY
    for message in messages:
        prompt += _PER_MESSAGE + count_tokens(message.content, model)
        for call in message.tool_calls:
            prompt += count_tokens(call.name, model) + count_tokens(call.arguments, model)
    completion = count_tokens(text, model)
    for call in tool_calls:
        completion += count_tokens(call.name, model) + count_tokens(call.arguments, model)
    return Usage(prompt, completion, prompt + completion)
