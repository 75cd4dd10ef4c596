"""No upstream body reaches an error a server client sees, for every provider.

A hostile or broken upstream answers every request of every provider with the same
body: an HTML page, a JSON document that is not the provider's error object (the
Hub's ``whoami-v2`` answer: name, email), a malformed frame, under an error status or
a 200. Each carries a marker; the error's text (what ``llmrelay chat`` prints, what the
server's error JSON carries) must never contain it. A provider's own message from its
documented error field is relayed, bounded: a marker past the bound is cut off.

The rule lives in one place (``llmrelay._http``: ``error_for_status``,
``error_detail``, ``describe_body``, ``protocol_error``, ``loads``); this test holds
every provider to it through the public client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

import llmrelay
from llmrelay.providers._openai_compat import OpenAICompatible
from llmrelay.server._errors import error_reply
from tests.fakes._server import serve

MARKER = "octocat-4f2a@example.org"
KEY = "sk-upstream-text-0123456789"
WHOAMI = json.dumps(
    {
        "type": "user",
        "id": "5f2c",
        "name": "octocat",
        "fullname": "The Octocat",
        "email": MARKER,
        "orgs": [{"name": "acme", "roleInOrg": "admin"}],
        "auth": {"type": "access_token", "accessToken": {"role": "write"}},
    }
)
HTML = f"<!DOCTYPE html><html><head><title>Sign in</title></head><body>{MARKER}</body></html>"
LONG = "The provider says: " + "x" * 400 + MARKER

# (status, content type, body)
CASES: dict[str, tuple[int, str, str]] = {
    "html_502": (502, "text/html; charset=utf-8", HTML),
    "html_200": (200, "text/html; charset=utf-8", HTML),
    "whoami_404": (404, "application/json", WHOAMI),
    "whoami_400": (400, "application/json", WHOAMI),
    "whoami_200": (200, "application/json", WHOAMI),
    "malformed_200": (200, "application/json", '{"broken": "' + MARKER),
    "malformed_stream": (200, "text/event-stream", f'data: {{"broken": "{MARKER}\n\n'),
    "malformed_jsonl": (200, "application/jsonl", '{"broken": "' + MARKER + "\n"),
    "plain_500": (500, "text/plain", f"upstream connect error {MARKER}"),
    "long_error_object": (400, "application/json", json.dumps({"error": {"message": LONG}})),
    "long_error_string": (422, "application/json", json.dumps({"error": LONG})),
    "long_detail": (400, "application/problem+json", json.dumps({"detail": LONG, "status": 400})),
}


@dataclass
class Hostile:
    """Answers every request with ``status``/``content_type``/``body``; counts them."""

    status: int = 502
    content_type: str = "text/html"
    body: str = ""
    hits: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.hits += 1
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", self.content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": self.body.encode(), "more_body": False})


# provider -> (model reference, AsyncClient kwargs for the hostile URL)
def _setups(url: str) -> dict[str, tuple[str, dict[str, Any]]]:
    relay = OpenAICompatible.from_config(
        "relay", {"kind": "openai", "base_url": f"{url}/v1", "models": ["m"]}
    )
    hf = {"base_url": url, "hub_url": url, "router_url": f"{url}/v1"}
    return {
        "ai2": ("ai2:tulu3-405b", {"base_urls": {"ai2": url}}),
        "h2o": ("h2o:falcon-40b", {"base_urls": {"h2o": url}}),
        "huggingface": (
            "huggingface:Qwen/Qwen2-72B-Instruct",
            {"endpoints": {"huggingface": hf}, "api_keys": {"huggingface": KEY}},
        ),
        "huggingface_router": (
            "huggingface:meta-llama/Llama-3.1-8B-Instruct:fastest",
            {"endpoints": {"huggingface": hf}, "api_keys": {"huggingface": KEY}},
        ),
        "hf_spaces": (
            "hf_spaces:qwen-2-72b",
            {"base_urls": {"hf_spaces": url}, "api_keys": {"hf_spaces": KEY}},
        ),
        "replicate": (
            "replicate:meta/meta-llama-3-8b-instruct",
            {"base_urls": {"replicate": f"{url}/v1"}, "api_keys": {"replicate": KEY}},
        ),
        "openai-compatible": ("relay:m", {"providers": [relay], "api_keys": {"relay": KEY}}),
    }


PROVIDERS = sorted(_setups("http://x"))


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[Hostile, str]]:
    app = Hostile()
    with serve(app) as url:
        yield app, url


def _run(model: str, kwargs: dict[str, Any]) -> BaseException:
    timeouts = llmrelay.Timeouts(connect=2, read=2, first_token=5, total=10)

    async def main() -> BaseException:
        async with llmrelay.AsyncClient(timeouts=timeouts, cooldown=0, **kwargs) as client:
            try:
                async for _ in client.stream("Hi", model=model):
                    pass
            except llmrelay.LLMRelayError as exc:
                return exc
        raise AssertionError(f"{model}: no error from a hostile upstream")

    return anyio.run(main)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_upstream_body_in_any_error_text(
    hostile: tuple[Hostile, str], provider: str, case: str
) -> None:
    app, url = hostile
    app.status, app.content_type, app.body = CASES[case]
    app.hits = 0
    model, kwargs = _setups(url)[provider]
    error = _run(model, kwargs)
    assert app.hits >= 1, "the hostile upstream was never asked"
    cause = error.cause if isinstance(error, llmrelay.StreamInterrupted) else error
    assert isinstance(cause, llmrelay.ProviderError | llmrelay.AllProvidersFailed), repr(error)
    texts = [str(error), repr(error), json.dumps(error_reply(error).body)]
    for attempt in getattr(error, "attempts", []):
        texts.append(str(attempt.message))
    for text in texts:
        assert MARKER not in text, f"{provider}/{case}: {text[:500]}"
        assert KEY not in text
    if case.startswith("long_"):  # the provider's own message is relayed, bounded
        assert any("The provider says: xxxx" in text for text in texts), texts[0]
