"""Every field of OpenAI's chat-completions request, and what llmrelay does with it.

The fields are those of ``POST /v1/chat/completions``
(https://platform.openai.com/docs/api-reference/chat/create; openai-python's
``types/chat/completion_create_params.py``). Each is one of:

* ``HONOURED`` — llmrelay carries it to the provider in the provider's own terms
  (``messages``, ``model``, ``stream``, ``stream_options``, the tools and
  ``response_format``, which a provider without native support refuses with an
  ``InvalidRequestError`` naming the field);
* ``PARAMETER`` — a sampling parameter (``temperature`` ...): sent to a provider that
  declares it; to one that does not, dropped with a warning, or refused when the client
  is ``strict`` (``LLMRELAY_STRICT=1``);
* ``FORWARDED`` — sent verbatim to providers that forward OpenAI fields (OpenAI-compatible
  servers, the Hugging Face router: ``Provider.forwards``); any other provider refuses it;
* ``IGNORED`` — harmless to ignore: accounting, caching or storage hints that cannot
  change the answer (``user``, ``metadata``, ``store``, ``service_tier`` ...);
* ``REFUSED`` — llmrelay cannot return what it asks for (``n`` > 1, ``logprobs``,
  audio ...): refused with an ``InvalidRequestError`` naming the field and the provider.

A ``REFUSED`` field sent with its neutral value (``n: 1``, ``logprobs: false``,
``modalities: ["text"]``, ``null``) asks for nothing and passes. Fields no OpenAI version
defines are not in this table: the server ignores them, ``chat.completions.create``
raises ``TypeError`` for them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FIELDS", "Field", "Handling", "refusal_reason", "split_fields"]


class Handling(enum.StrEnum):
    """What llmrelay does with a request field (see the module docstring)."""

    HONOURED = "honoured"
    PARAMETER = "parameter"
    FORWARDED = "forwarded"
    IGNORED = "ignored"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Field:
    """One request field.

    Attributes:
        handling: ``Handling``.
        note: why (shown in refusals and in the docs' table).
        neutral: for ``REFUSED`` and ``FORWARDED`` fields, whether a value asks for
            nothing (then it is dropped without a refusal).
    """

    handling: Handling
    note: str
    neutral: Callable[[Any], bool] = lambda value: value is None


def _one(value: Any) -> bool:
    return value is None or value == 1


def _falsy(value: Any) -> bool:
    return value is None or value is False or value == 0


def _text_only(value: Any) -> bool:
    return value is None or list(value) == ["text"]


_H, _P, _F, _I, _R = (
    Handling.HONOURED,
    Handling.PARAMETER,
    Handling.FORWARDED,
    Handling.IGNORED,
    Handling.REFUSED,
)

FIELDS: Mapping[str, Field] = {
    "messages": Field(_H, "the conversation, in each provider's own format"),
    "model": Field(_H, "a model reference, resolved to providers"),
    "stream": Field(_H, "llmrelay streams every answer; false collects it"),
    "stream_options": Field(_H, "include_usage adds the usage chunk; the rest is ignored"),
    "tools": Field(_H, "function tools, native where the provider and model have them"),
    "tool_choice": Field(_H, "auto, none, required or a named function, with the tools"),
    "parallel_tool_calls": Field(_H, "sent with the tools"),
    "response_format": Field(_H, "json_object / json_schema where the provider has them"),
    "temperature": Field(_P, "sampling"),
    "top_p": Field(_P, "sampling"),
    "max_tokens": Field(_P, "length limit"),
    "max_completion_tokens": Field(_P, "length limit (wins over max_tokens)"),
    "stop": Field(_P, "stop sequences"),
    "seed": Field(_P, "sampling seed"),
    "frequency_penalty": Field(_P, "sampling"),
    "presence_penalty": Field(_P, "sampling"),
    "logit_bias": Field(_F, "token ids of the provider's own tokenizer", lambda v: not v),
    "reasoning_effort": Field(_F, "a reasoning model's effort"),
    "verbosity": Field(_F, "the answer's verbosity"),
    "moderation": Field(_F, "OpenAI's moderation of the input and output"),
    "user": Field(_I, "an end-user id for the service's abuse monitoring"),
    "safety_identifier": Field(_I, "an end-user id for the service's abuse monitoring"),
    "metadata": Field(_I, "tags for stored completions"),
    "store": Field(_I, "OpenAI's storage of the completion; llmrelay stores nothing there"),
    "service_tier": Field(_I, "OpenAI's billing tier"),
    "prompt_cache_key": Field(_I, "a prompt-cache hint"),
    "prompt_cache_retention": Field(_I, "a prompt-cache hint"),
    "prompt_cache_options": Field(_I, "a prompt-cache hint"),
    "prediction": Field(_I, "a latency hint (predicted output); the answer is the same"),
    "n": Field(_R, "llmrelay returns one choice", _one),
    "logprobs": Field(_R, "llmrelay relays no log probabilities", _falsy),
    "top_logprobs": Field(_R, "llmrelay relays no log probabilities", _falsy),
    "modalities": Field(_R, "llmrelay answers with text only", _text_only),
    "audio": Field(_R, "llmrelay answers with text only"),
    "web_search_options": Field(_R, "llmrelay relays no web-search annotations"),
    "functions": Field(_R, "deprecated by OpenAI: use tools", lambda v: not v),
    "function_call": Field(_R, "deprecated by OpenAI: use tool_choice"),
}
"""OpenAI's chat-completions request fields -> ``Field`` (checked against the ``openai``
package's ``CompletionCreateParams`` by the tests)."""


def refusal_reason(name: str) -> str:
    """Why a provider cannot honour field ``name`` (for the error message)."""
    spec = FIELDS.get(name)
    if spec is None:
        return "llmrelay does not know it"
    if spec.handling is Handling.FORWARDED:
        return f"it has no such setting ({spec.note}; OpenAI-compatible providers forward it)"
    return spec.note


def split_fields(fields: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The ``FORWARDED`` and ``REFUSED`` fields of ``fields`` that ask for something.

    Returns:
        ``(asked, ignored)``: the forwarded or refused fields with a non-neutral value
        (name -> value, for the engine to forward or refuse per provider), and the names
        of the ``IGNORED`` fields given.
    """
    asked: dict[str, Any] = {}
    ignored: list[str] = []
    for name, value in fields.items():
        spec = FIELDS.get(name)
        if spec is None:
            continue
        if spec.handling is Handling.IGNORED:
            if value is not None:
                ignored.append(name)
        elif spec.handling in (Handling.FORWARDED, Handling.REFUSED) and not spec.neutral(value):
            asked[name] = value
    return asked, ignored
