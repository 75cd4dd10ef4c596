"""``POST /v1/chat/completions``: what each kind of body gets back, status and error JSON.

Pinned against the FastAPI route's answers (written before the route's fast path, see
``llmrelay.server._fast``): a body the fast path cannot take whole goes to the route,
so every refusal keeps its status, message and ``param``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.server import scripted

import llmrelay

HI = [{"role": "user", "content": "hi"}]
J = {"Content-Type": "application/json"}
UNKNOWN = (
    "unknown provider 'zz'; valid providers: hf_spaces, replicate, huggingface, ai2, h2o, "
    "alpha, beta, stateful, painter"
)


def _err(message: str, param: str | None = None, code: str = "invalid_request") -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


def _body(**fields: Any) -> bytes:
    return json.dumps({"model": "alpha:m", "messages": HI, **fields}).encode()


NOT_AN_OBJECT = "body: Input should be a valid dictionary or object to extract fields from"
CASES: dict[str, tuple[dict[str, str], bytes, int, dict[str, Any]]] = {
    "malformed": (
        J,
        b'{"model": "alpha:m", "messages": [',
        400,
        _err("34: JSON decode error", "34"),
    ),
    "empty body": (J, b"", 400, _err("body: Field required")),
    "no content type": ({}, _body(), 400, _err(NOT_AN_OBJECT)),
    "text/plain": ({"Content-Type": "text/plain"}, _body(), 400, _err(NOT_AN_OBJECT)),
    "an array": (J, b"[1, 2]", 400, _err(NOT_AN_OBJECT)),
    "wrong type": (
        J,
        _body(temperature="hot"),
        400,
        _err(
            "temperature: Input should be a valid number, unable to parse string as a number",
            "temperature",
        ),
    ),
    "bad role": (
        J,
        _body(messages=[{"role": "robot", "content": "x"}]),
        400,
        _err(
            "messages.0.role: Input should be 'developer', 'system', 'user', 'assistant' or 'tool'",
            "messages.0.role",
        ),
    ),
    "empty messages": (
        J,
        _body(messages=[]),
        400,
        _err("messages: List should have at least 1 item after validation, not 0", "messages"),
    ),
    "no messages": (
        J,
        json.dumps({"model": "alpha:m"}).encode(),
        400,
        _err("messages: Field required", "messages"),
    ),
    "oversized": (
        J,
        _body(messages=[{"role": "user", "content": "x" * 3000}]),
        413,
        _err("request body too large (limit 2000 bytes)", code="request_too_large"),
    ),
    "invalid UTF-8": (
        J,
        b'{"model": "alpha:m", "messages": [{"role": "user", "content": "\xff"}]}',
        400,
        _err("There was an error parsing the body"),
    ),
    "NaN": (
        J,
        _body().replace(b"}", b', "temperature": NaN}'),
        400,
        _err("temperature: Input should be less than or equal to 2", "temperature"),
    ),
    "text part without text": (
        J,
        _body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        400,
        _err(
            "messages.0.content.constrained-str: Input should be a valid string",
            "messages.0.content.constrained-str",
        ),
    ),
    "unknown model": (
        J,
        _body(model="zz:zz"),
        404,
        _err(UNKNOWN, "model", "model_not_found"),
    ),
    "unknown field (ignored, as OpenAI's unknown fields are)": (
        J,
        _body(model="zz:zz", not_an_openai_field=1),
        404,
        _err(UNKNOWN, "model", "model_not_found"),
    ),
    "json with a charset": (
        {"Content-Type": "application/json; charset=utf-8"},
        _body(model="zz:zz"),
        404,
        _err(UNKNOWN, "model", "model_not_found"),
    ),
    "a +json type": (
        {"Content-Type": "application/vnd.api+json"},
        _body(model="zz:zz"),
        404,
        _err(UNKNOWN, "model", "model_not_found"),
    ),
}


@pytest.fixture(scope="module")
def small_server(base_config: Any) -> Iterator[str]:
    from dataclasses import replace

    from tests.server.conftest import run_app

    from llmrelay.server import create_app

    with run_app(create_app(config=replace(base_config, max_body_bytes=2000))) as url:
        yield url


@pytest.mark.parametrize("case", list(CASES))
def test_each_body_gets_its_answer(small_server: str, case: str) -> None:
    headers, body, status, expected = CASES[case]
    response = httpx.post(
        small_server + "/v1/chat/completions", content=body, headers=headers, timeout=10
    )
    assert (response.status_code, response.json()) == (status, expected)
    assert response.headers["content-type"] == "application/json"


def _chunks(body: bytes) -> Iterator[bytes]:
    for i in range(0, len(body), 7):
        yield body[i : i + 7]


def test_a_chunked_body_in_pieces_is_read_whole(small_server: str) -> None:
    scripted.SCRIPTS["alpha"] = ["Hi", llmrelay.FinishReason("stop")]
    body = _body(temperature=0.5, max_tokens=7, seed=3, stop=["x"])
    response = httpx.post(
        small_server + "/v1/chat/completions", content=_chunks(body), headers=J, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hi"
    request = scripted.LOG["alpha"].requests[-1]
    assert (request.temperature, request.max_tokens, request.seed) == (0.5, 7, 3)


def test_a_chunked_garbage_body_gets_the_routes_error(small_server: str) -> None:
    response = httpx.post(
        small_server + "/v1/chat/completions", content=_chunks(b'{"messages": [}'), headers=J
    )
    assert (response.status_code, response.json()) == (400, _err("14: JSON decode error", "14"))
