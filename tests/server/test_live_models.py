"""``GET /v1/models?live=1``: the Hugging Face router's live catalogue through the server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import openai
import pytest
from tests.fakes._server import serve
from tests.fakes._streaming import Fault
from tests.fakes.hf_router import FakeHFRouter, RouterScript
from tests.server.conftest import run_app

from llmrelay.server import ServerConfig, create_app


@pytest.fixture(scope="module")
def router() -> Iterator[tuple[FakeHFRouter, str]]:
    fake = FakeHFRouter()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def live_server(router: tuple[FakeHFRouter, str], base_config: ServerConfig) -> Iterator[str]:
    fake, url = router
    fake.script = RouterScript()
    fake.recorder.requests.clear()
    kwargs: dict[str, Any] = {
        **base_config.client_kwargs,
        "endpoints": {"huggingface": {"router_url": url + "/v1"}},
    }
    with run_app(create_app(config=replace(base_config, client_kwargs=kwargs))) as server:
        yield server


def test_live_adds_the_router_catalogue(live_server: str, router: Any) -> None:
    fake, _ = router
    plain = httpx.get(f"{live_server}/v1/models").json()
    assert "huggingface:meta-llama/Llama-3.1-8B-Instruct" not in {m["id"] for m in plain["data"]}
    assert fake.requests == []  # no live fetch unless asked
    body = httpx.get(f"{live_server}/v1/models", params={"live": "1"}).json()
    rows = {m["id"]: m for m in body["data"]}
    llama = rows["huggingface:meta-llama/Llama-3.1-8B-Instruct"]
    assert llama["owned_by"] == "huggingface"
    assert llama["object"] == "model"
    assert llama["llmrelay"]["context_length"] == 16384
    assert llama["llmrelay"]["supports_tools"] is True
    assert [o["provider"] for o in llama["llmrelay"]["offers"]] == [
        "novita",
        "cerebras",
        "featherless-ai",
    ]
    assert rows["huggingface:Qwen/Qwen2.5-VL-7B-Instruct"]["llmrelay"]["vision"] is True
    # the page reads ``vision`` at the top, as for every model
    assert rows["huggingface:Qwen/Qwen2.5-VL-7B-Instruct"]["vision"] is True
    assert llama["vision"] is False
    assert "alpha:m" in rows  # the static list is still there
    # the openai SDK reads the same list (the extra field is ignored)
    sdk = openai.OpenAI(base_url=f"{live_server}/v1", api_key="x", max_retries=0)
    ids = {m.id for m in sdk.models.list(extra_query={"live": "1"})}
    assert "huggingface:deepseek-ai/DeepSeek-R1" in ids
    assert len([r for r in fake.requests if r.path == "/v1/models"]) == 1  # cached


def test_live_failure_is_an_openai_error_that_quotes_nothing(live_server: str, router: Any) -> None:
    fake, _ = router
    fake.script.fault = Fault(
        "http_error", status=502, body="<!DOCTYPE html><html>octocat@example.org</html>"
    )
    response = httpx.get(f"{live_server}/v1/models", params={"live": "true"})
    assert response.status_code == 503
    assert "octocat" not in response.text
    assert response.json()["error"]["code"] == "upstream_unavailable"
