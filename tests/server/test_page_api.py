"""What the web page reads from the API: ``/v1/models`` descriptions and the attempts
header of a streamed answer (OpenAI clients still read both as before)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
from tests.server import scripted

import llmrelay


def test_models_say_provider_kind_readiness_and_aliases(server_url: str) -> None:
    body = httpx.get(server_url + "/v1/models").json()
    models = {m["id"]: m for m in body["data"]}
    assert models["alpha:m"] == {
        "id": "alpha:m",
        "object": "model",
        "created": 0,
        "owned_by": "alpha",
        "provider": "alpha",
        "kind": "chat",
        "ready": True,
        "vision": False,
    }
    assert models["painter:canvas"]["kind"] == "image"
    assert models["painter:m"]["kind"] == "chat"
    assert models["huggingface:black-forest-labs/FLUX.1-schnell"]["kind"] == "image"
    assert models["huggingface:Qwen/Qwen2-72B-Instruct"]["kind"] == "chat"
    assert models["replicate:black-forest-labs/flux-schnell"]["kind"] == "image"
    # no key for Replicate on this server (its key is required), HF's is optional
    assert models["replicate:meta/meta-llama-3-8b-instruct"]["ready"] is False
    assert models["huggingface:Qwen/Qwen2-72B-Instruct"]["ready"] is True
    chain = models["chain"]
    assert chain["alias_of"] == ["alpha:m", "beta:m"]
    assert (chain["provider"], chain["kind"], chain["ready"]) == ("alpha", "chat", True)
    providers = {p["name"]: p for p in body["providers"]}
    assert providers["replicate"] == {
        "name": "replicate",
        "label": "Replicate",
        "auth": "required",
        "key_set": False,
        "env_var": "REPLICATE_API_TOKEN",
    }
    assert providers["alpha"]["key_set"] is False
    assert providers["alpha"]["auth"] == "none"
    one = httpx.get(server_url + "/v1/models/painter:canvas").json()
    assert (one["id"], one["kind"], one["provider"]) == ("painter:canvas", "image", "painter")


def test_a_provider_with_its_key_is_ready(make_server: Any, base_config: Any) -> None:
    url = make_server(
        client_kwargs={**base_config.client_kwargs, "api_keys": {"replicate": "r8_secret"}}
    )
    body = httpx.get(url + "/v1/models").json()
    models = {m["id"]: m for m in body["data"]}
    assert models["replicate:meta/meta-llama-3-8b-instruct"]["ready"] is True
    assert {p["name"]: p["key_set"] for p in body["providers"]}["replicate"] is True
    assert "r8_secret" not in json.dumps(body)


def test_the_openai_sdk_still_reads_the_list(base_url: str) -> None:
    sdk = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    listed = {m.id: m for m in sdk.models.list()}
    assert listed["painter:canvas"].owned_by == "painter"
    assert listed["painter:canvas"].model_extra == {
        "provider": "painter",
        "kind": "image",
        "ready": True,
        "vision": False,
    }


def _stream(server_url: str, model: str) -> httpx.Response:
    with httpx.stream(
        "POST",
        server_url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        timeout=10,
    ) as response:
        response.read()
        return response


def test_a_streamed_answer_names_its_attempts(server_url: str) -> None:
    response = _stream(server_url, "alpha:m")
    assert json.loads(response.headers["x-llmrelay-attempts"]) == [
        {"provider": "alpha", "model": "m", "outcome": "ok", "error_type": None, "message": None}
    ]
    scripted.SCRIPTS["alpha"] = [
        llmrelay.ProviderUnavailable(
            "down, see https://status.example/alpha", provider="alpha", model="m"
        )
    ]
    response = _stream(server_url, "chain")
    assert b'"model":"beta:m"' in response.content
    attempts = json.loads(response.headers["x-llmrelay-attempts"])
    assert attempts == [
        {
            "provider": "alpha",
            "model": "m",
            "outcome": "failed",
            "error_type": "ProviderUnavailable",
            "message": "alpha (m): down, see <url>",
        },
        {"provider": "beta", "model": "m", "outcome": "ok", "error_type": None, "message": None},
    ]
