"""Every field of OpenAI's chat-completions request: honoured, ignored, or refused by name.

The table below is the specification, one row per field of the installed ``openai``
package's ``CompletionCreateParams`` (a field OpenAI adds fails
``test_the_table_covers_every_openai_field`` until it is classified). Each row is sent
with a value that asks for something, to two kinds of provider: ``local``, an
OpenAI-compatible server (the fake), and ``alpha``, a provider without tools or forwarded
fields (as Spaces, Replicate, Ai2 and h2o are). Through ``/v1/chat/completions`` and
``client.chat.completions.create`` alike:

* ``Honoured(check)``: answered, and the provider received it in its own terms;
* ``Ignored()``: answered, and the provider received nothing of it (harmless);
* ``Dropped()``: a sampling parameter the provider does not take: answered without it
  (a warning), refused under ``strict`` — the ``LLMRELAY_STRICT`` rule;
* ``Refused(param)``: HTTP 400 / ``InvalidRequestError`` whose ``param`` names the field
  and whose message names the provider; nothing was sent.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from openai.types.chat import completion_create_params

import llmrelay
from llmrelay import FinishReason
from llmrelay._fields import FIELDS
from llmrelay.types import ChatRequest
from tests.fakes.openai_server import FakeOpenAI
from tests.server import scripted

pytestmark = pytest.mark.anyio

Body = dict[str, Any]


@dataclass(frozen=True)
class Honoured:
    local: Callable[[Body], bool]
    alpha: Callable[[ChatRequest], bool] | None = None
    """``None``: the scripted provider cannot honour it (see the row's ``alpha``)."""


@dataclass(frozen=True)
class Ignored:
    pass


@dataclass(frozen=True)
class Dropped:
    pass


@dataclass(frozen=True)
class Refused:
    param: str


Outcome = Honoured | Ignored | Dropped | Refused
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@dataclass(frozen=True)
class Row:
    field: str
    sample: Body
    local: Outcome
    alpha: Outcome


def _has(name: str, value: Any) -> Callable[[Body], bool]:
    return lambda body: body.get(name) == value


ROWS: list[Row] = [
    Row(
        "messages",
        {},
        Honoured(lambda b: b["messages"][-1]["content"] == "hi"),
        Honoured(lambda b: True, lambda r: r.messages[-1].content == "hi"),
    ),
    Row(
        "model",
        {},
        Honoured(_has("model", "fake-model")),
        Honoured(lambda b: True, lambda r: r.model == "m"),
    ),
    Row("stream", {"stream": True}, Honoured(_has("stream", True)), Honoured(lambda b: True)),
    Row(
        "stream_options",
        {"stream": True, "stream_options": {"include_usage": True}},
        Honoured(lambda b: b["stream_options"] == {"include_usage": True}),
        Honoured(lambda b: True),
    ),
    Row(
        "temperature",
        {"temperature": 0.2},
        Honoured(_has("temperature", 0.2), lambda r: r.temperature == 0.2),
        Honoured(_has("temperature", 0.2), lambda r: r.temperature == 0.2),
    ),
    Row(
        "top_p",
        {"top_p": 0.9},
        Honoured(_has("top_p", 0.9), lambda r: r.top_p == 0.9),
        Honoured(_has("top_p", 0.9), lambda r: r.top_p == 0.9),
    ),
    Row(
        "max_tokens",
        {"max_tokens": 40},
        Honoured(_has("max_tokens", 40), lambda r: r.max_tokens == 40),
        Honoured(_has("max_tokens", 40), lambda r: r.max_tokens == 40),
    ),
    Row(
        "max_completion_tokens",  # in the provider's own terms: max_tokens
        {"max_completion_tokens": 50},
        Honoured(_has("max_tokens", 50), lambda r: r.max_tokens == 50),
        Honoured(_has("max_tokens", 50), lambda r: r.max_tokens == 50),
    ),
    Row(
        "stop",
        {"stop": ["\n\n"]},
        Honoured(_has("stop", ["\n\n"]), lambda r: r.stop == ("\n\n",)),
        Honoured(_has("stop", ["\n\n"]), lambda r: r.stop == ("\n\n",)),
    ),
    Row(
        "seed",
        {"seed": 7},
        Honoured(_has("seed", 7), lambda r: r.seed == 7),
        Honoured(_has("seed", 7), lambda r: r.seed == 7),
    ),
    Row(
        "frequency_penalty",
        {"frequency_penalty": 0.5},
        Honoured(_has("frequency_penalty", 0.5)),
        Dropped(),
    ),
    Row(
        "presence_penalty",
        {"presence_penalty": 0.3},
        Honoured(_has("presence_penalty", 0.3)),
        Dropped(),
    ),
    Row("tools", {"tools": [TOOL]}, Honoured(_has("tools", [TOOL])), Refused("tools")),
    Row(
        "tool_choice",
        {"tools": [TOOL], "tool_choice": "required"},
        Honoured(_has("tool_choice", "required")),
        Refused("tools"),
    ),
    Row(
        "parallel_tool_calls",
        {"tools": [TOOL], "parallel_tool_calls": False},
        Honoured(_has("parallel_tool_calls", False)),
        Refused("tools"),
    ),
    Row(
        "response_format",
        {"response_format": {"type": "json_object"}},
        Honoured(_has("response_format", {"type": "json_object"})),
        Refused("response_format"),
    ),
    Row(
        "logit_bias",
        {"logit_bias": {"50256": -100}},
        Honoured(_has("logit_bias", {"50256": -100})),
        Refused("logit_bias"),
    ),
    Row(
        "reasoning_effort",
        {"reasoning_effort": "low"},
        Honoured(_has("reasoning_effort", "low")),
        Refused("reasoning_effort"),
    ),
    Row(
        "verbosity", {"verbosity": "low"}, Honoured(_has("verbosity", "low")), Refused("verbosity")
    ),
    Row(
        "moderation",
        {"moderation": {"model": "omni-moderation-latest"}},
        Honoured(_has("moderation", {"model": "omni-moderation-latest"})),
        Refused("moderation"),
    ),
    Row("n", {"n": 2}, Refused("n"), Refused("n")),
    Row("logprobs", {"logprobs": True}, Refused("logprobs"), Refused("logprobs")),
    Row("top_logprobs", {"top_logprobs": 3}, Refused("top_logprobs"), Refused("top_logprobs")),
    Row(
        "modalities",
        {"modalities": ["text", "audio"]},
        Refused("modalities"),
        Refused("modalities"),
    ),
    Row(
        "audio", {"audio": {"voice": "alloy", "format": "wav"}}, Refused("audio"), Refused("audio")
    ),
    Row(
        "web_search_options",
        {"web_search_options": {}},
        Refused("web_search_options"),
        Refused("web_search_options"),
    ),
    Row(
        "functions",
        {"functions": [{"name": "f", "parameters": {"type": "object"}}]},
        Refused("functions"),
        Refused("functions"),
    ),
    Row(
        "function_call",
        {"function_call": "auto"},
        Refused("function_call"),
        Refused("function_call"),
    ),
    Row("user", {"user": "user-1"}, Ignored(), Ignored()),
    Row("safety_identifier", {"safety_identifier": "hash-1"}, Ignored(), Ignored()),
    Row("metadata", {"metadata": {"k": "v"}}, Ignored(), Ignored()),
    Row("store", {"store": True}, Ignored(), Ignored()),
    Row("service_tier", {"service_tier": "flex"}, Ignored(), Ignored()),
    Row("prompt_cache_key", {"prompt_cache_key": "k1"}, Ignored(), Ignored()),
    Row("prompt_cache_retention", {"prompt_cache_retention": "24h"}, Ignored(), Ignored()),
    Row(
        "prompt_cache_options", {"prompt_cache_options": {"mode": "explicit"}}, Ignored(), Ignored()
    ),
    Row("prediction", {"prediction": {"type": "content", "content": "x"}}, Ignored(), Ignored()),
]
NEUTRAL: list[Body] = [
    {"n": 1},
    {"logprobs": False},
    {"top_logprobs": 0},
    {"modalities": ["text"]},
    {"logit_bias": {}},
    {"response_format": {"type": "text"}},
    {"tool_choice": "none"},
    {"parallel_tool_calls": True},
]
"""Values that ask for nothing: answered by any provider."""


def _openai_fields() -> set[str]:
    return set(typing.get_type_hints(completion_create_params.CompletionCreateParamsStreaming))


def test_the_table_covers_every_openai_field() -> None:
    fields = _openai_fields()
    assert {row.field for row in ROWS} == fields
    assert set(FIELDS) == fields  # the product's own table too
    assert set(llmrelay.CompletionCreateParams.__annotations__) >= fields - {"messages", "stream"}


def _cases() -> list[Any]:
    return [
        pytest.param(row, kind, id=f"{row.field}-{kind}")
        for row in ROWS
        for kind in ("local", "alpha")
    ]


def _model(kind: str) -> str:
    return "local:fake-model" if kind == "local" else "alpha:m"


def _body(row: Row, kind: str) -> Body:
    return {"model": _model(kind), "messages": [{"role": "user", "content": "hi"}], **row.sample}


def _check_received(outcome: Outcome, kind: str, field: str, upstream: FakeOpenAI) -> None:
    if kind == "local":
        body = upstream.requests[-1].json
        if isinstance(outcome, Honoured):
            assert outcome.local(body), (field, body)
        elif isinstance(outcome, Ignored) and field not in ("messages", "model", "stream"):
            assert field not in body, body
        return
    request = scripted.LOG["alpha"].requests[-1]
    if isinstance(outcome, Honoured) and outcome.alpha is not None:
        assert outcome.alpha(request), request
    if isinstance(outcome, Dropped):
        assert getattr(request, field) is None


@pytest.mark.parametrize(("row", "kind"), _cases())
def test_server(base_url: str, upstream: FakeOpenAI, row: Row, kind: str) -> None:
    scripted.SCRIPTS["alpha"] = ["ok", FinishReason("stop")]
    outcome = row.local if kind == "local" else row.alpha
    response = httpx.post(f"{base_url}/chat/completions", json=_body(row, kind), timeout=10)
    if isinstance(outcome, Refused):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == outcome.param
        assert error["type"] == "invalid_request_error"
        assert kind in error["message"]  # the provider that cannot honour it
        assert response.headers["x-should-retry"] == "false"
        sent = upstream.requests if kind == "local" else scripted.LOG["alpha"].requests
        assert not sent  # refused before anything was sent
        return
    assert response.status_code == 200, response.text
    _check_received(outcome, kind, row.field, upstream)


@pytest.mark.parametrize(("row", "kind"), _cases())
async def test_library_create(
    client: llmrelay.AsyncClient, upstream: FakeOpenAI, row: Row, kind: str
) -> None:
    scripted.SCRIPTS["alpha"] = ["ok", FinishReason("stop")]
    outcome = row.local if kind == "local" else row.alpha
    body = _body(row, kind)
    body.pop("stream", None)
    if isinstance(outcome, Refused):
        with pytest.raises(llmrelay.InvalidRequestError) as caught:
            await client.chat.completions.create(**body)
        assert caught.value.param == outcome.param
        assert caught.value.provider == kind
        assert kind in str(caught.value)
        return
    await client.chat.completions.create(**body)
    _check_received(outcome, kind, row.field, upstream)


@pytest.mark.parametrize(
    "row", [r for r in ROWS if isinstance(r.alpha, Dropped)], ids=lambda r: r.field
)
async def test_strict_refuses_a_parameter_the_provider_does_not_take(
    client_kwargs: dict[str, Any], upstream: FakeOpenAI, row: Row
) -> None:
    async with llmrelay.AsyncClient(**client_kwargs, strict=True) as strict:
        with pytest.raises(llmrelay.InvalidRequestError) as caught:
            await strict.chat.completions.create(**_body(row, "alpha"))
    assert caught.value.param == row.field
    assert "alpha" in str(caught.value)
    assert not scripted.LOG["alpha"].requests


@pytest.mark.parametrize("neutral", NEUTRAL, ids=lambda b: next(iter(b)))
def test_neutral_values_ask_for_nothing(base_url: str, upstream: FakeOpenAI, neutral: Body) -> None:
    scripted.SCRIPTS["alpha"] = ["ok", FinishReason("stop")]
    body = {"model": "alpha:m", "messages": [{"role": "user", "content": "hi"}], **neutral}
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=10)
    assert response.status_code == 200, response.text


def test_a_field_no_openai_version_defines_is_ignored(base_url: str, upstream: FakeOpenAI) -> None:
    body = {
        "model": "local:fake-model",
        "messages": [{"role": "user", "content": "hi"}],
        "no_such_field": 1,
    }
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=10)
    assert response.status_code == 200
    assert "no_such_field" not in upstream.requests[-1].json
